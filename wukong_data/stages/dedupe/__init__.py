"""Dedupe: exact URL, exact image, over-frequent caption, evaluation overlap, near-duplicate image.

Two phases (DESIGN.md): a parallel map writes one compact record per row to
DIR/dedupe/_map/NNNNN.parquet (signatures.py); one reduce over all records decides
(polars for the exact and frequency rules, faiss for the near-duplicate ones, decide.py);
the decisions are written per shard to DIR/dedupe/NNNNN.parquet: key, reason, dup_of (the
kept row a duplicate was dropped for), phash.
"""
from __future__ import annotations

import polars as pl

from ...build import atomic_path, remove_stale_tmp
from .. import StageContext
from ..per_shard import run_per_shard
from .against import against_signatures
from .decide import decide
from .signatures import signatures

MAP_DIR = "_map"


class SignatureMap:
    """The map phase's per-row processor."""

    def __init__(self, image_column: str):
        self.image_column = image_column
        self.input_columns = ["key", "url", "caption", "sha256", "original_width", "original_height", image_column]

    @classmethod
    def from_config(cls, config: dict) -> "SignatureMap":
        return cls(config["image_column"])

    def process(self, rows: pl.DataFrame) -> pl.DataFrame:
        return signatures(rows, self.image_column)


class DedupeStage:
    name = "dedupe"

    def run(self, ctx: StageContext) -> None:
        build, cfg = ctx.build, ctx.recipe.dedupe
        out = build.stage_dir("dedupe")
        shards = build.crawl_shards()
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out)
        if all((out / f"{s}.parquet").exists() for s in shards):
            return
        run_per_shard(ctx, "dedupe", "wukong_data.stages.dedupe:SignatureMap", out / MAP_DIR, "dedupe")
        records = pl.scan_parquet([out / MAP_DIR / f"{s}.parquet" for s in shards])
        against = against_signatures(cfg.against, out / "_against.parquet", ctx.ui) if cfg.against else None
        ctx.ui.print("dedupe: deciding over all rows")
        rejected = decide(records, cfg, against)

        key_width = len(pl.read_parquet(out / MAP_DIR / f"{shards[0]}.parquet", columns=["key"], n_rows=1)["key"][0]) \
            if shards else 0
        by_shard = rejected.with_columns(
            dup_of=pl.col("dup_of_id").cast(pl.String).str.zfill(key_width),
            shard=(pl.col("key_id").cast(pl.String).str.zfill(key_width).str.slice(0, 5)),
        ).partition_by("shard", as_dict=True, include_key=False)
        for shard in shards:
            path = out / f"{shard}.parquet"
            if path.exists():
                continue
            rows = pl.read_parquet(out / MAP_DIR / f"{shard}.parquet", columns=["key", "phash"])
            decided = by_shard.get((shard,), pl.DataFrame(schema={"key_id": pl.UInt64, "reason": pl.String,
                                                                  "dup_of": pl.String}))
            rows = (rows.with_columns(key_id=pl.col("key").cast(pl.UInt64))
                    .join(decided.select("key_id", "reason", "dup_of"), on="key_id", how="left")
                    .select("key", "reason", "dup_of", "phash"))
            with atomic_path(path) as tmp:
                rows.write_parquet(tmp)
