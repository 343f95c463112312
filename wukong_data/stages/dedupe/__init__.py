"""Dedupe: exact URL, exact image, over-frequent caption, evaluation overlap, near-duplicate image.

Two phases (DESIGN.md): a parallel map writes one compact record per row to
DIR/dedupe/_map/NNNNN.parquet (signatures.py); one reduce over all records decides
(polars for the exact and frequency rules, faiss for the near-duplicate ones, decide.py);
the decisions are written per shard to DIR/dedupe/NNNNN.parquet: key, reason, dup_of (the
kept row a duplicate was dropped for), phash.
"""
from __future__ import annotations

import polars as pl

from .. import StageContext
from ..per_shard import run_two_phase
from .against import against_signatures
from .decide import decide
from .signatures import signatures

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
    """Exact, frequency and near-duplicate rules, decided once over the whole build."""

    def run(self, ctx: StageContext) -> None:
        cfg, out = ctx.recipe.dedupe, ctx.build.stage_dir("dedupe")

        def reduce(records: pl.LazyFrame) -> pl.DataFrame:
            against = against_signatures(cfg.against, out / "_against.parquet", ctx.ui) if cfg.against else None
            ctx.ui.print("dedupe: deciding over all rows")
            width = records.select(pl.col("key").str.len_chars().max()).collect().item()
            return decide(records, cfg, against).select(
                pl.col("key_id").cast(pl.String).str.zfill(width).alias("key"), "reason",
                pl.col("dup_of_id").cast(pl.String).str.zfill(width).alias("dup_of"))

        run_two_phase(ctx, "dedupe", "wukong_data.stages.dedupe:SignatureMap", reduce, carry=["phash"])
