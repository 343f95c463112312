"""Runs a per-row processor over crawl shards: each shard's entering rows -> one Parquet file.

The rows entering a stage are those the stage before it kept. A processor is a class with
`from_config(dict)`, `input_columns` and `process(rows) -> DataFrame` giving one row per
entering row (for a filtering stage: key, reason (null = kept) and its own columns). Output is
written atomically; a shard whose output exists is skipped on resume. A filtering stage's
output is its decisions, written with their counts (BuildDir.write_decisions); the map phase of
a global stage writes compact records instead (no reason yet).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..build import BuildDir, atomic_path, remove_stale_tmp
from ..engines import CPU, Resources
from ..errors import ContractError
from ..recipe import Recipe, stages_before
from ..storage import path, uri
from . import StageContext


@dataclass(frozen=True)
class ShardTask:
    root: str
    shard: str
    processor: str  # "module:Class"
    config_json: str
    prior: tuple[str, ...]  # decided stages before this one, crawl first
    out_dir: str
    stage: str | None  # set: the output is this stage's decisions (with counts); None: map records


@functools.lru_cache(maxsize=4)
def _processor(spec: str, config_json: str):
    """One instance per worker process and config: models load once, not once per shard."""
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls).from_config(json.loads(config_json))


def entering_rows(build: BuildDir, shard: str, prior: tuple[str, ...], columns: list[str]) -> pl.DataFrame:
    """The shard's rows kept by the last of `prior`, with the newest version of each column (a
    stage's own version of a column, such as the filter's cleaned caption, replaces the crawl's)."""
    rows = build.scan_crawl(shard).join(build.kept(prior[-1], shard), on="key", how="semi")
    for stage in prior[1:]:
        decided = build.scan_decisions(stage, shard)
        newer = [c for c in decided.collect_schema().names() if c in columns and c not in ("key", "reason")]
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
    if task.stage:
        build.write_decisions(task.stage, task.shard, out)
    elif hasattr(processor, "write"):  # records a partitioned reduce reads in its own layout
        processor.write(out, path(task.out_dir), task.shard)
    else:
        with atomic_path(path(task.out_dir) / f"{task.shard}.parquet") as tmp:
            out.write_parquet(tmp)
    return rows.height


def stage_config(recipe: Recipe, stage: str) -> dict:
    """What a stage's workers need of the recipe (JSON-serialisable)."""
    return {stage: dataclasses.asdict(getattr(recipe, stage)), "image_column": recipe.crawl.encode_format}


def entering_counts(ctx: StageContext, stage: str) -> dict[str, int]:
    """Rows entering `stage` per crawl shard: the previous stage's kept rows (from its counts files)."""
    previous = stages_before(ctx.recipe.stages, stage)[-1]
    return {s: ctx.build.shard_counts(previous, s).kept for s in ctx.build.crawl_shards()}


def run_per_shard(ctx: StageContext, stage: str, processor: str, description: str, *, map_dir: Path | None = None,
                  config: dict | None = None, resources: Resources = CPU) -> None:
    """Run `processor` over every crawl shard not done yet: its decisions go to DIR/<stage>/, or,
    with `map_dir`, its records to map_dir (the map phase of a global stage)."""
    build = ctx.build
    out_dir = map_dir or build.stage_dir(stage)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out_dir)
    entering = entering_counts(ctx, stage)
    todo = [s for s in entering if not (out_dir / f"{s}.parquet").exists()]
    config_json = json.dumps(config or stage_config(ctx.recipe, stage), sort_keys=True)
    prior = tuple(stages_before(ctx.recipe.stages, stage))
    tasks = [ShardTask(str(build.root), s, processor, config_json, prior, uri(out_dir), None if map_dir else stage)
             for s in todo]
    with ctx.ui.progress(description, total=sum(entering.values())) as advance:
        advance(sum(n for s, n in entering.items() if s not in todo))
        ctx.engine.map(run_shard, tasks, on_result=advance, resources=resources)


class ShardStage:
    """A stage that is one per-row processor: its output files are the stage's decisions."""

    def __init__(self, name: str, processor: str, resources: Resources = CPU):
        self.name, self.processor, self.resources = name, processor, resources

    def run(self, ctx: StageContext) -> None:
        run_per_shard(ctx, self.name, self.processor, self.name, resources=self.resources)
