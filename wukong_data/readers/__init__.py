"""Input readers: URL lists in the formats our users have them.

The Wukong release (`wukong_100m_N.csv`, header `url,caption`), its Parquet mirror, and any
CSV/TSV/JSONL (optionally gzipped) with configurable column names. Each input file becomes one
normalised Parquet table: `url`, `caption`, and `invalid_url` (the original value of a URL that
is empty or not http(s); such rows keep url="" so the crawl rejects them without touching
the network or the local disk).
"""
from __future__ import annotations

import glob as globlib
import os
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ..errors import UserError
from ..recipe import InputConfig

_EXTENSIONS = {
    ".csv": "csv", ".csv.gz": "csv", ".tsv": "tsv", ".tsv.gz": "tsv",
    ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".json": "jsonl", ".json.gz": "jsonl",
    ".parquet": "parquet",
}
_VALID_URL = r"(?i)^https?://[^/?#\s]+"
SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string()), ("invalid_url", pa.string())])


def _format_of(path: str) -> str | None:
    name = path.lower()
    for ext in sorted(_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return _EXTENSIONS[ext]
    return None


def list_input_files(cfg: InputConfig) -> list[str]:
    if not cfg.path:
        raise UserError("no input: pass --input PATH or set [input].path in the recipe")
    path = cfg.path
    if any(ch in path for ch in "*?["):
        files = sorted(globlib.glob(path, recursive=True))
    elif os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and _format_of(p.name))
    elif os.path.isfile(path):
        files = [path]
    else:
        raise UserError(f"{path}: input not found")
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise UserError(f"{path}: no input files (expected .csv, .tsv, .jsonl or .parquet, optionally .gz)")
    if cfg.format == "auto":
        for f in files:
            if _format_of(f) is None:
                raise UserError(f"{f}: cannot tell the input format from the name; set [input].format")
    return files


def _read_table(path: str, fmt: str, cfg: InputConfig) -> pa.Table:
    try:
        if fmt in ("csv", "tsv"):
            delimiter = cfg.delimiter or ("\t" if fmt == "tsv" else ",")
            return pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={cfg.url_column: pa.string(), cfg.caption_column: pa.string()},
                    strings_can_be_null=False,
                ),
            )
        if fmt == "jsonl":
            return pajson.read_json(path)
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: cannot read as {fmt}: {first_line}") from None


def _normalise(table: pa.Table, path: str, cfg: InputConfig) -> pa.Table:
    for role, column in (("url", cfg.url_column), ("caption", cfg.caption_column)):
        if column not in table.column_names:
            raise UserError(
                f"{path}: no {role} column {column!r} (columns: {', '.join(table.column_names)}; "
                f"set [input].{role}_column)"
            )
    url = pc.cast(table[cfg.url_column], pa.string())
    caption = pc.cast(table[cfg.caption_column], pa.string())
    valid = pc.fill_null(pc.match_substring_regex(url, _VALID_URL), False)
    return pa.table(
        {
            "url": pc.if_else(valid, url, ""),
            "caption": pc.fill_null(caption, ""),
            "invalid_url": pc.if_else(valid, pa.scalar(None, pa.string()), pc.fill_null(url, "")),
        },
        schema=SCHEMA,
    )


def read_inputs(cfg: InputConfig, limit: int | None = None) -> Iterator[tuple[str, pa.Table]]:
    """Yield (source file, normalised table) per input file, stopping after `limit` rows."""
    remaining = limit
    for path in list_input_files(cfg):
        if remaining is not None and remaining <= 0:
            return
        fmt = cfg.format if cfg.format != "auto" else _format_of(path)
        table = _normalise(_read_table(path, fmt, cfg), path, cfg)
        if remaining is not None:
            table = table.slice(0, remaining)
            remaining -= table.num_rows
        yield path, table
