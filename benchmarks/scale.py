"""The global steps of a build at scale, printed as JSON.

Synthetic build directories are written straight to disk at each size (rows of input, crawl
shards of 10,000), with the files the map phases write: crawl counts, dedupe map records written
by the real `SignatureMap.write`, filter decisions, score map records. Their distributions are
not uniform: each row's signature is a base's, the real `image_signature` (all of its VIEWS:
hashes and packed colour grids and edge orientations) of a random window of a real photograph
(scikit-image's bundled set) or of a random image, its hashes XORed with one mask of many bits
(apart from its neighbours; the same mask for every view keeps the distances between the views
of one image, and the bases' clustering); planted near-duplicate copies (a few bits flipped in
every view), exact image copies, repeated URLs and Zipf-distributed captions at the rates in
`SYNTHETIC_RATES`. The near-duplicate rules are the stage's own (MATCHING_VIEWS, the recipe's
radius and colour tolerance). Each global step then runs as the stage code runs it, through the
local engine, in a fresh process: its wall time, the driver's peak RSS and the workers' (largest
worker) peak RSS, and the growth exponent log(t_big / t_small) / log(big / small).

    (a) exact     dedupe exact rules (url, image, caption partitions) + exact apply per shard
    (b) near      near-duplicate collapse, search, confirm, group + the final apply per shard
    (c) score     keep_top_fraction: count, radix selection (select.kth), apply per shard
    (d) export    the export plan from per-shard counts (plan_tasks, shuffled and in key order)
    (e) funnel    pipeline.account per stage into the manifest + stats.collect(summaries=False)

Besides: the exact and near-duplicate steps at the smallest size with records of view 0 only
(the cost of the other views); faiss IndexBinaryMultiHash (the previous method) beside
search.pairs_within on the same hashes at growing sizes until faiss takes more than FAISS_LIMIT;
recall of pairs_within against a brute force scan of 200k hashes; seconds per search table at
the largest size for radius 6 and 8.

    python benchmarks/scale.py --sizes 1000000 10000000 --workers 2
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl

from wukong_data.engines.base import CPU, _Indexed
from wukong_data.engines.local import LocalEngine
from wukong_data.recipe import DedupeConfig

SHARD_ROWS = 10_000
RADIUS = DedupeConfig.hamming_radius  # the recipe's default
CHILD_TIMEOUT = 4 * 3600
FAISS_LIMIT = 300  # seconds: the largest faiss size is the largest that finishes within this
FAISS_SIZES = (100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)
RECALL_HASHES = 200_000
# Fractions of rows (stated in the JSON). Crawl: of input rows; the rest: of rows entering dedupe.
SYNTHETIC_RATES = {
    "crawl_download_failed": 0.075, "crawl_decode_failed": 0.005,
    "near_duplicate_copy": 0.05,  # an earlier row's hashes, 0-6 bits flipped in each view, same colour bytes
    "exact_image_copy": 0.03,  # an earlier row's image: same image_hash, hashes, colour bytes, pixels
    "repeated_url": 0.02,  # an earlier row's URL (and its image)
    "no_signature": 0.001,  # image_signature gave None (the row skips the near-duplicate search)
    "caption_from_zipf": 0.10,  # caption drawn from a Zipf(1.1) list of n/10 captions; others unique
}
FILTER_RATES = {"image_too_small": 0.08, "bad_aspect_ratio": 0.02, "not_chinese": 0.10, "too_few_words": 0.005,
                "too_many_words": 0.02, "meaningless_caption": 0.01, "sensitive_text": 0.005, "nsfw_text": 0.003,
                "nsfw_image": 0.005}
SCORE_NAN = 0.002  # filip_score NaN: the image did not decode for the scorer
KEEP_TOP_FRACTION = 0.9
# Real photographs and scans in scikit-image's wheel (not drawings, masks or charts).
PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
          "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png",
          "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg",
          "text.png")
PHOTO_WINDOWS, RANDOM_IMAGES = 3000, 1000


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def memory_mb() -> dict:
    """This process's peak and current resident memory (anonymous and file-backed pages)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "RssAnon", "RssFile"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return {"peak": fields.get("VmHWM"), "anon": fields.get("RssAnon"), "file": fields.get("RssFile")}


class AnonPeak:
    """The peak of this process's anonymous memory, sampled every 50 ms. VmHWM also counts the
    file-backed pages of memory-mapped files (page cache the kernel reclaims): this tells them apart."""

    def __init__(self):
        self.mb = 0.0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.mb = max(self.mb, memory_mb()["anon"] or 0.0)
            time.sleep(0.05)


def exponent(small: float, big: float, ratio: float) -> float | None:
    if not small or not big:
        return None
    return round(math.log(big / small) / math.log(ratio), 3)


# --- bases: signatures of real photographs and random images ------------------------------------

