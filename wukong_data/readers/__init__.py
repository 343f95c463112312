"""Input readers: URL lists in the formats our users have them.

The Wukong release (`wukong_100m_N.csv`, header `url,caption`), its Parquet mirror, and any
CSV/TSV/JSONL (optionally gzipped) with configurable column names. Each input file becomes one
normalised Parquet table: `url` (surrounding whitespace trimmed), `caption`, and `invalid_url`
(the original value of a URL that is empty, not http(s), or holds whitespace or control
characters a request cannot carry; such rows keep url="" so the crawl rejects them without
touching the network or the local disk). A file that cannot be read as a URL list (not the
format its name says, no url column or two of them, text that is not UTF-8, a quote never
closed) is a UserError naming the file and, where there is one, the row.

An input may be a URL of any fsspec filesystem (s3://bucket/lists/*.csv.gz): listed with fsspec,
read through a stream that fsspec decompresses.
"""
from __future__ import annotations

import contextlib
import csv
import glob as globlib
import io
import os
from pathlib import Path
from typing import Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .. import storage
from ..errors import UserError
from ..recipe import InputConfig

_EXTENSIONS = {
    ".csv": "csv", ".csv.gz": "csv", ".tsv": "tsv", ".tsv.gz": "tsv",
    ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".json": "jsonl", ".json.gz": "jsonl",
    ".parquet": "parquet",
}
# http(s), a host, and nothing a request line cannot carry (whitespace, control characters).
_VALID_URL = r"(?i)^https?://[^/?#\s\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*$"
_BLOCK_SIZE = 64 << 20  # a row (a megabyte-long caption) must fit in one block of the CSV/JSON readers
SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string()), ("invalid_url", pa.string())])


def _format_of(path: str) -> str | None:
    name = path.lower()
    for ext in sorted(_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return _EXTENSIONS[ext]
    return None


def _remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _list_remote(path: str) -> list[str]:
    remote = storage.path(path)
    fs, root = remote.fs, remote.path
    if any(ch in root for ch in "*?["):
        found = fs.glob(root)
    elif fs.isdir(root):
        found = [f for f in fs.find(root) if _format_of(f)]
    elif fs.isfile(root):
        found = [root]
    else:
        raise UserError(f"{path}: input not found")
    return sorted(fs.unstrip_protocol(f) for f in found if fs.isfile(f))


def list_input_files(cfg: InputConfig) -> list[str]:
    if not cfg.path:
        raise UserError("no input: pass --input PATH or set [input].path in the recipe")
    path = cfg.path
    if _remote(path):
        files = _list_remote(path)
    elif any(ch in path for ch in "*?["):
        files = [f for f in sorted(globlib.glob(path, recursive=True)) if os.path.isfile(f)]
    elif os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and _format_of(p.name))
    elif os.path.isfile(path):
        files = [path]
    else:
        raise UserError(f"{path}: input not found")
    if not files:
        raise UserError(f"{path}: no input files (expected .csv, .tsv, .jsonl or .parquet, optionally .gz)")
    if cfg.format == "auto":
        for f in files:
            if _format_of(f) is None:
                raise UserError(f"{f}: cannot tell the input format from the name; set [input].format")
    return files


@contextlib.contextmanager
def _source(path: str):
    """What pyarrow's readers take: a local path (they decompress .gz themselves), or a remote
    file as a stream fsspec decompresses."""
    if not _remote(path):
        yield path
        return
    with fsspec.open(path, "rb", compression="infer") as stream:
        yield stream


def _read_table(path: str, fmt: str, cfg: InputConfig) -> pa.Table:
    try:
        with _source(path) as source:
            return _parse(source, path, fmt, cfg)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: cannot read as {fmt}: {first_line}") from None


