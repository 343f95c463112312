"""A few rows of the crawl files (their URLs, errors, images) and thumbnails, read without reading
whole columns.

img2dataset writes a shard's rows in row groups of about a hundred; the key column's statistics
say which row groups can hold a key, so only those are read.
"""
from __future__ import annotations

import base64
import io
from collections import defaultdict
from dataclasses import dataclass

import polars as pl
from PIL import Image

from ..build import BuildDir
from ..images import decodable_size

THUMBNAIL_SIDE = 240


def read_crawled(build: BuildDir, keys: list[str], columns: list[str]) -> dict[str, dict]:
    """`columns` of the crawl rows of `keys` (columns a shard lacks are left out)."""
    by_shard = defaultdict(set)
    for key in keys:
        by_shard[build.layout.shard_of(key)].add(key)
    found = {}
    for shard, wanted in sorted(by_shard.items()):
        if not build.crawl_path(shard).exists():
            continue
        crawled = build.scan_crawl(shard)  # the build's keys, also of an adopted download
        names = crawled.collect_schema().names()
        present = ["key", *(c for c in columns if c in names)]
        for row in crawled.filter(pl.col("key").is_in(sorted(wanted))).select(present).collect().iter_rows(named=True):
            found[row.pop("key")] = row
    return found


@dataclass(frozen=True)
class Thumbnail:
    uri: str  # a data: URI, so the page needs no other file
    width: int
    height: int


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> Thumbnail | None:
    """A JPEG no larger than side x side, or None for bytes that are not a bounded, decodable image."""
    if not decodable_size(data):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((side, side))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=78)
            width, height = image.size
    except Exception:  # noqa: BLE001 - a truncated or broken image gets no thumbnail
        return None
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii"), width, height)


def thumbnails(build: BuildDir, keys: list[str], column: str) -> dict[str, Thumbnail]:
    """Thumbnails of the keys whose row holds a decodable image."""
    found = read_crawled(build, keys, [column])
    return {key: thumb for key, row in found.items() if row.get(column) and (thumb := thumbnail(row[column]))}
