"""Score: every pair's FILIP similarity, then keep the pairs that match.

Two phases (DESIGN.md): a parallel map writes `filip_score` per row to DIR/score/_map/; one
reduce decides the threshold (`min_score`, or `keep_top_fraction` of all rows, ties broken by
key); decisions go to DIR/score/NNNNN.parquet: key, reason (low_filip_score), filip_score.
With `bootstrap_steps`, the stage first trains a reference model on the rows kept so far
(DIR/score/_bootstrap/) and scores with it: no model needed from anywhere else.
"""
from __future__ import annotations

import functools
from pathlib import Path

import polars as pl

from ...errors import UserError
from .. import StageContext
from ...recipe import stages_before
from ..per_shard import run_two_phase, stage_config

BOOTSTRAP = "_bootstrap"


@functools.lru_cache(maxsize=2)
def _scorer(checkpoint: str, open_clip_model: str, open_clip_weights: str, device: str, batch_size: int):
    from .scorer import ClipScorer, Scorer

    if open_clip_model:
        return ClipScorer(open_clip_model, open_clip_weights, device, batch_size)
    return Scorer(checkpoint, device, batch_size)


class ScoreMap:
    """The map phase: filip_score per entering row (NaN where the image does not decode)."""

    def __init__(self, scorer, image_column: str):
        self.scorer = scorer
        self.image_column = image_column
        self.input_columns = ["key", "caption", image_column]

    @classmethod
    def from_config(cls, config: dict) -> "ScoreMap":
        s = config["score"]
        return cls(_scorer(s["checkpoint"], s["open_clip_model"], s["open_clip_weights"], s["device"], s["batch_size"]),
                   config["image_column"])

    def process(self, rows: pl.DataFrame) -> pl.DataFrame:
        scores = self.scorer.score(rows[self.image_column].to_list(), rows["caption"].to_list())
        return pl.DataFrame({"key": rows["key"], "filip_score": pl.Series(scores, dtype=pl.Float32)})


def decide(scores: pl.DataFrame, min_score: float, keep_top_fraction: float) -> pl.Series:
    """Reason per row of scores (key, filip_score), in its order. A NaN score (the image did not
    decode) is `decode_failed` and never takes a place: `keep_top_fraction` is a fraction of the
    rows that have a score."""
    failed = scores["filip_score"].is_nan()
    if keep_top_fraction:
        scored = scores.with_row_index().filter(~failed)
        keep = round(keep_top_fraction * scored.height)
        best = scored.sort(["filip_score", "key"], descending=[True, False])["index"][:keep]
        low = ~pl.Series(range(scores.height)).is_in(best.implode())
    else:
        low = scores["filip_score"] < min_score
    reason = pl.when(failed).then(pl.lit("decode_failed")).when(low).then(pl.lit("low_filip_score")) \
        .otherwise(pl.lit(None, pl.String))
    return scores.select(reason.alias("reason"))["reason"]


class ScoreStage:
    """FILIP (or CLIP) pair scores, then one global threshold."""

    def run(self, ctx: StageContext) -> None:
        cfg = ctx.recipe.score
        out = ctx.build.stage_dir("score")
        if all((out / f"{s}.parquet").exists() for s in ctx.build.crawl_shards()):
            return
        config = stage_config(ctx.recipe, "score")
        if cfg.open_clip_model:
            if not Path(cfg.open_clip_weights).is_file():
                raise UserError(f"{ctx.recipe.source}: [score].open_clip_weights must be a local weights file "
                                f"(got {cfg.open_clip_weights!r}); nothing is downloaded")
        else:
            checkpoint = self._bootstrap(ctx, out / BOOTSTRAP) if cfg.bootstrap_steps else cfg.checkpoint
            if not checkpoint or not (Path(checkpoint) / "model.safetensors").exists():
                raise UserError(f"{ctx.recipe.source}: [score].checkpoint must be a `wukong train-reference` run "
                                f"folder (got {checkpoint!r}), or set [score].bootstrap_steps to train one on the build")
            config["score"]["checkpoint"] = str(checkpoint)

        def reduce(records: pl.LazyFrame) -> pl.DataFrame:
            scores = records.collect().sort("key")
            return scores.select("key", reason=decide(scores, cfg.min_score, cfg.keep_top_fraction))

        run_two_phase(ctx, "score", "wukong_data.stages.score:ScoreMap", reduce, carry=["filip_score"], config=config)
        counts = ctx.build.decisions("score").group_by(pl.col("reason") == "decode_failed").len().collect()
        failed = counts.filter(pl.col("reason"))["len"].sum()
        if failed > 0.01 * counts["len"].sum():
            ctx.ui.print(f"[bold yellow]score: {failed:,} of {counts['len'].sum():,} images could not be decoded "
                         f"(decode_failed); check [crawl].encode_format and the crawl's images[/]")

    def _bootstrap(self, ctx: StageContext, folder: Path) -> Path:
        """Train the `tiny` (or configured) reference model on the rows kept so far."""
        from ...filip.train import TrainConfig, train
        from ..export import export_rows

        cfg = ctx.recipe.score
        run = folder / "run"
        if (run / "model.safetensors").exists():
            return run
        prior = stages_before(ctx.recipe.stages, "score")
        keys = ctx.build.kept_keys(prior).sort("key").collect()["key"].to_list()
        # The trainer reads WebDataset shards: one extra copy of the kept images, for the bootstrap only.
        export_rows(ctx, keys, folder / "data" / "final", 1000, ["webdataset", "parquet"], prior, "score: bootstrap data")
        ctx.ui.print(f"score: training a {cfg.bootstrap_model} reference model on {len(keys)} kept pairs")
        train(TrainConfig(data=str(folder / "data"), out=str(run), model=cfg.bootstrap_model,
                          steps=cfg.bootstrap_steps, batch_size=cfg.bootstrap_batch_size, lr=cfg.bootstrap_lr,
                          warmup=max(1, cfg.bootstrap_steps // 10), workers=1, seed=0,
                          resume=(run / "checkpoints" / "latest").exists()), ctx.ui)
        return run
