"""Adopt an img2dataset download as a build's crawl stage (`wukong build --from-crawl PATH`).

PATH is an img2dataset output folder, or a glob of several, written with output_format `parquet`
or `webdataset`. Every shard becomes one of the build's crawl shards, numbered in order across
the folders, so keys stay unique: the build key is the build's shard id followed by the row's
index in its shard (img2dataset's own key less its shard id). Rows keep img2dataset's status, so
failed downloads get their reason codes as a crawl of our own would.

- parquet output: the shards are read in place, never copied (DIR/crawl/_adopted.json maps each
  crawl shard to its file); their size and modification time are recorded, and a later run that
  finds them changed stops with an error instead of mixing two crawls.
- webdataset output: images live in the tars, so each shard's tar and Parquet metadata are
  joined into DIR/crawl/NNNNN.parquet: the one copy of the images the build makes.
"""
from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass

import polars as pl
import pyarrow.parquet as pq

from ..build import ADOPTED, BuildDir, KeyLayout
from ..errors import UserError
from ..storage import atomic_path, path, uri, write_json_atomic
from . import StageContext
from .runner import Runner

# What the stages read of a crawl shard (besides the image column).
NEEDED = ("key", "url", "caption", "status", "error_message", "width", "height", "original_width", "original_height")


@dataclass(frozen=True)
class ConvertTask:
    root: str
    shard: str
    tar: str
    metadata: str
    image_column: str


def _folders(spec: str) -> list:
    """The folders `spec` names: one, or a glob of several, local or remote."""
    if any(ch in spec for ch in "*?["):
        import fsspec

        fs, pattern = fsspec.core.url_to_fs(spec)
        paths = [path(fs.unstrip_protocol(m)) if "://" in spec else path(m) for m in sorted(fs.glob(pattern))]
    else:
        paths = [path(spec)]
    folders = [p for p in paths if p.is_dir()]
    if not folders:
        raise UserError(f"--from-crawl {spec}: no such folder")
    return folders


def _shards(folder) -> tuple[str, list[str]]:
    """(output format, shard names) of an img2dataset output folder; its *_stats.json mark them."""
    listed = {p.name for p in folder.iterdir()}
    names = sorted(n[: -len("_stats.json")] for n in listed if n.endswith("_stats.json"))
    if not names:
        raise UserError(f"{folder}: not img2dataset output (expected NNNNN_stats.json and NNNNN.parquet files "
                        f"from output_format parquet or webdataset)")
    missing = [n for n in names if f"{n}.parquet" not in listed]
    if missing:
        raise UserError(f"{folder / (missing[0] + '_stats.json')}: no {missing[0]}.parquet beside it (img2dataset "
                        f"writes one per shard with output_format parquet or webdataset)")
    tars = [n for n in names if f"{n}.tar" in listed]
    if tars and len(tars) != len(names):
        raise UserError(f"{folder}: {len(tars)} of {len(names)} shards have a .tar; expected all (webdataset) or none")
    return ("webdataset" if tars else "parquet"), names


def _check_columns(file, fmt: str, image_column: str, needs_sha256: bool) -> None:
    with file.open("rb") as f:
        names = pq.read_schema(f).names
    missing = [c for c in NEEDED if c not in names]
    if missing:
        raise UserError(f"{file}: not an img2dataset shard: no column {', '.join(missing)}")
    if fmt == "parquet" and image_column not in names:
        images = [c for c in ("jpg", "png", "webp") if c in names]
        raise UserError(f"{file}: no {image_column!r} image column" + (
            f" (it has {images[0]!r}: set [crawl].encode_format = \"{images[0]}\")" if images else ""))
    if needs_sha256 and "sha256" not in names:
        raise UserError(f"{file}: no sha256 column, which exact image dedupe needs: crawl with img2dataset's "
                        f"compute_hash=\"sha256\", or set [dedupe].exact_image = false")


def fingerprint(file) -> dict:
    stat = file.stat()
    return {"size": stat.st_size, "modified": str(stat.st_mtime)}


