"""The rows of a shard as the filter's rules see them."""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass
class Rows:
    """Each rule (rules/) looks at the rows still kept, rejects some with its reason and fills its
    columns for the rows it looked at (None elsewhere). `captions` are normalised; a rule may
    rewrite them (names masked). `frame` holds the crawl's columns (key, original_width,
    original_height, the image): None where only text is filtered."""
    captions: list[str]
    frame: pl.DataFrame | None = None
    image_column: str = ""
    reasons: list[str | None] = field(default_factory=list)
    columns: dict[str, list] = field(default_factory=dict)

    def __post_init__(self):
        self.reasons = self.reasons or [None] * len(self.captions)

    def alive(self) -> list[int]:
        return [i for i, reason in enumerate(self.reasons) if reason is None]

    def column(self, name: str) -> list:
        """A column of the rule's, None for every row until the rule fills it."""
        return self.columns.setdefault(name, [None] * len(self.captions))

    @property
    def images(self) -> pl.Series:
        return self.frame[self.image_column]
