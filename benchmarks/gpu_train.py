"""GPU training throughput of FILIP vit-b-32 at a realistic per-GPU batch, synthetic inputs
(measures the model and the loss, not the data pipeline). For a GPU machine; prints JSON.

    python benchmarks/gpu_train.py --batch-size 256 --steps 30
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from wukong_data.filip.loss import filip_loss
from wukong_data.filip.model import FILIP
from wukong_data.filip.presets import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vit-b-32")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=32)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a GPU"
    device = torch.device("cuda")
    cfg = dataclasses.replace(PRESETS[args.model], vocab_size=21128)
    model = FILIP(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch_size, 3, cfg.image_size, cfg.image_size, device=device)
    ids = torch.randint(5, cfg.vocab_size, (args.batch_size, cfg.context_length), device=device)
    ids[:, 20:] = 0
    timings = []
    for step in range(args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            img, txt, mask = model(images, ids)
            loss = filip_loss(img, txt, mask, model.logit_scale, chunk=args.chunk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    steady = sorted(timings[5:])[len(timings[5:]) // 2]
    print(json.dumps({"device": torch.cuda.get_device_name(), "model": args.model, "batch_size": args.batch_size,
                      "step_s_median": round(steady, 4), "samples_per_s": round(args.batch_size / steady, 1),
                      "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}, indent=2))


if __name__ == "__main__":
    main()
