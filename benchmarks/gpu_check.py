"""Every GPU measurement of the project, as one script for a lent GPU machine; writes one JSON file.

Run on the machine from the repository root, each part in its own process under its own time
limit, so one failure or overrun leaves the others' results (all within --budget seconds):

- score_tiny, score_vit_b_32: benchmarks/gpu_score.py (nvJPEG decode against CPU decode, the
  scorer's pairs/s beside its parts);
- nsfw: benchmarks/gpu_nsfw.py on the val photos;
- real_pairs_{vit_b_32,tiny}_{filip,clip}: benchmarks/real_pairs.py on builds made beforehand on a
  machine with the crawler (`real_pairs.py --builds DIR`), packed with `--pack DIR`: each model and
  loss on the same data, val retrieval and score AUC;
- train_vit_b_32: benchmarks/gpu_train.py (the model and loss alone, synthetic inputs).

    # here, once: the builds and their archive (train photos re-encoded small enough to travel)
    python benchmarks/real_pairs.py --builds .gpu/builds --train-photos 3200 --train-captions 5 \\
        --photo-quality 60 --steps 1 --losses clip --no-align
    python benchmarks/gpu_check.py --pack .gpu/builds --archive .gpu/builds.tar.xz
    # there
    python benchmarks/gpu_check.py --archive .gpu/builds.tar.xz --out $OUT/gpu_check.json

On one H200 all parts need about 12 minutes, more than one call of 10: split them with --only.
Seen there (docs/benchmarks.md): the scorer parts take ~35 s each, `vit-b-32` training ~90-110 s
per loss at 200 steps, `tiny` ~70 s; nsfw's CPU measurements alone took ~55 s of 4,096 images, so
gpu_nsfw.py now measures the detector on CUDA first (it never got its turn in two calls).

The H200 image lacked, and the call carried as wheels (built for its Python 3.12): open_clip_torch,
ftfy, wcwidth, webdataset, braceexpand, universal_pathlib, pathlib_abc, nudenet and onnx2torch
(13 MB); with the archive (32.6 MiB for 16,000 train and 1,000 val rows) they fit a call's 64 MiB.

A GPU machine's image may lack polars (its 54 MB wheel cannot travel with the call). Then the
package folders whose __init__ wires the pipeline's stages are registered bare, so the modules
measured here (the scorer, the NSFW scorer, the demo's drawings) import without those stages.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILT = "real_pairs_builds.json"  # real_pairs.py's record of what it built


def parts(builds: Path, steps: int, workers: int, dry_run: bool) -> list[tuple[str, list[str], int]]:
    """(name, script and arguments, time limit in seconds), in the order they run. A dry run
    (--dry-run, on a machine without a GPU) runs each on the CPU at a token size."""
    batch, pairs, images = ("16", "128", "128") if dry_run else ("256", "4096", "4096")
    cpu = ["--device", "cpu"] if dry_run else []
    real_pairs = ["benchmarks/real_pairs.py", "--builds", str(builds), "--steps", str(2 if dry_run else steps),
                  "--batch-size", batch, "--lr", "5e-4", "--no-align", "--loader-workers", str(workers), *cpu]
    return [
        ("score_tiny", ["benchmarks/gpu_score.py", "--model", "tiny", "--pairs", pairs, "--batch-size", batch, *cpu], 75),
        ("score_vit_b_32", ["benchmarks/gpu_score.py", "--model", "vit-b-32", "--pairs", pairs, "--batch-size", batch,
                            *cpu], 90),
        ("nsfw", ["benchmarks/gpu_nsfw.py", "--images", str(builds / "val" / "final"), "--count", images], 120),
        *[(f"real_pairs_{model.replace('-', '_')}_{loss}",
           [*real_pairs, "--model", model, "--losses", loss, "--runs", str(builds / "runs" / f"{model}-{loss}")], limit)
          for model, limit in (("vit-b-32", 150), ("tiny", 90)) for loss in ("filip", "clip")],
        *([] if dry_run else [("train_vit_b_32", ["benchmarks/gpu_train.py", "--model", "vit-b-32",
                                                  "--batch-size", batch], 40)]),
    ]


def bare_stage_packages() -> None:
    """Without polars: register the stage packages bare (see the module's docstring)."""
    import importlib.util
    import types

    if importlib.util.find_spec("polars"):
        return

    for name in ("stages", "stages/score", "stages/filter", "demo"):
        module = types.ModuleType("wukong_data." + name.replace("/", "."))
        module.__path__ = [str(ROOT / "wukong_data" / name)]
        sys.modules[module.__name__] = module


def run_part(script: str, args: list[str]) -> None:
    """In a part's own process: run one benchmark script as its command line would."""
    sys.path.insert(0, str(ROOT))
    bare_stage_packages()
    sys.argv = [script, *args]
    runpy.run_path(str(ROOT / script), run_name="__main__")


def pack(builds: Path, archive: Path) -> None:
    """The train build's tars and the val build's tars and Parquet, with their sizes.json: what the
    parts read. A window as large as the builds stores each photo about once, however far apart
    its five caption rows were shuffled."""
    import lzma

    window = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 29}]
    with lzma.open(archive, "wb", format=lzma.FORMAT_XZ, filters=window) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        tar.add(builds / BUILT, BUILT)
        for split, kinds in (("train", ("*.tar",)), ("val", ("*.tar", "*.parquet"))):
            final = builds / split / "final"
            tar.add(final / "sizes.json", f"{split}/final/sizes.json")
            for kind in kinds:
                for shard in sorted(final.glob(kind)):
                    tar.add(shard, f"{split}/final/{shard.name}")
    print(f"{archive}: {archive.stat().st_size / 2**20:.1f} MiB")


