"""`wukong stats` at scale, printed as JSON: wall time, CPU time and peak memory of `wukong stats
--json` and of `wukong stats --html FILE --json` over a synthetic build of N rows (crawl shards of
img2dataset's layout plus the dedupe, filter and score decision files, 10,000 rows a shard as the
bundled recipes write them), beside a bare polars aggregation of the same files in the same run:
each command a whole process, start-up included.

The bare aggregation gives the figures one polars query per stage can give (reason counts,
languages, min/mean/max and quantiles of every numeric column) with no join across stages, no
samples, no top words, and whole columns in memory; run again without the quantiles, it is the
floor of any aggregation of these files. `wukong stats` joins each row's stages a batch of shards
at a time, in bounded memory.

    python benchmarks/stats.py --rows 10000000
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

STAGES = ["crawl", "dedupe", "filter", "score", "export"]

BARE = r"""
import sys
import polars as pl
from wukong_data.outputs import crawl_reason
root = sys.argv[1]
side = pl.min_horizontal("original_width", "original_height")
aspect = pl.col("original_width") / pl.col("original_height")
numeric = {"crawl": {"w": pl.col("original_width"), "h": pl.col("original_height"), "side": side, "aspect": aspect},
           "dedupe": {},
           "filter": {c: pl.col(c) for c in ("lang_score", "han_ratio", "n_words", "n_masked", "nsfw_score")}
                     | {"chars": pl.col("caption").str.len_chars()},
           "score": {"filip_score": pl.col("filip_score")}}
out = {}
for stage, columns in numeric.items():
    files = pl.scan_parquet(f"{root}/{stage}/[0-9]*.parquet")
    if stage == "crawl":
        files = files.with_columns(reason=crawl_reason())
    out[stage] = files.group_by("reason").len().collect().rows()
    stats = [getattr(e, f)().alias(f"{c}_{f}") for c, e in columns.items() for f in ("min", "mean", "max")]
    if sys.argv[2] == "quantiles":
        stats += [e.quantile(q).alias(f"{c}_q{q}") for c, e in columns.items()
                  for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)]
    if stats:
        out[stage + "_columns"] = files.select(stats).collect().row(0)
    if stage == "filter":
        out["lang"] = files.group_by("lang", "reason").len().collect().rows()
"""

CHILD = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
if proc.returncode:
    sys.exit(proc.stderr)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                  "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}))
"""

WORDS = ["红色", "汽车", "山水", "风景", "小猫", "美食", "城市", "夜景", "手机", "连衣裙", "海边", "日落", "古镇",
         "花朵", "蛋糕", "设计", "高清", "壁纸", "卡通", "儿童", "运动", "鞋子", "家居", "客厅", "装修", "春天",
         "雪山", "森林", "河流", "建筑", "北京", "上海", "咖啡", "茶", "书法", "国画", "摄影", "人物", "插画", "背景"]


def _jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "JPEG", quality=70)
        out.append(buf.getvalue())
    return out


def _masked(values, keep: np.ndarray, dtype=pl.Float32) -> pl.Series:
    """`values` where `keep`, null elsewhere."""
    return pl.select(pl.when(pl.Series(keep)).then(pl.Series(values).cast(dtype))).to_series()


def _reasons(conditions: list[np.ndarray], codes: list[str]) -> pl.Series:
    """The first code whose condition holds, per row (null: none holds)."""
    index = np.select(conditions, list(range(len(codes))), -1)
    return _masked(np.array(codes + [""])[index], index >= 0, pl.String)


def _keys(shard: str, rows: np.ndarray, row_digits: int) -> pl.Series:
    return pl.select(pl.lit(shard) + pl.Series(rows).cast(pl.String).str.zfill(row_digits)).to_series()


def _write_counts(reasons: pl.Series, path: Path) -> dict:
    rejected = reasons.drop_nulls().value_counts(sort=True)
    counts = {"rows_in": reasons.len(), "kept": reasons.null_count(), "rejected": dict(rejected.iter_rows())}
    path.write_text(json.dumps(counts))
    return counts


def _write(frame: pl.DataFrame, path: Path) -> dict:
    frame.write_parquet(path)
    return _write_counts(frame["reason"], path.with_name(path.stem + ".counts.json"))


