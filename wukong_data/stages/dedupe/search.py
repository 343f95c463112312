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

Everything is numpy on arrays of unsigned 64-bit hashes; results are exact, not approximate.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing of the bucket key
MAX_BUCKET_BITS = 24  # 16M buckets: a 128 MB count array per table


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
    a few passes over the hashes plus its candidate pairs (n^2 / 2 / 2^bits for uniform hashes)."""
    if not 0 <= radius < 64:
        raise ValueError("radius must be in [0, 64)")
    best = None
    for m in range(radius + 1, min(64, radius + 12) + 1):
        t = m - radius
        blocks = _blocks(m)
        bits = sum(sorted(s for _, s in blocks)[:t])  # the worst table: its t smallest blocks
        tables = math.comb(m, t)
        cost = tables * (8 * n + n * n / 2 / 2 ** bits)
        if best is None or cost < best[0]:
            best = (cost, m, t, blocks)
    _, m, t, blocks = best
    return Plan(radius, blocks, tuple(itertools.combinations(range(m), t)))


def _table_key(hashes: np.ndarray, plan_: Plan, table: tuple[int, ...]) -> tuple[np.ndarray, int]:
    key = np.zeros(len(hashes), np.uint64)
    position = 0
    for b in table:
        offset, length = plan_.blocks[b]
        block = (hashes >> np.uint64(offset)) & np.uint64((1 << length) - 1)
        key |= block << np.uint64(position)
        position += length
    return key, position


def _equal_blocks(a: np.ndarray, b: np.ndarray, plan_: Plan) -> np.ndarray:
    """(pairs, m) bool: which blocks of a and b are equal."""
    diff = a ^ b
    return np.stack([((diff >> np.uint64(o)) & np.uint64((1 << s) - 1)) == 0 for o, s in plan_.blocks], axis=1)


def _bucket_order(bucket: np.ndarray, bits: int) -> np.ndarray:
    """The positions of `bucket` (values below 2**bits, bits <= 32) in stable bucket order: a
    least-significant-digit radix sort by 16-bit digits (numpy sorts uint16 by radix, in linear
    time; a comparison argsort of a table's millions of entries cost most of the search)."""
    order = np.arange(len(bucket))
    for shift in range(0, bits, 16):
        digit = ((bucket[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
    return order


def table_pairs(hashes: np.ndarray, plan_: Plan, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of the pairs within the radius whose first table (in `plan_.tables` order)
    is table `index`. Over all tables, every pair within the radius exactly once."""
    table = plan_.tables[index]
    key, bits = _table_key(hashes, plan_, table)
    bucket_bits = min(bits, MAX_BUCKET_BITS)
    if bits > bucket_bits:
        key = (key * _GOLDEN) >> np.uint64(64 - bucket_bits)
    bucket = key.astype(np.int64)
    crowded = np.nonzero(np.bincount(bucket, minlength=1 << bucket_bits)[bucket] >= 2)[0]
    if len(crowded) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = crowded[_bucket_order(bucket[crowded], bucket_bits)]
    sorted_bucket = bucket[order]
    sorted_hashes = hashes[order]  # compared in bucket order: neighbours in memory, not scattered
    starts = np.r_[0, np.nonzero(sorted_bucket[1:] != sorted_bucket[:-1])[0] + 1]
    ends = np.r_[starts[1:], len(order)]
    group_end = np.repeat(ends, ends - starts)
    # Compare each position with the next, then the one after, ... within its bucket.
    active = np.arange(len(order))
    found_i, found_j = [], []
    first_of = np.array(table)
    offset = 1
    while True:
        active = active[active + offset < group_end[active]]
        if not len(active):
            break
        near = np.bitwise_count(sorted_hashes[active] ^ sorted_hashes[active + offset]) <= plan_.radius
        a, b = active[near], active[near] + offset
        if len(a):
            equal = _equal_blocks(sorted_hashes[a], sorted_hashes[b], plan_)
            # The pair's first table is its first t equal blocks: report it there only.
            rank = np.cumsum(equal, axis=1)
            chosen = equal & (rank <= len(table))
            canonical = (chosen[:, first_of].all(axis=1)) & (chosen.sum(axis=1) == len(table))
            a, b = order[a[canonical]], order[b[canonical]]
            found_i.append(np.minimum(a, b))
            found_j.append(np.maximum(a, b))
        offset += 1
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)


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
