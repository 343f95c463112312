"""The local engine against the Ray engine: the same build on both, in one run, at a few sizes.

For each size, synthetic img2dataset output (synthetic_crawl.py) is built through the CLI with
e2e_scale.py's rules-only recipe, first with `--engine local`, then with `--engine ray` (a local
Ray started with the same --workers CPUs, shut down at the end), each watched as e2e_scale.py
watches a build (wall and CPU seconds, per stage, summed PSS of the process tree). Reports rows/s
of each, the ratio, Ray's extra time (its fixed overhead: starting and stopping Ray, and per task
scheduling), whether both kept exactly the same keys, and a least-squares fit of
wall = fixed + per_row x rows per engine: how Ray's overhead amortises as rows grow. Prints JSON.

    python benchmarks/engines.py --sizes 5000 20000 100000 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from e2e_scale import RECIPE, STAGES, run_build
from synthetic_crawl import RATES, write_crawl

ENGINES = ("local", "ray")


def kept_keys(build: Path) -> pl.Series:
    return pl.scan_parquet(build / "final" / "*.parquet").select("key").collect()["key"].sort()


def summary(build: dict) -> dict:
    return {
        "wall_s": build["wall_s"], "stages_s": build["stages_s"], "startup_and_teardown_s": build["startup_and_teardown_s"],
        # CPU seconds sampled from /proc: Ray's workers are not waited for, so rusage misses them.
        "rows_per_s": build["rows_per_s"], "cpu_s_sampled": build["cpu_s_sampled"],
        "peak_pss_mb": build["peak_pss_mb"], "processes_seen": build["processes_seen"],
        "final_rows": build["final_rows"], "loadavg_before": build["loadavg_before"],
        "stages_s_each": {name: build["stages"][name]["seconds"] for name in STAGES},
        "dedupe_steps_s": build["stages"]["dedupe"]["steps_s"],
    }


def fit(rows: list[int], seconds: list[float]) -> dict:
    """wall = fixed + per_row * rows, least squares."""
    per_row, fixed = np.polyfit(np.array(rows, float), np.array(seconds, float), 1)
    return {"fixed_s": round(float(fixed), 2), "s_per_1k_rows": round(float(per_row) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-rows", type=int, default=5_000, help="rows per synthetic crawl shard")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--work", type=Path, default=None, help="work folder [default: a temporary one, removed]")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="wukong-engines-"))
    work.mkdir(parents=True, exist_ok=True)
    recipe = work / "rules-only.toml"
    recipe.write_text(RECIPE)
    result = {"cpus": os.cpu_count(), "workers": args.workers, "shard_rows": args.shard_rows,
              "image_size": args.image_size, "recipe": RECIPE, "synthetic_rates": RATES, "sizes": []}
    try:
        for rows in sorted(args.sizes):
            crawl = work / f"crawl-{rows}"
            shutil.rmtree(crawl, ignore_errors=True)
            write_crawl(crawl, rows, shard_rows=args.shard_rows, image_size=args.image_size)
            entry = {"rows": rows}
            keys = {}
            for engine in ENGINES:
                out = work / f"build-{rows}-{engine}"
                shutil.rmtree(out, ignore_errors=True)
                entry[engine] = summary(run_build(recipe, crawl, out, args.workers, engine))
                keys[engine] = kept_keys(out)
                shutil.rmtree(out, ignore_errors=True)
                print(f"{rows} rows, {engine}: {entry[engine]['wall_s']} s", file=sys.stderr)
            shutil.rmtree(crawl, ignore_errors=True)
            local, ray = entry["local"], entry["ray"]
            entry["same_kept_keys"] = keys["local"].equals(keys["ray"])
            entry["ray_over_local_time"] = round(ray["wall_s"] / local["wall_s"], 3)
            entry["ray_over_local_rows_per_s"] = round(ray["rows_per_s"] / local["rows_per_s"], 3)
            entry["ray_extra_s"] = round(ray["wall_s"] - local["wall_s"], 2)
            entry["ray_extra_share_of_local"] = round((ray["wall_s"] - local["wall_s"]) / local["wall_s"], 3)
            entry["ray_extra_stage_s"] = {name: round(ray["stages_s_each"][name] - local["stages_s_each"][name], 2)
                                          for name in STAGES}
            result["sizes"].append(entry)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    sizes = [e["rows"] for e in result["sizes"]]
    if len(sizes) >= 2:
        fits = {engine: fit(sizes, [e[engine]["wall_s"] for e in result["sizes"]]) for engine in ENGINES}
        fits["ray_fixed_overhead_s"] = round(fits["ray"]["fixed_s"] - fits["local"]["fixed_s"], 2)
        fits["ray_over_local_per_row"] = round(fits["ray"]["s_per_1k_rows"] / fits["local"]["s_per_1k_rows"], 3)
        result["fit_wall"] = fits
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
