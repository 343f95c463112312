from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator

from . import CPU, Resources


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


class LocalEngine:
    """A process pool on one machine. Work that asks for a GPU runs in as many processes as there
    are GPUs (each process loads its model once); on a machine without one, on the CPU workers."""

    name = "local"
    img2dataset_distributor = "multiprocessing"

    def __init__(self, workers: int):
        self.workers = max(1, workers)

    def _workers(self, resources: Resources, n_items: int) -> int:
        workers = self.workers
        if resources.gpus:
            workers = min(workers, _gpu_count() or workers)
        return min(workers, max(1, n_items))

    def imap(self, fn: Callable, items: Iterable, resources: Resources = CPU) -> Iterator:
        """fn(item) for every item, yielded as each finishes (any order): for results that are
        combined as they come and need not all be held."""
        items = list(items)
        workers = self._workers(resources, len(items))
        if workers == 1:
            yield from map(fn, items)
            return
        # spawn, not fork: the parent may hold threads (progress bars) that fork would copy mid-lock.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(fn, item) for item in items]):
                yield future.result()

    def map(self, fn: Callable, items: Iterable, on_result: Callable | None = None,
            resources: Resources = CPU) -> list:
        """Run fn(item) for every item; results in item order. on_result sees each as it lands."""
        items = list(items)
        indexed = [(i, item) for i, item in enumerate(items)]
        results = [None] * len(items)
        for i, result in self.imap(_Indexed(fn), indexed, resources):
            results[i] = result
            if on_result:
                on_result(result)
        return results


class _Indexed:
    """fn wrapped to carry its item's position through an unordered imap (picklable)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, indexed):
        i, item = indexed
        return i, self.fn(item)
