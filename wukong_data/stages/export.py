"""Export: the kept rows into DIR/final/ as WebDataset tars and matching Parquet, images copied
once per format.

The plan is decided from the per-shard kept counts alone (never a list of keys), so any worker
count, and a resumed run, write the same shards, byte for byte:

- shuffled (the default): the crawl shards are put in a seeded random order and cut into groups
  of `shuffle_group`; one task streams a group's shards together, in rounds of a few rows from
  each shuffled together, and deals the rows to the group's final shards in turn. A final shard
  so holds rows from `shuffle_group` crawl shards drawn from across the whole build, neighbours
  from any of them, shard sizes within one row of each other, and each image is read once.
- in key order (`shuffle = false`): final shard f holds kept rows f*S .. (f+1)*S-1 in key
  order, read from the one or two crawl shards that hold them.

Each output file is written under a temporary name and renamed when complete; a task whose
outputs all exist is skipped on resume. Tars have no PAX headers (integer mtimes, ustar), so a
sample costs its members' 512-byte headers and padding and nothing else. Parquet row groups
hold ROW_GROUP rows: a streaming reader (Hugging Face datasets, polars) holds ~ROW_GROUP images.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import random
import tarfile
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..build import BuildDir, check_keys
from ..card import card
from ..recipe import stages_before
from ..storage import atomic_path, path, uri, write_json_atomic
from . import StageContext
from .runner import Runner

PLAN = "_plan.json"
EXTENSIONS = {"webdataset": "tar", "parquet": "parquet"}
SIZES = "sizes.json"
CARD = "README.md"
ROW_GROUP = 256  # ~5 MB of 256-px JPEGs: what a streaming reader holds at once
READ_BATCH = 8  # rows taken from each of a group's crawl shards in turn
TAR_MTIME = 1_700_000_000  # fixed: the same rows give the same bytes
_CRAWL_COLUMNS = ["key", "url", "caption", "width", "height", "original_width", "original_height", "sha256"]


@dataclass(frozen=True)
class ExportTask:
    root: str
    out_dir: str
    sources: tuple[str, ...]  # crawl shards, in the order they are read
    outputs: tuple[int, ...]  # the final shards this task writes
    key_ranges: tuple[tuple[int, int], ...] | None  # in key order: per source, [lo, hi) of its kept rows' ranks
    seed: int
    sample: float  # keep a row when its seeded hash falls below this fraction (1.0: every kept row)
    formats: tuple[str, ...]
    image_ext: str
    stages: tuple[str, ...]  # stages before export, crawl first: their columns travel with the rows


def shard_name(index: int) -> str:
    return f"{index:05d}"


def row_hash(keys: pl.Series, seed: int) -> np.ndarray:
    """A seeded 64-bit hash per key (splitmix64 of the integer key): the shuffle's and the
    sample's randomness, the same on every machine and library version."""
    x = keys.cast(pl.UInt64).to_numpy() + np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _selected(task: ExportTask, build: BuildDir, shard: str) -> pl.DataFrame:
    """The source's rows this export takes (kept by every stage, sampled), with the stages'
    columns; a stage's own version of a crawl column (the filter's caption) replaces it."""
    last = task.stages[-1]
    rows = build.kept(last, shard).collect()
    if task.sample < 1.0:
        rows = rows.filter(pl.Series(row_hash(rows["key"], task.seed) < np.uint64(task.sample * 2**64)))
    for stage in task.stages[1:]:
        extra = build.scan_decisions(stage, shard).drop("reason").collect()
        rows = rows.join(extra, on="key", how="left")
    return rows


