"""How every stage's steps run: the one place that decides what is done, shows progress, calls the
engine and retries.

A stage is steps (DESIGN.md: map per shard -> optional reduce per partition or over everything
-> apply per shard), each a picklable function mapped over tasks. A task is done when its outputs
exist: each task writes its outputs under their final names only once complete (storage.atomic_path),
its completion marker last, so a killed run leaves a task either done or redone. A resumed or
re-run stage so does exactly what is missing, whatever step it was killed in. What decided the
outputs is the build's business (pipeline.py: fingerprints; an edited stage is cleared before it
runs); what a step's outputs were cut by (a partition count, an export plan) is the step's own
settings file (`settle`). Passes whose small results come back to the driver and are combined
there (counts, histograms: select.py) keep nothing and are read with the engine's imap each run.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..engines import CPU, Resources
from ..storage import read_json, remove, remove_stale_tmp, write_json_atomic
from . import StageContext


class Runner:
    """The steps of one stage of one build, run through the build's engine."""

    def __init__(self, ctx: StageContext):
        self.ctx = ctx

    def map(self, fn: Callable, tasks: Sequence, outputs: Callable[[object], Iterable[Path]], *,
            description: str | None = None, size: Callable[[object], int] = lambda task: 1, unit: str = "rows",
            resources: Resources = CPU, retries: int = 0) -> list:
        """fn(task) for every task whose `outputs` are not all there yet; their results, in task
        order (a retried task's last). `description` shows a progress bar in `unit`s, each task
        counting `size(task)` (done tasks at once). A task that returns without writing its outputs (a download that
        failed as a whole) is run again `retries` times at most; one whose fn raises stops the
        step (the engine's own retries aside: Ray reruns a task whose worker died)."""
        todo = self.todo(tasks, outputs)
        results = {}
        with self.ctx.ui.progress(description, total=sum(map(size, tasks)), unit=unit) \
                if description else contextlib.nullcontext(lambda n: None) as advance:
            pending = set(map(id, todo))
            advance(sum(size(t) for t in tasks if id(t) not in pending))
            remaining = todo
            for _ in range(1 + retries):
                if not remaining:
                    break
                for task, result in zip(remaining, self.ctx.engine.map(
                        fn, remaining, on_result=lambda task, _: advance(size(task)), resources=resources)):
                    results[id(task)] = result
                remaining = self.todo(remaining, outputs)
        return [results[id(t)] for t in todo]

    @staticmethod
    def todo(tasks: Sequence, outputs: Callable[[object], Iterable[Path]]) -> list:
        """The tasks not all of whose outputs exist (each folder listed once: on object storage a
        listing is one request, a file's existence one more each)."""
        listed: dict[str, set[str]] = {}

        def exists(file: Path) -> bool:
            folder = str(file.parent)
            if folder not in listed:
                listed[folder] = {p.name for p in file.parent.iterdir()} if file.parent.exists() else set()
            return file.name in listed[folder]

        return [t for t in tasks if not all(map(exists, outputs(t)))]

    @staticmethod
    def once(marker: Path, fn: Callable[[], object]) -> None:
        """A step run once in the driver (a decision over everything the steps before wrote), which
        writes `marker` last: skipped where the marker exists."""
        if not marker.exists():
            fn()

    @staticmethod
    def settle(marker: Path, settings: dict, stale: Iterable[Path]) -> None:
        """Record in `marker` the settings the outputs under `stale` are cut by; where it records
        others (partial work of another partition count or plan), those outputs are removed first.
        Temporary files a killed run left there go too."""
        settings = json.loads(json.dumps(settings))  # as read back: lists for tuples
        if marker.exists() and read_json(marker) != settings:
            for folder in stale:
                remove(folder)
        for folder in stale:
            remove_stale_tmp(folder)
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(marker, settings)