def make_bases(path: Path) -> dict:
    """The signatures (every view of VIEWS) of PHOTO_WINDOWS random windows (crop 30-100% of a
    side, rescaled to at most 256 px, saved as JPEG) of the photographs and of RANDOM_IMAGES
    random images (smooth and pixel noise)."""
    import skimage.data
    from PIL import Image

    from wukong_data.stages.dedupe.signatures import COLOUR_BYTES, VIEWS, image_signature

    rng = np.random.default_rng(11)
    photos = [Image.open(Path(skimage.data.data_dir) / name).convert("RGB") for name in PHOTOS]
    images = []
    for _ in range(PHOTO_WINDOWS):
        photo = photos[rng.integers(len(photos))]
        w, h = photo.size
        cw = int(w * rng.uniform(0.3, 1.0))
        ch = int(min(h, max(16, cw * rng.uniform(0.5, 2.0))))
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        window = photo.crop((x, y, x + cw, y + ch))
        scale = 256 / max(window.size)
        images.append(window.resize((max(8, int(cw * scale)), max(8, int(ch * scale))), Image.Resampling.BILINEAR))
    for i in range(RANDOM_IMAGES):
        if i % 2:
            cells = int(rng.integers(2, 13))
            small = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
            images.append(Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC))
        else:
            images.append(Image.fromarray((rng.random((256, 256, 3)) * 255).astype(np.uint8)))
    hashes = np.zeros((len(images), len(VIEWS)), np.uint64)
    colours = np.zeros((len(images), len(VIEWS), COLOUR_BYTES), np.uint8)
    for i, image in enumerate(images):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        for k, (phash, packed) in enumerate(image_signature(out.getvalue())):
            hashes[i, k] = phash
            colours[i, k] = np.frombuffer(packed, np.uint8)
    np.savez(path, hashes=hashes, colours=colours, photo=np.arange(len(images)) < PHOTO_WINDOWS)
    whole = hashes[:, 0]
    distance = np.bitwise_count(whole[:, None] ^ whole[None, :])[np.triu_indices(len(whole), 1)]
    bit_share = ((whole[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    corner_to_whole = np.bitwise_count(hashes[:, 1:] ^ hashes[:, :1])  # an image's corner views against its view 0
    return {"photo_windows": PHOTO_WINDOWS, "random_images": RANDOM_IMAGES, "photographs": len(PHOTOS),
            "views_per_base": len(VIEWS), "colour_bytes_per_view": COLOUR_BYTES,
            "base_pairs_mean_distance": round(float(distance.mean()), 2),
            "base_pairs_within_radius": int((distance <= RADIUS).sum()), "base_pairs": int(len(distance)),
            "bits_mean_abs_bias": round(float(np.abs(bit_share - 0.5).mean()), 3),
            "corner_view_to_whole_median_distance": float(np.median(corner_to_whole)),
            "corner_views_within_radius_of_whole": round(float((corner_to_whole <= RADIUS).mean()), 3)}


# --- the synthetic build ------------------------------------------------------------------------

def _random_masks(rng, shape) -> np.ndarray:
    """Masks with each bit set with p = 1/4 + 1/16 - 1/64 ~ 0.30 (~19 of 64 bits)."""
    raw = [rng.bit_generator.random_raw(int(np.prod(shape))).astype(np.uint64).reshape(shape) for _ in range(6)]
    return (raw[0] & raw[1]) | (raw[2] & raw[3] & raw[4] & raw[5])


def _few_flips(rng, shape, most: int) -> np.ndarray:
    """Masks of 0..most bits (uniform count; a repeated position makes one fewer)."""
    count = rng.integers(0, most + 1, shape)
    bits = np.uint64(1) << rng.integers(0, 64, (*shape, most)).astype(np.uint64)
    bits[np.arange(most) >= count[..., None]] = 0
    return np.bitwise_or.reduce(bits, axis=-1)


def synthetic_rows(m: int, views: int, bases: dict, seed: int) -> dict:
    """m rows entering dedupe (key order), vectorised. A copy's source is a uniformly drawn
    earlier row; copies of copies are resolved in rounds, each from a finished source."""
    rng = np.random.default_rng(seed)
    r = SYNTHETIC_RATES
    p_copy = [r["near_duplicate_copy"], r["exact_image_copy"], r["repeated_url"]]
    kind = rng.choice(4, size=m, p=[1 - sum(p_copy), *p_copy]).astype(np.int8)  # 0 new, 1 near, 2 image, 3 url
    kind[0] = 0
    source = (rng.random(m) * np.arange(m)).astype(np.int64)
    base = rng.integers(0, len(bases["hashes"]), m).astype(np.int32)
    hashes = bases["hashes"][base, :views] ^ _random_masks(rng, (m, 1))  # one mask: the views keep their distances
    signed = rng.random(m) >= r["no_signature"]
    image = rng.bit_generator.random_raw(m).astype(np.uint64)
    url = rng.bit_generator.random_raw(m).astype(np.uint64)
    width = np.exp(rng.normal(math.log(600), 0.5, m))
    pixels = np.clip(width * width * np.exp(rng.normal(-0.2, 0.3, m)), 64, 2**32 - 1).astype(np.uint32)
    done = kind == 0
    while not done.all():
        rows = np.nonzero(~done & done[source])[0]
        src, k = source[rows], kind[rows]
        flips = _few_flips(rng, (len(rows), views), 6) * (k == 1)[:, None].astype(np.uint64)
        hashes[rows] = hashes[src] ^ flips
        base[rows], signed[rows] = base[src], signed[src]
        same_image = k >= 2
        image[rows[same_image]], pixels[rows[same_image]] = image[src[same_image]], pixels[src[same_image]]
        url[rows[k == 3]] = url[src[k == 3]]
        done[rows] = True
    vocabulary = max(1000, m // 10)
    cdf = np.cumsum(np.arange(1, vocabulary + 1, dtype=np.float64) ** -1.1)
    caption = rng.bit_generator.random_raw(m).astype(np.uint64)
    common = rng.random(m) < r["caption_from_zipf"]
    rank = np.searchsorted(cdf, rng.random(int(common.sum())) * cdf[-1]).astype(np.uint64)
    caption[common] = rank * np.uint64(0x9E3779B97F4A7C15) + np.uint64(12345)
    _, caption_counts = np.unique(caption, return_counts=True)
    realised = {"rows": m, "new_images": int((kind == 0).sum()), "near_duplicate_copies": int((kind == 1).sum()),
                "exact_image_copies": int((kind == 2).sum()), "repeated_urls": int((kind == 3).sum()),
                "no_signature": int((~signed).sum()),
                "rows_with_caption_seen_over_10_times": int(caption_counts[caption_counts > 10].sum()),
                "captions_seen_over_10_times": int((caption_counts > 10).sum()),
                "most_frequent_caption_rows": int(caption_counts.max())}
    return {"hashes": hashes, "base": base, "signed": signed, "image": image, "url": url, "caption": caption,
            "pixels": pixels, "realised": realised}


def _list_column(values, lengths_valid: np.ndarray, per_row: int):
    """A list column of `per_row` values per row (null where not valid), from a flat Arrow array."""
    import pyarrow as pa

    offsets = pa.array(np.arange(len(lengths_valid) + 1, dtype=np.int32) * per_row)
    return pa.ListArray.from_arrays(offsets, values, mask=pa.array(~lengths_valid))


def shard_records(rows: dict, lo: int, hi: int, key_ids: np.ndarray, colours: np.ndarray, layout) -> pl.DataFrame:
    """rows[lo:hi] as the map phase's records: the columns SignatureMap.write takes."""
    import pyarrow as pa

    hashes, signed = rows["hashes"][lo:hi], rows["signed"][lo:hi]
    n, views = hashes.shape
    grids = np.ascontiguousarray(colours[rows["base"][lo:hi], :views]).reshape(-1)
    grid_values = pa.FixedSizeBinaryArray.from_buffers(pa.binary(colours.shape[-1]), n * views,
                                                       [None, pa.py_buffer(grids)]) \
        .cast(pa.binary())
    key_id = pl.Series("key_id", key_ids, dtype=pl.UInt64)
    return pl.DataFrame({
        "key": pl.select(layout.key_expr(pl.lit(key_id))).to_series(),
        "url_hash": pl.Series(rows["url"][lo:hi], dtype=pl.UInt64),
        "image_hash": pl.Series(rows["image"][lo:hi], dtype=pl.UInt64),
        "caption_hash": pl.Series(rows["caption"][lo:hi], dtype=pl.UInt64),
        "phash": pl.from_arrow(pa.array(hashes[:, 0], mask=~signed)),
        "view_hashes": pl.from_arrow(_list_column(pa.array(hashes.reshape(-1)), signed, views)),
        "view_colours": pl.from_arrow(_list_column(grid_values, signed, views)),
        "pixels": pl.Series(rows["pixels"][lo:hi], dtype=pl.UInt32),
        "key_id": key_id,
    })


def bench_recipe():
    """The bundled wukong-100m recipe, with the score stage and its global threshold added."""
    from wukong_data.recipe import load

    recipe = load("wukong-100m")
    return dataclasses.replace(recipe, stages=["crawl", "dedupe", "filter", "score", "export"],
                               score=dataclasses.replace(recipe.score, keep_top_fraction=KEEP_TOP_FRACTION))


def generate(root: str, input_rows: int, views: int, bases_path: str) -> dict:
    """The build as the crawl and the dedupe map leave it: manifest, crawl shards (counts, stats
    and a stand-in parquet with img2dataset's columns and no rows), dedupe map records."""
    from wukong_data.build import BuildDir, Counts, KeyLayout
    from wukong_data.storage import atomic_path, write_json_atomic
    from wukong_data.stages.dedupe import MAP, SignatureMap

    build = BuildDir(root)
    build.prepare()
    shards = -(-input_rows // SHARD_ROWS)
    layout = KeyLayout.for_crawl(shards, SHARD_ROWS)
    rng = np.random.default_rng(7)
    failed = rng.choice(3, size=(shards, SHARD_ROWS), p=[1 - SYNTHETIC_RATES["crawl_download_failed"]
                                                        - SYNTHETIC_RATES["crawl_decode_failed"],
                                                        SYNTHETIC_RATES["crawl_download_failed"],
                                                        SYNTHETIC_RATES["crawl_decode_failed"]])
    kept_per_shard = (failed == 0).sum(axis=1)
    bases = dict(np.load(bases_path))
    rows = synthetic_rows(int(kept_per_shard.sum()), views, bases, seed=input_rows)
    recipe = bench_recipe()
    build.update_manifest(recipe=recipe.to_dict(), engine={"name": "local", "workers": 0},
                          keys={"shard_digits": layout.shard_digits, "row_digits": layout.row_digits})
    crawl, map_dir = build.stage_dir("crawl"), build.stage_dir("dedupe") / MAP
    crawl.mkdir(parents=True, exist_ok=True)
    mapper = SignatureMap(recipe.crawl.encode_format)
    empty_crawl = pl.DataFrame(schema={"key": pl.String, "url": pl.String, "caption": pl.String,
                                       "status": pl.String, "error_message": pl.String, "sha256": pl.String})
    total, start = Counts(), 0
    signed_hashes = []
    for s in range(shards):
        name = layout.shard_name(s)
        ok = np.nonzero(failed[s] == 0)[0]
        key_ids = (layout.key_range(name)[0] + ok).astype(np.uint64)
        end = start + len(ok)
        records = shard_records(rows, start, end, key_ids, bases["colours"], layout)
        signed_hashes.append(rows["hashes"][start:end][rows["signed"][start:end]].reshape(-1))
        start = end
        mapper.write(records, map_dir, name)
        counts = Counts(SHARD_ROWS, len(ok), {"download_failed": int((failed[s] == 1).sum()),
                                              "decode_failed": int((failed[s] == 2).sum())})
        total.add(counts)
        write_json_atomic(crawl / f"{name}.counts.json", counts.to_dict())
        with atomic_path(crawl / f"{name}.parquet") as tmp:
            empty_crawl.write_parquet(tmp)
        write_json_atomic(crawl / f"{name}_stats.json", {
            "count": SHARD_ROWS, "successes": len(ok), "failed_to_download": counts.rejected["download_failed"],
            "failed_to_resize": counts.rejected["decode_failed"], "status_dict": {"success": len(ok)}})
    build.set_stage_status("crawl", status="done", **total.to_dict())
    # Every view's hash in key order, for the search comparisons.
    np.save(Path(root) / "_bench_hashes.npy", np.concatenate(signed_hashes))
    return {"input_rows": shards * SHARD_ROWS, "crawl_shards": shards, "views": views,
            "rows_entering_dedupe": int(kept_per_shard.sum()), "realised": rows["realised"]}


def decide_filter_and_scores(root: str) -> dict:
    """After dedupe: the filter's decisions for the rows dedupe kept (rates FILTER_RATES), and the
    score map's records (key, filip_score) for the rows the filter kept."""
    from wukong_data.build import BuildDir
    from wukong_data.storage import atomic_path
    from wukong_data.stages.score import MAP

    build = BuildDir(root)
    reasons = [*FILTER_RATES, None]
    p = [*FILTER_RATES.values(), 1 - sum(FILTER_RATES.values())]
    scored = 0
    for i, shard in enumerate(build.crawl_shards()):
        rng = np.random.default_rng([3, i])
        keys = build.kept("dedupe", shard).collect()["key"]
        reason = pl.Series("reason", rng.choice(len(reasons), keys.len(), p=p)).replace_strict(
            dict(enumerate(reasons)), return_dtype=pl.String)
        decisions = pl.DataFrame({"key": keys, "reason": reason}).with_columns(lang=pl.lit("zh"))
        build.write_decisions("filter", shard, decisions)
        kept = keys.filter(reason.is_null())
        # FILIP-like scores: most pairs match (mean 0.32), a fifth match poorly; a few undecodable.
        n = kept.len()
        score = np.where(rng.random(n) < 0.8, rng.normal(0.32, 0.06, n), rng.normal(0.18, 0.05, n))
        score[rng.random(n) < SCORE_NAN] = np.nan
        with atomic_path(build.stage_dir("score") / MAP / f"{shard}.parquet") as tmp:
            pl.DataFrame({"key": kept, "filip_score": pl.Series(score, dtype=pl.Float32)}).write_parquet(tmp)
        scored += n
    return {"filter_rates": FILTER_RATES, "score_map_rows": scored, "score_nan_rate": SCORE_NAN}


# --- the global steps, each in its own process --------------------------------------------------

class _Watched:
    """fn, noting the peak memory of the worker process that ran it (in `folder`, one file per
    process: the peak only grows, so the last note is its peak)."""

    def __init__(self, fn, folder: str, driver: int):
        self.fn, self.folder, self.driver = fn, folder, driver

    def __call__(self, item):
        out = self.fn(item)
        if os.getpid() != self.driver:  # one item runs in the driver itself: its peak is the driver's
            Path(self.folder, str(os.getpid())).write_text(str(memory_mb()["peak"]))
        return out


class TimedEngine(LocalEngine):
    """The local engine, noting each map/imap call (function, items, seconds, the driver's memory
    after it) and the peak memory of every worker process."""

    def __init__(self, workers: int, notes: Path):
        super().__init__(workers)
        self.calls: list[str] = []
        self.timeline: list[tuple[str, float, float]] = []  # function, start, end (since origin)
        self.origin = time.perf_counter()
        notes.mkdir(parents=True, exist_ok=True)
        self.notes = str(notes)

    def workers_peak_mb(self) -> float:
        return max((float(p.read_text()) for p in Path(self.notes).iterdir()), default=0.0)

    def _note(self, fn, items: int, start: float) -> None:
        now = time.perf_counter()
        self.timeline.append((fn.__name__, start - self.origin, now - self.origin))
        memory = memory_mb()
        self.calls.append(f"{fn.__name__} x{items}: at {start - self.origin:.1f} s, took {now - start:.2f} s; "
                          f"driver after: peak {memory['peak']} MB, anon {memory['anon']}, file {memory['file']}")

    def imap(self, fn, items, resources=CPU):
        if isinstance(fn, _Indexed):  # map()'s own call: noted by map()
            yield from super().imap(fn, items, resources)
            return
        items, start = list(items), time.perf_counter()
        yield from super().imap(_Watched(fn, self.notes, os.getpid()), items, resources)
        self._note(fn, len(items), start)

    def map(self, fn, items, on_result=None, resources=CPU):
        items, start = list(items), time.perf_counter()
        out = super().map(_Watched(fn, self.notes, os.getpid()), items, on_result, resources)
        self._note(fn, len(items), start)
        return out


def _context(root: str, workers: int):
    from wukong_data.build import BuildDir
    from wukong_data.stages import StageContext
    from wukong_data.ui import UI

    engine = TimedEngine(workers, Path(root) / "_bench_workers" / str(os.getpid()))
    return StageContext(build=BuildDir(root), recipe=bench_recipe(), engine=engine, ui=UI(quiet=True))


def step_exact(root: str, workers: int) -> dict:
    """The dedupe stage up to the exact rules' apply (DedupeStage.exact_rules)."""
    from wukong_data.stages.dedupe import DedupeStage
    from wukong_data.stages.runner import Runner

    ctx = _context(root, workers)
    start = time.perf_counter()
    partitions, _, _ = DedupeStage().exact_rules(ctx, Runner(ctx))
    return {"seconds": time.perf_counter() - start, "partitions": partitions, "engine_calls": ctx.engine.calls,
            "workers_peak_rss_mb": ctx.engine.workers_peak_mb()}


def step_near(root: str, workers: int) -> dict:
    """The dedupe stage from the near-duplicate steps on (DedupeStage.near_duplicates), then the final apply."""
    from wukong_data.stages.dedupe import DedupeStage, ShardTask, apply_final, near
    from wukong_data.stages.dedupe.search import plan
    from wukong_data.stages.runner import Runner

    ctx = _context(root, workers)
    build = ctx.build
    partitions = json.loads((build.stage_dir("dedupe") / "_partitions.json").read_text())["partitions"]
    rules = ("url", "image", "caption")
    start = time.perf_counter()
    DedupeStage().near_duplicates(ctx, Runner(ctx), partitions)
    ctx.engine.map(apply_final, [ShardTask(str(build.root), s, partitions, rules, True) for s in build.crawl_shards()])
    seconds = time.perf_counter() - start
    folder = build.stage_dir("dedupe") / near.NEAR
    span = {name: (begin, end) for name, begin, end in ctx.engine.timeline}
    phases = {"collapse": span["collapse_partition"][1] - span["collapse_partition"][0],
              "representatives_and_plan": span["search_tables"][0] - span["collapse_partition"][1],
              "search": span["search_tables"][1] - span["search_tables"][0],
              "confirm_and_group": span["apply_final"][0] - span["search_tables"][1],
              "apply_final": span["apply_final"][1] - span["apply_final"][0]}
    pairs = sum(len(np.load(p, mmap_mode="r")) for p in (folder / "pairs").glob("*.npy"))
    distinct = len(np.load(folder / "distinct.npy", mmap_mode="r"))
    return {"seconds": seconds, "search_seconds": round(phases["search"], 2),
            "phase_seconds": {k: round(v, 2) for k, v in phases.items()},
            "representatives": near.Representatives(folder, partitions).count,
            "distinct_hashes": distinct, "search_tables": len(plan(ctx.recipe.dedupe.hamming_radius, distinct).tables),
            "hash_pairs_within_radius": pairs,
            "ties": pl.scan_parquet(folder / "ties" / "*.parquet").select(pl.len()).collect().item(),
            "near_dup_losers": int(pl.scan_parquet(folder / "losers.parquet").select(pl.len()).collect().item()),
            "dedupe_counts": build.stage_counts("dedupe").to_dict(), "engine_calls": ctx.engine.calls,
            "workers_peak_rss_mb": ctx.engine.workers_peak_mb()}


def step_score(root: str, workers: int) -> dict:
    """ScoreStage.run after its map: the global keep_top_fraction threshold and its apply."""
    from wukong_data.stages import select
    from wukong_data.stages.score import MAP, ApplyTask, apply_scores, count_scored

    ctx = _context(root, workers)
    cfg, build = ctx.recipe.score, ctx.build
    start = time.perf_counter()
    shards = build.crawl_shards()
    paths = [str(build.stage_dir("score") / MAP / f"{s}.parquet") for s in shards]
    scored = sum(ctx.engine.imap(count_scored, paths))
    keep = round(cfg.keep_top_fraction * scored)
    cutoff = tuple(int(d) for d in select.kth(ctx.engine, paths, keep))
    ctx.engine.map(apply_scores, [ApplyTask(str(build.root), s, cfg.min_score, cutoff, False) for s in shards])
    counts = build.stage_counts("score")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "scored": scored, "keep": keep, "kept": counts.kept,
            "kept_is_exact": counts.kept == keep,
            "histogram_passes": sum(name == "digit_histogram" for name, _, _ in ctx.engine.timeline) - 1,
            "counts": counts.to_dict(), "engine_calls": ctx.engine.calls,
            "workers_peak_rss_mb": ctx.engine.workers_peak_mb()}


def _plan_sizes(tasks: list[dict], counts: dict[str, int]) -> dict[str, int]:
    """What final/sizes.json would hold: write_task deals a task's rows to its outputs in turn."""
    from wukong_data.stages.export import shard_name

    sizes = {}
    for task in tasks:
        if task["key_ranges"] is None:
            n, outputs = sum(counts[s] for s in task["sources"]), task["outputs"]
            for slot, index in enumerate(outputs):
                sizes[f"{shard_name(index)}.tar"] = n // len(outputs) + (slot < n % len(outputs))
        else:
            sizes[f"{shard_name(task['outputs'][0])}.tar"] = sum(hi - lo for lo, hi in task["key_ranges"])
    return sizes


def step_export(root: str, workers: int) -> dict:
    """The export's plan: counts from the counts files, plan_tasks shuffled and in key order, the
    plan id (as export_rows makes them); no image is copied. final/sizes.json is then written
    from the shuffled plan (untimed) for the funnel."""
    from wukong_data.storage import write_json_atomic
    from wukong_data.recipe import stages_before
    from wukong_data.stages.export import SIZES, plan_tasks

    ctx = _context(root, workers)
    cfg, build = ctx.recipe.export, ctx.build
    start = time.perf_counter()
    prior = tuple(stages_before(ctx.recipe.stages, "export"))
    counts = {s: build.shard_counts(prior[-1], s).kept for s in build.crawl_shards()}
    counted = time.perf_counter()
    plans = {}
    for shuffle in (True, False):
        begin = time.perf_counter()
        settings = {"per_shard": cfg.samples_per_shard, "formats": sorted(cfg.formats), "shuffle": shuffle,
                    "group": cfg.shuffle_group, "seed": cfg.seed, "sample": 1.0,
                    "image": ctx.recipe.crawl.encode_format, "stages": prior}
        plan_id = hashlib.sha256(json.dumps([settings, sorted(counts.items())]).encode()).hexdigest()
        tasks = plan_tasks(counts, cfg.samples_per_shard, shuffle, cfg.shuffle_group, cfg.seed)
        plans["shuffled" if shuffle else "key_order"] = {
            "seconds": round(time.perf_counter() - begin, 4), "tasks": len(tasks),
            "final_shards": sum(len(t["outputs"]) for t in tasks), "id": plan_id[:12], "plan": tasks}
    seconds = time.perf_counter() - start
    sizes = _plan_sizes(plans["shuffled"]["plan"], counts)
    assert sum(sizes.values()) == sum(counts.values()) == sum(_plan_sizes(plans["key_order"]["plan"], counts).values())
    write_json_atomic(build.final_dir / SIZES, sizes)
    for plan in plans.values():
        del plan["plan"]
    return {"seconds": seconds, "read_counts_seconds": round(counted - start, 3), "rows": sum(counts.values()),
            "plans": plans}


def step_funnel(root: str, workers: int) -> dict:
    """Each stage's counts into the manifest as run_build does (pipeline.account, which checks
    every shard's rows in against the previous stage's kept), then stats.collect(summaries=False)."""
    from wukong_data import stats
    from wukong_data.pipeline import account

    ctx = _context(root, workers)
    build, stages = ctx.build, ctx.recipe.stages
    start = time.perf_counter()
    for stage in stages:
        build.set_stage_status(stage, status="done", **account(build, stages, stage))
    report = stats.collect(root, summaries=False)
    return {"seconds": time.perf_counter() - start, "funnel": report["funnel"], "totals": report["totals"]}


def step_imports(root: str, workers: int) -> dict:
    """The driver's memory after importing what the steps import: the floor under their peaks."""
    for module in ("wukong_data.pipeline", "wukong_data.stages.dedupe", "wukong_data.stages.export",
                   "wukong_data.stages.score", "wukong_data.stats"):
        importlib.import_module(module)
    floor = memory_mb()["peak"]
    importlib.import_module("torch")  # LocalEngine imports it to count GPUs when a map asks for one

    return {"seconds": 0.0, "imports_mb": floor, "imports_with_torch_mb": memory_mb()["peak"]}


# --- near-duplicate search comparisons (each its own process) -----------------------------------

def _pair_codes(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    return np.sort(lo * n + hi)


def step_pairs_within(path: str, out: str) -> dict:
    from wukong_data.stages.dedupe.search import pairs_within, plan

    hashes = np.load(path)
    start = time.perf_counter()
    i, j = pairs_within(hashes, RADIUS)
    seconds = time.perf_counter() - start
    np.save(out, _pair_codes(i, j, len(hashes)))
    return {"seconds": seconds, "hashes": len(hashes), "tables": len(plan(RADIUS, len(hashes)).tables),
            "pairs": len(i)}


def step_faiss(path: str, out: str) -> dict:
    """The previous method: IndexBinaryMultiHash, 4 blocks of 16 bits, nflip = radius // 4 (exact
    by pigeonhole), range_search at radius + 1 (faiss keeps distances strictly below it)."""
    import faiss

    hashes = np.load(path)
    start = time.perf_counter()
    index = faiss.IndexBinaryMultiHash(64, 4, 16)
    index.nflip = RADIUS // 4
    packed = hashes.astype("<u8").view(np.uint8).reshape(-1, 8)
    index.add(packed)
    lims, _, found = index.range_search(packed, RADIUS + 1)
    query = np.repeat(np.arange(len(hashes)), np.diff(lims).astype(np.int64))
    keep = query < found
    seconds = time.perf_counter() - start
    np.save(out, _pair_codes(query[keep], found[keep], len(hashes)))
    return {"seconds": seconds, "hashes": len(hashes), "pairs": int(keep.sum()), "threads": faiss.omp_get_max_threads()}


def step_recall(path: str, out: str) -> dict:
    """search.pairs_within against every pair checked by numpy (a block of rows at a time)."""
    from wukong_data.stages.dedupe.search import pairs_within

    hashes = np.load(path)
    n = len(hashes)
    start = time.perf_counter()
    i, j = pairs_within(hashes, RADIUS)
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    codes, block = [], 64
    for lo in range(0, n, block):
        rows = hashes[lo:lo + block]
        near = np.bitwise_count(rows[:, None] ^ hashes[None, lo:]) <= RADIUS
        a, b = np.nonzero(near)
        a, b = a + lo, b + lo
        later = b > a
        codes.append(a[later].astype(np.int64) * n + b[later])
    brute = np.sort(np.concatenate(codes))
    brute_seconds = time.perf_counter() - start
    found = _pair_codes(i, j, n)
    hit = np.isin(brute, found).sum()
    return {"hashes": n, "radius": RADIUS, "brute_force_pairs": len(brute), "pairs_within_pairs": len(found),
            "recall": round(float(hit / len(brute)), 6) if len(brute) else 1.0,
            "pairs_not_within_radius": int(len(found) - np.isin(found, brute).sum()),
            "pairs_within_seconds": round(search_seconds, 2), "brute_force_seconds": round(brute_seconds, 1),
            "seconds": search_seconds}


def step_tables(path: str, out: str) -> dict:
    """Seconds of search.table_pairs per table (five tables spread over each plan) on the distinct
    hashes of the largest build, at radius 6 and 8: with the block split plan() picks for them and
    with the one it picks for 100M hashes, each beside as many uniform random hashes."""
    from wukong_data.stages.dedupe.search import plan, table_pairs

    hashes = np.load(path)
    uniform = np.random.default_rng(5).bit_generator.random_raw(len(hashes)).astype(np.uint64)
    result = {"hashes": len(hashes)}
    for radius in (RADIUS - 2, RADIUS):
        for label, n in (("plan_for_these", len(hashes)), ("plan_for_100m", 100_000_000)):
            p = plan(radius, n)
            picks = sorted({int(t) for t in np.linspace(0, len(p.tables) - 1, 5).round()})
            entry = {"blocks": len(p.blocks), "tables": len(p.tables), "tables_timed": picks}
            for name, values in (("phash", hashes), ("uniform", uniform)):
                times, pairs = [], 0
                for t in picks:
                    start = time.perf_counter()
                    i, _ = table_pairs(values, p, t)
                    times.append(round(time.perf_counter() - start, 2))
                    pairs += len(i)
                # The median: other work on the machine slows some tables several-fold.
                entry[name] = {"seconds_per_table": times, "pairs_in_timed_tables": pairs,
                               "all_tables_one_core_seconds": round(float(np.median(times)) * len(p.tables), 1)}
            result[f"radius_{radius}_{label}"] = entry
    result["seconds"] = 0.0
    return result


def step_generate(root: str, args: str) -> dict:
    input_rows, views, bases = json.loads(args)
    start = time.perf_counter()
    out = generate(root, input_rows, views, bases)
    return {"seconds": time.perf_counter() - start, **out}


def step_after_dedupe(root: str, args: str) -> dict:
    start = time.perf_counter()
    out = decide_filter_and_scores(root)
    return {"seconds": time.perf_counter() - start, **out}


STEPS = {"exact": step_exact, "near": step_near, "score": step_score, "export": step_export, "funnel": step_funnel,
         "imports": step_imports, "pairs_within": step_pairs_within, "faiss": step_faiss, "recall": step_recall,
         "tables": step_tables, "generate": step_generate, "after_dedupe": step_after_dedupe}


def child_main(step: str, first: str, second: str) -> None:
    """Run one step and print its JSON. Peaks are VmHWM, the process's own: ru_maxrss would carry
    the high-water mark of the process that forked it across exec (Linux keeps it)."""
    worker_arg = int(second) if step in ("exact", "near", "score", "export", "funnel", "imports") else second
    load_before = os.getloadavg()[0]
    anon = AnonPeak()
    result = STEPS[step](first, worker_arg)
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # before, after
    result["seconds"] = round(result["seconds"], 3)
    result["driver_peak_rss_mb"] = memory_mb()["peak"]
    result["driver_peak_anon_mb"] = round(anon.mb, 1)
    result.setdefault("workers_peak_rss_mb", None)
    print(json.dumps(result))


def run_child(step: str, first: str, second, timeout: float = CHILD_TIMEOUT) -> dict:
    """Run a step in a fresh interpreter; its last stdout line is its JSON."""
    log(f"{step} {Path(first).name} ...")
    start = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, __file__, "--child", step, first, str(second)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{step}: still running after {timeout:.0f} s, stopped")
        return {"timed_out": True, "limit_seconds": timeout}
    if out.returncode:
        raise RuntimeError(f"step {step} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - start, 2)
    log(f"{step}: {result['seconds']} s, driver {result['driver_peak_rss_mb']} MB, "
        f"workers {result['workers_peak_rss_mb']} MB")
    return result


# --- the benchmark -------------------------------------------------------------------------------

GLOBAL_STEPS = ("exact", "near", "score", "export", "funnel")
NEAR_FIGURES = ("seconds", "search_seconds", "phase_seconds", "representatives", "distinct_hashes", "search_tables",
                "hash_pairs_within_radius", "ties", "near_dup_losers")


def one_size(work: Path, input_rows: int, workers: int, bases: Path, keep: dict) -> dict:
    from wukong_data.stages.dedupe.signatures import VIEWS

    root = work / f"build-{input_rows}"
    generated = run_child("generate", str(root), json.dumps([input_rows, len(VIEWS), str(bases)]))
    steps = {}
    steps["exact"] = run_child("exact", str(root), workers)
    steps["near"] = run_child("near", str(root), workers)
    after = run_child("after_dedupe", str(root), "")
    for step in ("score", "export", "funnel"):
        steps[step] = run_child(step, str(root), workers)
    for name, target in keep.items():
        shutil.copy(root / name, target)
    shutil.rmtree(root)
    return {"generate": generated, "filter_and_score_map": after, "steps": steps}


def one_view(work: Path, input_rows: int, workers: int, bases: Path) -> dict:
    """The exact and near-duplicate steps on records of view 0 alone (the whole picture), the
    single view the stage had before: what the other views cost."""
    root = work / f"build-{input_rows}-view0"
    generated = run_child("generate", str(root), json.dumps([input_rows, 1, str(bases)]))
    exact = run_child("exact", str(root), workers)
    near = run_child("near", str(root), workers)
    shutil.rmtree(root)
    return {"input_rows": input_rows, "views": 1, "rows_entering_dedupe": generated["rows_entering_dedupe"],
            "exact": _brief(exact), "near": _brief(near) | {k: near[k] for k in NEAR_FIGURES if k != "seconds"}}


def ordered_unique(hashes: np.ndarray, n: int) -> np.ndarray:
    """The first n distinct hashes in key order (a key prefix keeps the copy rate of the whole)."""
    _, first = np.unique(hashes, return_index=True)
    return hashes[np.sort(first)][:n]


def faiss_ladder(work: Path, all_views: Path) -> dict:
    hashes = np.load(all_views)
    distinct = len(np.unique(hashes))
    rows = []
    for n in [s for s in FAISS_SIZES if s <= distinct]:
        subset = work / f"hashes-{n}.npy"
        np.save(subset, ordered_unique(hashes, n))
        ours = run_child("pairs_within", str(subset), str(work / "ours.npy"))
        theirs = run_child("faiss", str(subset), str(work / "faiss.npy"), timeout=FAISS_LIMIT)
        row = {"hashes": n, "pairs_within": _brief(ours) | {"pairs": ours["pairs"], "tables": ours["tables"]}}
        if theirs.get("timed_out"):
            row["faiss_multihash"] = theirs
            rows.append(row)
            break
        row["faiss_multihash"] = _brief(theirs) | {"pairs": theirs["pairs"], "threads": theirs["threads"]}
        row["same_pairs"] = bool(np.array_equal(np.load(work / "ours.npy"), np.load(work / "faiss.npy")))
        row["faiss_over_pairs_within_time"] = round(theirs["seconds"] / max(ours["seconds"], 1e-9), 2)
        rows.append(row)
        subset.unlink()
    finished = [r["hashes"] for r in rows if not r["faiss_multihash"].get("timed_out")]
    return {"radius": RADIUS, "limit_seconds": FAISS_LIMIT, "largest_faiss_finished": max(finished, default=None),
            "note": "hashes: the first n distinct hashes (every view) of the largest build in key order; faiss "
                    "uses all cores (threads), pairs_within one", "sizes": rows}


def _brief(step: dict) -> dict:
    return {k: step[k] for k in ("seconds", "driver_peak_rss_mb", "driver_peak_anon_mb", "workers_peak_rss_mb",
                                  "load_average_1min")
            if k in step}


def growth(sizes: list[int], results: dict) -> dict:
    small, big = str(sizes[0]), str(sizes[-1])
    ratio = sizes[-1] / sizes[0]
    out = {}
    for step in GLOBAL_STEPS:
        a, b = results[small]["steps"][step], results[big]["steps"][step]
        out[step] = {"time_exponent": exponent(a["seconds"], b["seconds"], ratio),
                     "driver_rss_ratio": round(b["driver_peak_rss_mb"] / a["driver_peak_rss_mb"], 2),
                     "workers_rss_ratio": round(b["workers_peak_rss_mb"] / a["workers_peak_rss_mb"], 2)
                     if a["workers_peak_rss_mb"] else None}
    return out


def targets(sizes: list[int], results: dict, grown: dict) -> dict:
    big = str(sizes[-1])
    out = {"driver_rss_at_largest_le_2048_mb": {}, "driver_anon_at_largest_le_2048_mb": {},
           "driver_rss_le_1.5x_smallest": {}, "time_exponent_le_1.15": {}}
    for step in GLOBAL_STEPS:
        rss, anon = (results[big]["steps"][step][k] for k in ("driver_peak_rss_mb", "driver_peak_anon_mb"))
        out["driver_rss_at_largest_le_2048_mb"][step] = {"mb": rss, "met": rss <= 2048}
        out["driver_anon_at_largest_le_2048_mb"][step] = {"mb": anon, "met": anon <= 2048}
        out["driver_rss_le_1.5x_smallest"][step] = {"ratio": grown[step]["driver_rss_ratio"],
                                                   "met": grown[step]["driver_rss_ratio"] <= 1.5}
        if step != "near":
            e = grown[step]["time_exponent"]
            out["time_exponent_le_1.15"][step] = {"exponent": e, "met": e is not None and e <= 1.15}
    near = results[big]["steps"]["near"]
    out["near_duplicates_at_largest_le_900_s"] = {"rows": sizes[-1], "seconds": near["seconds"],
                                                  "search_seconds": near["search_seconds"],
                                                  "met": near["seconds"] <= 900}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="input rows")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tmp", default=None, help="where the synthetic builds go (default: the system temp dir)")
    parser.add_argument("--keep-hashes", type=Path, default=None,
                        help="copy each size's distinct view hashes (distinct-N.npy) here, for gpu_near_search.py")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    sizes = sorted(args.sizes)
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="wukong-scale-", dir=args.tmp))
    try:
        log(f"work dir {work}")
        bases = work / "bases.npz"
        base_stats = make_bases(bases)
        floor = run_child("imports", str(work), args.workers)
        results = {}
        for n in sizes:
            keep = {"_bench_hashes.npy": work / f"all-views-{n}.npy",
                    "dedupe/_near/distinct.npy": work / f"distinct-{n}.npy"}
            results[str(n)] = one_size(work, n, args.workers, bases, keep)
        view0 = one_view(work, sizes[0], args.workers, bases)
        np.save(work / "recall.npy", ordered_unique(np.load(work / f"all-views-{sizes[0]}.npy"), RECALL_HASHES))
        recall = run_child("recall", str(work / "recall.npy"), "")
        tables = run_child("tables", str(work / f"distinct-{sizes[-1]}.npy"), "")
        ladder = faiss_ladder(work, work / f"all-views-{sizes[-1]}.npy")
        if args.keep_hashes:
            args.keep_hashes.mkdir(parents=True, exist_ok=True)
            for n in sizes:
                shutil.copy(work / f"distinct-{n}.npy", args.keep_hashes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    grown = growth(sizes, results) if len(sizes) > 1 else {}
    funnels = {n: r["steps"]["funnel"].pop("funnel") for n, r in results.items()}
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpus": os.cpu_count(), "workers": args.workers, "radius": RADIUS,
        "synthetic_build": {"shard_rows": SHARD_ROWS, "rates": SYNTHETIC_RATES, "filter_rates": FILTER_RATES,
                            "score": {"distribution": "0.8 N(0.32, 0.06) + 0.2 N(0.18, 0.05), float32",
                                      "nan_rate": SCORE_NAN, "keep_top_fraction": KEEP_TOP_FRACTION},
                            "recipe": "wukong-100m + score stage (keep_top_fraction 0.9)", "bases": base_stats},
        "driver_import_floor": _brief(floor) | {k: floor[k] for k in ("imports_mb", "imports_with_torch_mb")},
        "sizes": {n: {"rows_entering_dedupe": r["generate"]["rows_entering_dedupe"],
                      "generated": r["generate"]["realised"], "generate_seconds": r["generate"]["seconds"],
                      "steps": r["steps"]} for n, r in results.items()},
        "funnel_at_largest": funnels[str(sizes[-1])],
        "growth": grown,
        "targets": targets(sizes, results, grown) if grown else {},
        "near_duplicate_search": {
            "stage": {n: {k: r["steps"]["near"][k] for k in NEAR_FIGURES} for n, r in results.items()},
            "stage_view0_only_at_smallest": view0, "recall_vs_brute_force": recall,
            "table_seconds_at_largest": tables, "faiss_multihash_vs_pairs_within": ladder},
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
