"""Score throughput on CPU: pairs/s of the score stage's Scorer (decode + tokenise + model) for
`tiny` and `vit-b-32`, beside the same model's bare forward pass on pre-decoded tensors in the
same run, so decode and I/O overhead is visible. One thread, as each engine worker runs. JSON.

    python benchmarks/score.py --pairs 256
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, TEMPLATES, draw, jpeg
from wukong_data.filip.checkpoint import save_weights
from wukong_data.filip.loss import pair_scores
from wukong_data.filip.model import FILIP
from wukong_data.filip.presets import PRESETS
from wukong_data.filip.tokenizer import ChineseTokenizer
from wukong_data.filip.decode import decode_batch
from wukong_data.stages.score.scorer import Scorer


def pairs(n: int):
    rng = random.Random(0)
    images, captions = [], []
    for _ in range(n):
        c, s, p, b = rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)), rng.choice(list(BACKGROUNDS))
        images.append(jpeg(draw(c, s, p, b, size=(256, 256), rng=rng)))
        captions.append(rng.choice(TEMPLATES).format(bg=b, pos=p, colour=c, shape=s))
    return images, captions


def measure(preset: str, images, captions, folder: Path, batch: int) -> dict:
    vocab = ChineseTokenizer.train(captions, folder, vocab_size=2000)
    torch.manual_seed(0)
    model = FILIP(dataclasses.replace(PRESETS[preset], vocab_size=ChineseTokenizer(vocab).vocab_size))
    run = folder / preset
    save_weights(model, vocab, run)
    scorer = Scorer(run, "cpu", batch)  # sets one thread
    scorer.score(images[:batch], captions[:batch])  # warm-up
    start = time.perf_counter()
    scorer.score(images, captions)
    full = time.perf_counter() - start

    tensors = scorer.model.image_inputs(decode_batch(images, scorer.device))
    ids = scorer.tokenizer(captions)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            img, txt, mask = scorer.model(tensors[i:i + batch], ids[i:i + batch])
            pair_scores(img, txt, mask)
    bare = time.perf_counter() - start
    return {"model": preset, "pairs": len(images), "batch": batch, "scorer_pairs_per_s": round(len(images) / full, 1),
            "bare_forward_pairs_per_s": round(len(images) / bare, 1), "overhead_ratio": round(full / bare, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b-32"])
    args = parser.parse_args()
    images, captions = pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(m, images, captions, Path(tmp), args.batch_size) for m in args.models]
    print(json.dumps({"device": "cpu", "threads": 1, "image": "256x256 JPEG", "results": rows}, indent=2))


if __name__ == "__main__":
    main()
