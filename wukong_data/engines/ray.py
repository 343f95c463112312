"""The Ray engine: the same stage work as the local engine, as Ray tasks on a cluster.

One task per item (a shard, a partition, a group of tables), at most `max_in_flight` submitted at
once, each retried by Ray when its worker dies (`max_retries`); a task that still fails stops the
build with an error naming its item. Work that asks for a GPU runs in actors holding one GPU
each, which load their model once (the stages cache models per process); on a cluster without
GPUs it runs as ordinary tasks. Finished work is skipped before it reaches the engine, by the
same completion rules as the local engine, so a re-run resumes.

Without an address a local Ray is started with `workers` CPUs and shut down at the end.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

from ..errors import Incomplete
from .base import CPU, Engine, Resources


class RayEngine(Engine):
    name = "ray"

    def __init__(self, workers: int, address: str | None = None, max_retries: int = 3):
        import ray

        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        resources = ray.cluster_resources()
        self.workers = max(1, int(resources.get("CPU", workers)))
        self.gpus = int(resources.get("GPU", 0))
        # Ray never schedules a task asking more memory than one node has: cap what tasks ask.
        self.node_memory = int(max((node["Resources"].get("memory", 0) for node in ray.nodes() if node["Alive"]),
                                   default=0))
        self.max_retries = max_retries
        self.max_in_flight = 2 * self.workers

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()

    def imap(self, fn: Callable, items: Iterable, resources: Resources = CPU) -> Iterator:
        """fn(item) for every item, yielded as each finishes (any order)."""
        ray = self._ray
        items = list(items)
        if resources.gpus and self.gpus:
            yield from self._on_gpu_actors(fn, items, resources)
            return
        task = ray.remote(num_cpus=resources.cpus, max_retries=self.max_retries,
                          memory=min(resources.memory, self.node_memory) or None)(_call)
        pending: dict = {}
        queue = iter(items)
        for item in queue:
            pending[task.remote(fn, item)] = item
            if len(pending) >= self.max_in_flight:
                break
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            item = pending.pop(done)
            yield self._result(done, item)
            following = next(queue, None)
            if following is not None:
                pending[task.remote(fn, following)] = following

    def _on_gpu_actors(self, fn: Callable, items: list, resources: Resources) -> Iterator:
        ray = self._ray
        actor = ray.remote(num_cpus=resources.cpus, num_gpus=1, max_restarts=self.max_retries,
                           max_task_retries=self.max_retries)(_GpuWorker)
        actors = [actor.remote() for _ in range(min(self.gpus, len(items)) or 1)]
        pending: dict = {}
        free = list(actors)
        queue = iter(items)
        while True:
            while free:
                item = next(queue, None)
                if item is None:
                    break
                worker = free.pop()
                pending[worker.run.remote(fn, item)] = (item, worker)
            if not pending:
                return
            (done,), _ = ray.wait(list(pending), num_returns=1)
            item, worker = pending.pop(done)
            free.append(worker)
            yield self._result(done, item)

    def _result(self, ref, item):
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as err:
            first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise Incomplete(f"ray: the task for {item!r} failed after {self.max_retries} retries ({first}); "
                             f"run the same command again to resume") from None


def _call(fn, item):
    return fn(item)


class _GpuWorker:
    """An actor holding one GPU: the functions it runs cache their models in this process."""

    def run(self, fn, item):
        return fn(item)
