"""The numeric columns the stages write, summarised in bounded memory.

Each value is counted on a fixed grid (whole numbers exactly; scores to 0.001; sizes and aspect
ratios to 1% in log space), per fate, a batch at a time: the merged counts give quantiles exact to
the grid's step and histograms of any binning, in memory bounded by the grid, never by the rows.
min, max and mean are exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import polars as pl

from .rows import KEPT

QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "median": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
HISTOGRAM_BINS = 40


@dataclass(frozen=True)
class Grid:
    """Values -> integer cells: `step` apart (linear), or a factor of 1 + `step` apart (log)."""

    step: float
    log: bool = False

    def cell(self, value: pl.Expr) -> pl.Expr:
        if self.log:
            return (value.cast(pl.Float64).log() / math.log1p(self.step)).round().cast(pl.Int64)
        return (value.cast(pl.Float64) / self.step).round().cast(pl.Int64)

    def value(self, cells: np.ndarray) -> np.ndarray:
        return np.exp(cells * math.log1p(self.step)) if self.log else cells * self.step

    @property
    def description(self) -> str:
        return f"{self.step:.0%} (log scale)" if self.log else f"{self.step:g}"


WHOLE = Grid(1)
SCORE = Grid(0.001)
RATIO = Grid(0.01, log=True)


@dataclass(frozen=True)
class Metric:
    name: str
    stage: str  # the stage whose files hold the column
    label: str
    expr: Callable[[], pl.Expr]
    columns: tuple[str, ...]  # the row columns (rows.py) it needs
    grid: Grid
    decides: tuple[str, ...] = ()  # the reason codes a threshold on it gives
    thresholds: Callable[[dict], dict[str, float]] = field(default=lambda recipe: {})
    log_axis: bool = False
    threshold_rule: bool = False  # its reasons come from a threshold on it (not, as for lang_score, a rule it feeds)


def _min_side() -> pl.Expr:
    return pl.min_horizontal("original_width", "original_height")


def _aspect() -> pl.Expr:
    return pl.col("original_width").cast(pl.Float64) / pl.col("original_height")


def _score_thresholds(recipe: dict) -> dict[str, float]:
    return {"min_score": recipe["score"]["min_score"]} if recipe["score"]["min_score"] else {}


METRICS = (
    Metric("image_width", "crawl", "image width (original, px)", lambda: pl.col("original_width"),
           ("original_width",), WHOLE, log_axis=True),
    Metric("image_height", "crawl", "image height (original, px)", lambda: pl.col("original_height"),
           ("original_height",), WHOLE, log_axis=True),
    Metric("image_min_side", "crawl", "shorter side (original, px)", _min_side, ("original_width", "original_height"),
           WHOLE, ("image_too_small",), lambda r: {"min_side": r["filter"]["min_side"]}, log_axis=True,
           threshold_rule=True),
    Metric("aspect_ratio", "crawl", "aspect ratio (width / height)", _aspect, ("original_width", "original_height"),
           RATIO, ("bad_aspect_ratio",),
           lambda r: {"min_aspect_ratio": r["filter"]["min_aspect_ratio"], "max_aspect_ratio": r["filter"]["max_aspect_ratio"]},
           log_axis=True, threshold_rule=True),
    Metric("caption_chars", "filter", "caption length (characters)", lambda: pl.col("caption").str.len_chars(),
           ("caption",), WHOLE),
    Metric("caption_words", "filter", "caption length (words)", lambda: pl.col("n_words"), ("n_words",), WHOLE,
           ("too_few_words", "too_many_words"),
           lambda r: {"min_words": r["filter"]["min_words"], "max_words": r["filter"]["max_words"]}, threshold_rule=True),
    Metric("lang_score", "filter", "language-ID probability (fastText)", lambda: pl.col("lang_score"),
           ("lang_score",), SCORE, ("not_chinese",)),
    Metric("han_ratio", "filter", "Han share of the caption", lambda: pl.col("han_ratio"), ("han_ratio",), SCORE,
           ("not_chinese",), lambda r: {"min_han_ratio": r["filter"]["min_han_ratio"]}),
    Metric("names_masked", "filter", "person names masked", lambda: pl.col("n_masked"), ("n_masked",), WHOLE),
    Metric("nsfw_score", "filter", "NSFW image score (nudenet)", lambda: pl.col("nsfw_score"), ("nsfw_score",), SCORE,
           ("nsfw_image",), lambda r: {"nsfw_image_threshold": r["filter"]["nsfw_image_threshold"]}
           if r["filter"]["nsfw_image"] else {}, threshold_rule=True),
    Metric("filip_score", "score", "FILIP image-text score", lambda: pl.col("filip_score"), ("filip_score",), SCORE,
           ("low_filip_score",), _score_thresholds, threshold_rule=True),
)
BY_NAME = {m.name: m for m in METRICS}


def available(stages: list[str], columns: list[str]) -> list[Metric]:
    """The metrics whose stage finished and whose columns the build's files hold."""
    return [m for m in METRICS if m.stage in stages and all(c in columns for c in m.columns)]


