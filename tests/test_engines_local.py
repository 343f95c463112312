"""The local engine: GPU work gets a device per worker, a failed task ends the map at once, and
a build's maps share one set of worker processes."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine_work
from wukong_data.engines import Resources
from wukong_data.engines import local
from wukong_data.engines.local import LocalEngine


def test_gpu_workers_each_see_their_own_device(monkeypatch):
    monkeypatch.setattr(local, "_gpu_count", lambda: 2)  # the parent sizes the pool by it
    with LocalEngine(2) as engine:
        seen = engine.map(engine_work.device_seen, [0.5] * 6, resources=Resources(gpus=1))
    assert set(seen) == {"0", "1"}


def test_cpu_work_is_not_pinned():
    with LocalEngine(2) as engine:
        assert set(engine.map(engine_work.device_seen, [0.0] * 2)) <= {""}


def test_a_failed_task_ends_the_map_without_running_the_queue():
    start = time.perf_counter()
    with LocalEngine(2) as engine, pytest.raises(ValueError, match="task 0 failed"):
        engine.map(engine_work.fail_first, range(40))
    # 39 queued tasks of a second each on 2 workers would take ~20 s; the failure ends it at once.
    assert time.perf_counter() - start < 8


def test_later_maps_run_in_the_workers_the_first_started_until_close():
    with LocalEngine(2) as engine:
        first = engine.map(engine_work.pid_and_imported, [0.3] * 4)
        second = engine.map(engine_work.pid_and_imported, [0.3] * 4)
        # What the first map imported, the second finds imported: the same two processes.
        assert not all(seen for _, seen in first)
        assert {pid for pid, _ in first} == {pid for pid, _ in second} and len({pid for pid, _ in first}) == 2
        assert all(seen for _, seen in second)
        # A map of another shape (its own thread count) gets fresh processes.
        other = engine.map(engine_work.pid_and_imported, [0.3] * 4, resources=Resources(cpus=2))
        assert not {pid for pid, _ in other} & {pid for pid, _ in first}
    third = engine.map(engine_work.pid_and_imported, [0.3] * 4)  # closed: started again
    engine.close()
    assert not {pid for pid, _ in third} & {pid for pid, _ in other}


def test_workers_end_when_their_driver_is_killed():
    """A driver killed outright takes its workers with it: none keeps running its task into the
    build the next run resumes."""
    driver = subprocess.Popen([sys.executable, "-c", "import engine_work\n"
                               "from wukong_data.engines.local import LocalEngine\n"
                               "LocalEngine(2).map(engine_work.sleep_and_report, [60.0] * 2)"],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
    workers = [int(driver.stdout.readline()) for _ in range(2)]
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
