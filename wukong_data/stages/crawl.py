"""Crawl: normalise the URL lists, download with img2dataset, derive a reason for every row.

img2dataset does the downloading (threads, processes, retries, resizing, X-Robots-Tag opt-outs,
incremental resume), with our guards on every connection and image (crawl_download.py, fetch.py);
this module prepares its input and reads its output.
"""
from __future__ import annotations

import json
import math
import threading

import polars as pl
import pyarrow.parquet as pq

from ..build import BuildDir, Counts, KeyLayout, atomic_path, write_json_atomic
from ..errors import Incomplete, UserError
from ..fetch import BLOCKED_MESSAGE
from ..readers import read_inputs
from ..ui import quiet_fds
from . import StageContext

_INPUT_DONE = "_done.json"
# The error texts our code and img2dataset's give these cases; a server cannot forge them (its
# words appear only after "HTTP Error NNN: ").
_BLOCKED_ERROR = f"<urlopen error {BLOCKED_MESSAGE} "
_OPTED_OUT_ERROR = "Use of image disallowed by X-Robots-Tag directive"


def crawl_reason() -> pl.Expr:
    """The reason code of a crawled row, from img2dataset's status and error columns."""
    status, error = pl.col("status"), pl.col("error_message").fill_null("")
    return (
        pl.when(pl.col("url") == "").then(pl.lit("invalid_url"))
        .when(status == "success").then(pl.lit(None, pl.String))
        .when(error.str.starts_with(_BLOCKED_ERROR)).then(pl.lit("blocked_address"))
        .when(error == _OPTED_OUT_ERROR).then(pl.lit("opted_out"))
        .when(status == "failed_to_resize").then(pl.lit("decode_failed"))
        .otherwise(pl.lit("download_failed"))
    )


def write_counts(task: tuple[str, str]) -> None:
    """The counts file of one crawl shard (its reasons derived from img2dataset's status)."""
    root, shard = task
    build = BuildDir(root)
    reasons = build.scan_decisions("crawl", shard).select("reason").collect()["reason"]
    write_json_atomic(build.stage_dir("crawl") / f"{shard}.counts.json", Counts.of(reasons).to_dict())


def _ray_task_failed(err: Exception) -> bool:
    try:
        from ray.exceptions import RayError
    except ImportError:
        return False
    return isinstance(err, RayError)


class CrawlStage:
    """Normalise the URL lists, then crawl them with img2dataset."""

    def run(self, ctx: StageContext) -> None:
        if ctx.recipe.input.from_crawl:
            from .adopt import adopt

            adopt(ctx, ctx.recipe.input.from_crawl)
        else:
            self._crawl(ctx)
        crawl = ctx.build.stage_dir("crawl")
        ctx.engine.map(write_counts, [(str(ctx.build.root), s) for s in ctx.build.crawl_shards()
                                      if not (crawl / f"{s}.counts.json").exists()])

    def _crawl(self, ctx: StageContext) -> None:
        adopted = ctx.build.read_manifest().get("crawl_source")
        if adopted:
            raise UserError(f"{ctx.build.root}: its crawl was adopted from {adopted['from_crawl']}; pass --force "
                            f"to crawl the URL list instead")
        n_rows, n_shards = self._prepare_input(ctx)
        ctx.build.log_dir.mkdir(parents=True, exist_ok=True)
        # img2dataset retries a failed shard under multiprocessing, not under its ray distributor:
        # there, each pass over the shards still missing is a retry (incremental mode skips the rest).
        passes = 1 + (ctx.recipe.crawl.shard_retries if ctx.engine.img2dataset_distributor == "ray" else 0)
        for _ in range(passes):
            if len(ctx.build.crawl_shards()) >= n_shards:
                break
            try:
                self._download(ctx, n_rows, n_shards)
            except Exception as err:  # noqa: BLE001 - only a Ray task's failure is a shard to retry
                if not _ray_task_failed(err):
                    raise
        shards = ctx.build.crawl_shards()
        missing = n_shards - len(shards)
        if missing:
            raise Incomplete(
                f"crawl incomplete: {missing} of {n_shards} shards failed; run the same command again to "
                f"retry them (details in {ctx.build.log_dir / 'crawl.log'})"
            )

    def _prepare_input(self, ctx: StageContext) -> tuple[int, int]:
        """Write DIR/input/NNNNN.parquet, one per input file; skipped when already done for this input."""
        build, cfg = ctx.build, ctx.recipe.input
        spec = {"input": vars(cfg).copy(), "limit": ctx.limit, "samples_per_shard": ctx.recipe.crawl.samples_per_shard}
        done_path = build.input_dir / _INPUT_DONE
        if done_path.exists():
            done = json.loads(done_path.read_text(encoding="utf-8"))
            if done["spec"] == spec:
                return done["rows"], done["shards"]
            if build.crawl_shards():
                raise UserError(
                    f"{build.root}: this build was crawled from other input or settings "
                    f"({done['spec']}); pass --force to rebuild it"
                )
        build.input_dir.mkdir(parents=True, exist_ok=True)
        for old in build.input_dir.glob("*"):
            old.unlink()
        rows = shards = 0
        sources = []
        for i, (source, table) in enumerate(read_inputs(cfg, ctx.limit)):
            with atomic_path(build.input_dir / f"{i:05d}.parquet") as tmp:
                pq.write_table(table, tmp)
            rows += table.num_rows
            # img2dataset cuts each input file into its own shards.
            shards += math.ceil(table.num_rows / ctx.recipe.crawl.samples_per_shard)
            sources.append({"file": source, "rows": table.num_rows})
        if not rows:
            raise UserError(f"{cfg.path}: the input holds no rows (only a header?)")
        layout = KeyLayout.for_crawl(shards, ctx.recipe.crawl.samples_per_shard)
        build.update_manifest(keys={"shard_digits": layout.shard_digits, "row_digits": layout.row_digits})
        write_json_atomic(done_path, {"spec": spec, "rows": rows, "shards": shards, "sources": sources})
        return rows, shards

    def _download(self, ctx: StageContext, n_rows: int, n_shards: int) -> None:
        from .crawl_download import download  # heavy import (cv2, albumentations): only when crawling

        build = ctx.build
        stop = threading.Event()

        finished: dict[str, int] = {}  # rows of each finished shard: each stats file is read once

        def rows_done() -> int:
            for stats in build.stage_dir("crawl").glob("*_stats.json"):
                if stats.name not in finished:
                    try:
                        finished[stats.name] = json.loads(stats.read_text())["count"]
                    except (ValueError, KeyError, OSError):
                        pass  # being written
            return sum(finished.values())

        with ctx.ui.progress("crawl", total=n_rows) as advance:
            def poll():
                while not stop.wait(2.0):
                    advance(completed=rows_done())

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            try:
                with quiet_fds(build.log_dir / "crawl.log"):
                    download(build.input_dir, build.stage_dir("crawl"), ctx.recipe.crawl, processes=ctx.engine.workers,
                             distributor=ctx.engine.img2dataset_distributor, shard_digits=build.layout.shard_digits)
            finally:
                stop.set()
                poller.join()
                advance(completed=rows_done())
