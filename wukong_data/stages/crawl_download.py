"""img2dataset's parts, assembled with our guards (imported only when crawling: img2dataset pulls in
cv2, albumentations and, through webdataset, torch).

img2dataset's `download()` builds its Reader, Resizer, Downloader and writer itself and gives no
way to pass a urllib opener or a resizer, so the crawl assembles the same public classes here,
two of them subclassed. Only the engine's workers import this module: the crawl stage (crawl.py)
maps one download per shard on the build's engine like any other stage, and each worker
assembles the parts from a small crawl.CrawlJob (on the local engine the same worker processes,
img2dataset imported once, serve the whole build):

- GuardedDownloader installs fetch.guarded_opener in each worker process before a shard starts:
  img2dataset's `download_image` calls `urllib.request.urlopen`, which uses the opener installed
  in its process (urllib.request.install_opener). Every connection, redirect hops included, then
  goes through the address check, the deadline and the byte limit. It also writes each shard (its
  Parquet, then img2dataset's NNNNN_stats.json, which marks it complete) into the job's tmp
  folder and renames both into place when the shard is done, Parquet first: no half-written file
  ever has its final name. Its process's own output (img2dataset's tracebacks, decoders'
  warnings) goes to the crawl log, not to the terminal.
- BoundedResizer refuses an image whose header declares more than images.MAX_PIXELS before
  img2dataset's resizer decodes it (cv2 would allocate whatever the header claims).
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# The columns of a shard, in the order img2dataset's Reader gives them (our extra column first).
COLUMNS = ["invalid_url", "caption", "url"]

# Set here, in the crawling processes only, before img2dataset loads albumentations (which otherwise
# checks the network for updates at import) and wandb (its logging is never enabled).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from img2dataset.downloader import Downloader  # noqa: E402
from img2dataset.resizer import Resizer  # noqa: E402
from img2dataset.writer import ParquetSampleWriter  # noqa: E402

from ..fetch import FetchPolicy, guarded_opener
from ..images import undecodable_reason
from ..storage import move, path, uri
from ..ui import quiet_fds


class GuardedDownloader(Downloader):
    """img2dataset's Downloader writing into `tmp_folder`, publishing into `output_folder`."""

    def __init__(self, policy: FetchPolicy, output_folder: str, tmp_folder: str, log: str, **kwargs):
        super().__init__(output_folder=tmp_folder, **kwargs)
        self.policy = policy
        self.final_folder = output_folder
        self.log = log

    def __call__(self, row):
        urllib.request.install_opener(guarded_opener(self.policy))
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with quiet_fds(self.log):
            return super().__call__(row)

    def download_shard(self, row):
        super().download_shard(row)
        shard = f"{row[0]:0{self.oom_shard_count}d}"
        for name in (f"{shard}.parquet", f"{shard}_stats.json"):  # the stats file last: it marks completion
            move(path(self.output_folder) / name, path(self.final_folder) / name)


class BoundedResizer(Resizer):
    def __call__(self, img_stream, blurring_bbox_list=None):
        reason = undecodable_reason(img_stream.getvalue())
        if reason is not None:
            return None, None, None, None, None, reason
        return super().__call__(img_stream, blurring_bbox_list)


def download(downloader: Downloader, shard) -> bool:
    """Crawl `shard` (a crawl.CrawlShard): its rows handed to the downloader as img2dataset's
    Reader hands a shard (an Arrow file of its columns in the downloader's working folder). False
    when the shard failed as a whole (the reason is in the crawl log)."""
    tmp = path(downloader.output_folder)
    tmp.mkdir(parents=True, exist_ok=True)
    rows = _read_rows(shard.input_file, shard.begin, shard.end)
    arrow = tmp / f"{shard.id}.feather"
    with arrow.open("wb") as f, pa.ipc.new_file(f, rows.schema) as writer:
        writer.write_table(rows)
    done, _ = downloader((shard.id, uri(arrow)))  # which removes the Arrow file
    return done


def _read_rows(file, begin: int, end: int) -> pa.Table:
    """Rows [begin, end) of a Parquet file, reading only the row groups that hold them (the crawl
    writes one per shard)."""
    with path(file).open("rb") as f:
        parquet = pq.ParquetFile(f)
        groups, first, start = [], None, 0
        for i in range(parquet.metadata.num_row_groups):
            stop = start + parquet.metadata.row_group(i).num_rows
            if start < end and stop > begin:
                groups.append(i)
                first = start if first is None else first
            start = stop
        return parquet.read_row_groups(groups, columns=COLUMNS).slice(begin - first, end - begin)


def downloader(job) -> GuardedDownloader:
    """Our downloader of `job` (a crawl.CrawlJob): cheap to build (img2dataset's import is the cost)."""
    cfg = job.cfg
    resizer = BoundedResizer(image_size=cfg.image_size, resize_mode=cfg.resize_mode,
                             resize_only_if_bigger=cfg.resize_only_if_bigger, encode_quality=cfg.encode_quality,
                             encode_format=cfg.encode_format, skip_reencode=cfg.skip_reencode)
    policy = FetchPolicy(allow=tuple(cfg.allow_addresses), max_bytes=cfg.max_image_bytes,
                         max_seconds=cfg.max_image_seconds)
    return GuardedDownloader(
        policy, log=str(job.log), tmp_folder=uri(job.tmp_dir), sample_writer_class=ParquetSampleWriter,
        resizer=resizer, thread_count=cfg.threads, save_caption=True, extract_exif=False,
        output_folder=uri(job.output_dir), column_list=COLUMNS, timeout=cfg.timeout,
        number_sample_per_shard=cfg.samples_per_shard, oom_shard_count=job.shard_digits, compute_hash="sha256",
        verify_hash_type=None, encode_format=cfg.encode_format, retries=cfg.retries,
        user_agent_token=cfg.user_agent_token, disallowed_header_directives=cfg.disallowed_header_directives or None,
    )
