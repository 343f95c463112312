"""The near-duplicate rule by brute force, every pair compared: the reference that the scalable
search (wukong_data/stages/dedupe/near.py) must agree with, and what the photo tests measure.

Two images are near duplicates when, for some (a, b) of MATCHING_VIEWS (either way round), view
a of one and view b of the other have pHashes within `radius` bits AND colour grids and edge
orientations that differ by at most `tolerance` in every level. Groups are connected components of that
relation; a group keeps its largest image (original pixels), then its smallest key.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wukong_data.stages.dedupe.signatures import MATCHING_VIEWS, signatures, unpack_colours


def map_records(images: list[bytes]) -> pl.DataFrame:
    """The dedupe map's records (signatures.py) of a list of images, keys 0000000, 0000001, ..."""
    n = len(images)
    return signatures(pl.DataFrame({
        "key": [f"{i:07d}" for i in range(n)], "url": [f"http://example.com/{i}.jpg" for i in range(n)],
        "caption": ["图片"] * n, "sha256": pl.Series([None] * n, dtype=pl.String),
        "original_width": [100] * n, "original_height": [100] * n, "jpg": images}), "jpg")


def view_arrays(records: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) hashes and (n, K, bytes) packed colour grids and edge orientations of map records
    whose images all decoded."""
    hashes = np.array(records["view_hashes"].to_list(), dtype=np.uint64)
    colours = np.array([[np.frombuffer(c, np.uint8) for c in row] for row in records["view_colours"].to_list()])
    return hashes, colours


def matching_pairs(hashes: np.ndarray, colours: np.ndarray, radius: int, tolerance: int,
                   views=MATCHING_VIEWS) -> set[tuple[int, int]]:
    """Every pair i < j of images that are near duplicates.

    hashes: (n, K) uint64, one pHash per view; colours: (n, K, 58) packed colour grids and edge
    orientations.
    """
    n = len(hashes)
    grids = unpack_colours(colours.reshape(n * colours.shape[1], -1)).reshape(n, colours.shape[1], -1)
    found: set[tuple[int, int]] = set()
    for a, b in {(a, b) for a, b in views} | {(b, a) for a, b in views}:
        distance = np.bitwise_count(hashes[:, a, None] ^ hashes[None, :, b])
        i, j = np.nonzero(distance <= radius)
        keep = i != j
        i, j = i[keep], j[keep]
        same = np.abs(grids[i, a] - grids[j, b]).max(axis=1) <= tolerance
        found.update(zip(np.minimum(i, j)[same].tolist(), np.maximum(i, j)[same].tolist()))
    return found


def groups(n: int, pairs: set[tuple[int, int]]) -> np.ndarray:
    """The connected component of each of n images."""
    if not pairs:
        return np.arange(n)
    i, j = np.array(sorted(pairs)).T
    return connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)[1]


def losers(pairs: set[tuple[int, int]], pixels: np.ndarray, keys: np.ndarray) -> dict[int, int]:
    """{row dropped: row kept} under the group rule (largest pixels, then smallest key survives)."""
    group = groups(len(keys), pairs)
    best: dict[int, int] = {}
    for row in np.lexsort((keys, -pixels.astype(np.int64))):  # best rows first
        best.setdefault(int(group[row]), int(row))
    in_pairs = {r for pair in pairs for r in pair}
    return {r: best[int(group[r])] for r in sorted(in_pairs) if best[int(group[r])] != r}
