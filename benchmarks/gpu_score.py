"""GPU score check and throughput, for a GPU machine; prints JSON.

- Every image format a recipe allows (jpg, png, webp) scores on the GPU with no decode failures,
  and GPU scores equal CPU scores of the same pairs (decoders agree).
- Decode: `decode_batch` (one batched nvJPEG call) vs one decode_jpeg call per image on the GPU
  vs Pillow on the CPU, in images/s, same run.
- Pairs/s of the whole scorer beside its parts: the decode, the per-image resize and crop
  (the model's `image_inputs`), the same with the normalisation once per batch instead of per image, and the bare
  forward on prepared tensors.

    python benchmarks/gpu_score.py --model vit-b-32 --pairs 2048 --batch-size 256
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, TEMPLATES, draw
from wukong_data.filip.checkpoint import save_weights
from wukong_data.filip.loss import pair_scores
from wukong_data.filip.model import FILIP
from wukong_data.filip.presets import PRESETS
from wukong_data.filip.tokenizer import ChineseTokenizer
from wukong_data.filip.decode import decode_batch
from wukong_data.stages.score.scorer import Scorer


def timed(fn) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt], **({"quality": 90} if fmt != "png" else {}))
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default="vit-b-32", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script where there is no GPU")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("needs a GPU")
    rng = random.Random(0)
    pictures, captions = [], []
    for _ in range(args.pairs):
        c, s, p, b = rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)), rng.choice(list(BACKGROUNDS))
        pictures.append(draw(c, s, p, b, size=(256, 256), rng=rng))
        captions.append(rng.choice(TEMPLATES).format(bg=b, pos=p, colour=c, shape=s))
    jpgs = [encode(p, "jpg") for p in pictures]
    cuda = torch.device(args.device)  # named for the GPU it is meant for; cpu in a dry run
    out = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "model": args.model,
           "pairs": args.pairs, "batch": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        vocab = ChineseTokenizer.train(captions, tmp, vocab_size=2000)
        model = FILIP(dataclasses.replace(PRESETS[args.model], vocab_size=ChineseTokenizer(vocab).vocab_size))
        save_weights(model, vocab, Path(tmp) / "run")
        gpu = Scorer(Path(tmp) / "run", args.device, args.batch_size)
        cpu = Scorer(Path(tmp) / "run", "cpu", 64)
        n_check = 128
        for fmt in ("jpg", "png", "webp"):
            images = [encode(p, fmt) for p in pictures[:n_check]]
            on_gpu, on_cpu = gpu.score(images, captions[:n_check]), cpu.score(images, captions[:n_check])
            out[f"{fmt}_decode_failed_on_gpu"] = int(np.isnan(on_gpu).sum())
            out[f"{fmt}_max_gpu_cpu_score_diff"] = float(np.nanmax(np.abs(on_gpu - on_cpu)))

        batches = [jpgs[i:i + args.batch_size] for i in range(0, len(jpgs), args.batch_size)]
        decode_batch(batches[0], cuda)  # warm-up
        from torchvision.io import ImageReadMode, decode_jpeg

        per_image = lambda: [decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8), mode=ImageReadMode.RGB,
                                         device=cuda) for b in jpgs]
        pillow = lambda: [torch.from_numpy(np.array(Image.open(io.BytesIO(b)).convert("RGB"))).to(cuda) for b in jpgs]
        out["decode_images_per_s"] = {
            "decode_batch_gpu": round(len(jpgs) / timed(lambda: [decode_batch(b, cuda) for b in batches]), 1),
            "decode_jpeg_per_image_gpu": round(len(jpgs) / timed(per_image), 1),
            "pillow_cpu_then_copy": round(len(jpgs) / timed(pillow), 1),
        }
        gpu.score(jpgs[:args.batch_size], captions[:args.batch_size])  # warm-up
        out["scorer_pairs_per_s"] = round(args.pairs / timed(lambda: gpu.score(jpgs, captions)), 1)
        decoded = [t for b in batches for t in decode_batch(b, cuda)]
        out["prepare_images_per_s"] = round(len(jpgs) / timed(lambda: gpu.model.image_inputs(decoded)), 1)
        size = gpu.model.cfg.image_size
        mean = torch.tensor(gpu.model.cfg.mean, device=cuda)[:, None, None]
        std = torch.tensor(gpu.model.cfg.std, device=cuda)[:, None, None]

        def normalise_per_batch():  # the lever measured: resize and crop per image, normalise once per batch
            return [(torch.stack([TF.center_crop(TF.resize(t, size, antialias=True), size)
                                  for t in decoded[i:i + args.batch_size]]).float() / 255 - mean) / std
                    for i in range(0, len(decoded), args.batch_size)]
        out["prepare_normalised_per_batch_images_per_s"] = round(len(jpgs) / timed(normalise_per_batch), 1)
        out["prepare_normalised_per_batch_max_abs_diff"] = float(
            (torch.cat(normalise_per_batch()) - gpu.model.image_inputs(decoded)).abs().max())
        tensors = gpu.model.image_inputs(decoded)
        ids = gpu.tokenizer(captions).to(cuda)

        def bare():
            with torch.no_grad(), torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda"):
                for i in range(0, len(jpgs), args.batch_size):
                    img, txt, mask = gpu.model(tensors[i:i + args.batch_size], ids[i:i + args.batch_size])
                    pair_scores(img.float(), txt.float(), mask)
        out["bare_forward_pairs_per_s"] = round(args.pairs / timed(bare), 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