def synthesize(root: Path, rows: int, per_shard: int = 10_000, seed: int = 0) -> None:
    """A build directory shaped like a real one: crawl shards (img2dataset's columns, tiny JPEGs,
    row groups of 100), dedupe, filter and score decision files with their counts files, the
    manifest. Rates roughly as a real crawl: 5% failed downloads, 11% duplicates, 15% small images,
    10% not Chinese, 10% low scores."""
    from wukong_data.recipe import load

    recipe = load("wukong-100m")
    recipe.stages = STAGES
    recipe.crawl.samples_per_shard = per_shard
    recipe.score.min_score = 0.2
    cfg = recipe.filter
    rng = np.random.default_rng(seed)
    images = pl.Series(_jpegs(64), dtype=pl.Binary)
    words = pl.Series(WORDS)
    n_shards = -(-rows // per_shard)
    row_digits = len(str(per_shard - 1))
    totals = {s: {"rows_in": 0, "kept": 0, "rejected": {}} for s in STAGES[:-1]}
    for stage in STAGES[:-1]:
        (root / stage).mkdir(parents=True, exist_ok=True)
    for shard_id in range(n_shards):
        shard = f"{shard_id:05d}"
        m = min(per_shard, rows - shard_id * per_shard)
        keys = _keys(shard, np.arange(m), row_digits)
        status = rng.choice(["success", "failed_to_download", "failed_to_resize"], m, p=[0.95, 0.04, 0.01])
        invalid = rng.random(m) < 0.001
        ok = (status == "success") & ~invalid
        width = np.maximum(16, rng.lognormal(6.2, 0.5, m)).astype(np.int32)
        height = np.maximum(16, width * rng.lognormal(-0.1, 0.35, m)).astype(np.int32)
        lengths = rng.integers(1, 7, m)
        captions = pl.select(pl.concat_str([
            pl.when(pl.Series(lengths > j)).then(words.gather(rng.integers(0, len(WORDS), m))).otherwise(pl.lit(""))
            for j in range(6)])).to_series()
        crawl = pl.DataFrame({
            "key": keys, "caption": captions,
            "url": _masked(pl.select(pl.lit(f"https://img{shard_id % 97}.example.com/{shard}/") + keys + ".jpg")
                           .to_series(), ~invalid, pl.String).fill_null(""),
            "status": np.where(invalid, "failed_to_download", status),
            "error_message": _masked(np.where(status == "failed_to_download", "HTTP 404", "image decoding error"),
                                     ~ok, pl.String),
            "width": _masked(np.minimum(width, 256), ok, pl.Int32), "height": _masked(np.minimum(height, 256), ok, pl.Int32),
            "original_width": _masked(width, ok, pl.Int32), "original_height": _masked(height, ok, pl.Int32),
            "jpg": _masked(images.gather(rng.integers(0, len(images), m)), ok, pl.Binary),
        })
        crawl.write_parquet(root / "crawl" / f"{shard}.parquet", row_group_size=100)
        (root / "crawl" / f"{shard}_stats.json").write_text("{}")
        counts = {"crawl": _write_counts(
            _reasons([invalid, status == "failed_to_download", status == "failed_to_resize"],
                     ["invalid_url", "download_failed", "decode_failed"]), root / "crawl" / f"{shard}.counts.json")}

        alive = np.flatnonzero(ok)
        n = len(alive)
        draw = rng.random(n)
        reason = _reasons([draw < 0.05, draw < 0.08, draw < 0.10, draw < 0.11],
                          ["dup_url", "dup_image", "near_dup_image", "frequent_caption"])
        targets = _keys("", rng.integers(0, n_shards * per_shard, n), 5 + row_digits)
        counts["dedupe"] = _write(pl.DataFrame({
            "key": keys.gather(alive), "reason": reason, "dup_of": _masked(targets, draw < 0.10, pl.String),
            "phash": rng.integers(0, 2**63, n, dtype=np.uint64)}), root / "dedupe" / f"{shard}.parquet")

        alive = alive[reason.is_null().to_numpy()]
        n = len(alive)
        short = np.minimum(width[alive], height[alive])
        aspect = width[alive] / height[alive]
        lang = rng.choice(["zh", "en", "ja", "yue", "ko"], n, p=[0.9, 0.05, 0.03, 0.01, 0.01])
        n_words = lengths[alive] + rng.integers(0, 3, n)
        nsfw = rng.beta(0.5, 12, n)
        size_ok = (short >= cfg.min_side) & (aspect >= cfg.min_aspect_ratio) & (aspect <= cfg.max_aspect_ratio)
        chinese = np.isin(lang, ["zh", "yue"])
        reason = _reasons([short < cfg.min_side, ~size_ok, ~chinese, n_words < cfg.min_words,
                           n_words > cfg.max_words, nsfw >= cfg.nsfw_image_threshold],
                          ["image_too_small", "bad_aspect_ratio", "not_chinese", "too_few_words", "too_many_words",
                           "nsfw_image"])
        counts["filter"] = _write(pl.DataFrame({
            "key": keys.gather(alive), "reason": reason,
            "lang": _masked(lang, size_ok, pl.String),
            "lang_score": _masked(rng.random(n), size_ok & (lang != "zh")),
            "han_ratio": _masked(rng.beta(8, 1, n), size_ok),
            "caption": captions.gather(alive),
            "n_words": _masked(n_words, size_ok & chinese, pl.Int32),
            "n_masked": _masked(rng.poisson(0.05, n), size_ok & chinese, pl.Int32),
            "nsfw_score": _masked(nsfw, size_ok & chinese),
        }), root / "filter" / f"{shard}.parquet")

        alive = alive[reason.is_null().to_numpy()]
        score = rng.normal(0.3, 0.08, len(alive))
        counts["score"] = _write(pl.DataFrame({
            "key": keys.gather(alive), "reason": _reasons([score < recipe.score.min_score], ["low_filip_score"]),
            "filip_score": pl.Series(score, dtype=pl.Float32)}), root / "score" / f"{shard}.parquet")
        for stage, c in counts.items():
            t = totals[stage]
            t["rows_in"] += c["rows_in"]
            t["kept"] += c["kept"]
            for r, k in c["rejected"].items():
                t["rejected"][r] = t["rejected"].get(r, 0) + k
    stages = {s: {"status": "done", **t} for s, t in totals.items()}
    (root / "manifest.json").write_text(json.dumps({
        "recipe": recipe.to_dict(), "stages": stages, "keys": {"shard_digits": 5, "row_digits": row_digits}}))


def measure(*command) -> dict:
    """Wall time, CPU time and peak RSS of a command run as its own process (start-up included;
    the peak is the largest of the process and its children)."""
    out = subprocess.run([sys.executable, "-c", CHILD, *map(str, command)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def bare(root: Path, quantiles: bool = True) -> dict:
    return measure(sys.executable, "-c", BARE, root, "quantiles" if quantiles else "moments")


def stats(*args) -> dict:
    return measure(sys.executable, "-m", "wukong_data", "stats", *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-shard", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="write the synthetic build here (reused when it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "build"
        start = time.perf_counter()
        if not (root / "manifest.json").exists():
            synthesize(root, args.rows, args.per_shard)
        made = time.perf_counter() - start
        html_path = Path(tmp) / "report.html"
        # Bare before and after: the machine's load drifts; the ratios use the faster of the two.
        runs = {"bare_polars": bare(root), "stats_json": stats(root, "--json"),
                "stats_html": stats(root, "--html", html_path, "--json")}
        runs["bare_polars_again"] = bare(root)
        runs["bare_polars_without_quantiles"] = bare(root, quantiles=False)
        baseline = min(runs["bare_polars"]["seconds"], runs["bare_polars_again"]["seconds"])
        baseline_cpu = min(runs["bare_polars"]["cpu_seconds"], runs["bare_polars_again"]["cpu_seconds"])
        print(json.dumps({
            "rows": args.rows, "shards": -(-args.rows // args.per_shard), "synthesis_seconds": round(made, 1), **runs,
            "json_time_ratio": round(runs["stats_json"]["seconds"] / baseline, 2),
            "html_time_ratio": round(runs["stats_html"]["seconds"] / baseline, 2),
            "json_cpu_ratio": round(runs["stats_json"]["cpu_seconds"] / baseline_cpu, 2),
            "html_cpu_ratio": round(runs["stats_html"]["cpu_seconds"] / baseline_cpu, 2),
            "json_time_ratio_to_bare_without_quantiles": round(
                runs["stats_json"]["seconds"] / runs["bare_polars_without_quantiles"]["seconds"], 2),
            "html_bytes": html_path.stat().st_size,
            "load_average": os.getloadavg(),
        }, indent=2))


if __name__ == "__main__":
    main()