def _crawl_rows(build: BuildDir, shard: str, keys: pl.Series, image_ext: str):
    """The crawl columns and image of `keys`' rows, in key order, READ_BATCH rows at a time.

    img2dataset writes rows in the order downloads finish (different on every run) in row groups
    of 100; reading by key instead makes the output the same whatever that order was. Downloads
    finish roughly in key order, so a few cached row groups serve consecutive keys."""
    handle = build.crawl_path(shard).open("rb")
    file = pq.ParquetFile(handle)
    bounds = np.cumsum([file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)])
    written = build.scan_crawl(shard).select("key").collect()
    check_keys(written["key"], str(build.crawl_path(shard)))  # keys become tar member names
    index = (written.with_row_index("position")
             .join(pl.DataFrame({"key": keys}), on="key", how="inner").sort("key"))
    group_of = np.searchsorted(bounds, index["position"].to_numpy(), side="right")
    columns = [c for c in _CRAWL_COLUMNS if c in file.schema_arrow.names] + [image_ext]
    cache: dict[int, pl.DataFrame] = {}
    for start in range(0, index.height, READ_BATCH):
        wanted = pl.DataFrame({"key": index["key"][start:start + READ_BATCH]})
        groups = np.unique(group_of[start:start + READ_BATCH]).tolist()
        for group in groups:
            if group not in cache:
                if len(cache) >= 8:
                    cache.pop(next(iter(cache)))
                cache[group] = pl.from_arrow(file.read_row_group(group, columns=columns)).with_columns(
                    key=build.crawl_key(shard))
        rows = pl.concat([cache[g] for g in groups]).join(wanted, on="key", how="semi")
        yield rows.sort("key").rename({image_ext: "image"})
    handle.close()


def _rows_in_order(task: ExportTask, build: BuildDir):
    """Yield batches of complete rows in the task's order."""
    selected = {s: _selected(task, build, s) for s in task.sources}

    def complete(shard, batch):
        extra = selected[shard]
        overridden = [c for c in extra.columns if c in batch.columns and c != "key"]
        return batch.drop(overridden).join(extra, on="key", how="left")

    if task.key_ranges is not None:  # key order: each source's slice
        for shard, (lo, hi) in zip(task.sources, task.key_ranges):
            keys = selected[shard]["key"].sort().slice(lo, hi - lo)
            for batch in _crawl_rows(build, shard, keys, task.image_ext):
                yield complete(shard, batch)
        return
    # Rounds: a few rows from each crawl shard, shuffled together (seeded by the task's first
    # output and the round), so neighbours in a final shard come from any of the group's shards.
    streams = [(s, _crawl_rows(build, s, selected[s]["key"], task.image_ext)) for s in task.sources]
    round_ = 0
    while streams:
        batches = []
        for shard, stream in list(streams):
            batch = next(stream, None)
            if batch is None:
                streams.remove((shard, stream))
            else:
                batches.append(complete(shard, batch))
        if batches:
            rows = pl.concat(batches, how="diagonal_relaxed")
            order = np.random.default_rng([task.seed, task.outputs[0], round_]).permutation(rows.height)
            yield rows[order]
            round_ += 1


