"""The crawl's driver without its guards, for benchmarks/crawl.py only. In a module of its own so
that crawl.py imports img2dataset lazily: processes the engine spawns import the benchmark's main
module, and should pay what the CLI's pay, not img2dataset's import."""
from img2dataset.downloader import Downloader
from img2dataset.resizer import Resizer

from wukong_data.stages.crawl_download import GuardedDownloader, download, downloader
from wukong_data.ui import quiet_fds


class Unguarded(GuardedDownloader):
    """urllib's own opener and img2dataset's own resizer: everything but the guards."""

    def __call__(self, row):
        with quiet_fds(self.log):
            return Downloader.__call__(self, row)


def download_unguarded(task):
    """crawl.download_shard, unguarded."""
    job, shard = task
    unguarded = downloader(job)
    unguarded.__class__, unguarded.resizer.__class__ = Unguarded, Resizer
    return download(unguarded, shard)
