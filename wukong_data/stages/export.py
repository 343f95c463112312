"""Export: reshard the kept rows into DIR/final/ as WebDataset tars and matching Parquet.

The plan (which keys go to which final shard) is decided once from the sorted kept keys, so
any worker count, and a resumed run, write the same shards. Each shard is written under a
temporary name and renamed when complete; a resumed run skips shards already there.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ..build import BuildDir, atomic_path, remove_stale_tmp, write_json_atomic
from ..recipe import stages_before
from . import StageContext

PLAN = "_plan.json"
SIZES = "sizes.json"
_CRAWL_COLUMNS = ["key", "url", "caption", "width", "height", "original_width", "original_height", "sha256"]


@dataclass(frozen=True)
class ShardTask:
    root: str
    out_dir: str
    index: int
    keys: tuple[str, ...]
    formats: tuple[str, ...]
    image_ext: str
    stages: tuple[str, ...]  # stages before export whose columns travel with the rows


def shard_name(index: int) -> str:
    return f"{index:05d}"


def _load_rows(task: ShardTask) -> pl.DataFrame:
    build = BuildDir(task.root)
    keys = pl.Series("key", task.keys)
    frames = []
    for crawl_shard in sorted({BuildDir.shard_of(k) for k in task.keys}):  # each crawl shard read once
        wanted = keys.filter(keys.str.starts_with(crawl_shard))
        rows = (
            pl.scan_parquet(build.crawl_path(crawl_shard))
            .select(*_CRAWL_COLUMNS, pl.col(task.image_ext).alias("image"))
            .filter(pl.col("key").is_in(wanted.implode()))
        )
        for stage in task.stages:
            path = build.stage_dir(stage) / f"{crawl_shard}.parquet"
            extra = pl.scan_parquet(path).drop("reason")
            overridden = [c for c in extra.collect_schema().names() if c in _CRAWL_COLUMNS and c != "key"]
            rows = rows.drop(overridden).join(extra, on="key", how="left")
        frames.append(rows.collect())
    return pl.concat(frames, how="diagonal_relaxed").sort("key")


def write_shard(task: ShardTask) -> int:
    import webdataset as wds

    final = Path(task.out_dir)
    rows = _load_rows(task)
    name = shard_name(task.index)
    if "parquet" in task.formats:
        with atomic_path(final / f"{name}.parquet") as tmp:
            pq.write_table(rows.rename({"image": task.image_ext}).to_arrow(), tmp)
    if "webdataset" in task.formats:
        with atomic_path(final / f"{name}.tar") as tmp:
            with open(tmp, "wb") as stream, wds.TarWriter(stream) as tar:
                for row in rows.iter_rows(named=True):
                    image = row.pop("image")
                    tar.write({
                        "__key__": row["key"],
                        task.image_ext: image,
                        "txt": row["caption"],
                        "json": json.dumps(row, ensure_ascii=False).encode("utf-8"),
                    })
    return rows.height


def _shard_done(final: Path, index: int, formats) -> bool:
    ext = {"webdataset": "tar", "parquet": "parquet"}
    return all((final / f"{shard_name(index)}.{ext[f]}").exists() for f in formats)


def export_rows(ctx: StageContext, keys: list[str], out_dir: Path, per_shard: int, formats: list[str],
                prior: list[str], description: str) -> None:
    """Write the rows of `keys` (sorted) as shards in out_dir: resumable, any worker count."""
    plan_id = hashlib.sha256(
        json.dumps([keys, per_shard, sorted(formats), ctx.recipe.crawl.encode_format]).encode()
    ).hexdigest()
    plan_path = out_dir / PLAN
    if plan_path.exists() and json.loads(plan_path.read_text())["id"] != plan_id:
        shutil.rmtree(out_dir)  # the kept rows changed: the old shards are not this build's
    n_shards = -(-len(keys) // per_shard)
    if out_dir.exists():
        remove_stale_tmp(out_dir)
    write_json_atomic(plan_path, {"id": plan_id, "rows": len(keys), "shards": n_shards})
    tasks = [
        ShardTask(str(ctx.build.root), str(out_dir), i, tuple(keys[i * per_shard:(i + 1) * per_shard]),
                  tuple(formats), ctx.recipe.crawl.encode_format, tuple(s for s in prior if s != "crawl"))
        for i in range(n_shards)
        if not _shard_done(out_dir, i, formats)
    ]
    with ctx.ui.progress(description, total=len(keys)) as advance:
        advance(len(keys) - sum(len(t.keys) for t in tasks))
        ctx.engine.map(write_shard, tasks, on_result=advance)
    sizes = {f"{shard_name(i)}.tar": len(keys[i * per_shard:(i + 1) * per_shard]) for i in range(n_shards)}
    write_json_atomic(out_dir / SIZES, sizes)


class ExportStage:
    """Reshard the rows every stage kept into DIR/final/."""

    def run(self, ctx: StageContext) -> None:
        cfg = ctx.recipe.export
        prior = stages_before(ctx.recipe.stages, "export")
        keys = ctx.build.kept_keys(prior).sort("key").collect()["key"].to_list()
        export_rows(ctx, keys, ctx.build.final_dir, cfg.samples_per_shard, cfg.formats, prior, "export")
