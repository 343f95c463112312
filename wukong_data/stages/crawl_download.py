"""img2dataset's parts, assembled with our guards (imported only when crawling: img2dataset pulls in
cv2, albumentations and, through webdataset, torch).

img2dataset's `download()` builds its Reader, Resizer, Downloader and writer itself and gives no
way to pass a urllib opener or a resizer, so the crawl assembles the same public classes here,
two of them subclassed, and runs them on img2dataset's own distributor:

- GuardedDownloader installs fetch.guarded_opener in each worker process before a shard starts:
  img2dataset's `download_image` calls `urllib.request.urlopen`, which uses the opener installed
  in its process (urllib.request.install_opener). Every connection, redirect hops included, then
  goes through the address check, the deadline and the byte limit. It also writes each shard (its
  Parquet, then img2dataset's NNNNN_stats.json, which marks it complete) into img2dataset's _tmp
  folder and renames both into place when the shard is done, Parquet first: no half-written file
  ever has its final name.
- BoundedResizer refuses an image whose header declares more than images.MAX_PIXELS before
  img2dataset's resizer decodes it (cv2 would allocate whatever the header claims).
"""
from __future__ import annotations

import os
import urllib.request

# Set here, in the crawling process only, before img2dataset loads albumentations (which otherwise
# checks the network for updates at import) and wandb (its logging is never enabled).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import img2dataset.distributor  # noqa: E402
from img2dataset.downloader import Downloader  # noqa: E402
from img2dataset.reader import Reader  # noqa: E402
from img2dataset.resizer import Resizer  # noqa: E402
from img2dataset.writer import ParquetSampleWriter  # noqa: E402

from ..fetch import FetchPolicy, guarded_opener
from ..images import undecodable_reason
from ..recipe import CrawlConfig
from ..storage import move, path, remove, uri

TMP = "_tmp"  # img2dataset's working folder in the output folder: its input shards, shards being written


class GuardedDownloader(Downloader):
    """img2dataset's Downloader writing into `output_folder`/_tmp, publishing into `output_folder`."""

    def __init__(self, policy: FetchPolicy, output_folder: str, **kwargs):
        super().__init__(output_folder=uri(path(output_folder) / TMP), **kwargs)
        self.policy = policy
        self.final_folder = output_folder

    def __call__(self, row):
        urllib.request.install_opener(guarded_opener(self.policy))
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


def assemble(input_dir, output_dir, cfg: CrawlConfig, shard_digits: int) -> tuple[Reader, GuardedDownloader]:
    """img2dataset's reader of the input shards not yet complete in output_dir (a shard is complete
    once its NNNNN_stats.json is there), and our downloader of them."""
    done = {int(p.name.split("_")[0]) for p in output_dir.glob("*_stats.json")}
    reader = Reader(url_list=uri(input_dir), input_format="parquet", url_col="url", caption_col="caption",
                    verify_hash_col=None, verify_hash_type=None, save_additional_columns=["invalid_url"],
                    number_sample_per_shard=cfg.samples_per_shard, done_shards=done, tmp_path=uri(output_dir / TMP))
    resizer = BoundedResizer(image_size=cfg.image_size, resize_mode=cfg.resize_mode,
                             resize_only_if_bigger=cfg.resize_only_if_bigger, encode_quality=cfg.encode_quality,
                             encode_format=cfg.encode_format, skip_reencode=cfg.skip_reencode)
    policy = FetchPolicy(allow=tuple(cfg.allow_addresses), max_bytes=cfg.max_image_bytes,
                         max_seconds=cfg.max_image_seconds)
    downloader = GuardedDownloader(
        policy, sample_writer_class=ParquetSampleWriter, resizer=resizer, thread_count=cfg.threads,
        save_caption=True, extract_exif=False, output_folder=uri(output_dir), column_list=reader.column_list,
        timeout=cfg.timeout, number_sample_per_shard=cfg.samples_per_shard, oom_shard_count=shard_digits,
        compute_hash="sha256", verify_hash_type=None, encode_format=cfg.encode_format, retries=cfg.retries,
        user_agent_token=cfg.user_agent_token, disallowed_header_directives=cfg.disallowed_header_directives or None,
    )
    return reader, downloader


def run(reader: Reader, downloader: Downloader, processes: int, distributor: str, shard_retries: int = 1) -> None:
    """Download every shard of `reader` on img2dataset's distributor (its multiprocessing one
    retries a failed shard `shard_retries` times; its ray one never does)."""
    tmp = path(reader.tmp_path)
    tmp.mkdir(parents=True, exist_ok=True)
    getattr(img2dataset.distributor, f"{distributor}_distributor")(processes, downloader, reader, 1000, shard_retries)
    remove(tmp)


def download(input_dir, output_dir, cfg: CrawlConfig, *, processes: int, distributor: str, shard_digits: int) -> None:
    """Crawl every input shard (DIR/input/*.parquet) not yet complete in output_dir."""
    run(*assemble(input_dir, output_dir, cfg, shard_digits), processes, distributor, cfg.shard_retries)
