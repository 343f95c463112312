"""Runs a per-row stage over crawl shards: each shard's entering rows -> DIR/<stage>/NNNNN.parquet.

The rows entering a stage are those kept by every stage before it. The stage's `process`
returns one row per entering row: key, reason (null = kept) and its own columns. Output is
written atomically; a shard whose output exists is skipped on resume.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import polars as pl

from ..build import BuildDir, atomic_path
from . import StageContext


@dataclass(frozen=True)
class ShardTask:
    root: str
    shard: str
    stage: str
    config_json: str
    prior: tuple[str, ...]  # decided stages before this one, crawl first


@functools.lru_cache(maxsize=4)
def _stage_instance(stage: str, config_json: str):
    """One instance per worker process and config: models load once, not once per shard."""
    from ..pipeline import stage_class

    return stage_class(stage).from_config(json.loads(config_json))


def entering_rows(build: BuildDir, shard: str, prior: tuple[str, ...], columns: list[str]) -> pl.DataFrame:
    from .crawl import crawl_reason

    rows = pl.scan_parquet(build.crawl_path(shard)).filter(crawl_reason().is_null())
    for stage in prior[1:]:
        rejected = pl.scan_parquet(build.stage_dir(stage) / f"{shard}.parquet").filter(pl.col("reason").is_not_null())
        rows = rows.join(rejected.select("key"), on="key", how="anti")
    return rows.select(columns).collect()


def run_shard(task: ShardTask) -> int:
    build = BuildDir(task.root)
    stage = _stage_instance(task.stage, task.config_json)
    rows = entering_rows(build, task.shard, task.prior, stage.input_columns)
    decisions = stage.process(rows)
    assert decisions.height == rows.height and decisions["key"].sort().equals(rows["key"].sort()), \
        f"{task.stage} must decide every entering row once"
    with atomic_path(build.stage_dir(task.stage) / f"{task.shard}.parquet") as tmp:
        decisions.write_parquet(tmp)
    return rows.height


def run_per_shard(ctx: StageContext, stage: str, config: dict) -> None:
    build = ctx.build
    prior = tuple(s for s in ctx.recipe.stages[: ctx.recipe.stages.index(stage)] if s not in ctx.recipe.pending)
    shards = build.crawl_shards()
    todo = [s for s in shards if not (build.stage_dir(stage) / f"{s}.parquet").exists()]
    tasks = [ShardTask(str(build.root), s, stage, json.dumps(config, sort_keys=True), prior) for s in todo]
    total = build.kept_keys(list(prior)).select(pl.len()).collect().item()
    with ctx.ui.progress(stage, total=total) as advance:
        done = build.decisions(stage).select(pl.len()).collect().item() if len(todo) < len(shards) else 0
        advance(done)
        ctx.engine.map(run_shard, tasks, on_result=advance)
