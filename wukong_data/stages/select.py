"""The k-th best row of a whole build, exactly, with memory bounded whatever the row count.

Rows are ordered by score (best first), then by key (smallest first): the order a global
`keep_top_fraction` keeps them in. Each row's place in that order is a 96-bit number (the score
as an order-preserving 32-bit integer, inverted so the best is smallest, then the 64-bit key),
read as six 16-bit digits. A radix selection finds the k-th: one pass over the shards per digit,
each returning a 65,536-bin histogram of that digit among the rows that share the digits already
fixed, until the rows left in the chosen bin are few enough to sort in memory. Scores are
continuous, so two passes (the score's digits) usually suffice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

DIGITS = 6
BIN_BITS = 16
FEW = 1_000_000  # rows sorted in memory once the selection narrows to this many


def order_digits(scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(n, 6) uint16: each row's place in the order (best score first, then smallest key)."""
    bits = np.ascontiguousarray(scores, np.float32).view(np.uint32)
    # IEEE floats order like integers once negatives are flipped; invert so the best is smallest.
    sortable = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))
    rank = ~sortable
    keys = keys.astype(np.uint64)
    return np.stack([(rank >> np.uint32(16)) & 0xFFFF, rank & 0xFFFF,
                     *[(keys >> np.uint64(s)) & np.uint64(0xFFFF) for s in (48, 32, 16, 0)]], axis=1).astype(np.uint16)


@dataclass(frozen=True)
class DigitTask:
    path: str  # one shard's score records: key, filip_score
    prefix: tuple[int, ...]  # the digits already fixed
    collect: bool  # return the matching rows' digits instead of a histogram


def shard_digits(path: str) -> np.ndarray:
    rows = pl.read_parquet(path, columns=["key", "filip_score"]).filter(pl.col("filip_score").is_not_nan())
    return order_digits(rows["filip_score"].to_numpy(), rows["key"].cast(pl.UInt64).to_numpy())


def digit_histogram(task: DigitTask) -> np.ndarray:
    digits = shard_digits(task.path)
    level = len(task.prefix)
    if level:
        digits = digits[(digits[:, :level] == np.array(task.prefix, np.uint16)).all(axis=1)]
    if task.collect:
        return digits
    return np.bincount(digits[:, level], minlength=1 << BIN_BITS)


def kth(engine, paths: list[str], k: int) -> np.ndarray:
    """The digits of the k-th row (1-based) in the order, over the rows of `paths`."""
    prefix: tuple[int, ...] = ()
    while True:
        level = len(prefix)
        histogram = np.zeros(1 << BIN_BITS, np.int64)
        for h in engine.imap(digit_histogram, [DigitTask(p, prefix, False) for p in paths]):
            histogram += h
        cumulative = np.cumsum(histogram)
        digit = int(np.searchsorted(cumulative, k))  # first bin whose running total reaches k
        k -= int(cumulative[digit - 1]) if digit else 0
        prefix = (*prefix, digit)
        if histogram[digit] <= FEW or level + 1 == DIGITS:
            break
    rows = np.concatenate(list(engine.imap(digit_histogram, [DigitTask(p, prefix, True) for p in paths])))
    order = np.lexsort(rows.T[::-1])
    return rows[order[k - 1]]


def at_or_before(digits: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """Rows whose place in the order is at or before `cutoff` (lexicographic on the digits)."""
    before = np.zeros(len(digits), bool)
    equal = np.ones(len(digits), bool)
    for level in range(DIGITS):
        before |= equal & (digits[:, level] < cutoff[level])
        equal &= digits[:, level] == cutoff[level]
    return before | equal
