from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, Iterable


class LocalEngine:
    """A process pool on one machine."""

    name = "local"
    img2dataset_distributor = "multiprocessing"

    def __init__(self, workers: int):
        self.workers = max(1, workers)

    def map(self, fn: Callable, items: Iterable, on_result: Callable | None = None) -> list:
        """Run fn(item) for every item; results in item order. on_result sees each as it lands."""
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(fn(item))
                if on_result:
                    on_result(results[-1])
            return results
        results = [None] * len(items)
        # spawn, not fork: the parent may hold threads (progress bars) that fork would copy mid-lock.
        with ProcessPoolExecutor(min(self.workers, len(items)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_result:
                    on_result(results[futures[future]])
        return results
