"""Near-duplicate and evaluation-overlap decisions, partitioned so that no step holds the build.

Each image has K views (signatures.py), each a 64-bit perceptual hash and a colour grid. Two
images are near duplicates when views (a, b) of them, for a pair of MATCHING_VIEWS, are within
`hamming_radius` bits and their colour grids within `colour_tolerance`. The steps:

1. pool    per crawl shard: the views of the rows the exact rules kept, sorted by hash
           (_near/pool/NNNNN.parquet; the evaluation images' views in _near/pool/against.parquet).
2. collapse per hash range: identical views (same hash, view and colour grid) become one
           representative; the other rows of such a group are tied to it directly (a cluster of
           k identical copies costs k edges, not k^2 pairs). Representatives go to
           _near/reps/PPPPP.parquet, sorted by hash; ties to _near/ties/PPPPP.parquet.
3. search  the distinct hashes of all representatives, every pair within the radius, exactly
           (search.py), a group of tables per engine task (_near/pairs/TTTTT.npy).
4. confirm the pairs' representatives: allowed views, colour grids within tolerance, different
           rows; a row meeting an evaluation image is eval_overlap, rows meeting rows are pairs.
5. group   connected components of pairs and ties, rows that overlap evaluation images left out;
           each component keeps its largest image, then its smallest key; the rest are
           near_dup_image of it (_near/losers.parquet, _near/eval.parquet, sorted by key).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ...storage import atomic_path, is_local, path, uri, write_json_atomic
from . import search
from .partitions import read_range, write_sorted
from .signatures import COLOUR_BYTES, MATCHING_VIEWS, unpack_colours

NEAR = "_near"
AGAINST = "against"
_CHUNK = 1_000_000  # pairs, hashes or rows handled at a time: bounded memory whatever the build's size


def pool_entries(records: pl.DataFrame) -> pl.DataFrame:
    """One row per (row, view): hash, view, colour, key_id, against=False."""
    return (records.select("key_id", "view_hashes", "view_colours")
            .with_columns(view=pl.int_ranges(pl.col("view_hashes").list.len()).cast(pl.List(pl.UInt8)))
            .explode("view_hashes", "view_colours", "view")
            .drop_nulls("view_hashes")
            .select(hash=pl.col("view_hashes"), view="view", colour=pl.col("view_colours"), key_id="key_id",
                    against=pl.lit(False)))


def against_entries(against: pl.DataFrame) -> pl.DataFrame:
    """The evaluation images' views (key_id = their index in `against`)."""
    return pool_entries(against.with_row_index("key_id").with_columns(pl.col("key_id").cast(pl.UInt64))) \
        .with_columns(against=pl.lit(True))


# --- 2. collapse ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CollapseTask:
    near_dir: str
    pool_files: tuple[str, ...]
    p: int
    partitions: int


def collapse_partition(task: CollapseTask) -> int:
    entries = read_range([path(f) for f in task.pool_files], "hash", task.p, task.partitions)
    near = path(task.near_dir)
    if entries.height == 0:
        entries = pl.DataFrame(schema={"hash": pl.UInt64, "view": pl.UInt8, "colour": pl.Binary,
                                       "key_id": pl.UInt64, "against": pl.Boolean})
    group = ["hash", "view", "colour", "against"]
    entries = entries.with_columns(rep=pl.col("key_id").min().over(group))
    ties = entries.filter(~pl.col("against") & (pl.col("key_id") != pl.col("rep"))).select("key_id", "rep").unique()
    with atomic_path(near / "ties" / f"{task.p:05d}.parquet") as tmp:
        ties.write_parquet(tmp)
    reps = entries.filter(pl.col("key_id") == pl.col("rep")).unique(group).select("hash", "view", "colour",
                                                                                  "key_id", "against")
    write_sorted(reps.sort(["hash", "view", "against", "key_id"]), "hash", near / "reps" / f"{task.p:05d}.parquet")
    return reps.height


