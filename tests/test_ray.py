"""The same recipe on a real local Ray (2 CPUs) as on the local engine: the same final shards,
byte for byte, even when a Ray worker is killed in the middle of the filter stage."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import final_bytes, wukong

pytest.importorskip("ray")


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


def test_every_stage_on_ray_with_a_worker_killed_mid_filter_gives_the_local_shards(rules_recipe, url_list, rules_build,
                                                                                   tmp_path):
    """Crawl and dedupe on Ray, then the rest on Ray with one of its workers killed while the filter
    runs: the final shards are the local engine's, byte for byte."""
    recipe = rules_recipe
    out = tmp_path / "b"
    wukong("build", recipe, "--input", url_list, "--out", out, "--stage", "crawl", "--stage", "dedupe",
           "--engine", "ray", "--workers", 2, "--quiet")
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
    assert final_bytes(out) == final_bytes(rules_build)
