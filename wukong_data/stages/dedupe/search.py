"""Every pair of 64-bit hashes within a Hamming radius, exactly, in time near linear in the hashes.

Split the 64 bits into m blocks. Two hashes within r bits differ in at most r blocks, so at least
t = m - r blocks are equal (pigeonhole). A *table* is one choice of t blocks; every pair within
the radius has all t blocks equal in at least one table, and so falls in one bucket of it. Each
table buckets the hashes by those blocks (a hash of them, so the bucket array stays small; a
collision only adds a candidate), compares the hashes within each crowded bucket, and reports a
pair only in the first table its equal blocks allow, so each pair is reported once. The number
of tables, C(m, t), trades the passes over the hashes against the candidates per bucket; `plan`
picks m for the number of hashes (Manku et al., "Detecting near-duplicates for web crawling",
WWW 2007). Tables are independent: the engine runs groups of them in parallel.

A table runs compiled (numba) on arrays of unsigned 64-bit hashes, or with torch on a GPU (the same
pairs); results are exact, not approximate.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path


def _numba_cache_outside_the_package() -> None:
    """numba caches compiled code beside the source by default: inside an installed package that
    leaves files pip does not know of, which outlive an uninstall and turn the package's folder
    into a namespace that shadows the next install. The user's cache instead, unless they chose."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wukong-data" / "numba"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # numba's own fallbacks then apply
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache))


_numba_cache_outside_the_package()
import numba  # noqa: E402  (after its cache folder is chosen)
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing of the bucket key
MAX_BUCKET_BITS = 24  # a table's buckets: two radix passes of 12 bits sort them (torch: a 128 MB count array)
# A table's pass over one hash costs as much as this many candidate comparisons (compiled, on one
# core: ~35 ns against ~0.3-0.6 ns, measured at 3.2M and 32M hashes).
_PASS_COST = 64


@dataclass(frozen=True)
class Plan:
    radius: int
    blocks: tuple[tuple[int, int], ...]  # (bit offset, length) of each block
    tables: tuple[tuple[int, ...], ...]  # the t blocks of each table, in enumeration order

    @property
    def exact_blocks(self) -> int:
        return len(self.tables[0])


def _blocks(m: int) -> tuple[tuple[int, int], ...]:
    sizes = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    offsets = np.cumsum([0] + sizes[:-1])
    return tuple((int(o), s) for o, s in zip(offsets, sizes))


def plan(radius: int, n: int) -> Plan:
    """The block split for `n` hashes at `radius` with the least estimated work: each table costs
    a pass over the hashes plus its candidate pairs (n^2 / 2 / 2^bits for uniform hashes, bits at
    most MAX_BUCKET_BITS)."""
    if not 0 <= radius < 64:
        raise ValueError("radius must be in [0, 64)")
    best = None
    for m in range(radius + 1, min(64, radius + 12) + 1):
        t = m - radius
        blocks = _blocks(m)
        bits = min(sum(sorted(s for _, s in blocks)[:t]), MAX_BUCKET_BITS)  # the worst table: its t smallest blocks
        tables = math.comb(m, t)
        cost = tables * (_PASS_COST * n + n * n / 2 / 2 ** bits)
        if best is None or cost < best[0]:
            best = (cost, m, t, blocks)
    _, m, t, blocks = best
    return Plan(radius, blocks, tuple(itertools.combinations(range(m), t)))


def task_memory(n: int) -> int:
    """Bytes one search task over n distinct hashes holds at its peak: the hashes (8 bytes each)
    and _table_pairs' four working arrays of n entries, beside the worker's interpreter and
    libraries (0.5 GB). At 10M rows: estimated 1.79 GB, measured 1.69 GB."""
    return 40 * n + (512 << 20)


# --- one table, compiled (numba) ----------------------------------------------------------------
# On one core a table's pass costs ~35 ns per hash and a candidate ~0.5 ns, against ~125 ns and
# ~8 ns for the numpy passes this replaced: cheap candidates let `plan` choose fewer, fuller tables.

