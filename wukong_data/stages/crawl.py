"""Crawl: normalise the URL lists, download with img2dataset, count a reason for every row.

img2dataset's downloader does the downloading (threads, retries, resizing, X-Robots-Tag opt-outs),
with our guards on every connection and image (crawl_download.py, fetch.py), in the engine's
workers. This module prepares its input (a Parquet row group per shard), maps the shards not yet
complete on the engine, and counts each shard's reasons (reasons.crawl_reason).
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..build import BuildDir, Counts, KeyLayout
from ..errors import Incomplete, UserError
from ..readers import read_inputs
from ..recipe import CrawlConfig
from ..storage import atomic_path, remove, write_json_atomic
from . import StageContext
from .runner import Runner

_INPUT_DONE = "_done.json"
_TMP = "_tmp"  # img2dataset's working folder in the crawl folder: its input shards, shards being written


def write_counts(task: tuple[str, str]) -> None:
    """The counts file of one crawl shard (its reasons derived from img2dataset's status)."""
    root, shard = task
    build = BuildDir(root)
    reasons = build.scan_decisions("crawl", shard).select("reason").collect()["reason"]
    write_json_atomic(build.stage_dir("crawl") / f"{shard}.counts.json", Counts.of(reasons).to_dict())


@dataclass(frozen=True)
class CrawlJob:
    """A build's crawl as img2dataset's parts need it (crawl_download.py builds them from it in
    each worker): small and picklable, so the driver never imports img2dataset."""

    output_dir: Path
    tmp_dir: Path
    cfg: CrawlConfig
    shard_digits: int
    log: Path


@dataclass(frozen=True)
class CrawlShard:
    """Rows [begin, end) of an input file: crawl shard `id` (ids run on across the input files,
    `samples_per_shard` rows each, the last of a file shorter)."""

    id: int
    input_file: Path
    begin: int
    end: int


def input_shards(input_dir: Path, rows_per_file: list[int], samples_per_shard: int) -> list[CrawlShard]:
    shards = []
    for i, rows in enumerate(rows_per_file):
        for begin in range(0, rows, samples_per_shard):
            shards.append(CrawlShard(len(shards), input_dir / f"{i:05d}.parquet", begin,
                                     min(rows, begin + samples_per_shard)))
    return shards


def download_shard(task: tuple[CrawlJob, CrawlShard]) -> bool:
    """One shard through our downloader, in a worker: whether it completed."""
    from .crawl_download import download, downloader

    job, shard = task
    return download(downloader(job), shard)


class CrawlStage:
    """Normalise the URL lists, then crawl them with img2dataset."""

    def run(self, ctx: StageContext) -> None:
        if ctx.recipe.input.from_crawl:
            from .adopt import adopt

            adopt(ctx, ctx.recipe.input.from_crawl)
        else:
            self._crawl(ctx)
        crawl = ctx.build.stage_dir("crawl")
        Runner(ctx).map(write_counts, [(str(ctx.build.root), s) for s in ctx.build.crawl_shards()],
                        lambda task: [crawl / f"{task[1]}.counts.json"])

    def _crawl(self, ctx: StageContext) -> None:
        adopted = ctx.build.read_manifest().get("crawl_source")
        if adopted:
            raise UserError(f"{ctx.build.root}: its crawl was adopted from {adopted['from_crawl']}; pass --force "
                            f"to crawl the URL list instead")
        rows_per_file = self._prepare_input(ctx)
        shards = input_shards(ctx.build.input_dir, rows_per_file, ctx.recipe.crawl.samples_per_shard)
        crawl = ctx.build.stage_dir("crawl")
        job = CrawlJob(output_dir=crawl, tmp_dir=crawl / _TMP, cfg=ctx.recipe.crawl,
                       shard_digits=ctx.build.layout.shard_digits, log=ctx.build.log_dir / "crawl.log")
        tasks = [(job, s) for s in shards]
        if Runner.todo(tasks, self.stats_file(ctx)):
            ctx.build.log_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._download(ctx, tasks, sum(rows_per_file))
            finally:
                ctx.build.publish_logs()
        n_shards = len(shards)
        missing = n_shards - len(ctx.build.crawl_shards())
        if missing:
            raise Incomplete(
                f"crawl incomplete: {missing} of {n_shards} shards failed; run the same command again to "
                f"retry them (details in {ctx.build.logs / 'crawl.log'})"
            )

    def _prepare_input(self, ctx: StageContext) -> list[int]:
        """Write DIR/input/NNNNN.parquet, one per input file, a row group per crawl shard; skipped
        when already done for this input. Returns the rows of each."""
        build, cfg = ctx.build, ctx.recipe.input
        spec = {"input": vars(cfg).copy(), "limit": ctx.limit, "samples_per_shard": ctx.recipe.crawl.samples_per_shard}
        done_path = build.input_dir / _INPUT_DONE
        if done_path.exists():
            done = json.loads(done_path.read_text(encoding="utf-8"))
            if done["spec"] == spec:
                return [source["rows"] for source in done["sources"]]
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
        samples_per_shard = ctx.recipe.crawl.samples_per_shard
        for i, (source, table) in enumerate(read_inputs(cfg, ctx.limit)):
            with atomic_path(build.input_dir / f"{i:05d}.parquet") as tmp:
                pq.write_table(table, tmp, row_group_size=samples_per_shard)
            rows += table.num_rows
            shards += math.ceil(table.num_rows / samples_per_shard)  # each input file is cut on its own
            sources.append({"file": source, "rows": table.num_rows})
        if not rows:
            raise UserError(f"{cfg.path}: the input holds no rows (only a header?)")
        layout = KeyLayout.for_crawl(shards, ctx.recipe.crawl.samples_per_shard)
        build.update_manifest(keys={"shard_digits": layout.shard_digits, "row_digits": layout.row_digits})
        write_json_atomic(done_path, {"spec": spec, "rows": rows, "shards": shards, "sources": sources})
        return [source["rows"] for source in sources]

    @staticmethod
    def stats_file(ctx: StageContext):
        """A crawl task's completion marker: its shard's stats file, which img2dataset writes last."""
        crawl, digits = ctx.build.stage_dir("crawl"), ctx.build.layout.shard_digits
        return lambda task: [crawl / f"{task[1].id:0{digits}d}_stats.json"]

    def _download(self, ctx: StageContext, tasks: list[tuple[CrawlJob, CrawlShard]], n_rows: int) -> None:
        """Every shard not yet complete, on the engine; a shard whose download failed as a whole is
        tried again `shard_retries` times at most (one still missing then fails the crawl)."""
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
                Runner(ctx).map(download_shard, tasks, self.stats_file(ctx), retries=ctx.recipe.crawl.shard_retries)
                remove(tasks[0][0].tmp_dir)
            finally:
                stop.set()
                poller.join()
                advance(completed=rows_done())