def run(command: list[str], limit: int) -> dict:
    """One part in its own process group (a timeout also stops the processes it started)."""
    tic = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--part", *command], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return {"timed_out_after_s": limit, "stderr_tail": stderr[-3000:], "metrics_so_far": metrics_so_far(command)}
    out = {"seconds": round(time.monotonic() - tic, 1), "rc": proc.returncode}
    try:
        out["result"] = json.loads(stdout)
    except json.JSONDecodeError:
        out["stdout_tail"] = stdout[-1500:]
    if proc.returncode:
        out["stderr_tail"] = stderr[-3000:]
    return out


def metrics_so_far(command: list[str]) -> dict:
    """A stopped training's last logged lines, from the metrics.jsonl in its --runs folder."""
    if "--runs" not in command:
        return {}
    runs = Path(command[command.index("--runs") + 1])
    return {str(m.parent.name): m.read_text().splitlines()[-3:] for m in runs.glob("*/metrics.jsonl")}


def machine() -> dict:
    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "cpu_cores": os.cpu_count(),
           "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, help="the builds, packed by --pack (required but with --part)")
    parser.add_argument("--pack", type=Path, metavar="BUILDS", help="pack these builds into --archive and stop")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--budget", type=int, default=480, help="seconds for all parts together")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each real_pairs run")
    parser.add_argument("--only", nargs="+", help="run these parts alone, in this order")
    parser.add_argument("--dry-run", action="store_true", help="each part on the CPU at a token size")
    parser.add_argument("--part", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        return run_part(args.part[0], args.part[1:])
    if args.archive is None:
        parser.error("--archive is required")
    if args.pack:
        return pack(args.pack, args.archive)
    deadline = time.monotonic() + args.budget
    result = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.archive) as tar:
            tar.extractall(tmp, filter="data")
        workers = max(1, min(12, (os.cpu_count() or 2) - 4))
        chosen = parts(Path(tmp), args.steps, workers, args.dry_run)
        if args.only:
            chosen = sorted((p for p in chosen if p[0] in args.only), key=lambda p: args.only.index(p[0]))
        for name, command, limit in chosen:
            limit = min(limit, int(deadline - time.monotonic()))
            if limit < 10:
                result[name] = {"skipped": "out of budget"}
                continue
            result[name] = run(command, limit)
            print(name, json.dumps(result[name])[:300], flush=True)
            args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
