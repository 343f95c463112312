"""GPU score throughput: pairs/s of vit-b-32 with CPU (Pillow) decode and with GPU (nvJPEG)
decode, beside the bare forward on pre-decoded tensors. For a GPU machine; prints JSON.

    python benchmarks/gpu_score.py --pairs 2048 --batch-size 256
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, TEMPLATES, draw, jpeg
from wukong_data.filip.checkpoint import save_weights
from wukong_data.filip.loss import pair_scores
from wukong_data.filip.model import FILIP
from wukong_data.filip.presets import PRESETS
from wukong_data.filip.tokenizer import ChineseTokenizer
from wukong_data.stages.score.scorer import Scorer


class CpuDecodeScorer(Scorer):
    """The same scorer, decoding with Pillow on the CPU and copying to the GPU."""

    def _decode(self, data: bytes):
        with Image.open(io.BytesIO(data)) as image:
            array = np.array(image.convert("RGB"))
        return torch.from_numpy(array).permute(2, 0, 1).to(self.device)


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a GPU"
    rng = random.Random(0)
    images, captions = [], []
    for _ in range(args.pairs):
        c, s, p, b = rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)), rng.choice(list(BACKGROUNDS))
        images.append(jpeg(draw(c, s, p, b, size=(256, 256), rng=rng)))
        captions.append(rng.choice(TEMPLATES).format(bg=b, pos=p, colour=c, shape=s))
    with tempfile.TemporaryDirectory() as tmp:
        vocab = ChineseTokenizer.train(captions, tmp, vocab_size=2000)
        model = FILIP(dataclasses.replace(PRESETS["vit-b-32"], vocab_size=ChineseTokenizer(vocab).vocab_size))
        save_weights(model, vocab, Path(tmp) / "run")
        gpu = Scorer(Path(tmp) / "run", "cuda", args.batch_size)
        cpu = CpuDecodeScorer(Path(tmp) / "run", "cuda", args.batch_size)
        gpu.score(images[:args.batch_size], captions[:args.batch_size])  # warm-up
        gpu_s = timed(lambda: gpu.score(images, captions))
        cpu_s = timed(lambda: cpu.score(images, captions))
        tensors = torch.stack([gpu._prepare(gpu._decode(b)) for b in images])
        ids = gpu.tokenizer(captions).cuda()

        def bare():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                for i in range(0, len(images), args.batch_size):
                    img, txt, mask = gpu.model(tensors[i:i + args.batch_size], ids[i:i + args.batch_size])
                    pair_scores(img.float(), txt.float(), mask)
        bare_s = timed(bare)
    print(json.dumps({"device": torch.cuda.get_device_name(), "model": "vit-b-32", "pairs": args.pairs,
                      "batch": args.batch_size, "gpu_decode_pairs_per_s": round(args.pairs / gpu_s, 1),
                      "cpu_decode_pairs_per_s": round(args.pairs / cpu_s, 1),
                      "bare_forward_pairs_per_s": round(args.pairs / bare_s, 1)}, indent=2))


if __name__ == "__main__":
    main()
