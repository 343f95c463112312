"""A build killed with SIGKILL at a random point of any stage, then resumed, ends with exactly the
final/ of an uninterrupted build (same keys, same bytes, no duplicates), and no kill ever leaves
a half-written file under a final name.

The kill points are drawn at random: set WUKONG_KILL_SEED to replay a failure (its seed is in
every assertion message)."""
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import final_keys, wukong
from wukong_data.build import BuildDir
from wukong_data.demo import routes_of, write_url_list
from wukong_data.demo.server import serve
from wukong_data.demo.synth import planted_samples

STAGES = ("crawl", "dedupe", "filter", "score", "export")
SEED = int(os.environ.get("WUKONG_KILL_SEED", random.randrange(2**32)))
RECIPE = """
stages = ["crawl", "dedupe", "filter", "score", "export"]
[crawl]
allow_addresses = ["127.0.0.1"]
threads = 8
samples_per_shard = 20
timeout = 10
[dedupe]
max_caption_count = 10
[filter]
person_names = "keep"
nsfw_image = false
[score]
bootstrap_steps = 2
bootstrap_batch_size = 8
keep_top_fraction = 0.8
[export]
samples_per_shard = 20
shuffle_group = 1  # one export task per crawl shard, one final shard each (20 rows at most): they appear one by one
"""


def _kill_when(args, ready, timeout=180.0) -> None:
    """Start `wukong build`, SIGKILL its whole process group as soon as ready() holds."""
    proc = subprocess.Popen([sys.executable, "-m", "wukong_data", *map(str, args)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the build ended before it could be killed (seed {SEED}): {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"the build never reached the point to kill it (seed {SEED})"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# Files each stage writes one after another as its work goes on (the first k of them mark a point
# inside the stage: after the k-th, at least one more unit of its work is left).
PROGRESS = {
    "crawl": lambda build: build.glob("crawl/*_stats.json"),  # one per crawl shard downloaded
    "dedupe": lambda build: build.glob("dedupe/*/**/*"),  # its map, partition and near-duplicate files
    "filter": lambda build: build.glob("filter/[0-9]*.parquet"),  # one per shard filtered
    "score": lambda build: build.glob("score/*/**/*"),  # bootstrap sample, model, map files
    "export": lambda build: build.glob("final/[0-9]*.parquet"),  # one per final shard
}


def _progress(build: Path, stage: str) -> int:
    return sum(1 for p in PROGRESS[stage](build) if p.is_file() and not p.name.startswith("."))


def _status(build: Path, stage: str) -> str | None:
    try:
        return json.loads((build / "manifest.json").read_text())["stages"][stage]["status"]
    except (OSError, KeyError):
        return None


def _files(folder: Path) -> list[Path]:
    """Files under their final names (temporary ones are hidden: .NAME.tmp-PID)."""
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.exists() else []


def _assert_nothing_half_written(build: Path) -> None:
    """Every file under a final name reads whole: Parquet footers, tars to their end, JSON, arrays."""
    for path in _files(build):
        if "_tmp" in path.relative_to(build).parts:  # img2dataset's working folder
            continue
        try:
            if path.suffix == ".parquet":
                pq.ParquetFile(path).metadata
            elif path.suffix == ".tar":
                with tarfile.open(path) as tar:
                    for member in tar:
                        tar.extractfile(member).read()
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".npy":
                np.load(path)
            elif path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), "pt") as f:
                    f.keys()
        except Exception as err:  # noqa: BLE001 - any failure to read is the finding
            raise AssertionError(f"{path} is half-written after a SIGKILL (seed {SEED}): {err!r}") from None


@pytest.fixture(scope="module")
def inputs(samples, tmp_path_factory):
    """100 demo rows (good ones and every planted case), 5 crawl shards, from a server slow enough
    that the crawl can be caught mid-way."""
    root = tmp_path_factory.mktemp("resume")
    good = samples[:52]
    chosen = good + planted_samples(samples[:300])
    (root / "resume.toml").write_text(RECIPE)
    with serve(routes_of(chosen), delay=0.05) as base_url:
        write_url_list(chosen, base_url, root / "urls.csv")
        yield root / "resume.toml", root / "urls.csv"


def test_sigkill_at_a_random_point_of_every_stage_then_resume(inputs, tmp_path):
    recipe, urls = inputs
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    wukong("build", recipe, "--input", urls, "--out", reference, "--workers", "1", "--quiet")
    rng = random.Random(SEED)
    command = ["build", recipe, "--input", urls, "--out", killed, "--workers", "1", "--quiet"]
    for stage in STAGES:
        # Kill once the stage runs and has written k of its progress files, k drawn at random from
        # 0 (just started) to all but the last; each run resumes what the runs before it left.
        k = rng.randint(0, _progress(reference, stage) - 1)
        _kill_when(command, lambda: _status(killed, stage) == "running" and _progress(killed, stage) >= k)
        assert _status(killed, stage) == "running", f"killed after {stage} ended (k={k}, seed {SEED})"
        _assert_nothing_half_written(killed)
    wukong(*command)

    keys = final_keys(killed)
    assert len(keys) == len(set(keys)), f"duplicate keys in final/ (seed {SEED})"
    for stage in STAGES[:-1]:
        decided = [BuildDir(b).decisions(stage).collect().sort("key") for b in (killed, reference)]
        assert decided[0].equals(decided[1]), f"{stage} decided otherwise after the kills (seed {SEED})"
    names = sorted(p.name for p in (reference / "final").iterdir())
    assert sorted(p.name for p in (killed / "final").iterdir()) == names, f"seed {SEED}"
    for name in names:
        assert (killed / "final" / name).read_bytes() == (reference / "final" / name).read_bytes(), \
            f"final/{name} differs (seed {SEED})"
