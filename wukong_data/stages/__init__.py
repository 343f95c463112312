"""Pipeline stages. Each turns shards into decisions (key, reason) and columns; an engine runs it."""
from __future__ import annotations

from dataclasses import dataclass

from ..build import BuildDir
from ..recipe import Recipe
from ..ui import UI


@dataclass
class StageContext:
    build: BuildDir
    recipe: Recipe
    engine: object  # engines.LocalEngine or another with the same map()
    ui: UI
    limit: int | None = None