class _ShardWriter:
    """One final shard being written, rows as they come: a ustar tar and a Parquet file (a row
    group per ROW_GROUP rows), each a temporary file until `publish` (an ExitStack of atomic
    paths) puts it in place, which happens only if the whole task succeeds."""

    def __init__(self, publish: contextlib.ExitStack, final, index: int, formats: tuple[str, ...],
                 image_ext: str):
        import webdataset as wds

        name = shard_name(index)
        self.image_ext, self.rows = image_ext, 0
        self.paths = {ext: publish.enter_context(atomic_path(final / f"{name}.{ext}"))
                      for fmt, ext in EXTENSIONS.items() if fmt in formats}
        self.tar = self.parquet = None
        self.pending: list[pa.Table] = []
        if "tar" in self.paths:
            self.tar_stream = open(self.paths["tar"], "wb")
            self.tar = wds.TarWriter(self.tar_stream, user="wukong", group="wukong", mtime=TAR_MTIME,
                                     format=tarfile.USTAR_FORMAT)

    def write(self, rows: pl.DataFrame) -> None:
        self.rows += rows.height
        if self.tar is not None:
            for row in rows.iter_rows(named=True):
                image = row.pop("image")
                self.tar.write({"__key__": row["key"], self.image_ext: image, "txt": row["caption"],
                                "json": json.dumps(row, ensure_ascii=False).encode("utf-8")})
        if "parquet" in self.paths:
            self.pending.append(rows.rename({"image": self.image_ext}).to_arrow())
            if sum(t.num_rows for t in self.pending) >= ROW_GROUP:
                self._flush(ROW_GROUP)

    def _flush(self, at_least: int) -> None:
        table = pa.concat_tables(self.pending)
        if self.parquet is None:
            self.schema = table.schema
            self.parquet = pq.ParquetWriter(self.paths["parquet"], self.schema)
        table = table.cast(self.schema)
        full = table.num_rows - table.num_rows % at_least
        self.parquet.write_table(table.slice(0, full), row_group_size=at_least)
        self.pending = [table.slice(full)] if full < table.num_rows else []

    def finish(self) -> int:
        """Complete the files (still under their temporary names); returns the rows written."""
        if self.tar is not None:
            self.tar.close()
            self.tar_stream.close()
        if "parquet" in self.paths:
            if self.pending:
                self._flush(1)
            if self.parquet is None:  # no rows: an empty file with no columns
                pq.write_table(pa.table({}), self.paths["parquet"])
            else:
                self.parquet.close()
        return self.rows


def write_task(task: ExportTask) -> dict[int, int]:
    """Write the task's final shards; returns rows per final shard."""
    build = BuildDir(task.root)
    final = path(task.out_dir)
    with contextlib.ExitStack() as publish:  # the shards appear when it closes without an error
        writers = {i: _ShardWriter(publish, final, i, task.formats, task.image_ext) for i in task.outputs}
        seen = 0
        for rows in _rows_in_order(task, build):
            # The n-th row of the task goes to its (n mod outputs)-th shard: sizes differ by one at most.
            target = (seen + np.arange(rows.height)) % len(task.outputs)
            seen += rows.height
            for slot in np.unique(target).tolist():
                writers[task.outputs[slot]].write(rows.filter(pl.Series(target == slot)))
        return {i: w.finish() for i, w in writers.items()}


def count_sample(task: tuple) -> int:
    """Rows of one crawl shard a sampled export takes."""
    root, shard, stages, seed, sample = task
    keys = BuildDir(root).kept(stages[-1], shard).collect()["key"]
    return int((row_hash(keys, seed) < np.uint64(sample * 2**64)).sum())


def _file(final, index: int, fmt: str):
    return final / f"{shard_name(index)}.{EXTENSIONS[fmt]}"


def _task_rows(counts: dict[str, int]):
    """The rows a task writes, from the rows each crawl shard contributes."""
    def rows(task: ExportTask) -> int:
        if task.key_ranges is None:
            return sum(counts[s] for s in task.sources)
        return sum(hi - lo for lo, hi in task.key_ranges)
    return rows


