"""The near-duplicate rule by brute force, every pair compared: the reference that the scalable
search (wukong_data/stages/dedupe/near.py) must agree with, and what the photo tests measure.

Two images are near duplicates when, for some (a, b) of MATCHING_VIEWS (either way round), view
a of one and view b of the other have pHashes within `radius` bits AND colour grids that differ
by at most `tolerance` in every cell and channel. Groups are connected components of that
relation; a group keeps its largest image (original pixels), then its smallest key.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wukong_data.stages.dedupe.signatures import MATCHING_VIEWS, unpack_colours


def matching_pairs(hashes: np.ndarray, colours: np.ndarray, radius: int, tolerance: int,
                   views=MATCHING_VIEWS) -> set[tuple[int, int]]:
    """Every pair i < j of images that are near duplicates.

    hashes: (n, K) uint64, one pHash per view; colours: (n, K, 54) packed colour grids.
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
