"""The NSFW image rule's throughput on a GPU machine; prints JSON.

The rule runs nudenet's 320n detector on onnxruntime, which uses CUDA where `onnxruntime-gpu` is
installed. Measured, on the same images in the same run:
- the rule's own scorer (NsfwScorer) with the providers this machine's onnxruntime has;
- its two parts apart: nudenet's preprocessing (decode, letterbox, 320 px blob: CPU, one core) and
  the detector alone, on onnxruntime's CPU provider with every core;
- where onnxruntime has no CUDA provider: the same 320n graph converted to PyTorch (onnx2torch) on
  CUDA, batch 64 and 256, with its largest difference from onnxruntime's outputs. That is the
  detector's GPU throughput; the rule's is the lower of it and the preprocessing across cores.

    python benchmarks/gpu_nsfw.py --images BUILD/final --count 2048
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def read_images(folder: Path | None, count: int) -> tuple[list[bytes], str]:
    """JPEG bytes: the `jpg` column of a build's Parquet shards, repeated up to `count`; drawn
    pictures where no folder is given."""
    if folder is not None:
        import pyarrow.parquet as pq

        images = pq.read_table(sorted(folder.glob("*.parquet")), columns=["jpg"]).column("jpg").to_pylist()
        source = f"{len(images)} photos from {folder}"
    else:
        import io
        import random

        from wukong_data.demo.synth import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, draw

        rng = random.Random(0)
        images = []
        for _ in range(min(count, 256)):
            buf = io.BytesIO()
            draw(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)),
                 rng.choice(list(BACKGROUNDS)), size=(256, 256), rng=rng).save(buf, "JPEG", quality=90)
            images.append(buf.getvalue())
        source = "drawn pictures"
    return (images * (count // len(images) + 1))[:count], source


REFERENCE = 64  # images whose detector outputs are compared between onnxruntime and CUDA


def per_s(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def progress(out: dict) -> None:
    """What is measured so far, on stderr: a caller that stops this script still reads it."""
    print(json.dumps(out), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=Path, help="a folder of Parquet shards with a jpg column")
    parser.add_argument("--count", type=int, default=2048)
    args = parser.parse_args()
    import nudenet
    import onnxruntime as ort
    from nudenet import nudenet as detector

    from wukong_data.stages.filter.image import NsfwScorer

    images, source = read_images(args.images, args.count)
    out = {"images": len(images), "source": source, "cpu_cores": os.cpu_count(),
           "onnxruntime": ort.__version__, "onnxruntime_providers": ort.get_available_providers()}
    progress(out)

    # The CUDA measurement first: it is what a GPU machine is lent for, and the CPU parts after it
    # are the slow ones (a caller's time limit then cuts those, whose progress lines survive).
    tic = time.perf_counter()
    blobs = np.concatenate([detector._read_image(data, 320)[0] for data in images])
    out["preprocess_images_per_s_one_core"] = per_s(len(images), time.perf_counter() - tic)
    progress(out)

    model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
    cpu = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = cpu.get_inputs()[0].name
    reference = cpu.run(None, {name: blobs[:REFERENCE]})[0]

    import torch

    if torch.cuda.is_available() and "CUDAExecutionProvider" not in ort.get_available_providers():
        from onnx2torch import convert

        net = convert(model).eval().cuda()
        on_gpu = torch.from_numpy(blobs).cuda()
        with torch.no_grad():
            converted = net(on_gpu[:REFERENCE]).cpu().numpy()
            out["detector_torch_cuda_max_abs_diff_from_onnxruntime"] = float(np.abs(converted - reference).max())
            for batch in (64, 256):
                net(on_gpu[:batch])
                torch.cuda.synchronize()
                tic = time.perf_counter()
                for i in range(0, len(blobs), batch):
                    net(on_gpu[i:i + batch])
                torch.cuda.synchronize()
                out[f"detector_images_per_s_torch_cuda_batch_{batch}"] = per_s(len(blobs), time.perf_counter() - tic)
        progress(out)

    cpu.run(None, {name: blobs[:32]})
    tic = time.perf_counter()
    for i in range(0, len(blobs), 32):
        cpu.run(None, {name: blobs[i:i + 32]})
    out["detector_images_per_s_onnxruntime_cpu_all_cores"] = per_s(len(blobs), time.perf_counter() - tic)
    progress(out)

    scorer = NsfwScorer()
    out["rule_providers_used"] = scorer.session.get_providers()
    scorer.scores(images[:64])  # warm-up
    tic = time.perf_counter()
    scorer.scores(images, batch_size=32)
    out["rule_images_per_s"] = per_s(len(images), time.perf_counter() - tic)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