def batch_counts(rows: pl.DataFrame, metric: Metric) -> pl.LazyFrame:
    """One batch's counts: per grid cell and fate, rows, sum, min and max of the exact values."""
    return (rows.lazy().select(metric.expr().cast(pl.Float64).alias("v"), "fate")
            .filter(pl.col("v").is_finite())  # null and NaN: no value
            .group_by(metric.grid.cell(pl.col("v")).alias("cell"), "fate")
            .agg(n=pl.len(), total=pl.col("v").sum(), low=pl.col("v").min(), high=pl.col("v").max()))


def merge_counts(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return (pl.concat(frames).group_by("cell", "fate")
            .agg(pl.col("n").sum(), pl.col("total").sum(), pl.col("low").min(), pl.col("high").max()))


def is_kept() -> pl.Expr:
    return pl.col("fate") == KEPT


def rejected_by(reasons) -> pl.Expr:
    """Rows whose fate is one of `reasons` (at whichever stage)."""
    reason = pl.col("fate").cast(pl.String).str.split_exact("/", 1).struct.field("field_1")
    return reason.is_in(list(reasons)).fill_null(False)


def summary(counts: pl.DataFrame, grid: Grid) -> dict:
    """count, exact min/mean/max, quantiles (to the grid's step) of the rows in `counts`."""
    cells = counts.group_by("cell").agg(pl.col("n").sum()).sort("cell")
    n = int(cells["n"].sum()) if cells.height else 0
    if not n:
        return {"count": 0}
    cumulative = np.cumsum(cells["n"].to_numpy())
    values = grid.value(cells["cell"].to_numpy())
    out = {"count": n, "min": rounded(counts["low"].min()), "mean": rounded(counts["total"].sum() / n)}
    for name, q in QUANTILES.items():
        out[name] = rounded(float(values[min(np.searchsorted(cumulative, q * n), len(values) - 1)]))
    out["max"] = rounded(counts["high"].max())
    return out


def rounded(value: float) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else round(value, 4)


def histogram(counts: pl.DataFrame, metric: Metric, thresholds: dict[str, float], bins: int = HISTOGRAM_BINS) -> dict:
    """Counts per bin of kept rows, rows this metric's rule rejected, and rows rejected for any other
    reason. The axis runs from the 0.5th to the 99.5th percentile, widened to show the thresholds
    that fall within the data; the end bins also hold everything beyond (`below`, `above`).
    Whole numbers over a short range get one bin each (`unit_bins`)."""
    cells = counts.with_columns(v=pl.Series(metric.grid.value(counts["cell"].to_numpy()), dtype=pl.Float64))
    if not cells.height:
        return {}
    every = cells.group_by("v").agg(pl.col("n").sum()).sort("v")
    cumulative = np.cumsum(every["n"].to_numpy())
    values, n = every["v"].to_numpy(), cumulative[-1]
    lo, hi = (float(values[min(np.searchsorted(cumulative, q * n), len(values) - 1)]) for q in (0.005, 0.995))
    shown = [t for t in thresholds.values() if values[0] <= t <= values[-1]]
    lo, hi = min([lo, *shown]), max([hi, *shown])
    unit = metric.grid == WHOLE and hi - lo + 1 <= bins
    log = metric.log_axis and lo > 0 and not unit
    if unit:
        edges = np.arange(lo, hi + 2) - 0.5
    else:
        if hi <= lo:  # one value: a narrow axis around it
            lo, hi = (lo / 1.25, hi * 1.25) if log else (lo - max(abs(lo) * 0.1, 10 * metric.grid.step),
                                                        hi + max(abs(hi) * 0.1, 10 * metric.grid.step))
        edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    index = np.clip(np.searchsorted(edges, cells["v"].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    classes = {"kept": cells.select(is_kept()).to_series().to_numpy(),
               "rejected_here": cells.select(rejected_by(metric.decides)).to_series().to_numpy()}
    classes["rejected_elsewhere"] = ~classes["kept"] & ~classes["rejected_here"]
    weights = cells["n"].to_numpy()
    out = {"edges": [rounded(e) for e in edges], "log": bool(log), "unit_bins": bool(unit),
           "below": bool(values[0] < edges[0]), "above": bool(values[-1] > edges[-1])}
    for name, mask in classes.items():
        out[name] = np.bincount(index[mask], weights[mask], minlength=len(edges) - 1).astype(int).tolist()
    return out
