"""The exact rules as hash-partitioned reduces: dup_url, dup_image, frequent_caption.

Each crawl shard's map task wrote three small record files, sorted by their hash
(DIR/dedupe/_map/{url,image,caption}/NNNNN.parquet). Every partition of a rule is one engine task
that reads one hash range of all of them (partitions.py) and writes the rows it rejects, sorted by
key (DIR/dedupe/_exact/<rule>/PPPPP.parquet):

- url: within a URL hash, every row but the smallest key is dup_url of it.
- image: the same among rows not dup_url, so an image whose first row was dup_url still keeps one
  row. The url partitions also write their rejects sorted by image hash, which the image
  partitions read by range (bounded, like the rest).
- caption: a caption hash seen more than max_caption_count times over all rows entering dedupe
  (duplicates included) rejects each of its rows; precedence (url, then image, then caption)
  is applied per shard afterwards, so this rule needs no other's result.

The results are those of one global pass for any partition count and any worker count.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ...storage import path
from .partitions import read_range, write_sorted

RULES = ("url", "image", "caption")
EXACT = "_exact"


@dataclass(frozen=True)
class PartitionTask:
    dedupe_dir: str
    shards: tuple[str, ...]
    rule: str  # url | image | caption
    p: int
    partitions: int
    max_caption_count: int


def _records(task: PartitionTask, rule: str) -> list:
    return [path(task.dedupe_dir) / "_map" / rule / f"{s}.parquet" for s in task.shards]


def _out(task: PartitionTask, name: str):
    return path(task.dedupe_dir) / EXACT / name / f"{task.p:05d}.parquet"


def reduce_partition(task: PartitionTask) -> int:
    """Write one partition's rejected rows (key_id, dup_of) sorted by key; returns their count."""
    rows = read_range(_records(task, task.rule), f"{task.rule}_hash", task.p, task.partitions)
    if task.rule == "image":
        earlier = read_range([_out(task, "url_by_image").with_name(f"{q:05d}.parquet")
                              for q in range(task.partitions)], "image_hash", task.p, task.partitions)
        if rows.height and earlier.height:
            rows = rows.join(earlier.select("key_id"), on="key_id", how="anti")
    schema = {"key_id": pl.UInt64, "dup_of": pl.UInt64}
    if rows.height == 0:
        rejected = pl.DataFrame(schema=schema | ({"image_hash": pl.UInt64} if task.rule == "url" else {}))
    elif task.rule == "caption":
        counts = rows.group_by("caption_hash").len()
        frequent = counts.filter(pl.col("len") > task.max_caption_count).select("caption_hash")
        rejected = rows.join(frequent, on="caption_hash", how="semi").select(
            "key_id", dup_of=pl.lit(None, pl.UInt64))
    else:
        rejected = (rows.with_columns(dup_of=pl.col("key_id").min().over(f"{task.rule}_hash"))
                    .filter(pl.col("key_id") != pl.col("dup_of"))
                    .select("key_id", "dup_of", *(["image_hash"] if task.rule == "url" else [])))
    if task.rule == "url":
        # For the image rule's partitions, which read these by image hash (written first: the
        # rule's own output is the partition's completion marker).
        write_sorted(rejected.filter(pl.col("image_hash").is_not_null()).select("key_id", "image_hash"), "image_hash",
                     _out(task, "url_by_image"))
        rejected = rejected.drop("image_hash")
    write_sorted(rejected, "key_id", _out(task, task.rule))
    return rejected.height


def rule_outputs(dedupe_dir, rule: str, partitions: int) -> list:
    return [dedupe_dir / EXACT / rule / f"{p:05d}.parquet" for p in range(partitions)]
