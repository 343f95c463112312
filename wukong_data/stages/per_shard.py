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

from ..build import BuildDir
from ..engines import CPU, Resources
from ..errors import ContractError
from ..recipe import Recipe, stages_before
from ..storage import atomic_path, path, remove_stale_tmp, uri
from . import StageContext
from .runner import Runner


@dataclass(frozen=True)
class ShardTask:
    root: str
    shard: str
    processor: str  # "module:Class"
    config_json: str
    prior: tuple[str, ...]  # decided stages before this one, crawl first
    out_dir: str
    stage: str | None  # set: the output is this stage's decisions (with counts); None: map records
    reuse_dir: str | None = None  # the stage's records from its last run, with the same settings


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
    # In key order (a crawl writes rows as downloads finish): the same rows give the same files.
    return rows.select(columns).sort("key").collect()


def _reused(task: ShardTask, keys: pl.DataFrame) -> pl.DataFrame | None:
    """The last run's records of the entering rows it decided, or None."""
    if task.reuse_dir is None:
        return None
    old = path(task.reuse_dir) / f"{task.shard}.parquet"
    return pl.read_parquet(uri(old)).join(keys, on="key", how="semi") if old.exists() else None


def run_shard(task: ShardTask) -> tuple[int, int]:
    """(rows entering, rows whose records were reused): a processor's records depend only on the
    row and the stage's settings, so a row the last run decided with the same settings is not
    processed again; the records are written in entering order either way."""
    build = BuildDir(task.root)
    processor = _processor(task.processor, task.config_json)
    rows = entering_rows(build, task.shard, task.prior, processor.input_columns)
    reused = _reused(task, rows.select("key"))
    todo = rows if reused is None else rows.join(reused.select("key"), on="key", how="anti", maintain_order="left")
    out = processor.process(todo) if todo.height or reused is None else reused.clear()
    if out.height != todo.height or not out["key"].sort().equals(todo["key"].sort()):
        raise ContractError(f"{task.processor} gave {out.height} rows for the {todo.height} entering rows of "
                            f"shard {task.shard}; a processor must give one row per entering row")
    if reused is not None:
        out = rows.select("key").join(pl.concat([reused, out]), on="key", how="left", maintain_order="left")
    if task.stage:
        build.write_decisions(task.stage, task.shard, out)
    elif hasattr(processor, "write"):  # records a partitioned reduce reads in its own layout
        processor.write(out, path(task.out_dir), task.shard)
    else:
        with atomic_path(path(task.out_dir) / f"{task.shard}.parquet") as tmp:
            out.write_parquet(tmp)
    return rows.height, 0 if reused is None else reused.height


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
    config_json = json.dumps(config or stage_config(ctx.recipe, stage), sort_keys=True)
    prior = tuple(stages_before(ctx.recipe.stages, stage))
    reuse = build.reuse_dir(stage)
    reuse = uri(reuse) if reuse.exists() else None
    tasks = [ShardTask(str(build.root), s, processor, config_json, prior, uri(out_dir), None if map_dir else stage,
                       reuse) for s in entering]
    results = Runner(ctx).map(run_shard, tasks, lambda t: [out_dir / f"{t.shard}.parquet"], description=description,
                              size=lambda t: entering[t.shard], resources=resources)
    if reuse:
        reused = sum(r for _, r in results)
        ctx.ui.print(f"{stage}: {reused:,} rows reused from the last run, "
                     f"{sum(n for n, _ in results) - reused:,} computed")


class ShardStage:
    """A stage that is one per-row processor: its output files are the stage's decisions."""

    def __init__(self, name: str, processor: str, resources: Resources = CPU):
        self.name, self.processor, self.resources = name, processor, resources

    def run(self, ctx: StageContext) -> None:
        run_per_shard(ctx, self.name, self.processor, self.name, resources=self.resources)
