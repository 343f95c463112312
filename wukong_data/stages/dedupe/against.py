"""Decontamination sources: the images a build must not overlap (an evaluation set).

Each path is a folder of images, another build (its final/ Parquet shards), or a Parquet file
with an image column. Their signatures are computed once and cached in the build.
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ...errors import UserError
from ...storage import atomic_path, uri
from .signatures import SIGNATURE_VERSION, image_signature

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
_IMAGE_COLUMNS = ("jpg", "png", "webp", "image")


def _images(path: Path):
    """(name, bytes) of every image a decontamination source holds."""
    if not path.exists():
        raise UserError(f"[dedupe].against: {path}: not found")
    if path.is_dir() and (path / "manifest.json").exists():
        files = sorted((path / "final").glob("[0-9]*.parquet"))
        if not files:
            raise UserError(f"[dedupe].against: {path}: a build without exported Parquet shards")
        for file in files:
            yield from _parquet_images(file)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES):
            yield str(file), file.read_bytes()
    elif path.suffix == ".parquet":
        yield from _parquet_images(path)
    else:
        raise UserError(f"[dedupe].against: {path}: expected a folder of images, a build or a .parquet file")


def _parquet_images(file: Path):
    schema = pl.read_parquet_schema(file)
    column = next((c for c in _IMAGE_COLUMNS if c in schema), None)
    if column is None:
        raise UserError(f"[dedupe].against: {file}: no image column (expected one of {', '.join(_IMAGE_COLUMNS)})")
    frame = pl.read_parquet(file, columns=[column])
    for i, data in enumerate(frame[column]):
        yield f"{file}#{i}", data


def against_signatures(paths: list[str], cache, ui) -> pl.DataFrame:
    """name, phash, colour (view 0), view_hashes, view_colours of every decodable image of the sources."""
    spec = json.dumps({"paths": sorted(paths), "signature": SIGNATURE_VERSION})
    if cache.exists():
        cached = pl.read_parquet(uri(cache))
        if cached.height and cached["spec"][0] == spec:
            return cached.drop("spec")
    names, views, failed = [], [], 0
    for path in paths:
        for name, data in _images(Path(path)):
            signature = image_signature(data)
            if signature is None:
                failed += 1
                continue
            names.append(name)
            views.append(signature)
    if failed:
        ui.print(f"[yellow]dedupe: {failed} decontamination images could not be decoded and were skipped[/]")
    frame = pl.DataFrame({"name": names, "phash": pl.Series([v[0][0] for v in views], dtype=pl.UInt64),
                          "colour": pl.Series([v[0][1] for v in views], dtype=pl.Binary),
                          "view_hashes": pl.Series([[h for h, _ in v] for v in views], dtype=pl.List(pl.UInt64)),
                          "view_colours": pl.Series([[c for _, c in v] for v in views], dtype=pl.List(pl.Binary))})
    with atomic_path(cache) as tmp:
        frame.with_columns(spec=pl.lit(spec)).write_parquet(tmp)
    return frame
