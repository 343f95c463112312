"""The reduce: one pass over every row's record decides each rule, in this order:
dup_url, dup_image, frequent_caption, eval_overlap, near_dup_image. A row gets the first
reason that applies; exact duplicates keep their smallest key."""
from __future__ import annotations

import numpy as np
import polars as pl

from ...recipe import DedupeConfig
from .near import near_duplicate_losers, overlapping


def decide(records: pl.LazyFrame, cfg: DedupeConfig, against: pl.DataFrame | None) -> pl.DataFrame:
    """Rejected rows only: key_id (the key as an integer), reason, dup_of_id."""
    rows = (
        records.select(pl.col("key").cast(pl.UInt64).alias("key_id"), "url_hash", "image_hash", "caption_hash",
                       "phash", "pixels")
        .sort("key_id")
        .collect()
    )
    reason = pl.lit(None, pl.String)
    dup_of = pl.lit(None, pl.UInt64)
    rules = []
    if cfg.exact_url:
        rules.append(("dup_url", "url_hash"))
    if cfg.exact_image:
        rules.append(("dup_image", "image_hash"))
    # Exact duplicates: a later row of the same hash among rows not yet rejected.
    for code, column in rules:
        alive = reason.is_null()
        first = pl.col("key_id").first().over([column, alive])
        hit = alive & pl.col(column).is_not_null() & (pl.col("key_id") != first)
        rows = rows.with_columns(_reason=pl.when(hit).then(pl.lit(code)).otherwise(reason),
                                 _dup_of=pl.when(hit).then(first).otherwise(dup_of))
        reason, dup_of = pl.col("_reason"), pl.col("_dup_of")
    if cfg.max_caption_count:
        frequent = pl.len().over("caption_hash") > cfg.max_caption_count
        rows = rows.with_columns(_reason=pl.when(reason.is_null() & frequent).then(pl.lit("frequent_caption"))
                                 .otherwise(reason), _dup_of=dup_of)
        reason, dup_of = pl.col("_reason"), pl.col("_dup_of")
    rows = rows.with_columns(reason=reason, dup_of_id=dup_of).drop("_reason", "_dup_of", strict=False)

    candidates = rows.filter(pl.col("reason").is_null() & pl.col("phash").is_not_null())
    hashes = candidates["phash"].to_numpy()
    extra = []
    if against is not None and len(hashes) and against.height:
        against_colours = np.frombuffer(b"".join(against["colour"].to_list()), np.uint8).reshape(against.height, -1)
        hit = overlapping(hashes, lambda r: _colours(records, candidates["key_id"].gather(r)),
                          against["phash"].to_numpy(), against_colours, cfg.hamming_radius, cfg.colour_tolerance)
        extra.append(pl.DataFrame({"key_id": candidates["key_id"].gather(hit), "reason": "eval_overlap",
                                   "dup_of_id": pl.Series([None] * len(hit), dtype=pl.UInt64)}))
        keep = np.ones(len(hashes), bool)
        keep[hit] = False
        candidates, hashes = candidates.filter(keep), hashes[keep]
    if cfg.near_duplicates and len(hashes):
        keys = candidates["key_id"].to_numpy()
        losers, survivors = near_duplicate_losers(hashes, lambda r: _colours(records, candidates["key_id"].gather(r)),
                                                  candidates["pixels"].to_numpy(), keys,
                                                  cfg.hamming_radius, cfg.colour_tolerance)
        extra.append(pl.DataFrame({"key_id": pl.Series(keys[losers], dtype=pl.UInt64), "reason": "near_dup_image",
                                   "dup_of_id": pl.Series(keys[survivors], dtype=pl.UInt64)}))
    rejected = rows.filter(pl.col("reason").is_not_null()).select("key_id", "reason", "dup_of_id")
    return pl.concat([rejected, *extra]) if extra else rejected


def _colours(records: pl.LazyFrame, key_ids: pl.Series) -> np.ndarray:
    """The packed colour grids of `key_ids`, in that order, as an (n, 54) uint8 array."""
    found = (records.select(pl.col("key").cast(pl.UInt64).alias("key_id"), "colour")
             .join(pl.LazyFrame({"key_id": key_ids}).with_row_index("order"), on="key_id")
             .sort("order").collect())
    if found.height == 0:
        return np.empty((0, 54), np.uint8)
    return np.frombuffer(b"".join(found["colour"].to_list()), np.uint8).reshape(found.height, -1)
