"""Engines map stage work over shards and partitions. Stages never know which engine runs them:
they hand `map` (or `imap`) a picklable function, the items, and what one call needs
(`Resources`); the engine decides where and how many run at once. Engines: `local` (a process
pool, engines/local.py) and `ray` (a Ray cluster, engines/ray.py)."""
from __future__ import annotations

from .base import CPU, Engine, Resources, available_memory, grant_threads, granted_threads

__all__ = ["CPU", "Engine", "Resources", "available_memory", "grant_threads", "granted_threads", "make_engine"]


def make_engine(name: str, workers: int, address: str | None = None) -> Engine:
    if name == "local":
        from .local import LocalEngine

        return LocalEngine(workers)
    if name == "ray":
        from .ray import RayEngine

        return RayEngine(workers, address)
    from ..errors import UserError

    raise UserError(f"--engine {name}: unknown (expected local or ray)")
