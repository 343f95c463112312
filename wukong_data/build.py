"""The build directory: paths, manifest, atomic writes and the row decisions of each stage.

    DIR/manifest.json              resolved recipe, package versions, key layout, per-stage status
                                   and counts (rows in, kept, rejected per reason)
    DIR/input/NNNNN.parquet        the input rows, normalised (url, caption, invalid_url)
    DIR/crawl/NNNNN.parquet        img2dataset's output; NNNNN_stats.json marks the shard complete
    DIR/<stage>/NNNNN.parquet      one per crawl shard: key, reason (null = kept), stage columns
    DIR/<stage>/NNNNN.counts.json  beside each decision file: rows in, kept, rejected per reason
    DIR/final/                     the exported shards and sizes.json

Keys are img2dataset's: the crawl shard id (`shard_digits` wide), then the row's index in the
shard (`row_digits` wide). Both widths are fixed when the input is prepared and kept in the
manifest; every key/shard computation goes through `KeyLayout`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import polars as pl

from .errors import UserError
from .outputs import check_decisions, crawl_reason
from .storage import atomic_path, create_folder, is_local, path, read_json, uri, write_json_atomic

__all__ = ["BuildDir", "Counts", "KeyLayout"]

MANIFEST = "manifest.json"
COUNTS = ".counts.json"
ADOPTED = "_adopted.json"  # DIR/crawl/: the img2dataset shards adopted as the crawl (stages/adopt.py)
_VERSIONED_PACKAGES = ("wukong-data", "img2dataset", "pyarrow", "polars", "pillow", "webdataset")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass(frozen=True)
class KeyLayout:
    """img2dataset's key: shard id then row index, zero-padded to fixed widths."""

    shard_digits: int
    row_digits: int

    @classmethod
    def for_crawl(cls, n_shards: int, samples_per_shard: int) -> "KeyLayout":
        # img2dataset pads shard ids to `oom_shard_count` digits (we pass this width) and row
        # indices to ceil(log10(samples_per_shard)) digits.
        row_digits = len(str(samples_per_shard - 1)) if samples_per_shard > 1 else 0
        return cls(max(5, len(str(max(0, n_shards - 1)))), row_digits)

    def shard_name(self, shard_id: int) -> str:
        return f"{shard_id:0{self.shard_digits}d}"

    def shard_of(self, key: str) -> str:
        return key[:self.shard_digits]

    def key_range(self, shard: str) -> tuple[int, int]:
        """[lo, hi) of the integer keys (int(key)) of a crawl shard."""
        lo = int(shard) * 10 ** self.row_digits
        return lo, lo + 10 ** self.row_digits

    def key_expr(self, key_id: pl.Expr) -> pl.Expr:
        """The string key of an integer key column."""
        return key_id.cast(pl.String).str.zfill(self.shard_digits + self.row_digits)


def check_keys(keys: pl.Series, where: str) -> None:
    """Keys name files (tar members, align's pictures): a key is digits only, so no name made from
    one can leave its folder, whatever a damaged or hostile build holds."""
    bad = keys.filter(~keys.str.contains(r"^[0-9]+$"))
    if bad.len():
        raise UserError(f"{where}: {bad[0]!r} is not a key (keys are digits only); the build is damaged")


@dataclass
class Counts:
    """A decision file's accounting: rows in = kept + rejected (per reason)."""

    rows_in: int = 0
    kept: int = 0
    rejected: dict[str, int] | None = None

    @classmethod
    def of(cls, reasons: pl.Series) -> "Counts":
        rejected = reasons.drop_nulls().value_counts(sort=True)
        return cls(reasons.len(), reasons.null_count(), dict(rejected.iter_rows()))

    def add(self, other: "Counts") -> None:
        self.rows_in += other.rows_in
        self.kept += other.kept
        rejected = dict(self.rejected or {})
        for reason, n in (other.rejected or {}).items():
            rejected[reason] = rejected.get(reason, 0) + n
        self.rejected = rejected

    def to_dict(self) -> dict:
        rejected = dict(sorted((self.rejected or {}).items(), key=lambda kv: (-kv[1], kv[0])))
        return {"rows_in": self.rows_in, "kept": self.kept, "rejected": rejected}


