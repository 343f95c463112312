"""What every engine shares: the protocol (Engine), what a call needs (Resources), and the
threads a worker is granted."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

# Where an engine tells a worker how many threads its libraries may use (Ray sets it per task).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")


@dataclass(frozen=True)
class Resources:
    """What one call of a mapped function needs. `gpus` > 0 asks for a GPU where there is one
    (a model loaded once per worker); the function must still run without one. `memory`: bytes
    one call holds at its peak, where that grows with the build (0: small); the engine runs no
    more calls at once than the memory holds."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int = 0


CPU = Resources()


def grant_threads(cpus: float) -> None:
    """Run in a worker process before its libraries load: their thread pools use what it was given."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(max(1, int(cpus)))


def available_memory() -> int:
    """Bytes this machine can give new work now (MemAvailable: free memory and reclaimable cache)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def granted_threads() -> int:
    """Threads this process may use for a model (0: it runs alone, the library decides)."""
    return int(os.environ.get("OMP_NUM_THREADS", 0))


class Engine:
    """The protocol both engines implement: imap (results as they finish), and map on top of it."""

    name: str
    workers: int

    def imap(self, fn: Callable, items: Iterable, resources: Resources = CPU) -> Iterator:
        raise NotImplementedError

    def map(self, fn: Callable, items: Iterable, on_result: Callable | None = None,
            resources: Resources = CPU) -> list:
        """Run fn(item) for every item; results in item order. on_result(item, result) sees each
        as it lands."""
        items = list(items)
        results = [None] * len(items)
        for i, result in self.imap(_Indexed(fn), list(enumerate(items)), resources):
            results[i] = result
            if on_result:
                on_result(items[i], result)
        return results

    def close(self) -> None:
        """Release what the engine started (its process pools, a local Ray)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Indexed:
    """fn wrapped to carry its item's position through an unordered imap (picklable)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, indexed):
        i, item = indexed
        return i, self.fn(item)
