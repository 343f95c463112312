"""Dedupe: exact URL, exact image, over-frequent caption, evaluation overlap, near-duplicate image.

A global decision in steps, each run through the engine, each with memory bounded by a shard or a
partition, each resumable (its outputs under DIR/dedupe/_*/ are its completion markers):

    map          per crawl shard: signatures (signatures.py) -> _map/NNNNN.parquet, plus the exact
                 rules' records sorted by their hashes (_map/{url,image,caption}/)
    exact        per hash-range partition: dup_url, then dup_image, and frequent_caption (exact.py)
    exact apply  per crawl shard: the exact rules' reasons by precedence; the views of the rows
                 they kept go to the near-duplicate pool
    near         collapse, search, confirm, group (near.py, search.py)
    apply        per crawl shard: DIR/dedupe/NNNNN.parquet (key, reason, dup_of, phash) with counts

A row gets the first reason in the order dup_url, dup_image, frequent_caption, eval_overlap,
near_dup_image. The decisions are the same for any partition count and any worker count.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import polars as pl

from ...build import BuildDir
from ...engines import Resources
from ...storage import atomic_path, path, remove_stale_tmp, uri
from .. import StageContext
from ..per_shard import entering_counts, run_per_shard
from ..runner import Runner
from . import exact, near
from .against import against_signatures
from .partitions import partition_count, read_keys, write_sorted
from .search import plan, task_memory
from .signatures import VIEWS, signatures

MAP = "_map"


class SignatureMap:
    """The map phase's per-row processor: one record per row, and the exact rules' records."""

    def __init__(self, image_column: str):
        self.image_column = image_column
        self.input_columns = ["key", "url", "caption", "sha256", "original_width", "original_height", image_column]

    @classmethod
    def from_config(cls, config: dict) -> "SignatureMap":
        return cls(config["image_column"])

    def process(self, rows: pl.DataFrame) -> pl.DataFrame:
        return signatures(rows, self.image_column).with_columns(key_id=pl.col("key").cast(pl.UInt64))

    def write(self, records: pl.DataFrame, out_dir, shard: str) -> None:
        write_sorted(records.select("url_hash", "key_id", "image_hash"), "url_hash", out_dir / "url" / f"{shard}.parquet")
        write_sorted(records.select("image_hash", "key_id").drop_nulls(), "image_hash",
                     out_dir / "image" / f"{shard}.parquet")
        write_sorted(records.select("caption_hash", "key_id"), "caption_hash", out_dir / "caption" / f"{shard}.parquet")
        # Last: its presence marks the shard's map as complete.
        with atomic_path(out_dir / f"{shard}.parquet") as tmp:
            records.select("key_id", "key", "phash", "pixels", "view_hashes", "view_colours").sort("key_id") \
                .write_parquet(tmp)


@dataclass(frozen=True)
class ShardTask:
    root: str
    shard: str
    partitions: int
    rules: tuple[str, ...]
    pool: bool  # write the near-duplicate pool of the rows the exact rules keep


def _decided_path(dedupe, shard: str):
    return dedupe / exact.EXACT / "decided" / f"{shard}.parquet"


def apply_exact(task: ShardTask) -> int:
    """A shard's exact-rule reasons (first by precedence), and its rows' views for the pool."""
    build = BuildDir(task.root)
    dedupe = build.stage_dir("dedupe")
    lo, hi = build.layout.key_range(task.shard)
    reasons = {"url": "dup_url", "image": "dup_image", "caption": "frequent_caption"}
    found = [read_keys(exact.rule_outputs(dedupe, rule, task.partitions), lo, hi).with_columns(reason=pl.lit(reasons[rule]))
             for rule in task.rules]
    schema = {"key_id": pl.UInt64, "reason": pl.String, "dup_of": pl.UInt64}
    decided = pl.concat([f.select(list(schema)).cast(schema) for f in found if f.height]
                        or [pl.DataFrame(schema=schema)])
    order = {code: i for i, code in enumerate(reasons.values())}
    decided = decided.sort(pl.col("reason").replace_strict(order, return_dtype=pl.Int8)).unique("key_id", keep="first")
    if task.pool:
        records = pl.read_parquet(uri(dedupe / MAP / f"{task.shard}.parquet"),
                                  columns=["key_id", "view_hashes", "view_colours"])
        alive = records.join(decided, on="key_id", how="anti")
        write_sorted(near.pool_entries(alive), "hash", dedupe / near.NEAR / "pool" / f"{task.shard}.parquet")
    with atomic_path(_decided_path(dedupe, task.shard)) as tmp:
        decided.sort("key_id").write_parquet(tmp)
    return decided.height


def apply_final(task: ShardTask) -> int:
    """DIR/dedupe/NNNNN.parquet: every row that entered, its reason (null = kept), dup_of, phash."""
    build = BuildDir(task.root)
    dedupe = build.stage_dir("dedupe")
    lo, hi = build.layout.key_range(task.shard)
    rows = pl.read_parquet(uri(dedupe / MAP / f"{task.shard}.parquet"), columns=["key_id", "key", "phash"])
    decided = [pl.read_parquet(uri(_decided_path(dedupe, task.shard)))]
    if task.pool:
        for name, reason in (("eval", "eval_overlap"), ("losers", "near_dup_image")):
            found = read_keys([dedupe / near.NEAR / f"{name}.parquet"], lo, hi)
            if found.height:
                decided.append(found.select("key_id", reason=pl.lit(reason), dup_of="dup_of"))
    # Precedence: the exact rules' reason, then eval_overlap, then near_dup_image (eval rows never
    # joined a near-duplicate group, so no row gets both of the last two).
    decided = pl.concat(decided).unique("key_id", keep="first")
    out = rows.join(decided, on="key_id", how="left").sort("key_id").select(
        "key", "reason", dup_of=build.layout.key_expr(pl.col("dup_of")), phash="phash")
    build.write_decisions("dedupe", task.shard, out)
    return out.height


class DedupeStage:
    """Exact, frequency and near-duplicate rules, decided over the whole build in partitions."""

    def run(self, ctx: StageContext) -> None:
        build, runner = ctx.build, Runner(ctx)
        if not runner.todo(build.crawl_shards(), lambda shard: [build.decision_path("dedupe", shard)]):
            return
        partitions, rules, pool = self.exact_rules(ctx, runner)
        if pool:
            self.near_duplicates(ctx, runner, partitions)
        runner.map(apply_final, [ShardTask(str(build.root), s, partitions, rules, pool) for s in build.crawl_shards()],
                   lambda task: [build.decision_path("dedupe", task.shard)])

    def exact_rules(self, ctx: StageContext, runner: Runner) -> tuple[int, tuple[str, ...], bool]:
        """The signatures (map), the exact rules per partition and their apply per shard:
        (partitions, the exact rules on, whether the near-duplicate pool is filled)."""
        cfg, build = ctx.recipe.dedupe, ctx.build
        dedupe = build.stage_dir("dedupe")
        for folder in [dedupe, *[p for p in dedupe.rglob("*") if p.is_dir()]]:
            remove_stale_tmp(folder)
        run_per_shard(ctx, "dedupe", "wukong_data.stages.dedupe:SignatureMap", "dedupe: signatures",
                      map_dir=dedupe / MAP)
        partitions = self.partitions(ctx)
        # Partial work of another partition count ([dedupe].partitions changed) is redone.
        runner.settle(dedupe / "_partitions.json", {"partitions": partitions},
                      [dedupe / exact.EXACT, dedupe / near.NEAR])
        rules = tuple(r for r, on in (("url", cfg.exact_url), ("image", cfg.exact_image),
                                      ("caption", bool(cfg.max_caption_count))) if on)
        self._exact(ctx, runner, rules, partitions)
        pool = cfg.near_duplicates or bool(cfg.against)
        runner.map(apply_exact, [ShardTask(str(build.root), s, partitions, rules, pool) for s in build.crawl_shards()],
                   lambda task: [_decided_path(dedupe, task.shard)])
        return partitions, rules, pool

    @staticmethod
    def partitions(ctx: StageContext) -> int:
        """The partition count for the rows entering dedupe. The near-duplicate pool holds an
        entry per view of each row: it sets the partition size."""
        cfg = ctx.recipe.dedupe
        rows = sum(entering_counts(ctx, "dedupe").values())
        return partition_count(rows * (len(VIEWS) if cfg.near_duplicates else 1), cfg.partitions)

    def _exact(self, ctx: StageContext, runner: Runner, rules: tuple[str, ...], partitions: int) -> None:
        dedupe = ctx.build.stage_dir("dedupe")
        shards = tuple(ctx.build.crawl_shards())
        tasks = [exact.PartitionTask(uri(dedupe), shards, rule, p, partitions, ctx.recipe.dedupe.max_caption_count)
                 for rule in rules for p in range(partitions)]
        outputs = lambda task: [dedupe / exact.EXACT / task.rule / f"{task.p:05d}.parquet"]  # noqa: E731
        # The image rule reads the url rule's rejects: url (and caption) partitions first.
        for step in ([r for r in rules if r != "image"], [r for r in rules if r == "image"]):
            if step:
                runner.map(exact.reduce_partition, [t for t in tasks if t.rule in step], outputs,
                           description=f"dedupe: exact {' and '.join(step)} rule{'s' * (len(step) > 1)}", unit="partitions")

    def near_duplicates(self, ctx: StageContext, runner: Runner, partitions: int) -> None:
        """Collapse, search, confirm and group the pool's near duplicates (near.py, search.py);
        its losers file marks the whole step done."""
        folder = ctx.build.stage_dir("dedupe") / near.NEAR
        runner.once(folder / "losers.parquet", lambda: self._near_duplicates(ctx, runner, folder, partitions))

    def _near_duplicates(self, ctx: StageContext, runner: Runner, folder, partitions: int) -> None:
        cfg, build = ctx.recipe.dedupe, ctx.build
        pool_files = [folder / "pool" / f"{s}.parquet" for s in build.crawl_shards()]
        if cfg.against:
            against = against_signatures(cfg.against, build.stage_dir("dedupe") / "_against.parquet", ctx.ui)
            write_sorted(near.against_entries(against), "hash", folder / "pool" / f"{near.AGAINST}.parquet")
            pool_files.append(folder / "pool" / f"{near.AGAINST}.parquet")
        runner.map(near.collapse_partition,
                   [near.CollapseTask(uri(folder), tuple(map(uri, pool_files)), p, partitions) for p in range(partitions)],
                   lambda task: [folder / "reps" / f"{task.p:05d}.parquet"])
        reps = near.Representatives(folder, partitions)
        radius = cfg.hamming_radius
        tables = plan(radius, reps.distinct).tables
        per_task = max(1, -(-len(tables) // (4 * ctx.engine.workers)))
        search = [near.SearchTask(uri(folder), radius, tuple(range(start, min(start + per_task, len(tables)))),
                                  uri(folder / "pairs" / f"{start:05d}.npy"))
                  for start in range(0, len(tables), per_task)]
        runner.map(near.search_tables, search, lambda task: [path(task.out)],
                   description="dedupe: near-duplicate search", size=lambda task: len(task.tables), unit="tables",
                   resources=Resources(gpus=1, memory=task_memory(reps.distinct)))
        self._decide(ctx, reps, [path(t.out) for t in search], partitions)
        # The representatives' arrays are scratch (~22 GB at 100M rows): gone once decided.
        shutil.rmtree(reps.arrays, ignore_errors=True)

    def _decide(self, ctx: StageContext, reps: "near.Representatives", pair_files: list, partitions: int) -> None:
        cfg, build = ctx.recipe.dedupe, ctx.build
        folder = build.stage_dir("dedupe") / near.NEAR
        row_pairs, eval_rows = [], []
        for keys_a, keys_b, against_a, against_b in near.confirmed_pairs(reps, pair_files, cfg.colour_tolerance):
            eval_rows += [keys_a[against_b], keys_b[against_a]]
            rows = ~against_a & ~against_b
            row_pairs.append(np.stack([keys_a[rows], keys_b[rows]], axis=1))
        eval_keys = np.unique(np.concatenate(eval_rows)) if eval_rows else np.empty(0, np.uint64)
        ties = pl.concat([pl.read_parquet(uri(folder / "ties" / f"{p:05d}.parquet")) for p in range(partitions)])
        edges = np.concatenate(row_pairs) if row_pairs else np.empty((0, 2), np.uint64)
        tie_edges = ties.select("key_id", "rep").to_numpy().astype(np.uint64)
        # Rows that overlap an evaluation image leave the build; they join no group.
        keep = ~np.isin(edges, eval_keys).any(axis=1)
        keep_ties = ~np.isin(tie_edges, eval_keys).any(axis=1)
        # A row whose identical copy (a tie) overlaps an evaluation image overlaps it too.
        tied_to_eval = tie_edges[~keep_ties].ravel()
        eval_keys = np.unique(np.concatenate([eval_keys, tied_to_eval]))
        losers = near.group(edges[keep], tie_edges[keep_ties], lambda keys: self._pixels(build, keys)) \
            if cfg.near_duplicates else near.group(edges[:0], tie_edges[:0], None)
        write_sorted(pl.DataFrame({"key_id": pl.Series(eval_keys, dtype=pl.UInt64), "dup_of": pl.Series(
            [None] * len(eval_keys), dtype=pl.UInt64)}), "key_id", folder / "eval.parquet")
        write_sorted(losers, "key_id", folder / "losers.parquet")

    @staticmethod
    def _pixels(build: BuildDir, keys: np.ndarray) -> np.ndarray:
        """Original pixels of `keys`, read from the map records of the shards they are in."""
        wanted = pl.DataFrame({"key_id": pl.Series(keys, dtype=pl.UInt64)}).with_row_index("order")
        layout = build.layout
        shards = [layout.shard_name(int(s)) for s in np.unique(keys // np.uint64(10 ** layout.row_digits))]
        found = pl.concat([pl.read_parquet(uri(build.stage_dir("dedupe") / MAP / f"{s}.parquet"),
                                           columns=["key_id", "pixels"])
                           .join(wanted, on="key_id") for s in shards])
        return found.sort("order")["pixels"].fill_null(0).to_numpy()
