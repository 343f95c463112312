"""Score: every pair's FILIP similarity, then keep the pairs that match.

A global decision in steps (DESIGN.md), each through the engine: a map writes `filip_score` per
row to DIR/score/_map/ (a GPU actor's work where there is one); with `keep_top_fraction`, a radix
selection over those files finds the exact cut (select.py: a few histogram passes, bounded
memory); each shard's decisions are then written with their counts: key, reason
(low_filip_score, or decode_failed where the image could not be decoded), filip_score. With
`bootstrap_steps`, the stage first trains a reference model on a seeded sample of the rows kept
so far (DIR/score/_bootstrap/) and scores with it: no model needed from anywhere else.
"""
from __future__ import annotations

import functools
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ...build import BuildDir
from ...filip.files import CONFIG, VOCAB, WEIGHTS
from ...engines import Resources
from ...errors import UserError
from ...storage import atomic_path, is_local, local_copy, path, uri, write_json_atomic
from ...recipe import ScoreConfig, stages_before
from .. import StageContext, select
from ..per_shard import entering_counts, run_per_shard, stage_config
from ..runner import Runner

BOOTSTRAP = "_bootstrap"
MAP = "_map"


def pretrained_clip(cfg) -> tuple[str, str, str] | None:
    """(library, model name, weights) where the recipe scores with a user's pretrained CLIP."""
    if cfg.open_clip_model:
        return "open_clip", cfg.open_clip_model, cfg.open_clip_weights
    if cfg.cn_clip_model:
        return "cn_clip", cfg.cn_clip_model, cfg.cn_clip_weights
    return None


@functools.lru_cache(maxsize=2)
def _scorer(checkpoint: str, clip: tuple[str, str, str] | None, device: str, batch_size: int):
    from .scorer import ClipScorer, Scorer

    if clip:
        return ClipScorer(*clip, device, batch_size)
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
        clip = pretrained_clip(ScoreConfig(**s))
        return cls(_scorer(s["checkpoint"], clip, s["device"], s["batch_size"]), config["image_column"])

    def process(self, rows: pl.DataFrame) -> pl.DataFrame:
        scores = self.scorer.score(rows[self.image_column].to_list(), rows["caption"].to_list())
        return pl.DataFrame({"key": rows["key"], "filip_score": pl.Series(scores, dtype=pl.Float32)})


def decide(scores: pl.DataFrame, min_score: float, cutoff: np.ndarray | None, keep_none: bool = False) -> pl.Series:
    """Reason per row of scores (key, filip_score), in its order. A NaN score (the image did not
    decode) is `decode_failed` and never takes a place. With a `cutoff` (the digits of the last
    row kept by keep_top_fraction, select.py), rows up to it in the order are kept."""
    failed = scores["filip_score"].is_nan()
    if cutoff is not None or keep_none:
        digits = select.order_digits(scores["filip_score"].to_numpy(), scores["key"].cast(pl.UInt64).to_numpy())
        kept = select.at_or_before(digits, cutoff) if cutoff is not None else np.zeros(scores.height, bool)
        low = ~pl.Series(kept)
    else:
        low = scores["filip_score"] < min_score
    reason = pl.when(failed).then(pl.lit("decode_failed")).when(low).then(pl.lit("low_filip_score")) \
        .otherwise(pl.lit(None, pl.String))
    return scores.select(reason.alias("reason"))["reason"]


@dataclass(frozen=True)
class ApplyTask:
    root: str
    shard: str
    min_score: float
    cutoff: tuple[int, ...] | None
    keep_none: bool


def apply_scores(task: ApplyTask) -> int:
    build = BuildDir(task.root)
    scores = pl.read_parquet(uri(build.stage_dir("score") / MAP / f"{task.shard}.parquet"))
    cutoff = np.array(task.cutoff, np.uint16) if task.cutoff is not None else None
    reasons = decide(scores, task.min_score, cutoff, task.keep_none)
    build.write_decisions("score", task.shard, scores.select("key", reason=reasons, filip_score="filip_score"))
    return scores.height


def count_scored(path: str) -> int:
    return pl.scan_parquet(path).filter(pl.col("filip_score").is_not_nan()).select(pl.len()).collect().item()


def _check_pretrained(source: str, library: str, weights: str) -> None:
    if not weights or not path(weights).is_file():
        raise UserError(f"{source}: [score].{library}_weights must be a local weights file (got {weights!r}); "
                        f"nothing is downloaded")
    if library == "cn_clip" and importlib.util.find_spec("cn_clip") is None:
        raise UserError(f"{source}: [score].cn_clip_model needs the cn_clip package: pip install 'wukong-data[cn-clip]'")


