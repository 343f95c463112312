"""Runs a per-row processor over crawl shards: each shard's entering rows -> one Parquet file.

The rows entering a stage are those kept by every stage before it. A processor is a class with
`from_config(dict)`, `input_columns` and `process(rows) -> DataFrame` giving one row per
entering row (for a filtering stage: key, reason (null = kept) and its own columns). Output is
written atomically; a shard whose output exists is skipped on resume.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..errors import ContractError
from ..build import SHARD_ID_WIDTH, BuildDir, atomic_path, remove_stale_tmp
from ..recipe import Recipe, stages_before
from . import StageContext


@dataclass(frozen=True)
class ShardTask:
    root: str
    shard: str
    processor: str  # "module:Class"
    config_json: str
    prior: tuple[str, ...]  # decided stages before this one, crawl first
    out_dir: str


@functools.lru_cache(maxsize=4)
def _processor(spec: str, config_json: str):
    """One instance per worker process and config: models load once, not once per shard."""
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls).from_config(json.loads(config_json))


def entering_rows(build: BuildDir, shard: str, prior: tuple[str, ...], columns: list[str]) -> pl.DataFrame:
    from .crawl import crawl_reason

    rows = pl.scan_parquet(build.crawl_path(shard)).filter(crawl_reason().is_null())
    for stage in prior[1:]:
        decided = pl.scan_parquet(build.stage_dir(stage) / f"{shard}.parquet")
        rows = rows.join(decided.filter(pl.col("reason").is_not_null()).select("key"), on="key", how="anti")
        # A stage's own version of a column (the filter's cleaned caption) replaces the crawl's.
        newer = [c for c in decided.collect_schema().names() if c in columns and c != "key"]
        if newer:
            rows = rows.drop(newer).join(decided.select("key", *newer), on="key", how="left")
    return rows.select(columns).collect()


def run_shard(task: ShardTask) -> int:
    build = BuildDir(task.root)
    processor = _processor(task.processor, task.config_json)
    rows = entering_rows(build, task.shard, task.prior, processor.input_columns)
    out = processor.process(rows)
    if out.height != rows.height or not out["key"].sort().equals(rows["key"].sort()):
        raise ContractError(f"{task.processor} gave {out.height} rows for the {rows.height} entering rows of "
                            f"shard {task.shard}; a processor must give one row per entering row")
    with atomic_path(Path(task.out_dir) / f"{task.shard}.parquet") as tmp:
        out.write_parquet(tmp)
    return rows.height


def stage_config(recipe: Recipe, stage: str) -> dict:
    """What a stage's workers need of the recipe (JSON-serialisable)."""
    return {stage: dataclasses.asdict(getattr(recipe, stage)), "image_column": recipe.crawl.encode_format}


def run_per_shard(ctx: StageContext, stage: str, processor: str, out_dir: Path, description: str,
                  config: dict | None = None) -> None:
    build = ctx.build
    prior = tuple(stages_before(ctx.recipe.stages, stage))
    shards = build.crawl_shards()
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out_dir)
    todo = [s for s in shards if not (out_dir / f"{s}.parquet").exists()]
    config = json.dumps(config or stage_config(ctx.recipe, stage), sort_keys=True)
    tasks = [ShardTask(str(build.root), s, processor, config, prior, str(out_dir)) for s in todo]
    total = build.kept_keys(list(prior)).select(pl.len()).collect().item()
    with ctx.ui.progress(description, total=total) as advance:
        done = [out_dir / f"{s}.parquet" for s in shards if s not in todo]
        advance(pl.scan_parquet(done).select(pl.len()).collect().item() if done else 0)
        ctx.engine.map(run_shard, tasks, on_result=advance)


MAP_DIR = "_map"


def run_two_phase(ctx: StageContext, stage: str, processor: str, reduce, carry: list[str],
                  config: dict | None = None) -> None:
    """A global decision in two phases (DESIGN.md): `processor` maps every shard to compact
    per-row records in DIR/<stage>/_map/; `reduce(records)` decides once over all of them,
    returning key, reason and its own columns for the rows it has something to say about;
    the decisions, with the `carry` columns of the records, are written per shard."""
    out = ctx.build.stage_dir(stage)
    shards = ctx.build.crawl_shards()
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out)
    if all((out / f"{s}.parquet").exists() for s in shards):
        return
    run_per_shard(ctx, stage, processor, out / MAP_DIR, stage, config)
    decided = reduce(pl.scan_parquet([out / MAP_DIR / f"{s}.parquet" for s in shards]))
    parts = decided.with_columns(_shard=pl.col("key").str.slice(0, SHARD_ID_WIDTH)).partition_by(
        "_shard", as_dict=True, include_key=False)
    for shard in shards:
        path = out / f"{shard}.parquet"
        if path.exists():
            continue
        rows = pl.read_parquet(out / MAP_DIR / f"{shard}.parquet", columns=["key", *carry])
        rows = rows.join(parts.get((shard,), decided.clear()), on="key", how="left")
        with atomic_path(path) as tmp:
            rows.select(decided.columns + carry).write_parquet(tmp)


class ShardStage:
    """A stage that is one per-row processor: its output files are the stage's decisions."""

    def __init__(self, name: str, processor: str):
        self.name, self.processor = name, processor

    def run(self, ctx: StageContext) -> None:
        run_per_shard(ctx, self.name, self.processor, ctx.build.stage_dir(self.name), self.name)
