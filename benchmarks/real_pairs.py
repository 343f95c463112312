"""The score stage's model on real photographs, through the CLI as a user runs it. JSON.

Flickr8k-CN (../shared/flickr8k-cn: real photos, captions written by people) is served on
127.0.0.1; `wukong build` crawls, dedupes, filters and exports the train photos and the val photos
apart (the NSFW image rule is off: benchmarks/nsfw_benign.py measures it on the same photos);
`wukong train-reference` trains FILIP and CLIP (`--loss clip`: the same towers, pooled) with the
same data, steps and seed; each is then measured on val: retrieval R@1/5/10 both ways, and as a
scorer, the ROC-AUC of each photo with its own caption against the same photo with another val
photo's caption (the mismatch the score stage exists to cut). `wukong align` draws 8 val photos
into --out (never commit them).

    python benchmarks/real_pairs.py --train-photos 6000 --val-photos 1000 --steps 300 --batch-size 128
    python benchmarks/real_pairs.py --model lit-nudenet --train-captions 5 --steps 940

`--builds DIR` keeps the two builds there, and a later run with the same DIR trains on them without
building again (how benchmarks/gpu_check.py trains on a GPU machine that has no crawler installed).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from wukong_data.stages.score.scorer import Scorer

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "flickr8k-cn"
RECIPE = """name = "real-pairs"
stages = ["crawl", "dedupe", "filter", "export"]
[crawl]
allow_addresses = ["127.0.0.1"]
samples_per_shard = 1000
[filter]
nsfw_image = false
[export]
samples_per_shard = 1000
"""
BUILT = "real_pairs_builds.json"


def wukong(*args) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wukong_data", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"wukong {' '.join(map(str, args[:2]))} failed:\n{proc.stderr[-2000:]}")
    return round(time.perf_counter() - start, 1)


def photos(split: str, n: int, seed: int, captions: int = 1) -> list[tuple[str, str]]:
    """(image path, human caption) for n photos of the split: `captions` of each photo's five,
    drawn at random, one row each."""
    import polars as pl

    table = pl.read_csv(SHARED / "captions.tsv", separator="\t", quote_char=None)
    table = table.filter((pl.col("split") == split) & (pl.col("source") == "zh_human"))
    rng = random.Random(seed)
    chosen = [(image, rng.sample(group["caption"].to_list(), min(captions, group.height)))
              for (image,), group in sorted(table.group_by("image"), key=lambda g: g[0][0])]
    return [(image, caption) for image, texts in rng.sample(chosen, min(n, len(chosen))) for caption in texts]


def served(photo: Path, quality: int | None) -> bytes:
    if quality is None:
        return photo.read_bytes()
    from PIL import Image

    out = io.BytesIO()
    Image.open(photo).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a real pair outscores a mismatched one), ties counted half: every pair compared."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def final_rows(build: Path, *columns: str) -> dict[str, list]:
    table = pq.read_table(sorted((build / "final").glob("*.parquet")), columns=list(columns))
    return {name: table.column(name).to_pylist() for name in columns}


def as_scorer(run: Path, build: Path, seed: int, device: str) -> dict:
    rows = final_rows(build, "caption", "jpg")
    images, captions = rows["jpg"], rows["caption"]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(captions))  # each photo takes the caption of the next in a random cycle
    others = [None] * len(captions)
    for a, b in zip(order, np.roll(order, -1)):
        others[a] = captions[b]
    scorer = Scorer(run, device, batch_size=64 if device == "cpu" else 256)
    scorer.score(images[:64], captions[:64])  # warm-up: model load, kernels
    start = time.perf_counter()
    real = scorer.score(images, captions)
    seconds = time.perf_counter() - start
    swapped = scorer.score(images, others)
    return {"pairs": len(images), "roc_auc_real_vs_swapped_caption": round(auc(real, swapped), 4),
            "score_pairs_per_s": round(len(images) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-photos", type=int, default=6000)
    parser.add_argument("--val-photos", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, help="[default: the model's own]")
    parser.add_argument("--lr", type=float, help="[default: the model's own]")
    parser.add_argument("--model", default="tiny", help="tiny | vit-b-32 | vit-l-14 | lit-nudenet")
    parser.add_argument("--losses", nargs="+", help="[default: filip clip; lit-nudenet: clip, its only one]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-captions", type=int, default=1,
                        help="human captions per train photo, one row each (above 1 the train build has no dedupe "
                             "stage, which would keep one row per photo)")
    parser.add_argument("--out", type=Path, default=Path("real-pairs-alignment"), help="align pictures go here")
    parser.add_argument("--no-align", action="store_true", help="draw no align pictures")
    parser.add_argument("--builds", type=Path, help="keep the builds here; reuse them when they are already there")
    parser.add_argument("--runs", type=Path, help="keep the training runs here")
    parser.add_argument("--loader-workers", type=int, default=1, help="train-reference --workers")
    parser.add_argument("--photo-quality", type=int,
                        help="serve the photos re-encoded at this JPEG quality (smaller builds, e.g. to carry them)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="the scorer's")
    args = parser.parse_args()
    args.losses = args.losses or (["clip"] if args.model == "lit-nudenet" else ["filip", "clip"])
    result = {"model": args.model, "steps": args.steps, "seed": args.seed, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        builds = args.builds or tmp
        if not (builds / BUILT).is_file():
            build(args, builds)
        result.update(json.loads((builds / BUILT).read_text()), runs={})
        for loss in args.losses:
            run = (args.runs or tmp) / f"run-{loss}"
            given = [*(["--batch-size", args.batch_size] if args.batch_size else []),
                     *(["--lr", args.lr] if args.lr else [])]
            seconds = wukong("train-reference", "--data", builds / "train", "--eval-data", builds / "val", "--out",
                             run, "--model", args.model, "--loss", loss, "--steps", args.steps, *given, "--warmup",
                             max(1, args.steps // 10), "--seed", args.seed, "--workers", args.loader_workers, "--quiet")
            lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            speeds = [line["samples_per_s"] for line in lines if "samples_per_s" in line]
            settings = json.loads((run / "train_config.json").read_text())
            result["runs"][loss] = {"batch_size": settings["batch_size"], "lr": settings["lr"],
                                    "train_seconds": seconds, "last_loss": [l for l in lines if "loss" in l][-1]["loss"],
                                    "train_samples_per_s": statistics.median(speeds) if speeds else None,
                                    "val_retrieval": lines[-1]["eval"],
                                    **as_scorer(run, builds / "val", args.seed, args.device)}
            if loss == "filip" and not args.no_align:
                keys = final_rows(builds / "val", "key")["key"][:8]
                wukong("align", builds / "val", "--checkpoint", run, "--keys", ",".join(keys), "--out", args.out)
                result["align_pictures"] = str(args.out)
    print(json.dumps(result, indent=2, ensure_ascii=False))


def build(args, builds: Path) -> None:
    """Serve the chosen photos on 127.0.0.1 and `wukong build` the train and the val split; what
    was built is written to builds/BUILT last, so builds without it are built again."""
    from wukong_data.demo.server import serve

    if not (SHARED / "captions.tsv").is_file():
        sys.exit(f"no Flickr8k-CN at {SHARED}: this benchmark reads real photos from there")
    chosen = {"train": photos("train", args.train_photos, args.seed, args.train_captions),
              "val": photos("val", args.val_photos, args.seed)}
    routes = {f"/{image}": (served(SHARED / image, args.photo_quality), {})
              for split in chosen.values() for image, _ in split}
    out = {"data": f"Flickr8k-CN zh_human captions: {args.train_captions} per train photo, one per val photo"
                   + (f", served at JPEG quality {args.photo_quality}" if args.photo_quality else ""), "builds": {}}
    with serve(routes) as base_url:
        for split, rows in chosen.items():
            builds.mkdir(parents=True, exist_ok=True)
            recipe = builds / f"{split}.toml"
            text = RECIPE if split == "val" or args.train_captions == 1 else RECIPE.replace('"dedupe", ', "")
            recipe.write_text(text, encoding="utf-8")
            with open(builds / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["url", "caption"])
                writer.writerows([f"{base_url}/{image}", caption] for image, caption in rows)
            seconds = wukong("build", recipe, "--input", builds / f"{split}.csv", "--out", builds / split, "--quiet")
            kept = sum(json.loads((builds / split / "final" / "sizes.json").read_text()).values())
            out["builds"][split] = {"rows": len(rows), "kept": kept, "seconds": seconds}
    (builds / BUILT).write_text(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
