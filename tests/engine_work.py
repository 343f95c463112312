"""Functions the local engine's tests map in worker processes (importable by spawned workers)."""
import os
import sys
import time


def device_seen(seconds: float) -> str:
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def fail_first(item: int) -> int:
    if item == 0:
        raise ValueError("task 0 failed")
    time.sleep(1.0)
    return item


def pid_and_imported(seconds: float) -> tuple[int, bool]:
    """This worker's pid, and whether an earlier task had imported colorsys here."""
    time.sleep(seconds)
    seen = "colorsys" in sys.modules
    import colorsys  # noqa: F401
    return os.getpid(), seen


def sleep_and_report(seconds: float) -> None:
    """Print this worker's pid, then sleep. One write of the whole line: print() may write the
    number and the newline apart (unbuffered output), and two workers' halves then interleave."""
    os.write(1, f"{os.getpid()}\n".encode())
    time.sleep(seconds)


def write_output(task: tuple[str, int, int]) -> int:
    """Task (folder, number, failures): write folder/NUMBER.out (atomically), unless it has
    returned without writing it fewer than `failures` times yet (counted in folder/NUMBER.tries).
    Returns the number of this try."""
    from pathlib import Path

    from wukong_data.storage import atomic_path

    folder, number, failures = Path(task[0]), task[1], task[2]
    tries = folder / f"{number}.tries"
    tried = int(tries.read_text()) if tries.exists() else 0
    tries.write_text(str(tried + 1))
    if tried >= failures:
        with atomic_path(folder / f"{number}.out") as tmp:
            tmp.write_text(str(number))
    return tried + 1
