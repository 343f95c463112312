"""The local engine: GPU work gets a device per worker, a failed task ends the map at once, and
a build's maps share one set of worker processes."""
import time

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