def _parse(source, path: str, fmt: str, cfg: InputConfig) -> pa.Table:
    if fmt in ("csv", "tsv"):
        delimiter = cfg.delimiter or ("\t" if fmt == "tsv" else ",")
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            # Bytes: their UTF-8 is checked in _text, which names the row at fault.
            convert_options=pacsv.ConvertOptions(
                column_types={cfg.url_column: pa.binary(), cfg.caption_column: pa.binary()},
                strings_can_be_null=False,
            ),
        )
        _check_quotes_closed(table, path, delimiter)
        return table
    if fmt == "jsonl":
        return pajson.read_json(source, read_options=pajson.ReadOptions(block_size=_BLOCK_SIZE))
    return pq.read_table(source)


def _check_quotes_closed(table: pa.Table, path: str, delimiter: str) -> None:
    """A quote opened and never closed makes the rest of the file one field of the last row (the
    CSV reader accepts it): rows would vanish into a caption. Such a field ends with the file's
    line break; when the last one does, Python's strict CSV parser tells a quote left open (it
    raises at the end of the data) from a caption that ends with a line break."""
    if not (table.num_rows and table.num_columns):
        return
    last = table.column(table.num_columns - 1)[-1].as_py()
    if not (isinstance(last, (str, bytes)) and last[-1:] in ("\n", "\r", b"\n", b"\r")):
        return
    csv.field_size_limit(max(csv.field_size_limit(), _BLOCK_SIZE))
    with _source(path) as source, pa.input_stream(source, compression="detect" if isinstance(source, str) else None) \
            as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        try:
            for _ in csv.reader(text, delimiter=delimiter, strict=True):
                pass
        except csv.Error:
            raise UserError(f"{path}: row {table.num_rows}: a quoted field runs to the end of the file "
                            f"(a quote opened and never closed)") from None


def _text(column: pa.ChunkedArray, path: str, name: str) -> pa.ChunkedArray:
    """A url or caption column as UTF-8 text; a value that is not (invalid UTF-8, a list, a
    record) makes the file unreadable as a URL list, named by its row."""
    kind = column.type
    if pa.types.is_nested(kind):
        raise UserError(f"{path}: column {name!r} holds {kind}, expected text")
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)):
        try:
            return pc.cast(column, pa.string())  # numbers, dates: their text
        except pa.ArrowException:
            raise UserError(f"{path}: column {name!r} holds {kind}, expected text") from None
    raw = column.cast(pa.large_binary() if "large" in str(kind) else pa.binary())
    try:
        return raw.cast(pa.string())  # validates UTF-8 (strings from JSON are not checked on reading)
    except pa.ArrowInvalid:
        row = next(i for i, value in enumerate(raw.to_pylist()) if value is not None and not _utf8(value))
        raise UserError(f"{path}: row {row + 1}: column {name!r} is not UTF-8 text; convert the file to UTF-8 "
                        f"(from GB18030/GBK: iconv -f gb18030 -t utf-8)") from None


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _listed(names: list[str], most: int = 10) -> str:
    """Column names for a one-line message: quoted (a name may hold a line break), the first few."""
    return ", ".join(map(repr, names[:most])) + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _normalise(table: pa.Table, path: str, cfg: InputConfig) -> pa.Table:
    try:
        names = table.column_names
    except UnicodeDecodeError:
        raise UserError(f"{path}: the column names are not UTF-8 text; convert the file to UTF-8") from None
    for role, column in (("url", cfg.url_column), ("caption", cfg.caption_column)):
        count = names.count(column)
        if not count:
            raise UserError(
                f"{path}: no {role} column {column!r} (columns: {_listed(names)}; "
                f"set [input].{role}_column)"
            )
        if count > 1:
            raise UserError(f"{path}: the header names column {column!r} {count} times (expected once)")
    written = _text(table[cfg.url_column], path, cfg.url_column)
    url = pc.utf8_trim_whitespace(written)
    caption = _text(table[cfg.caption_column], path, cfg.caption_column)
    valid = pc.fill_null(pc.match_substring_regex(url, _VALID_URL), False)
    return pa.table(
        {
            "url": pc.if_else(valid, url, ""),
            "caption": pc.fill_null(caption, ""),
            "invalid_url": pc.if_else(valid, pa.scalar(None, pa.string()), pc.fill_null(written, "")),
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
