"""Near-duplicate search: pHash pairs within a Hamming radius (faiss), confirmed by colour,
grouped by connected components, one survivor per group.

faiss.IndexBinaryMultiHash splits the 64-bit hash into 4 blocks of 16 bits and probes every
block value within `nflip` bits of the query's. Two hashes at distance r have a block differing
in at most floor(r / 4) bits (pigeonhole), so nflip = floor(r / 4) finds every pair: the search
is exact, not approximate, and touches only rows sharing a near-identical block.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .signatures import unpack_colours

_BLOCKS = 4


def _index(hashes: np.ndarray, radius: int):
    import faiss

    index = faiss.IndexBinaryMultiHash(64, _BLOCKS, 64 // _BLOCKS)
    index.nflip = radius // _BLOCKS
    index.add(hashes.astype("<u8").view(np.uint8).reshape(-1, 8))
    return index


def _range_pairs(index, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(query row, index row) of every pair within `radius` bits."""
    if len(queries) == 0 or index.ntotal == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # faiss range search keeps distances strictly below its radius.
    lims, _, found = index.range_search(queries.astype("<u8").view(np.uint8).reshape(-1, 8), radius + 1)
    query_rows = np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))
    return query_rows, found.astype(np.int64)


def _same_colours(a: np.ndarray, b: np.ndarray, tolerance: int) -> np.ndarray:
    """No cell of the colour grids differs by more than `tolerance` in any channel (0-15 scale)."""
    return np.abs(unpack_colours(a) - unpack_colours(b)).max(axis=1) <= tolerance


def pairs_within(hashes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair i < j of `hashes` within `radius` bits."""
    i, j = _range_pairs(_index(hashes, radius), hashes, radius)
    keep = i < j
    return i[keep], j[keep]


def _confirm(i: np.ndarray, j: np.ndarray, colours_of, other_colours_of, tolerance: int) -> np.ndarray:
    """Colour check of pairs; the grids are fetched for the rows in pairs only (few), not all."""
    rows_i, rows_j = np.unique(i), np.unique(j)
    grid_i, grid_j = colours_of(rows_i), other_colours_of(rows_j)
    return _same_colours(grid_i[np.searchsorted(rows_i, i)], grid_j[np.searchsorted(rows_j, j)], tolerance)


def near_duplicate_losers(hashes: np.ndarray, colours_of, pixels: np.ndarray, keys: np.ndarray,
                          radius: int, colour_tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows to drop and the row each is a duplicate of.

    `colours_of(rows)` gives the packed colour grids of those rows. Groups are connected
    components of the confirmed pairs; the survivor of a group is its largest image (original
    pixels), then its smallest key, so any worker count agrees.
    """
    i, j = pairs_within(hashes, radius)
    confirmed = _confirm(i, j, colours_of, colours_of, colour_tolerance)
    i, j = i[confirmed], j[confirmed]
    n = len(hashes)
    if len(i) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    _, group = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    in_pairs = np.unique(np.concatenate([i, j]))
    # Best first: largest pixels, then smallest key; the first row of each group survives.
    order = in_pairs[np.lexsort((keys[in_pairs], -pixels[in_pairs].astype(np.int64), group[in_pairs]))]
    groups = group[order]
    first = np.r_[True, groups[1:] != groups[:-1]]
    survivor_of_group = dict(zip(groups[first], order[first]))
    losers = order[~first]
    return losers, np.array([survivor_of_group[g] for g in group[losers]], dtype=np.int64)


def overlapping(hashes: np.ndarray, colours_of, against_hashes: np.ndarray, against_colours: np.ndarray,
                radius: int, colour_tolerance: int) -> np.ndarray:
    """Rows of `hashes` that are near duplicates of any row of `against_hashes`."""
    rows, found = _range_pairs(_index(against_hashes, radius), hashes, radius)
    confirmed = _confirm(rows, found, colours_of, lambda r: against_colours[r], colour_tolerance)
    return np.unique(rows[confirmed])