class BuildDir:
    def __init__(self, root: str | Path):
        self.root = path(root)  # a local path or a URL (storage.py)
        self._layout: KeyLayout | None = None
        self._adopted: dict | None = None

    def prepare(self) -> None:
        """Create the directory, refusing a non-empty one that is not a build."""
        if self.root.exists() and any(self.root.iterdir()) and not (self.root / MANIFEST).exists():
            raise UserError(f"{self.root}: exists and is not a build directory; choose another --out")
        if self.root.protocol in ("", "file", "local"):
            create_folder(self.root)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def reuse_dir(self, stage: str) -> Path:
        """DIR/_reuse/<stage>: a row-wise stage's records from its last run, kept while an earlier
        stage is redone (pipeline.py) so that rows entering it again are not computed again."""
        return self.root / "_reuse" / stage

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def logs(self) -> Path:
        """DIR/logs: libraries' own output (img2dataset's)."""
        return self.root / "logs"

    @property
    def log_dir(self) -> Path:
        """Where libraries write their output while a stage runs: a local folder, DIR/logs when the
        build is local; for a remote build a scratch folder that publish_logs empties into it."""
        if is_local(self.root):
            return Path(self.logs)
        return Path(tempfile.gettempdir()) / "wukong-logs" / hashlib.sha256(str(self.root).encode()).hexdigest()[:16]

    def publish_logs(self) -> None:
        """A remote build's scratch logs appended to its DIR/logs, and the scratch folder removed."""
        scratch = self.log_dir
        if is_local(self.root) or not scratch.exists():
            return
        for log in scratch.iterdir():
            target = self.logs / log.name
            earlier = target.read_bytes() if target.exists() else b""
            target.write_bytes(earlier + log.read_bytes())
        shutil.rmtree(scratch)

    # --- manifest -------------------------------------------------------------------------

    def read_manifest(self) -> dict:
        path = self.root / MANIFEST
        if not self.root.exists():
            raise UserError(f"{self.root}: no such build directory")
        if not path.exists():
            raise UserError(f"{self.root}: not a build directory (no {MANIFEST}); run `wukong build` first")
        return read_json(path)

    def update_manifest(self, **changes) -> dict:
        path = self.root / MANIFEST
        manifest = read_json(path) if path.exists() else {"created": time.time()}
        manifest.update(changes)
        manifest["updated"] = time.time()
        manifest["versions"] = package_versions()
        write_json_atomic(path, manifest)
        return manifest

    def set_stage_status(self, stage: str, **status) -> None:
        manifest = self.read_manifest()
        manifest.setdefault("stages", {}).setdefault(stage, {}).update(status)
        self.update_manifest(stages=manifest["stages"])

    @property
    def layout(self) -> KeyLayout:
        if self._layout is None:
            keys = self.read_manifest().get("keys")
            if keys is None:
                raise UserError(f"{self.root}: no key layout in {MANIFEST}; run the crawl stage first")
            self._layout = KeyLayout(**keys)
        return self._layout

    # --- shards and decisions -------------------------------------------------------------

    def crawl_shards(self) -> list[str]:
        """Ids of the complete crawl shards: img2dataset writes NNNNN_stats.json last."""
        crawl = self.stage_dir("crawl")
        if not crawl.exists():
            return []
        names = {p.name for p in crawl.iterdir()}  # one listing, also of object storage
        shards = (n[: -len("_stats.json")] for n in names if n.endswith("_stats.json"))
        return sorted(s for s in shards if f"{s}.parquet" in names or s in self.adopted())

    def crawl_path(self, shard: str):
        """A crawl shard's Parquet file: img2dataset's, or the adopted download's in place."""
        entry = self.adopted().get(shard)
        if entry and entry["format"] == "parquet":
            return path(entry["source"])
        return self.stage_dir("crawl") / f"{shard}.parquet"

    def decision_path(self, stage: str, shard: str) -> Path:
        return self.stage_dir(stage) / f"{shard}.parquet"

    def write_decisions(self, stage: str, shard: str, frame: pl.DataFrame) -> Counts:
        """A shard's decisions (key, reason, columns) and their counts, both atomically. The counts
        go first: a decision file under its final name always has its counts beside it."""
        check_decisions(stage, frame)
        counts = Counts.of(frame["reason"])
        path = self.decision_path(stage, shard)
        write_json_atomic(path.with_name(shard + COUNTS), counts.to_dict())
        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
        return counts

    def shard_counts(self, stage: str, shard: str) -> Counts:
        data = json.loads((self.stage_dir(stage) / (shard + COUNTS)).read_text())
        return Counts(data["rows_in"], data["kept"], data["rejected"])

    def stage_counts(self, stage: str, shards: list[str] | None = None) -> Counts:
        """The sum of the counts files of a stage's shards (all crawl shards by default)."""
        total = Counts()
        for shard in self.crawl_shards() if shards is None else shards:
            total.add(self.shard_counts(stage, shard))
        return total

    def adopted(self) -> dict[str, dict]:
        """Crawl shards adopted from an img2dataset download: shard -> source and fingerprint."""
        if self._adopted is None:
            path = self.stage_dir("crawl") / ADOPTED
            self._adopted = json.loads(path.read_text()) if path.exists() else {}
        return self._adopted

    def write_adopted(self, adopted: dict[str, dict]) -> None:
        write_json_atomic(self.stage_dir("crawl") / ADOPTED, adopted)
        self._adopted = adopted

    def crawl_key(self, shard: str) -> pl.Expr:
        """The build key of a crawl shard's rows, from their stored `key` column: img2dataset's
        own for a crawl of ours; for an adopted shard, the build's shard id then the row index."""
        entry = self.adopted().get(shard)
        if entry is None:
            return pl.col("key")
        return pl.lit(shard) + pl.col("key").str.slice(len(entry["source_shard"])).str.zfill(self.layout.row_digits)

    def scan_crawl(self, shard: str) -> pl.LazyFrame:
        """A crawl shard's rows: img2dataset's columns, image bytes included (read lazily)."""
        return pl.scan_parquet(uri(self.crawl_path(shard))).with_columns(key=self.crawl_key(shard))

    def scan_decisions(self, stage: str, shard: str) -> pl.LazyFrame:
        """key, reason (null = kept) and the stage's columns, for each row that entered `stage`.
        The crawl's reasons are derived from img2dataset's status columns."""
        if stage == "crawl":
            return self.scan_crawl(shard).select("key", crawl_reason().alias("reason"))
        return pl.scan_parquet(uri(self.decision_path(stage, shard)))

    def decisions(self, stage: str) -> pl.LazyFrame:
        """key and reason of every row that entered `stage`, over all shards."""
        shards = [s for s in self.crawl_shards() if stage == "crawl" or self.decision_path(stage, s).exists()]
        if not shards:
            return pl.LazyFrame(schema={"key": pl.String, "reason": pl.String})
        return pl.concat([self.scan_decisions(stage, s).select("key", "reason") for s in shards])

    def kept(self, stage: str, shard: str) -> pl.LazyFrame:
        """Keys of a shard's rows kept by `stage` (and so by every stage before it)."""
        return self.scan_decisions(stage, shard).filter(pl.col("reason").is_null()).select("key")
