"""Crawl overhead: bare img2dataset vs `wukong build --stage crawl`, same URLs, same settings,
and the safety checks alone.

Serves N 256-px JPEGs from a loopback server and crawls them, best of `--repeats`, in this
process: with img2dataset's own `download()`, with `wukong build --stage crawl`, and with the
crawl's driver (crawl.CrawlJob and its shards mapped on the engine) over the same prepared input with its guards and
without them (an unguarded subclass defined here: urllib's default opener, img2dataset's own
resizer), in alternating order. `safety_cpu` breaks the checks down, in one process: the client
thread's CPU per request through urllib's default opener and through fetch.guarded_opener, and
the header check beside the resize it precedes, per image. Then the export throughput. JSON out.
    python benchmarks/crawl.py --rows 3000 --repeats 3
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

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # bare img2dataset is imported here too: no update check

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


def driver_crawl(build: Path, out: Path, cfg, guarded: bool) -> float:
    """The crawl stage's driver over a build's already prepared input, guarded or not."""
    from unguarded_downloader import download_unguarded

    from wukong_data.stages.crawl import CrawlJob, download_shard, input_shards

    out.mkdir(parents=True)
    rows = [source["rows"] for source in json.loads((build / "input" / "_done.json").read_text())["sources"]]
    job = CrawlJob(output_dir=out, tmp_dir=out / "_tmp", cfg=cfg, shard_digits=5, log=out.parent / f"{out.name}.log")
    tasks = [(job, shard) for shard in input_shards(build / "input", rows, cfg.samples_per_shard)]
    start = time.perf_counter()
    with make_engine("local", SETTINGS["processes"]) as engine:  # its pool starts here, as img2dataset's does
        assert all(engine.map(download_shard if guarded else download_unguarded, tasks))
    return time.perf_counter() - start


def wukong_crawl(urls: Path, out: Path) -> tuple[float, object]:
    recipe = load("demo")
    recipe.stages = ["crawl", "export"]
    recipe.input.path = str(urls)
    for key, value in SETTINGS.items():
        setattr(recipe.crawl, key, value)
    start = time.perf_counter()
    with make_engine("local", SETTINGS["processes"]) as engine:
        run_build(recipe, str(out), only=["crawl"], engine=engine, ui=UI(quiet=True))
    return time.perf_counter() - start, recipe


def export(recipe, build: Path, repeats: int) -> dict:
    """Export throughput shuffled vs in key order (alternating, best of `repeats`), and tar bytes
    per sample against the ustar minimum and against webdataset's default writer (PAX headers)."""
    # Shards of 500 rows; shuffled groups of 2 crawl shards, so both modes run several tasks at once.
    recipe.export.samples_per_shard, recipe.export.shuffle_group = 500, 2
    out = {"formats": recipe.export.formats, "samples_per_shard": 500, "shuffle_group": 2}
    for r in range(repeats):
        for shuffle in (True, False):
            shutil.rmtree(build / "final", ignore_errors=True)
            recipe.export.shuffle = shuffle
            start = time.perf_counter()
            with make_engine("local", 2) as engine:
                run_build(recipe, str(build), only=["export"], engine=engine, ui=UI(quiet=True))
            seconds = time.perf_counter() - start
            rows = sum(json.loads((build / "final" / "sizes.json").read_text()).values())
            size = sum(p.stat().st_size for p in (build / "final").glob("[0-9]*.*"))
            name = "shuffled" if shuffle else "key_order"
            if r == 0 or seconds < out[name]["seconds"]:
                out[name] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1),
                             "mb_per_s": round(size / seconds / 1e6, 2), "bytes_written": size}
    out["shuffled_over_key_order_time_ratio"] = round(out["shuffled"]["seconds"] / out["key_order"]["seconds"], 3)
    out["tar_bytes_per_sample"] = tar_overhead(build / "final")
    assert BuildDir(build).read_manifest()["stages"]["export"]["status"] == "done"
    return out


