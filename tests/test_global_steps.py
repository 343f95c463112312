"""The global steps at small size, against the direct computation they replace: the score cut by
radix selection, the near-duplicate search and grouping, and the export plan."""
import os

import numpy as np
import polars as pl
import pytest

from wukong_data.engines import Resources, available_memory
from wukong_data.engines.local import LocalEngine
from wukong_data.stages import select
from wukong_data.stages.dedupe import near, search
from wukong_data.stages.dedupe.partitions import write_sorted
from wukong_data.stages.dedupe.signatures import COLOUR_BYTES
from wukong_data.stages.export import plan_tasks
from wukong_data.stages.score import decide


def _score_files(tmp_path, scores: np.ndarray, shards: int) -> list[str]:
    keys = np.arange(len(scores))
    paths = []
    for s, part in enumerate(np.array_split(np.arange(len(scores)), shards)):
        path = tmp_path / f"{s:05d}.parquet"
        pl.DataFrame({"key": [f"{k:09d}" for k in keys[part]],
                      "filip_score": pl.Series(scores[part], dtype=pl.Float32)}).write_parquet(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.333])
def test_keep_top_fraction_by_radix_selection_equals_a_global_sort(tmp_path, fraction, monkeypatch):
    rng = np.random.default_rng(0)
    scores = rng.choice(np.linspace(-1, 1, 50), 3001).astype(np.float32)  # many ties: the key decides
    scores[rng.choice(3001, 40, replace=False)] = np.nan
    monkeypatch.setattr(select, "FEW", 10)  # force the key digits' passes too
    paths = _score_files(tmp_path, scores, 7)
    frame = pl.read_parquet(paths)
    scored = frame.filter(pl.col("filip_score").is_not_nan())
    keep = round(fraction * scored.height)
    expected = set(scored.sort(["filip_score", "key"], descending=[True, False])["key"][:keep])
    with LocalEngine(1) as engine:
        cutoff = select.kth(engine, paths, keep)
    reasons = decide(frame, 0.0, cutoff)
    assert set(frame.filter(reasons.is_null())["key"]) == expected
    assert (reasons == "decode_failed").sum() == 40


def test_search_finds_every_pair_within_the_radius_once():
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 3000, dtype=np.uint64)
    for r in range(10):  # plant neighbours at every distance up to the radius
        flip = rng.choice(64, size=r, replace=False)
        hashes[100 + r] = hashes[r] ^ np.uint64(sum(1 << int(b) for b in flip))
    hashes[200:205] = hashes[0]  # identical hashes
    for radius in (0, 4, 8):
        i, j = search.pairs_within(hashes, radius)
        distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
        a, b = np.nonzero(np.triu(distance <= radius, 1))
        assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(a.tolist(), b.tolist()))


def test_a_cluster_of_identical_images_is_one_group_with_a_bounded_number_of_pairs(tmp_path):
    """2,000 identical copies (one banner) and 3 photos: the copies cost ties, not pairs."""
    copies = 2000
    banner = (np.uint64(0x0F0F_3333_5555_AAAA), b"\x11" * COLOUR_BYTES)
    rng = np.random.default_rng(2)
    records = pl.DataFrame({
        "key_id": pl.Series(range(copies + 3), dtype=pl.UInt64),
        "view_hashes": [[banner[0]]] * copies + [[int(h)] for h in rng.integers(0, 2**63, 3, dtype=np.uint64)],
        "view_colours": [[banner[1]]] * copies + [[bytes([i]) * COLOUR_BYTES] for i in range(3)],
    }, schema={"key_id": pl.UInt64, "view_hashes": pl.List(pl.UInt64), "view_colours": pl.List(pl.Binary)})
    folder = tmp_path / "near"
    write_sorted(near.pool_entries(records), "hash", folder / "pool" / "00000.parquet")
    near.collapse_partition(near.CollapseTask(str(folder), (str(folder / "pool" / "00000.parquet"),), 0, 1))
    reps = near.Representatives(folder, 1)
    assert reps.count == 4  # one representative for the 2,000 copies
    ties = pl.read_parquet(folder / "ties" / "00000.parquet").select("key_id", "rep").to_numpy()
    assert len(ties) == copies - 1
    i, j = search.pairs_within(np.load(folder / "distinct.npy"), 8)
    assert len(i) == 0
    losers = near.group(np.empty((0, 2), np.uint64), ties, lambda keys: np.full(len(keys), 100))
    assert losers.height == copies - 1 and set(losers["dup_of"]) == {0}


@pytest.mark.parametrize("shuffle", [True, False])
def test_export_plan_covers_every_row_once(shuffle):
    counts = {f"{s:05d}": n for s, n in enumerate([100, 0, 37, 250, 3, 99, 100, 1])}
    tasks = plan_tasks(counts, per_shard=50, shuffle=shuffle, group=3, seed=0)
    outputs = [o for t in tasks for o in t["outputs"]]
    assert outputs == list(range(len(outputs)))  # every final shard once, numbered in order
    sources = [s for t in tasks for s in t["sources"]]
    if shuffle:
        assert sorted(sources) == sorted(s for s, n in counts.items() if n)
    else:
        taken = {}
        for t in tasks:
            for s, (lo, hi) in zip(t["sources"], t["key_ranges"]):
                taken.setdefault(s, []).append((lo, hi))
        for s, ranges in taken.items():  # consecutive slices that cover the shard's rows exactly
            assert ranges[0][0] == 0 and ranges[-1][1] == counts[s]
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(sum(hi - lo for lo, hi in t["key_ranges"]) == 50 for t in tasks[:-1])


def test_the_torch_search_gives_the_numpy_pairs():
    """The GPU path (torch, here on the CPU) finds exactly the pairs the numpy one finds."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 5000, dtype=np.uint64)
    for r in range(9):
        hashes[1000 + r] = hashes[r] ^ np.uint64(sum(1 << int(b) for b in rng.choice(64, size=r, replace=False)))
    tensor = torch.from_numpy(hashes.view(np.int64))
    for radius in (0, 4, 8):
        p = search.plan(radius, len(hashes))
        for t in range(len(p.tables)):
            i, j = search.table_pairs(hashes, p, t)
            ti, tj = search.table_pairs_torch(tensor, p, t)
            assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(ti.tolist(), tj.tolist()))


def test_representative_columns_read_by_rows_give_what_a_full_load_gives(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (10_000, COLOUR_BYTES), dtype=np.uint8)
    np.save(tmp_path / "colour.npy", colours)
    monkeypatch.setattr(near.NpyRows, "_WINDOW", 4096)  # many windows, some of them never read
    column = near.NpyRows(tmp_path / "colour.npy")
    idx = np.r_[rng.integers(0, 10_000, 3_000), [9_999, 0, 0, 9_999]]
    assert np.array_equal(column.take(idx), colours[idx])
    assert column.take(np.empty(0, np.int64)).shape == (0, COLOUR_BYTES)
    assert np.array_equal(column.slice(9_990, None), colours[9_990:])


def test_the_local_engine_runs_no_more_calls_at_once_than_memory_holds():
    with LocalEngine(2) as engine:
        apart = set(engine.map(_pid, range(4)))
        assert os.getpid() not in apart  # worker processes
        # A call holding more than the machine has available runs alone, in this process.
        assert set(engine.map(_pid, range(4), resources=Resources(memory=available_memory() + 1))) == {os.getpid()}


def _pid(_) -> int:
    return os.getpid()
