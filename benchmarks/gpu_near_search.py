"""The near-duplicate search on a GPU machine at the 1M and 10M row sizes, printed as JSON.

Input: the distinct view hashes of a scale build (benchmarks/scale.py keeps them as
distinct-N.npy), e.g. the 1M-row build's 3.2M hashes. The 10M size is made from them: `--copies`
copies, each XORed with its own random 64-bit mask, so that distances within a copy are the
build's (its clustering and its pairs) and copies lie apart. At each size:
- the torch search (search.table_pairs_torch) over every table on the GPU: seconds and pairs;
- the CPU search (search.table_pairs, compiled by numba) in `--workers` processes on the machine's CPUs, over every
  `--cpu-table-step`-th table: seconds, and the whole search projected from that share;
- the pairs of every table both ran, compared: they must be the same.

    python benchmarks/gpu_near_search.py --hashes distinct-1000000.npy --copies 10 --workers 16
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _load_search():
    """search.py alone: it needs numpy, numba and torch only, while the package's __init__ files import
    polars and the rest, which a bare GPU machine lacks."""
    file = Path(__file__).resolve().parents[1] / "wukong_data" / "stages" / "dedupe" / "search.py"
    spec = importlib.util.spec_from_file_location("wukong_search", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules["wukong_search"] = module
    spec.loader.exec_module(module)
    return module


search = _load_search()
_worker_hashes = None


def _init_worker(file: str) -> None:
    global _worker_hashes
    _worker_hashes = np.load(file, mmap_mode="r")


def _cpu_table(args) -> tuple[int, np.ndarray]:
    radius, table = args
    hashes = np.asarray(_worker_hashes)
    plan = search.plan(radius, len(hashes))
    i, j = search.table_pairs(hashes, plan, table)
    return table, np.sort(i * len(hashes) + j)


def cpu_search(file: str, radius: int, tables: list[int], workers: int) -> tuple[float, dict[int, np.ndarray]]:
    context = multiprocessing.get_context("fork")  # before CUDA is touched: forking is safe
    start = time.perf_counter()
    with context.Pool(workers, initializer=_init_worker, initargs=(file,)) as pool:
        found = dict(pool.imap_unordered(_cpu_table, [(radius, t) for t in tables]))
    return time.perf_counter() - start, found


def gpu_search(hashes: np.ndarray, radius: int, keep: set[int], limit_s: float, device: str) -> dict:
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(hashes).view(np.int64)).to(device)
    cuda = device == "cuda"
    plan = search.plan(radius, len(hashes))
    search.table_pairs_torch(tensor, plan, 0)  # warm up: CUDA context, kernels
    if cuda:
        torch.cuda.synchronize()
    start, pairs, kept, done = time.perf_counter(), 0, {}, 0
    for t in range(len(plan.tables)):
        i, j = search.table_pairs_torch(tensor, plan, t)
        pairs += len(i)
        if t in keep:
            kept[t] = np.sort((i * len(hashes) + j).cpu().numpy())
        done += 1
        if time.perf_counter() - start > limit_s:
            break
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "tables_run": done, "tables": len(plan.tables),
            "seconds_projected_all_tables": round(seconds * len(plan.tables) / done, 2),
            "pairs": pairs if done == len(plan.tables) else None,
            "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            "device": torch.cuda.get_device_name(0) if cuda else device, "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hashes", required=True, help="distinct view hashes of a scale build (.npy, uint64)")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--cpu-table-step", type=int, default=5)
    parser.add_argument("--gpu-limit-s", type=float, default=150, help="per size; the rest is projected")
    parser.add_argument("--device", default="cuda", help="where the torch search runs (cpu: a dry run)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    base = np.load(args.hashes).astype(np.uint64)
    masks = np.random.default_rng(0).integers(0, 2**63, args.copies, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    masks[0] = 0
    sizes = {"1x": base, f"{args.copies}x": np.unique(np.concatenate([base ^ m for m in masks]))}
    result = {"command": " ".join(sys.argv), "radius": args.radius, "cpus": os.cpu_count(), "workers": args.workers,
              "sizes": {}}
    scratch = Path(tempfile.mkdtemp(prefix="gpu-near-"))
    cpu_found = {}
    for name, hashes in sizes.items():  # every CPU run first: the pool forks before CUDA starts
        file = scratch / f"{name}.npy"
        np.save(file, hashes)
        plan = search.plan(args.radius, len(hashes))
        sampled = list(range(0, len(plan.tables), args.cpu_table_step))
        seconds, cpu_found[name] = cpu_search(str(file), args.radius, sampled, args.workers)
        result["sizes"][name] = {"hashes": len(hashes), "blocks": len(plan.blocks), "tables": len(plan.tables),
                                 "cpu": {"tables_run": len(sampled), "seconds": round(seconds, 2),
                                         "seconds_projected_all_tables": round(seconds * len(plan.tables) / len(sampled), 2),
                                         "pairs_in_tables_run": int(sum(len(p) for p in cpu_found[name].values()))}}
        print(json.dumps({name: result["sizes"][name]}), file=sys.stderr, flush=True)
    for name, hashes in sizes.items():
        gpu = gpu_search(hashes, args.radius, set(cpu_found[name]), args.gpu_limit_s, args.device)
        kept = gpu.pop("kept")
        row = result["sizes"][name]
        row["gpu"] = gpu
        row["tables_compared"] = len(kept)
        row["gpu_pairs_equal_cpu_pairs"] = all(np.array_equal(kept[t], cpu_found[name][t]) for t in kept)
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
