"""Filter: Wukong's image and text rules, cheap ones first, one rule per file in rules/.

Order (rules.RULES): image size and aspect (crawl metadata) -> meaningless caption -> language
-> sensitive text -> NSFW text -> word count -> person names (masked, or the caption rejected)
-> decode check -> NSFW image model. A row leaves at its first failed rule with that rule's
reason; every row carries the values computed for it.
"""
from __future__ import annotations

import polars as pl

from ...normalise import normalise
from ...recipe import FilterConfig
from .rows import Rows
from .rules import RULES


class FilterStage:
    """The per-row processor of the filter stage (run shard by shard by per_shard.ShardStage):
    `rules` in order over each shard's rows."""

    def __init__(self, cfg: FilterConfig, image_column: str, rules: tuple = RULES):
        self.cfg = cfg
        self.image_column = image_column
        self.rules = [rule(cfg) for rule in rules]
        self.input_columns = ["key", "caption", "original_width", "original_height", image_column]

    @classmethod
    def from_config(cls, config: dict) -> "FilterStage":
        return cls(FilterConfig(**config["filter"]), config["image_column"])

    def decide(self, captions: pl.Series, frame: pl.DataFrame | None = None) -> Rows:
        """The rules over the captions (normalised first) and, for image rules, the crawl's columns."""
        rows = Rows(normalise(captions, self.cfg.traditional_to_simplified).to_list(), frame, self.image_column)
        for rule in self.rules:
            rule.apply(rows)
        return rows

    def process(self, frame: pl.DataFrame) -> pl.DataFrame:
        rows = self.decide(frame["caption"], frame)
        columns = {name: pl.Series(name, rows.column(name), dtype=dtype)
                   for rule in self.rules for name, dtype in rule.columns.items()}
        return pl.DataFrame([frame["key"], pl.Series("reason", rows.reasons, dtype=pl.String),
                             pl.Series("caption", rows.captions, dtype=pl.String), *columns.values()])