def plan_tasks(counts: dict[str, int], per_shard: int, shuffle: bool, group: int, seed: int) -> list[dict]:
    """What each task reads and writes, from the rows each crawl shard contributes."""
    shards = [s for s, n in counts.items() if n]
    tasks = []
    if shuffle:
        random.Random(seed).shuffle(shards)
        next_index = 0
        for start in range(0, len(shards), group):
            members = shards[start:start + group]
            n = sum(counts[s] for s in members)
            outputs = max(1, round(n / per_shard))
            tasks.append({"sources": members, "outputs": list(range(next_index, next_index + outputs)),
                          "key_ranges": None})
            next_index += outputs
        return tasks
    # Key order: final shard f takes kept ranks [f * S, (f + 1) * S) of the build.
    starts = np.cumsum([0] + [counts[s] for s in shards])
    total = int(starts[-1])
    for f in range(-(-total // per_shard)):
        lo, hi = f * per_shard, min(total, (f + 1) * per_shard)
        first, last = np.searchsorted(starts, lo, side="right") - 1, np.searchsorted(starts, hi, side="left") - 1
        sources = shards[first:last + 1]
        ranges = [(max(lo, int(starts[i])) - int(starts[i]), min(hi, int(starts[i + 1])) - int(starts[i]))
                  for i in range(first, last + 1)]
        tasks.append({"sources": sources, "outputs": [f], "key_ranges": ranges})
    return tasks


def export_rows(ctx: StageContext, out_dir, counts: dict[str, int], *, per_shard: int, formats: list[str],
                shuffle: bool, group: int, seed: int, sample: float, description: str,
                stages: tuple[str, ...]) -> dict[str, int]:
    """Write the rows kept by `stages` (crawl first; sampled when sample < 1) as final shards in
    out_dir (resumable, any worker count); `counts` are those rows per crawl shard. Returns sizes."""
    prior = stages
    if sample < 1.0:
        shards = sorted(counts)
        sampled = ctx.engine.map(count_sample, [(str(ctx.build.root), s, prior, seed, sample) for s in shards])
        counts = dict(zip(shards, sampled))
    settings = {"per_shard": per_shard, "formats": sorted(formats), "shuffle": shuffle, "group": group, "seed": seed,
                "sample": sample, "image": ctx.recipe.crawl.encode_format, "stages": prior}
    planned = plan_tasks(counts, per_shard, shuffle, group, seed)
    tasks = [ExportTask(str(ctx.build.root), uri(out_dir), tuple(t["sources"]), tuple(t["outputs"]),
                        tuple(map(tuple, t["key_ranges"])) if t["key_ranges"] is not None else None, seed, sample,
                        tuple(formats), ctx.recipe.crawl.encode_format, prior) for t in planned]
    # The old shards go where the kept rows or settings changed: they are not this plan's.
    plan_id = hashlib.sha256(json.dumps([settings, sorted(counts.items())]).encode()).hexdigest()
    Runner.settle(out_dir / PLAN, {"id": plan_id, "settings": settings, "tasks": len(tasks)}, [out_dir])
    Runner(ctx).map(write_task, tasks, lambda task: [_file(out_dir, i, f) for i in task.outputs for f in formats],
                    description=description, size=_task_rows(counts))
    # sizes.json names the files there are: the tars (open_clip reads it), or the Parquet files.
    ext = "tar" if "webdataset" in formats else "parquet"
    return {f"{shard_name(i)}.{ext}": _rows_of(out_dir, i, formats) for t in tasks for i in t.outputs}


def _rows_of(final, index: int, formats) -> int:
    """Rows of a written final shard, from its Parquet footer or its tar's member names."""
    if "parquet" in formats:
        with (final / f"{shard_name(index)}.parquet").open("rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    with (final / f"{shard_name(index)}.tar").open("rb") as f, tarfile.open(fileobj=f) as tar:
        return len({name.split(".", 1)[0] for name in tar.getnames()})


class ExportStage:
    """The rows every stage kept into DIR/final/."""

    def run(self, ctx: StageContext) -> None:
        cfg, build = ctx.recipe.export, ctx.build
        last = stages_before(ctx.recipe.stages, "export")[-1]
        counts = {s: build.shard_counts(last, s).kept for s in build.crawl_shards()}
        sizes = export_rows(ctx, build.final_dir, counts, per_shard=cfg.samples_per_shard, formats=cfg.formats,
                            shuffle=cfg.shuffle, group=cfg.shuffle_group, seed=cfg.seed, sample=1.0,
                            description="export", stages=tuple(stages_before(ctx.recipe.stages, "export")))
        write_json_atomic(build.final_dir / SIZES, sizes)
        text = card(build.final_dir, build.read_manifest(), sizes, cfg.formats)
        with atomic_path(build.final_dir / CARD) as tmp:
            tmp.write_text(text, encoding="utf-8")
