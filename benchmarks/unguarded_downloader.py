"""The crawl's driver without its guards, for benchmarks/crawl.py only. In a module of its own so
that crawl.py imports img2dataset lazily: processes the engine spawns import the benchmark's main
module, and should pay what the CLI's pay, not img2dataset's import."""
from img2dataset.downloader import Downloader

from wukong_data.stages.crawl_download import GuardedDownloader


class Unguarded(GuardedDownloader):
    """urllib's own opener (the resizer is swapped for img2dataset's by the caller): everything but
    the guards."""

    def __call__(self, row):
        return Downloader.__call__(self, row)
