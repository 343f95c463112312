"""Engines map stage work over shards and partitions. Stages never know which engine runs them:
they hand `map` a picklable function, the items, and what one call needs (`Resources`); the
engine decides where and how many run at once."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    """What one call of a mapped function needs. `gpus` > 0 asks for a GPU where there is one
    (a model loaded once per worker); the function must still run without one."""

    cpus: float = 1.0
    gpus: float = 0.0


CPU = Resources()


def make_engine(name: str, workers: int):
    if name == "local":
        from .local import LocalEngine

        return LocalEngine(workers)
    from ..errors import UserError

    raise UserError(f"--engine {name}: not available (available: local)")
