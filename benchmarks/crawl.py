"""Crawl overhead: bare img2dataset vs `wukong build --stage crawl`, same URLs, same settings.

Serves N 256-px JPEGs from a loopback server, crawls them twice in this process (alternating,
best of `--repeats`), prints throughputs and their ratio, then the export throughput. JSON out.
    python benchmarks/crawl.py --rows 3000
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from wukong_data.build import BuildDir
from wukong_data.demo.server import serve
from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, draw, jpeg
from wukong_data.engines import make_engine
from wukong_data.pipeline import run_build
from wukong_data.recipe import load
from wukong_data.ui import UI, quiet_fds

SETTINGS = dict(image_size=256, resize_mode="keep_ratio", resize_only_if_bigger=True, encode_format="jpg",
                encode_quality=95, skip_reencode=True, timeout=10, retries=0, processes=2, threads=32,
                samples_per_shard=500)


def make_routes(n: int) -> dict:
    rng = random.Random(0)
    bodies = [jpeg(draw(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)),
                        rng.choice(list(BACKGROUNDS)), size=(256, 256), rng=rng)) for _ in range(50)]
    return {f"/img/{i}.jpg": (bodies[i % len(bodies)], {}) for i in range(n)}


def bare_img2dataset(urls: Path, out: Path) -> float:
    from img2dataset import download

    start = time.perf_counter()
    with quiet_fds(out.parent / f"{out.name}.log"):
        download(url_list=str(urls), input_format="csv", url_col="url", caption_col="caption",
                 output_folder=str(out), output_format="parquet", image_size=SETTINGS["image_size"],
                 resize_mode=SETTINGS["resize_mode"], resize_only_if_bigger=SETTINGS["resize_only_if_bigger"],
                 encode_format="jpg", encode_quality=95, skip_reencode=True, timeout=10, retries=0,
                 processes_count=SETTINGS["processes"], thread_count=SETTINGS["threads"],
                 number_sample_per_shard=SETTINGS["samples_per_shard"], compute_hash="sha256",
                 extract_exif=False, user_agent_token="wukong-data", enable_wandb=False)
    return time.perf_counter() - start


def wukong_crawl(urls: Path, out: Path) -> float:
    recipe = load("demo")
    recipe.stages = ["crawl", "export"]
    recipe.input.path = str(urls)
    for key, value in SETTINGS.items():
        setattr(recipe.crawl, key, value)
    start = time.perf_counter()
    run_build(recipe, str(out), only=["crawl"], engine=make_engine("local", SETTINGS["processes"]), ui=UI(quiet=True))
    return time.perf_counter() - start, recipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wukong-bench-"))
    routes = make_routes(args.rows)
    result = {"rows": args.rows, "settings": SETTINGS, "cpus": os.cpu_count()}
    try:
        with serve(routes) as base_url:
            urls = work / "urls.csv"
            with open(urls, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["url", "caption"])
                writer.writerows([base_url + path, f"第{i}张图片的描述"] for i, path in enumerate(routes))
            bare, ours = [], []
            for r in range(args.repeats):
                bare.append(bare_img2dataset(urls, work / f"bare{r}"))
                seconds, recipe = wukong_crawl(urls, work / f"ours{r}")
                ours.append(seconds)
            result["img2dataset_rows_per_s"] = round(args.rows / min(bare), 1)
            result["wukong_crawl_rows_per_s"] = round(args.rows / min(ours), 1)
            result["wukong_over_img2dataset_time_ratio"] = round(min(ours) / min(bare), 3)
            result["runs_s"] = {"img2dataset": [round(x, 2) for x in bare], "wukong": [round(x, 2) for x in ours]}

        build = work / "ours0"
        start = time.perf_counter()
        run_build(recipe, str(build), only=["export"], engine=make_engine("local", 2), ui=UI(quiet=True))
        seconds = time.perf_counter() - start
        rows = sum(json.loads((build / "final" / "sizes.json").read_text()).values())
        size = sum(p.stat().st_size for p in (build / "final").glob("*.*"))
        result["export"] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1),
                            "mb_per_s": round(size / seconds / 1e6, 2), "bytes_written": size,
                            "formats": recipe.export.formats}
        assert BuildDir(build).read_manifest()["stages"]["export"]["status"] == "done"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