_M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, nogil=True)
def _bits(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


_DIGIT = 12  # bits per radix pass: a 4096-entry histogram stays in the first-level cache
_POSITION_BITS = 40  # an entry is its bucket (at most MAX_BUCKET_BITS) above its position


@numba.njit(cache=True, nogil=True)
def _table_pairs(hashes, offsets, masks, lengths, table, bucket_bits, hashed, radius):
    n, t, n_blocks = len(hashes), len(table), len(offsets)
    entries = np.empty(n, np.uint64)
    for i in range(n):
        key, position = np.uint64(0), np.uint64(0)
        for b in table:
            key |= ((hashes[i] >> offsets[b]) & masks[b]) << position
            position += lengths[b]
        if hashed:
            key = (key * _GOLDEN) >> np.uint64(64 - bucket_bits)
        entries[i] = (key << np.uint64(_POSITION_BITS)) | np.uint64(i)
    # Least-significant-digit radix sort by the bucket bits: sequential reads and 4096 write
    # streams, where sorting by comparisons, or counting into 16M buckets, misses the cache.
    spare = np.empty_like(entries)
    digit_mask = np.uint64((1 << _DIGIT) - 1)
    for shift in range(_POSITION_BITS, _POSITION_BITS + bucket_bits, _DIGIT):
        counts = np.zeros((1 << _DIGIT) + 1, np.int64)
        for i in range(n):
            counts[((entries[i] >> np.uint64(shift)) & digit_mask) + 1] += 1
        for d in range(1 << _DIGIT):
            counts[d + 1] += counts[d]
        for i in range(n):
            d = (entries[i] >> np.uint64(shift)) & digit_mask
            spare[counts[d]] = entries[i]
            counts[d] += 1
        entries, spare = spare, entries
    position_mask = np.uint64((1 << _POSITION_BITS) - 1)
    index = np.empty(n, np.int64)
    values = np.empty(n, np.uint64)
    for i in range(n):
        index[i] = np.int64(entries[i] & position_mask)
        values[i] = hashes[index[i]]
    found_i, found_j, found = np.empty(1024, np.int64), np.empty(1024, np.int64), 0
    start = 0
    while start < n:
        end = start + 1
        while end < n and entries[end] >> np.uint64(_POSITION_BITS) == entries[start] >> np.uint64(_POSITION_BITS):
            end += 1
        for x in range(start, end):
            for y in range(x + 1, end):
                diff = values[x] ^ values[y]
                if _bits(diff) > radius:
                    continue
                # Report the pair in its first table only: the first t blocks it has equal.
                equal = 0
                for b in range(n_blocks):
                    if (diff >> offsets[b]) & masks[b] == 0:
                        if table[equal] != b:
                            break
                        equal += 1
                        if equal == t:
                            break
                if equal < t:
                    continue
                if found == len(found_i):
                    found_i, found_j = np.concatenate((found_i, found_i)), np.concatenate((found_j, found_j))
                found_i[found], found_j[found] = index[x], index[y]  # positions ascend within a bucket
                found += 1
        start = end
    return found_i[:found], found_j[:found]


def table_pairs(hashes: np.ndarray, plan_: Plan, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of the pairs within the radius whose first table (in `plan_.tables` order)
    is table `index`. Over all tables, every pair within the radius exactly once. The table's t
    blocks key a bucket (a hash of them past MAX_BUCKET_BITS: a collision only adds candidates);
    the hashes in each bucket are compared pairwise."""
    offsets = np.array([o for o, _ in plan_.blocks], np.uint64)
    lengths = np.array([s for _, s in plan_.blocks], np.uint64)
    masks = (np.uint64(1) << lengths) - np.uint64(1)
    table = np.array(plan_.tables[index], np.int64)
    bits = int(lengths[table].sum())
    bucket_bits = min(bits, MAX_BUCKET_BITS)
    return _table_pairs(np.ascontiguousarray(hashes, dtype=np.uint64), offsets, masks, lengths, table,
                        bucket_bits, bits > bucket_bits, plan_.radius)


def pairs_within(hashes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair i < j of (distinct-position) `hashes` within `radius` bits, each once."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    p = plan(radius, len(hashes))
    parts = [table_pairs(hashes, p, t) for t in range(len(p.tables))]
    return np.concatenate([i for i, _ in parts]), np.concatenate([j for _, j in parts])


# --- the same search with torch, for a GPU -----------------------------------------------------
# torch has no unsigned 64-bit arithmetic: hashes travel as int64 bit patterns. Every right shift
# is followed by a mask that keeps only the bits below the sign's reach, so arithmetic shifts
# give the logical shift's bits; multiplications wrap as unsigned ones do.

def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _popcount(x):
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return ((x * 0x0101010101010101) >> 56) & 0xFF


def table_pairs_torch(hashes, plan_: Plan, index: int):
    """table_pairs on a torch tensor of int64 hash bit patterns (on any device): the same pairs."""
    import torch

    table = plan_.tables[index]
    key = torch.zeros_like(hashes)
    position = 0
    for b in table:
        offset, length = plan_.blocks[b]
        key |= ((hashes >> offset) & ((1 << length) - 1)) << position
        position += length
    bucket_bits = min(position, MAX_BUCKET_BITS)
    if position > bucket_bits:
        key = ((key * _signed(int(_GOLDEN))) >> (64 - bucket_bits)) & ((1 << bucket_bits) - 1)
    counts = torch.bincount(key, minlength=1 << bucket_bits)
    crowded = torch.nonzero(counts[key] >= 2).flatten()
    empty = torch.empty(0, dtype=torch.int64, device=hashes.device)
    if len(crowded) < 2:
        return empty, empty
    order = crowded[torch.sort(key[crowded], stable=True).indices]
    sorted_bucket = key[order]
    starts = torch.cat([torch.zeros(1, dtype=torch.int64, device=hashes.device),
                        torch.nonzero(sorted_bucket[1:] != sorted_bucket[:-1]).flatten() + 1])
    ends = torch.cat([starts[1:], torch.tensor([len(order)], device=hashes.device)])
    group_end = torch.repeat_interleave(ends, ends - starts)
    active = torch.arange(len(order), device=hashes.device)
    first_of = torch.tensor(table, device=hashes.device)
    found_i, found_j = [], []
    offset = 1
    while True:
        active = active[active + offset < group_end[active]]
        if not len(active):
            break
        a, b = order[active], order[active + offset]
        diff = hashes[a] ^ hashes[b]
        near = _popcount(diff) <= plan_.radius
        a, b, diff = a[near], b[near], diff[near]
        if len(a):
            equal = torch.stack([((diff >> o) & ((1 << s) - 1)) == 0 for o, s in plan_.blocks], dim=1)
            chosen = equal & (torch.cumsum(equal.int(), dim=1) <= len(table))
            canonical = chosen[:, first_of].all(dim=1) & (chosen.sum(dim=1) == len(table))
            a, b = a[canonical], b[canonical]
            found_i.append(torch.minimum(a, b))
            found_j.append(torch.maximum(a, b))
        offset += 1
    if not found_i:
        return empty, empty
    return torch.cat(found_i), torch.cat(found_j)