def check_unchanged(build: BuildDir) -> None:
    """Adopted shards are read in place: stop if one changed since it was adopted."""
    for shard, entry in build.adopted().items():
        if entry["format"] == "parquet" and fingerprint(path(entry["source"])) != entry["fingerprint"]:
            raise UserError(f"{entry['source']}: changed since it was adopted as crawl shard {shard}; adopt it "
                            f"again with --stage crawl --force (later stages are redone)")


def convert(task: ConvertTask) -> int:
    """One webdataset shard (tar + metadata Parquet) -> one crawl Parquet with the image bytes."""
    rows = pl.read_parquet(task.metadata)
    images = {}
    with path(task.tar).open("rb") as stream, tarfile.open(fileobj=stream) as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            if ext == task.image_column and member.isfile():
                images[key] = tar.extractfile(member).read()
    column = pl.Series(task.image_column, [images.get(k) for k in rows["key"]], dtype=pl.Binary)
    with atomic_path(BuildDir(task.root).crawl_path(task.shard)) as tmp:
        rows.with_columns(column).write_parquet(tmp, row_group_size=100)
    return rows.height


def adopt(ctx: StageContext, spec: str) -> None:
    build, cfg = ctx.build, ctx.recipe
    folders = _folders(spec)
    needs_sha256 = "dedupe" in cfg.stages and cfg.dedupe.exact_image
    plan = []
    for folder in folders:
        fmt, names = _shards(folder)
        for name in names:
            _check_columns(folder / f"{name}.parquet", fmt, cfg.crawl.encode_format, needs_sha256)
            plan.append((folder, fmt, name))
    source = {"from_crawl": [uri(f) for f in folders], "image": cfg.crawl.encode_format}
    crawl = build.stage_dir("crawl")
    previous = build.read_manifest().get("crawl_source")
    if previous is not None and previous != source:
        raise UserError(f"{build.root}: its crawl came from {previous}; pass --force to adopt {spec} instead")
    if previous is None and build.crawl_shards():
        raise UserError(f"{build.root}: already crawled from a URL list; pass --force to adopt {spec} instead")
    if (crawl / ADOPTED).exists():
        return
    # Row digits: img2dataset's key is its shard id, then the row index; keep the widest index.
    row_digits = 0
    for folder, _, name in plan:
        key = pl.read_parquet(uri(folder / f"{name}.parquet"), columns=["key"], n_rows=1)["key"]
        row_digits = max(row_digits, len(key[0]) - len(name) if len(key) else 0)
    layout = KeyLayout(max(5, len(str(max(0, len(plan) - 1)))), row_digits)
    crawl.mkdir(parents=True, exist_ok=True)
    adopted, conversions = {}, []
    for i, (folder, fmt, name) in enumerate(plan):
        shard = layout.shard_name(i)
        source_file = folder / f"{name}.parquet"
        adopted[shard] = {"source": uri(source_file), "format": fmt, "source_shard": name,
                          "fingerprint": fingerprint(source_file)}
        if fmt == "webdataset":
            conversions.append(ConvertTask(str(build.root), shard, uri(folder / f"{name}.tar"), uri(source_file),
                                           cfg.crawl.encode_format))
    Runner(ctx).map(convert, conversions, lambda task: [crawl / f"{task.shard}.parquet"])
    for shard, entry in adopted.items():  # the stats files mark shards complete, as img2dataset's do
        stats = path(entry["source"]).with_name(f"{entry['source_shard']}_stats.json")
        write_json_atomic(crawl / f"{shard}_stats.json", json.loads(stats.read_text()))
    build.update_manifest(keys={"shard_digits": layout.shard_digits, "row_digits": layout.row_digits},
                          crawl_source=source)
    build.write_adopted(adopted)
    ctx.ui.print(f"crawl: adopted {len(plan)} img2dataset shards from {len(folders)} folder(s) "
                 f"({'read in place' if not conversions else f'{len(conversions)} converted from webdataset'})")