# --- 3. search --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchTask:
    near_dir: str
    radius: int
    tables: tuple[int, ...]
    out: str


def _on_gpu(hashes: np.ndarray):
    """The hashes as a CUDA tensor where torch sees a GPU, else None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.from_numpy(np.ascontiguousarray(hashes).view(np.int64)).cuda()


def search_tables(task: SearchTask) -> int:
    """Pairs (as indices into the distinct hashes) whose first table is one of `tables`, on the
    GPU when there is one (search.table_pairs_torch gives the same pairs), else with numpy; the
    number of tables searched."""
    hashes = load_array(path(task.near_dir) / "distinct.npy")
    plan = search.plan(task.radius, len(hashes))
    gpu = _on_gpu(hashes)
    if gpu is not None:
        found = [np.stack([x.cpu().numpy() for x in search.table_pairs_torch(gpu, plan, t)], axis=1)
                 for t in task.tables]
    else:
        found = [np.stack(search.table_pairs(hashes, plan, t), axis=1) for t in task.tables]
    pairs = np.concatenate(found) if found else np.empty((0, 2), np.int64)
    with atomic_path(path(task.out)) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, pairs)
    return len(task.tables)


# --- the driver's part --------------------------------------------------------------------------

def load_array(file) -> np.ndarray:
    """A .npy array: memory-mapped on a local disk, read whole from object storage."""
    if is_local(file):
        return np.load(file, mmap_mode="r")
    with file.open("rb") as f:
        return np.load(f)


def _scratch(near) -> Path:
    """The driver's local folder for the representatives' arrays: in the build when it is local.
    For a build on object storage, a temporary folder named by the near folder's identity, drawn
    when the folder is made: a rebuild (--force) of the same URL never reads an older build's
    arrays."""
    if is_local(near):
        return Path(near) / "arrays"
    identity = near / "_identity.json"
    if not identity.exists():
        write_json_atomic(identity, {"id": uuid.uuid4().hex})
    digest = hashlib.sha256(f"{uri(near)} {json.loads(identity.read_text())['id']}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"wukong-near-{digest}"


def _write_npy(file, dtype, shape: tuple[int, ...]):
    """An open .npy file whose header says `shape`; the caller writes the data after it, in order."""
    f = open(file, "wb")
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": shape})
    return f


class NpyRows:
    """A local .npy file read a window of rows at a time, never memory-mapped. The confirm step
    reads representatives at random across gigabytes, and a mapping keeps every page it touches
    (whole large folios) in the driver's resident memory: 2.4 GB of a 10M-row build."""

    _WINDOW = 4 << 20  # bytes read at a time

    def __init__(self, file: Path):
        with open(file, "rb") as f:
            np.lib.format.read_magic(f)
            self.shape, _, self.dtype = np.lib.format.read_array_header_1_0(f)
            self._data = f.tell()
        self.file = file
        self._row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    def _read(self, f, lo: int, hi: int) -> np.ndarray:
        f.seek(self._data + lo * self._row_bytes)
        return np.fromfile(f, self.dtype, (hi - lo) * (self._row_bytes // self.dtype.itemsize)) \
            .reshape((hi - lo,) + self.shape[1:])

    def slice(self, lo: int, hi: int | None) -> np.ndarray:
        lo, hi, _ = slice(lo, hi).indices(self.shape[0])
        with open(self.file, "rb") as f:
            return self._read(f, lo, hi)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows `idx` (any order, repeats allowed), reading only the windows that hold some."""
        idx = np.asarray(idx, np.int64)
        out = np.empty((len(idx),) + self.shape[1:], self.dtype)
        if len(idx) == 0:
            return out
        per_window = max(1, self._WINDOW // self._row_bytes)
        order = np.argsort(idx, kind="stable")
        window = idx[order] // per_window
        bounds = np.flatnonzero(np.r_[True, window[1:] != window[:-1], True])
        with open(self.file, "rb") as f:
            for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                lo = int(window[s]) * per_window
                block = self._read(f, lo, min(lo + per_window, self.shape[0]))
                chosen = order[s:e]
                out[chosen] = block[idx[chosen] - lo]
        return out


class Representatives:
    """All representatives in hash order, as .npy columns read by rows (in the driver's scratch
    folder), and their distinct hashes (in the build, for the search tasks). Written by streaming
    the partitions in order, a partition at a time: the driver holds one partition, not the build
    (partitions are disjoint hash ranges, so a hash's representatives are all in one)."""

    def __init__(self, near, partitions: int):
        arrays = _scratch(near)
        done = arrays / "done.json"
        if not done.exists():
            arrays.mkdir(parents=True, exist_ok=True)
            files = [uri(near / "reps" / f"{p:05d}.parquet") for p in range(partitions)]
            n = d = 0
            for file in files:  # sizes first: each .npy header states its shape
                hashes = pl.read_parquet(file, columns=["hash"])["hash"].to_numpy()
                n += len(hashes)
                d += int(np.count_nonzero(hashes[1:] != hashes[:-1])) + bool(len(hashes))
            columns = (("view", np.uint8, (n,)), ("key_id", np.uint64, (n,)),
                       ("against", np.bool_, (n,)), ("colour", np.uint8, (n, COLOUR_BYTES)))
            with atomic_path(near / "distinct.npy") as distinct_tmp, contextlib.ExitStack() as files_open:
                out = {name: files_open.enter_context(_write_npy(arrays / f"{name}.npy", dtype, shape))
                       for name, dtype, shape in columns}
                out["distinct"] = files_open.enter_context(_write_npy(distinct_tmp, np.uint64, (d,)))
                out["distinct_start"] = files_open.enter_context(
                    _write_npy(arrays / "distinct_start.npy", np.int64, (d + 1,)))
                start = 0
                for file in files:
                    part = pl.read_parquet(file)
                    for name in ("view", "key_id", "against"):
                        out[name].write(part[name].to_numpy().tobytes())
                    for piece in part.select("colour").iter_slices(_CHUNK):  # its bytes objects a slice at a time
                        out["colour"].write(b"".join(piece["colour"].to_list()))
                    hashes = part["hash"].to_numpy()
                    new = np.r_[True, hashes[1:] != hashes[:-1]] if len(hashes) else np.empty(0, bool)
                    out["distinct"].write(hashes[new].tobytes())
                    out["distinct_start"].write((start + np.nonzero(new)[0]).astype(np.int64).tobytes())
                    start += len(hashes)
                out["distinct_start"].write(np.array([n], np.int64).tobytes())
            done.write_text(json.dumps({"reps": int(n)}))
        self.arrays = arrays
        self.columns = {name: NpyRows(arrays / f"{name}.npy") for name in ("view", "key_id", "against", "colour")}
        self.distinct_start = NpyRows(arrays / "distinct_start.npy")
        self.count = int(self.distinct_start.slice(-1, None)[0])
        self.distinct = self.distinct_start.shape[0] - 1

    def rows(self, idx: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The columns `names` of representatives `idx`."""
        return {name: self.columns[name].take(idx) for name in names}

    def same_hash_pairs(self):
        """Every pair of representatives sharing a hash (other views or colours of it), yielded
        for a chunk of distinct hashes at a time."""
        for lo in range(0, self.distinct, _CHUNK):
            bounds = self.distinct_start.slice(lo, min(lo + _CHUNK, self.distinct) + 1)
            sizes = np.diff(bounds)
            first, second = [], []
            for start, size in zip(bounds[:-1][sizes > 1].tolist(), sizes[sizes > 1].tolist()):
                i, j = np.triu_indices(size, 1)
                first.append(start + i)
                second.append(start + j)
            if first:
                yield np.concatenate(first), np.concatenate(second)

    def expand(self, u: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Representative pairs of distinct-hash pairs (u, w): every rep of u with every rep of w."""
        su, eu, sw, ew = self.distinct_start.take(np.concatenate([u, u + 1, w, w + 1])).reshape(4, -1)
        n = (eu - su) * (ew - sw)
        pair = np.repeat(np.arange(len(u)), n)
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        width = (ew - sw)[pair]
        return su[pair] + offset // width, sw[pair] + offset % width


def _allowed_views() -> np.ndarray:
    views = 1 + max(max(pair) for pair in MATCHING_VIEWS)
    allowed = np.zeros((views, views), bool)
    for a, b in MATCHING_VIEWS:
        allowed[a, b] = allowed[b, a] = True
    return allowed


def confirm(a: dict[str, np.ndarray], b: dict[str, np.ndarray], colours, tolerance: int) -> np.ndarray:
    """Which representative pairs, given by their fields `a` and `b`, are near duplicates of two
    different images. `colours(which)` gives the colour grids of the pairs `which` selects,
    read only for pairs whose views may match."""
    ok = _allowed_views()[a["view"], b["view"]]
    ok &= (a["key_id"] != b["key_id"]) | (a["against"] != b["against"])
    ok &= ~(a["against"] & b["against"])
    idx = np.nonzero(ok)[0]
    if len(idx):
        colour_a, colour_b = colours(idx)
        ok[idx] = np.abs(unpack_colours(colour_a) - unpack_colours(colour_b)).max(axis=1) <= tolerance
    return ok


def confirmed_pairs(reps: Representatives, pair_files: list[Path], tolerance: int):
    """Yield (key_a, key_b, against_a, against_b) of the confirmed representative pairs, a chunk
    at a time."""
    fields = ("view", "key_id", "against")

    def confirmed(a, b):
        for start in range(0, len(a), _CHUNK):
            x, y = a[start:start + _CHUNK], b[start:start + _CHUNK]
            fx, fy = reps.rows(x, fields), reps.rows(y, fields)
            ok = confirm(fx, fy, lambda i: (reps.columns["colour"].take(x[i]), reps.columns["colour"].take(y[i])),
                         tolerance)
            yield fx["key_id"][ok], fy["key_id"][ok], fx["against"][ok], fy["against"][ok]

    for a, b in reps.same_hash_pairs():
        yield from confirmed(a, b)
    for file in pair_files:
        pairs = load_array(file)
        for start in range(0, len(pairs), _CHUNK):
            chunk = np.asarray(pairs[start:start + _CHUNK])
            yield from confirmed(*reps.expand(chunk[:, 0], chunk[:, 1]))


def group(row_pairs: np.ndarray, ties: np.ndarray, pixels_of) -> pl.DataFrame:
    """key_id, dup_of of every row that loses to another in its connected component.
    `pixels_of(key_ids)` gives original pixels; survivor: most pixels, then smallest key."""
    edges = np.concatenate([row_pairs.reshape(-1, 2), ties.reshape(-1, 2)]).astype(np.uint64)
    if len(edges) == 0:
        return pl.DataFrame(schema={"key_id": pl.UInt64, "dup_of": pl.UInt64})
    nodes, index = np.unique(edges, return_inverse=True)
    index = index.reshape(-1, 2)
    n = len(nodes)
    _, component = connected_components(coo_matrix((np.ones(len(index)), (index[:, 0], index[:, 1])), shape=(n, n)),
                                        directed=False)
    pixels = pixels_of(nodes).astype(np.int64)
    order = np.lexsort((nodes, -pixels, component))  # per component: most pixels, then smallest key
    first = np.r_[True, component[order][1:] != component[order][:-1]]
    survivor = nodes[order][first]
    survivor_of = dict(zip(component[order][first].tolist(), survivor.tolist()))
    losers = order[~first]
    return pl.DataFrame({"key_id": pl.Series(nodes[losers], dtype=pl.UInt64),
                         "dup_of": pl.Series([survivor_of[c] for c in component[losers].tolist()], dtype=pl.UInt64)})
