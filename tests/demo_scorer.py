"""Builds the reference model `wukong demo` scores its drawings with (wukong_data/demo/scorer/): the
tiny FILIP preset, trained by our own trainer on drawings the demo's generator makes with other
seeds than the demo's, its weights stored in float16.

    python tests/demo_scorer.py --out wukong_data/demo/scorer

A model trained on drawings knows drawings: `wukong build demo --input YOUR_URLS` still trains its
own on the rows it keeps (the demo recipe's bootstrap); only `wukong demo` uses this one.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import webdataset as wds
from safetensors.torch import load_file, save_file

from wukong_data.demo.synth import good_samples
from wukong_data.filip.files import CONFIG, VOCAB, WEIGHTS
from wukong_data.filip.config import TrainConfig
from wukong_data.filip.train import train
from wukong_data.ui import UI

SEEDS = range(1, 11)  # the demo draws with seed 0
PER_SEED, PER_SHARD = 320, 640
STEPS, BATCH, LR = 1500, 64, 1e-3


def write_shards(folder: Path) -> int:
    """The drawings as WebDataset shards and sizes.json, as an export writes them."""
    folder.mkdir(parents=True)
    samples = [s for seed in SEEDS for s in good_samples(PER_SEED, seed)]
    sizes = {}
    for start in range(0, len(samples), PER_SHARD):
        name = f"{start // PER_SHARD:05d}.tar"
        with wds.TarWriter(str(folder / name)) as tar:
            for i, s in enumerate(samples[start:start + PER_SHARD], start):
                tar.write({"__key__": f"{i:09d}", "jpg": s.body, "txt": s.caption})
        sizes[name] = len(samples[start:start + PER_SHARD])
    (folder / "sizes.json").write_text(json.dumps(sizes))
    return len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, run = Path(tmp) / "final", Path(tmp) / "run"
        rows = write_shards(data)
        train(TrainConfig(data=str(data), out=str(run), model="tiny", steps=STEPS, batch_size=BATCH, lr=LR,
                          warmup=STEPS // 10, workers=1, seed=0, checkpoint_every=STEPS), UI(quiet=True))
        args.out.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG, VOCAB):
            shutil.copyfile(run / name, args.out / name)
        weights = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(run / WEIGHTS)).items()}
        save_file(weights, str(args.out / WEIGHTS), metadata={
            "trained_on": f"{rows} drawings of wukong_data.demo.synth (seeds {SEEDS.start}-{SEEDS.stop - 1})",
            "steps": str(STEPS), "batch_size": str(BATCH), "lr": str(LR)})
    print(f"{args.out}: trained on {rows} drawings, {STEPS} steps")


if __name__ == "__main__":
    main()
