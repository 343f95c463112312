"""The same recipe on a real local Ray (2 CPUs) as on the local engine: the same final shards,
byte for byte, even when a Ray worker is killed in the middle of the filter stage."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wukong

pytest.importorskip("ray")

RECIPE = """
stages = ["crawl", "dedupe", "filter", "score", "export"]
[crawl]
samples_per_shard = 25
threads = 8
[filter]
nsfw_image = false
[score]
checkpoint = "{checkpoint}"
keep_top_fraction = 0.9
[export]
samples_per_shard = 64
"""


@pytest.fixture(scope="module")
def recipe(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "recipe.toml"
    path.write_text(RECIPE.format(checkpoint=tiny_run))
    return path


@pytest.fixture(scope="module")
def local_build(recipe, url_list, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "b"
    wukong("build", recipe, "--input", url_list, "--out", out, "--workers", 2, "--quiet")
    return out


def _final(build: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((build / "final").glob("[0-9]*.*"))}


def _ray_task_pids() -> list[int]:
    """Ray worker processes running one of our tasks (Ray names them after the function)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_call"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_ray_engine_builds_the_local_engines_shards(recipe, url_list, local_build, tmp_path):
    out = tmp_path / "b"
    wukong("build", recipe, "--input", url_list, "--out", out, "--engine", "ray", "--workers", 2, "--quiet")
    assert _final(out) == _final(local_build)


def test_a_ray_worker_killed_mid_filter_changes_nothing(recipe, url_list, local_build, tmp_path):
    out = tmp_path / "b"
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "crawl", "--stage", "dedupe", "--quiet")
    proc = subprocess.Popen([sys.executable, "-m", "wukong_data", "build", str(recipe), "--input", str(url_list),
                             "--out", str(out), "--engine", "ray", "--workers", "2", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed, deadline = None, time.monotonic() + 180
    while killed is None:
        assert proc.poll() is None and time.monotonic() < deadline, "the filter stage never ran on Ray"
        running = _ray_task_pids()
        if running and list((out / "filter").glob("[0-9]*.parquet")):
            killed = running[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    assert _final(out) == _final(local_build)
