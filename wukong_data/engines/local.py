from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator

from . import CPU, Engine, Resources, available_memory, grant_threads


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def _start_worker(cpus: float, devices) -> None:
    """A worker's set-up, before its libraries load: its threads, and for GPU work its own GPU
    (each worker takes the next device id from the queue and sees only that device)."""
    grant_threads(cpus)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


class LocalEngine(Engine):
    """A process pool on one machine. Work that asks for a GPU runs in as many processes as there
    are GPUs (each process loads its model once); on a machine without one, on the CPU workers.
    Work that states its memory runs in no more processes than the machine's available memory
    holds (one at least)."""

    name = "local"
    img2dataset_distributor = "multiprocessing"

    def __init__(self, workers: int):
        self.workers = max(1, workers)

    def _workers(self, resources: Resources, n_items: int) -> int:
        workers = self.workers
        if resources.gpus:
            workers = min(workers, _gpu_count() or workers)
        if resources.memory:
            workers = min(workers, max(1, available_memory() // resources.memory))
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
        context = get_context("spawn")
        devices = None
        if resources.gpus and _gpu_count():
            devices = context.Queue()
            for i in range(workers):
                devices.put(i)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(resources.cpus, devices)) as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                for future in as_completed(futures):
                    yield future.result()
            except BaseException:
                # A failed task ends the map now: the queued ones are dropped, not run first.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
