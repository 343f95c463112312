"""Engines map stage work over shards. Stages never know which engine runs them."""
from .local import LocalEngine


def make_engine(name: str, workers: int):
    if name == "local":
        return LocalEngine(workers)
    from ..errors import UserError

    raise UserError(f"--engine {name}: not available (available: local)")
