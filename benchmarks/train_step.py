"""Training throughput: `wukong train-reference` (FILIP loss) beside open_clip's own trainer (CLIP
loss) with the same tiny towers on the same shards, in one run. FILIP pays for token-wise
similarity; the target is at most 1.3x CLIP's step time. Prints JSON.

    wukong demo --out wukong-demo && python benchmarks/train_step.py --data wukong-demo
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from wukong_data.filip.presets import PRESETS


def clip_config(folder: Path) -> Path:
    t = PRESETS["tiny"]
    cfg = {"model_cfg": {"embed_dim": t.token_dim,
                         "vision_cfg": {"image_size": t.image_size, "layers": t.vision_layers, "width": t.vision_width,
                                        "head_width": t.vision_width // t.vision_heads, "patch_size": t.patch_size},
                         "text_cfg": {"context_length": t.context_length, "vocab_size": 49408, "width": t.text_width,
                                      "heads": t.text_heads, "layers": t.text_layers}},
           "preprocess_cfg": {"mean": list(t.mean), "std": list(t.std)}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    return folder


def run_open_clip(data: Path, work: Path, batch: int, steps: int, workers: int) -> float:
    sizes = json.loads((data / "final" / "sizes.json").read_text())
    total = sum(sizes.values())
    # An epoch of open_clip's webdataset loader is --train-num-samples: `steps` batches where the
    # shards hold them, else whole epochs.
    samples, epochs = (steps * batch, 1) if steps * batch <= total else (total, -(-steps // (total // batch)))
    shards = str(data / "final" / f"{{00000..{len(sizes) - 1:05d}}}.tar")
    subprocess.run([sys.executable, "-m", "open_clip_train.main", "--train-data", shards, "--dataset-type",
                    "webdataset", "--train-num-samples", str(samples), "--model", f"local-dir:{clip_config(work / 'cfg')}",
                    "--batch-size", str(batch), "--epochs", str(epochs), "--workers", str(workers), "--device", "cpu",
                    "--lr", "1e-3", "--warmup", "10", "--logs", str(work), "--name", "clip", "--report-to", "",
                    "--log-every-n-steps", "1", "--save-frequency", "0"], check=True, capture_output=True)
    log = (work / "clip" / "out.log").read_text()
    times = [float(t) for t in re.findall(r"Batch \(t\): ([0-9.]+)", log)]
    return batch / statistics.median(times[3:])  # steady state: skip the first steps


def run_filip(data: Path, work: Path, batch: int, steps: int, workers: int) -> float:
    subprocess.run([sys.executable, "-m", "wukong_data", "train-reference", "--data", str(data), "--out",
                    str(work / "filip"), "--model", "tiny", "--steps", str(steps), "--batch-size", str(batch),
                    "--workers", str(workers), "--checkpoint-every", str(10 * steps), "--log-every", "1", "--quiet"],
                   check=True, capture_output=True)
    rates = [json.loads(line)["samples_per_s"] for line in (work / "filip" / "metrics.jsonl").read_text().splitlines()
             if "samples_per_s" in line]
    return statistics.median(rates[3:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("wukong-demo"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = run_open_clip(args.data, Path(tmp), args.batch_size, args.steps, args.workers)
        filip = run_filip(args.data, Path(tmp), args.batch_size, args.steps, args.workers)
    print(json.dumps({"device": "cpu", "model": "tiny towers", "batch_size": args.batch_size, "steps": args.steps,
                      "open_clip_train_clip_samples_per_s": round(clip, 1),
                      "wukong_filip_samples_per_s": round(filip, 1),
                      "filip_step_time_over_clip": round(clip / filip, 3), "target": 1.3}, indent=2))


if __name__ == "__main__":
    main()
