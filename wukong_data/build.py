"""The build directory: paths, manifest, atomic writes and the row decisions of each stage.

    DIR/manifest.json          resolved recipe, package versions, per-stage status and counts
    DIR/input/NNNNN.parquet    the input rows, normalised (url, caption, invalid_url)
    DIR/crawl/NNNNN.parquet    img2dataset's output; NNNNN_stats.json marks the shard complete
    DIR/<stage>/NNNNN.parquet  one per crawl shard: key, reason (null = kept), stage columns
    DIR/final/                 the exported shards and sizes.json
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from importlib import metadata
from pathlib import Path

import polars as pl

from .errors import UserError

MANIFEST = "manifest.json"
# img2dataset's key layout: the crawl shard id (5 digits), then the row's index in that shard.
SHARD_ID_WIDTH = 5
_VERSIONED_PACKAGES = ("wukong-data", "img2dataset", "pyarrow", "polars", "pillow", "webdataset")


@contextlib.contextmanager
def atomic_path(final: Path):
    """Yield a temporary path beside `final`; rename it to `final` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_tmp(directory: Path) -> None:
    """Remove temporary files a killed run left behind (atomic_path could not clean them up)."""
    for tmp in directory.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


class BuildDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def prepare(self) -> None:
        """Create the directory, refusing a non-empty one that is not a build."""
        if self.root.exists() and any(self.root.iterdir()) and not (self.root / MANIFEST).exists():
            raise UserError(f"{self.root}: exists and is not a build directory; choose another --out")
        self.root.mkdir(parents=True, exist_ok=True)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    # --- manifest -------------------------------------------------------------------------

    def read_manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.exists():
            raise UserError(f"{self.root}: not a build directory (no {MANIFEST}); run `wukong build` first")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err})") from None

    def update_manifest(self, **changes) -> dict:
        path = self.root / MANIFEST
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"created": time.time()}
        manifest.update(changes)
        manifest["updated"] = time.time()
        manifest["versions"] = package_versions()
        write_json_atomic(path, manifest)
        return manifest

    def set_stage_status(self, stage: str, **status) -> None:
        manifest = self.read_manifest()
        manifest.setdefault("stages", {}).setdefault(stage, {}).update(status)
        self.update_manifest(stages=manifest["stages"])

    # --- shards and decisions -------------------------------------------------------------

    def crawl_shards(self) -> list[str]:
        """Ids of the complete crawl shards: img2dataset writes NNNNN_stats.json last."""
        crawl = self.stage_dir("crawl")
        return sorted(
            p.name[: -len("_stats.json")]
            for p in crawl.glob("*_stats.json")
            if (crawl / f"{p.name[: -len('_stats.json')]}.parquet").exists()
        )

    @staticmethod
    def shard_of(key: str) -> str:
        return key[:SHARD_ID_WIDTH]

    def crawl_path(self, shard: str) -> Path:
        return self.stage_dir("crawl") / f"{shard}.parquet"

    def decisions(self, stage: str) -> pl.LazyFrame:
        """key and reason of every row that entered `stage` (reason null = kept)."""
        if stage == "crawl":
            from .stages.crawl import crawl_decisions

            return crawl_decisions(self)
        paths = sorted(self.stage_dir(stage).glob("[0-9]*.parquet"))
        if not paths:
            return pl.LazyFrame(schema={"key": pl.String, "reason": pl.String})
        return pl.scan_parquet(paths).select("key", "reason")

    def kept_keys(self, stages: list[str]) -> pl.LazyFrame:
        """Keys kept by every one of `stages` (which must start with crawl)."""
        kept = self.decisions(stages[0]).filter(pl.col("reason").is_null()).select("key")
        for stage in stages[1:]:
            rejected = self.decisions(stage).filter(pl.col("reason").is_not_null()).select("key")
            kept = kept.join(rejected, on="key", how="anti")
        return kept
