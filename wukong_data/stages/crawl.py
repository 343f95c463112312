"""Crawl: normalise the URL lists, download with img2dataset, derive a reason for every row.

img2dataset does the downloading (threads, processes, retries, resizing, X-Robots-Tag opt-outs,
incremental resume); this module only prepares its input and reads its output.
"""
from __future__ import annotations

import json
import math
import signal
import threading

import polars as pl
import pyarrow.parquet as pq

from ..build import BuildDir, Counts, KeyLayout, atomic_path, write_json_atomic
from ..errors import Incomplete, UserError
from ..storage import uri
from ..readers import read_inputs
from ..ui import quiet_fds
from . import StageContext

_INPUT_DONE = "_done.json"


def crawl_reason() -> pl.Expr:
    """The reason code of a crawled row, from img2dataset's status and error columns."""
    status, error = pl.col("status"), pl.col("error_message").fill_null("")
    return (
        pl.when(pl.col("url") == "").then(pl.lit("invalid_url"))
        .when(status == "success").then(pl.lit(None, pl.String))
        .when(error.str.contains("X-Robots-Tag")).then(pl.lit("opted_out"))
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


def _from_sigint_handler(exit_: SystemExit) -> bool:
    """Was this exit raised by img2dataset's SIGINT handler (Ctrl-C), not by anything else?"""
    tb = exit_.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == "signal_handler" and \
        tb.tb_frame.f_globals.get("__name__") == "img2dataset.main"


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
        layout = KeyLayout.for_crawl(shards, ctx.recipe.crawl.samples_per_shard)
        build.update_manifest(keys={"shard_digits": layout.shard_digits, "row_digits": layout.row_digits})
        write_json_atomic(done_path, {"spec": spec, "rows": rows, "shards": shards, "sources": sources})
        return rows, shards

    def _download(self, ctx: StageContext, n_rows: int, n_shards: int) -> None:
        from img2dataset import download  # heavy import (cv2, albumentations): only when crawling

        cfg = ctx.recipe.crawl
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
            sigint = signal.getsignal(signal.SIGINT)
            try:
                with quiet_fds(build.log_dir / "crawl.log"):
                    download(
                        url_list=uri(build.input_dir),
                        input_format="parquet",
                        url_col="url",
                        caption_col="caption",
                        save_additional_columns=["invalid_url"],
                        output_folder=uri(build.stage_dir("crawl")),
                        output_format="parquet",
                        image_size=cfg.image_size,
                        resize_mode=cfg.resize_mode,
                        resize_only_if_bigger=cfg.resize_only_if_bigger,
                        encode_format=cfg.encode_format,
                        encode_quality=cfg.encode_quality,
                        skip_reencode=cfg.skip_reencode,
                        timeout=cfg.timeout,
                        retries=cfg.retries,
                        processes_count=ctx.engine.workers,
                        thread_count=cfg.threads,
                        number_sample_per_shard=cfg.samples_per_shard,
                        oom_shard_count=build.layout.shard_digits,
                        distributor=ctx.engine.img2dataset_distributor,
                        max_shard_retry=cfg.shard_retries,
                        incremental_mode="incremental",
                        compute_hash="sha256",
                        extract_exif=False,
                        user_agent_token=cfg.user_agent_token,
                        disallowed_header_directives=cfg.disallowed_header_directives,
                        enable_wandb=False,
                    )
            except SystemExit as exit_:
                if _from_sigint_handler(exit_):
                    raise KeyboardInterrupt from None  # img2dataset turns Ctrl-C into exit(0)
                raise Incomplete(f"crawl: img2dataset exited (code {exit_.code}); details in "
                                 f"{build.log_dir / 'crawl.log'}; run the same command again to resume") from None
            finally:
                signal.signal(signal.SIGINT, sigint)
                stop.set()
                poller.join()
                advance(completed=rows_done())
