from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator

from .base import CPU, Engine, Resources, available_memory, grant_threads


def _gpu_count() -> int:
    """GPUs this process may use. A machine without a GPU driver's device files has none: the
    driver then skips importing torch to ask (seconds, for every build)."""
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd")):
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def _start_worker(cpus: float, devices) -> None:
    """A worker's set-up, before its libraries load: its threads, for GPU work its own GPU (each
    worker takes the next device id from the queue and sees only that device), and its end when
    the driver's: a driver killed outright (SIGKILL, OOM) would otherwise leave it running its
    task into the build that the next run resumes, then idle for ever."""
    grant_threads(cpus)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()


def _exit_with(driver: int) -> None:
    while os.getppid() == driver:
        time.sleep(0.5)
    os._exit(1)


class LocalEngine(Engine):
    """A process pool on one machine. Work that asks for a GPU runs in as many processes as there
    are GPUs (each process loads its model once); on a machine without one, on the CPU workers.
    Work that states its memory runs in no more processes than the machine's available memory
    holds (one at least); where that is one, in this process.

    The pool outlives the map that started it and serves every later map of the same shape (size,
    threads, GPUs) until `close`: a build's stages pay for starting processes and importing their
    libraries (torch, img2dataset: seconds each) once, not once per map. A map of another shape
    replaces it: there is never more than one pool."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._shape: tuple = ()

    def _workers(self, resources: Resources) -> int:
        workers = self.workers
        if resources.gpus:
            workers = min(workers, _gpu_count() or workers)
        if resources.memory:
            workers = min(workers, max(1, available_memory() // resources.memory))
        return workers

    def imap(self, fn: Callable, items: Iterable, resources: Resources = CPU) -> Iterator:
        """fn(item) for every item, yielded as each finishes (any order): for results that are
        combined as they come and need not all be held."""
        items = list(items)
        if not items:
            return
        workers = self._workers(resources)
        if workers == 1 and resources.memory:
            # The memory holds one call at a time: it runs here, once the pool's processes (and
            # what they hold) are gone.
            self.close()
            yield from map(fn, items)
            return
        on_gpus = bool(resources.gpus and _gpu_count())
        shape = (workers, resources.cpus, on_gpus)
        if self._pool is None or self._shape != shape:
            self.close()
            self._pool, self._shape = _start_pool(*shape), shape
        futures = [self._pool.submit(fn, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            # A failed, interrupted (Ctrl-C) or abandoned map ends now: its queued tasks are
            # dropped and its running ones stopped (every output is written under a temporary
            # name first), with the pool. Waiting could be forever: img2dataset's downloader
            # hangs once interrupted.
            self._stop()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _stop(self) -> None:
        if self._pool is not None:
            # ProcessPoolExecutor.kill_workers() arrives in Python 3.14; until then its processes.
            for process in list(self._pool._processes.values()):
                process.kill()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _start_pool(workers: int, cpus: float, on_gpus: bool) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may hold threads (progress bars) that fork would copy mid-lock.
    context = get_context("spawn")
    devices = None
    if on_gpus:
        devices = context.Queue()
        for i in range(workers):
            devices.put(i)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(cpus, devices))
