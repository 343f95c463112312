"""The local engine: GPU work gets a device per worker, and a failed task ends the map at once."""
import time

import pytest

import engine_work
from wukong_data.engines import Resources
from wukong_data.engines import local
from wukong_data.engines.local import LocalEngine


def test_gpu_workers_each_see_their_own_device(monkeypatch):
    monkeypatch.setattr(local, "_gpu_count", lambda: 2)  # the parent sizes the pool by it
    seen = LocalEngine(2).map(engine_work.device_seen, [0.5] * 6, resources=Resources(gpus=1))
    assert set(seen) == {"0", "1"}


def test_cpu_work_is_not_pinned():
    assert set(LocalEngine(2).map(engine_work.device_seen, [0.0] * 2)) <= {""}


def test_a_failed_task_ends_the_map_without_running_the_queue():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="task 0 failed"):
        LocalEngine(2).map(engine_work.fail_first, range(40))
    # 39 queued tasks of a second each on 2 workers would take ~20 s; the failure ends it at once.
    assert time.perf_counter() - start < 8
