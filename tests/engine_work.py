"""Functions the local engine's tests map in worker processes (importable by spawned workers)."""
import os
import time


def device_seen(seconds: float) -> str:
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def fail_first(item: int) -> int:
    if item == 0:
        raise ValueError("task 0 failed")
    time.sleep(1.0)
    return item
