"""Dedupe at scale, printed as JSON:
 (a) the reduce (exact URL/image, frequent captions) over N synthetic map records: time and
     peak memory, beside a bare polars `unique` of the same key column (each in its own process);
 (b) near-duplicate search over M 64-bit hashes with faiss (exact multi-hash), beside a
     brute-force numpy Hamming scan of a query subsample, with the recall of faiss against it;
 (c) signature (pHash + colour grid) throughput on 256-px JPEGs.

    python benchmarks/dedupe.py --rows 10000000 --hashes 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

CHILD = r"""
import json, resource, sys, time
import polars as pl
mode, path = sys.argv[1], sys.argv[2]
records = pl.scan_parquet(path + "/*.parquet")
start = time.perf_counter()
if mode == "unique":
    n = records.select("key").unique().collect().height  # distinct keys
else:
    from wukong_data.recipe import DedupeConfig
    from wukong_data.stages.dedupe.decide import decide
    n = decide(records, DedupeConfig(near_duplicates=False, max_caption_count=10), None).height  # rejected
seconds = time.perf_counter() - start
print(json.dumps({"seconds": round(seconds, 2), "rows_out": n,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def synthetic_records(n: int, folder: Path, files: int = 10) -> None:
    """Map records shaped like real ones: ~5% repeated URLs, ~3% repeated images, Zipf captions."""
    rng = np.random.default_rng(0)
    per = -(-n // files)
    for f in range(files):
        m = min(per, n - f * per)
        ids = np.arange(f * per, f * per + m, dtype=np.uint64)
        url = rng.integers(0, 2**63, m, dtype=np.uint64)
        repeated = rng.random(m) < 0.05
        url[repeated] = rng.integers(0, n // 100 + 1, repeated.sum(), dtype=np.uint64)
        image = rng.integers(0, 2**63, m, dtype=np.uint64)
        dup = rng.random(m) < 0.03
        image[dup] = rng.integers(0, n // 50 + 1, dup.sum(), dtype=np.uint64)
        caption = rng.integers(0, 2**63, m, dtype=np.uint64)
        boilerplate = rng.random(m) < 0.08  # a few thousand captions shared by 8% of the rows
        caption[boilerplate] = rng.zipf(1.5, boilerplate.sum()).astype(np.uint64) % 5000
        pl.DataFrame({
            "key": pl.Series(ids).cast(pl.String).str.zfill(11),
            "url_hash": url, "image_hash": image, "caption_hash": caption,
            "phash": rng.integers(0, 2**63, m, dtype=np.uint64),
            "colour": pl.Series([b"\0" * 54] * m, dtype=pl.Binary),
            "pixels": rng.integers(40_000, 400_000, m, dtype=np.uint32),
        }).write_parquet(folder / f"{f:05d}.parquet")


def child(mode: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def reduce_benchmark(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_records(n, Path(tmp))
        bare, ours = child("unique", Path(tmp)), child("decide", Path(tmp))
    return {"rows": n, "polars_unique_key": bare, "wukong_reduce": ours,
            "time_ratio": round(ours["seconds"] / bare["seconds"], 2),
            "memory_ratio": round(ours["peak_rss_mb"] / bare["peak_rss_mb"], 2),
            "bytes_per_row_peak": round(ours["peak_rss_mb"] * 2**20 / n, 1)}


def near_benchmark(m: int, radius: int, queries: int = 1000) -> dict:
    from wukong_data.stages.dedupe.near import pairs_within

    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**64 - 1, m, dtype=np.uint64)
    planted = 5000
    for t in range(planted):  # neighbours at every distance up to the radius
        flip = rng.choice(64, size=1 + t % radius, replace=False)
        hashes[m - planted + t] = hashes[t] ^ np.uint64(sum(1 << int(b) for b in flip))
    start = time.perf_counter()
    i, j = pairs_within(hashes, radius)
    faiss_seconds = time.perf_counter() - start
    found = set(zip(i.tolist(), j.tolist()))

    sample = np.concatenate([np.arange(queries // 2), rng.choice(m, queries - queries // 2, replace=False)])
    start = time.perf_counter()
    exact = set()
    for q in sample:
        near = np.nonzero(np.bitwise_count(hashes ^ hashes[q]) <= radius)[0]
        exact.update((min(q, int(k)), max(q, int(k))) for k in near if k != q)
    brute_seconds = time.perf_counter() - start
    recall = len(exact & found) / len(exact) if exact else 1.0
    brute_full = brute_seconds / len(sample) * m
    return {"hashes": m, "radius": radius, "faiss_seconds": round(faiss_seconds, 2), "pairs": len(found),
            "brute_force_queries": len(sample), "brute_force_seconds": round(brute_seconds, 2),
            "brute_force_full_estimate_seconds": round(brute_full, 1),
            "speedup_vs_brute_force": round(brute_full / faiss_seconds, 2),
            "recall_vs_exact_scan": round(recall, 4), "exact_pairs_in_sample": len(exact)}


def signature_benchmark(n: int) -> dict:
    from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, draw, jpeg
    from wukong_data.stages.dedupe.signatures import image_signature

    rng = random.Random(0)
    images = [jpeg(draw(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)),
                        rng.choice(list(BACKGROUNDS)), size=(256, 256), rng=rng)) for _ in range(n)]
    start = time.perf_counter()
    for image in images:
        image_signature(image)
    seconds = time.perf_counter() - start
    return {"images": n, "size": "256x256 JPEG", "images_per_s_one_core": round(n / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    result = {"cpus": os.cpu_count(), "reduce": reduce_benchmark(args.rows),
              "near_duplicates": [near_benchmark(args.hashes, r) for r in (3, 7)],
              "signatures": signature_benchmark(args.images)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