class ScoreStage:
    """FILIP (or CLIP) pair scores, then one global threshold."""

    def run(self, ctx: StageContext) -> None:
        cfg, build = ctx.recipe.score, ctx.build
        out = build.stage_dir("score")
        shards = build.crawl_shards()
        if not Runner.todo(shards, lambda shard: [build.decision_path("score", shard)]):
            return
        if not sum(entering_counts(ctx, "score").values()):  # nothing left to score: no model to train or load
            for shard in shards:
                build.write_decisions("score", shard, pl.DataFrame(
                    schema={"key": pl.String, "reason": pl.String, "filip_score": pl.Float32}))
            return
        config = stage_config(ctx.recipe, "score")
        clip = pretrained_clip(cfg)
        if clip:
            _check_pretrained(ctx.recipe.source, clip[0], clip[2])
        else:
            checkpoint = self._bootstrap(ctx, out / BOOTSTRAP) if cfg.bootstrap_steps else cfg.checkpoint
            if not checkpoint or not (path(checkpoint) / WEIGHTS).exists():
                raise UserError(f"{ctx.recipe.source}: [score].checkpoint must be a `wukong train-reference` run "
                                f"folder (got {checkpoint!r}), or set [score].bootstrap_steps to train one on the build")
            config["score"]["checkpoint"] = uri(path(checkpoint))
        run_per_shard(ctx, "score", "wukong_data.stages.score:ScoreMap", "score", map_dir=out / MAP, config=config,
                      resources=Resources(gpus=1))
        paths = [uri(out / MAP / f"{s}.parquet") for s in shards]
        cutoff, keep_none = None, False
        if cfg.keep_top_fraction:
            scored = sum(ctx.engine.imap(count_scored, paths))
            keep = round(cfg.keep_top_fraction * scored)
            if keep:
                cutoff = tuple(int(d) for d in select.kth(ctx.engine, paths, keep))
            keep_none = keep == 0
        Runner(ctx).map(apply_scores, [ApplyTask(str(build.root), s, cfg.min_score, cutoff, keep_none) for s in shards],
                        lambda task: [build.decision_path("score", task.shard)])
        counts = build.stage_counts("score")
        failed = (counts.rejected or {}).get("decode_failed", 0)
        if failed > 0.01 * counts.rows_in:
            ctx.ui.print(f"[bold yellow]score: {failed:,} of {counts.rows_in:,} images could not be decoded "
                         f"(decode_failed); check [crawl].encode_format and the crawl's images[/]")

    def _bootstrap(self, ctx: StageContext, folder):
        """Train the `tiny` (or configured) reference model on a seeded sample of steps x batch
        rows kept so far, read from their shards (not a copy of every kept row). The trainer
        needs local files: on object storage the sample is trained on from a local copy and the
        model is uploaded beside it, where every scoring worker finds it. Its weights, written
        last, mark it done."""
        run = folder / "run"
        Runner.once(run / WEIGHTS, lambda: self._train_bootstrap(ctx, folder, run))
        return run

    def _train_bootstrap(self, ctx: StageContext, folder, run) -> None:
        from ...filip.config import TrainConfig
        from ...filip.train import train
        from ..export import export_rows

        cfg = ctx.recipe.score
        previous = stages_before(ctx.recipe.stages, "score")[-1]
        counts = {s: ctx.build.shard_counts(previous, s).kept for s in ctx.build.crawl_shards()}
        kept = sum(counts.values())
        wanted = cfg.bootstrap_steps * cfg.bootstrap_batch_size
        sample = min(1.0, wanted / kept) if kept else 1.0
        sizes = export_rows(ctx, folder / "data" / "final", counts, per_shard=1000, formats=["webdataset"],
                            shuffle=False, group=1, seed=ctx.recipe.export.seed, sample=sample,
                            description="score: bootstrap sample", stages=tuple(stages_before(ctx.recipe.stages, "score")))
        write_json_atomic(folder / "data" / "final" / "sizes.json", sizes)
        ctx.ui.print(f"score: training a {cfg.bootstrap_model} reference model on {sum(sizes.values()):,} of "
                     f"{kept:,} kept pairs")
        scratch = Path(tempfile.gettempdir()) / "wukong-bootstrap"
        data = local_copy(folder / "data", scratch / "data")
        # A remote build trains in a local folder named by its data's version (a rebuild's new
        # sample never resumes an older run).
        local_run = Path(run) if is_local(run) else scratch / "runs" / data.name
        train(TrainConfig(data=str(data), out=str(local_run), model=cfg.bootstrap_model,
                          steps=cfg.bootstrap_steps, batch_size=cfg.bootstrap_batch_size, lr=cfg.bootstrap_lr,
                          warmup=max(1, cfg.bootstrap_steps // 10), workers=1, seed=0,
                          resume=(local_run / "checkpoints" / "latest").exists()), ctx.ui)
        if not is_local(run):
            for name in (CONFIG, VOCAB, WEIGHTS):  # the weights last: their presence marks the run done
                with atomic_path(run / name) as tmp:
                    shutil.copyfile(local_run / name, tmp)
            for scratch_copy in (local_run, data):  # this build's local copies are scratch once uploaded
                shutil.rmtree(scratch_copy, ignore_errors=True)