def tar_overhead(final: Path) -> dict:
    """Bytes per sample of our tars, the ustar minimum (a 512-byte header per member, members
    padded to 512), and the same samples through webdataset's TarWriter as it is by default."""
    import io
    import tarfile

    import webdataset as wds

    ours = minimum = default = samples = 0
    for path in sorted(final.glob("*.tar")):
        ours += path.stat().st_size
        buf = io.BytesIO()
        writer = wds.TarWriter(buf)
        with tarfile.open(path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        for name, data in members:
            minimum += 512 + -(-len(data) // 512) * 512
        for key in dict.fromkeys(n.split(".", 1)[0] for n, _ in members):
            writer.write({"__key__": key, **{n.split(".", 1)[1]: d for n, d in members if n.split(".", 1)[0] == key}})
            samples += 1
        writer.close()
        default += len(buf.getvalue())
    return {"ours": round(ours / samples), "ustar_minimum": round(minimum / samples),
            "webdataset_default_with_pax": round(default / samples), "ours_over_minimum": round(ours / minimum, 3)}


def safety_costs(base_url: str, paths: list[str], bodies: list[bytes], repeats: int) -> dict:
    """CPU the checks add: per request, the client thread's CPU through urllib's default opener
    and through fetch.guarded_opener (the same requests, alternating); per image, the header
    check beside the resize it precedes. CPU, not wall time: on loopback the wall time is the
    server's, and what the checks take from a CPU-bound crawl is their CPU."""
    import io
    import urllib.request

    from img2dataset.resizer import Resizer

    from wukong_data.fetch import FetchPolicy, guarded_opener
    from wukong_data.images import undecodable_reason

    plain, guarded = urllib.request.build_opener(), guarded_opener(FetchPolicy(allow=("127.0.0.1",)))

    def fetch_all(opener) -> float:
        start = time.thread_time()
        for path in paths:
            with opener.open(base_url + path, timeout=10) as response:
                response.read()
        return (time.thread_time() - start) / len(paths)

    request_plain, request_guarded = [], []
    for _ in range(repeats):
        request_plain.append(fetch_all(plain))
        request_guarded.append(fetch_all(guarded))
    resizer = Resizer(**{k: SETTINGS[k] for k in ("image_size", "resize_mode", "resize_only_if_bigger", "encode_format",
                                                   "encode_quality", "skip_reencode")})

    def per_image(fn) -> float:
        start = time.thread_time()
        for body in bodies * 20:
            fn(body)
        return (time.thread_time() - start) / (len(bodies) * 20)

    check = min(per_image(undecodable_reason) for _ in range(repeats))
    resize = min(per_image(lambda body: resizer(io.BytesIO(body))) for _ in range(repeats))
    added = max(0.0, min(request_guarded) - min(request_plain)) + check
    return {"requests": len(paths),
            "request_cpu_us": {"urllib": round(min(request_plain) * 1e6, 1), "guarded": round(min(request_guarded) * 1e6, 1)},
            "image_cpu_us": {"header_check": round(check * 1e6, 1), "resize": round(resize * 1e6, 1)},
            "added_cpu_us_per_row": round(added * 1e6, 1)}


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
            runs = {"img2dataset": [], "wukong": [], "driver_guarded": [], "driver_unguarded": []}
            for r in range(args.repeats):
                seconds, recipe = wukong_crawl(urls, work / f"ours{r}")
                runs["wukong"].append(seconds)
                runs["img2dataset"].append(bare_img2dataset(urls, work / f"bare{r}"))
                # The same driver over the same prepared input, with and without the guards, in
                # alternating order.
                for guarded in ((True, False) if r % 2 == 0 else (False, True)):
                    name = "driver_guarded" if guarded else "driver_unguarded"
                    runs[name].append(driver_crawl(work / "ours0", work / f"{name}{r}", recipe.crawl, guarded))
            best = {name: min(times) for name, times in runs.items()}
            result["rows_per_s"] = {name: round(args.rows / t, 1) for name, t in best.items()}
            result["wukong_over_img2dataset_time_ratio"] = round(best["wukong"] / best["img2dataset"], 3)
            result["guarded_over_unguarded_time_ratio"] = round(best["driver_guarded"] / best["driver_unguarded"], 3)
            result["runs_s"] = {name: [round(t, 2) for t in times] for name, times in runs.items()}
            paths = list(routes)[: min(len(routes), 1000)]
            result["safety_cpu"] = safety_costs(base_url, paths, [routes[p][0] for p in paths[:50]], args.repeats)

        result["export"] = export(recipe, work / "ours0", args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
