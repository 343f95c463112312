"""Hash-range partitions: the reduce of a global rule runs one partition at a time, so its memory
is bounded by the partition, not the build.

Each map task writes its records sorted by the partition hash, in small row groups; a partition's
reader asks for one hash range of every map file, and Parquet row-group statistics let it skip
the rest of each file.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from ...storage import uri

# Rows of a record file per row group: small enough that a partition reads little beyond its range.
ROW_GROUP = 1024
# Records per partition when the recipe leaves the count to us: rows, or the near-duplicate pool's
# entries (one per view of a row), whose collapse holds ~355 bytes each (~1.4 GB per task).
ROWS_PER_PARTITION = 4_000_000


def partition_count(rows: int, requested: int = 0) -> int:
    return requested or max(1, -(-rows // ROWS_PER_PARTITION))


def hash_range(p: int, partitions: int) -> tuple[int, int | None]:
    """[lo, hi) of partition p over the unsigned 64-bit hash space; hi None for the last."""
    lo = p * 2**64 // partitions
    return lo, (None if p == partitions - 1 else (p + 1) * 2**64 // partitions)


def in_range(column: str, p: int, partitions: int) -> pl.Expr:
    lo, hi = hash_range(p, partitions)
    expr = pl.col(column) >= pl.lit(lo, pl.UInt64)
    return expr if hi is None else expr & (pl.col(column) < pl.lit(hi, pl.UInt64))


def write_sorted(frame: pl.DataFrame, by: str, path: Path) -> None:
    from ...storage import atomic_path

    with atomic_path(path) as tmp:
        frame.sort(by).write_parquet(tmp, row_group_size=ROW_GROUP, statistics=True)


def read_range(paths: list[Path], column: str, p: int, partitions: int) -> pl.DataFrame:
    """The rows of `paths` whose `column` falls in partition p (files sorted by `column`)."""
    if not paths:
        return pl.DataFrame()
    return pl.scan_parquet([uri(p) for p in paths]).filter(in_range(column, p, partitions)).collect()


def read_keys(paths: list[Path], lo: int, hi: int) -> pl.DataFrame:
    """The rows of `paths` (sorted by key_id) with key_id in [lo, hi): one crawl shard's rows."""
    if not paths:
        return pl.DataFrame()
    return (pl.scan_parquet([uri(p) for p in paths])
            .filter((pl.col("key_id") >= pl.lit(lo, pl.UInt64)) & (pl.col("key_id") < pl.lit(hi, pl.UInt64)))
            .collect())
