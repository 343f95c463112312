"""Where builds live: local paths or fsspec URLs (s3://, gs://, ...), through one set of calls.

Paths are universal_pathlib's UPath: pathlib's API on any fsspec filesystem (a local path is a
plain pathlib path). Credentials and endpoints come from the usual environment variables
(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), which s3fs, pyarrow and polars all read.

Publishing is atomic everywhere: a file is written under a temporary name and renamed into place
on a local disk; on object storage it is written to a local temporary file and uploaded as one
object when complete, so a killed task never leaves half a file under its final name.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path, PurePath

from upath import UPath

from .errors import UserError


def path(location) -> UPath:
    """A local path (made absolute) or a URL, as a UPath."""
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if "://" in text:
        # No listings cache: the files of a build are written by other processes (the engine's
        # workers), and a cached listing would hide them.
        try:
            location = UPath(text, use_listings_cache=False)
            location.fs  # made lazily: a missing package (gcsfs, s3fs) fails here, as one line
        except (ImportError, ValueError) as err:
            raise UserError(f"{text}: {err}") from None
        return location
    return UPath(os.path.abspath(text))


def is_local(p) -> bool:
    return getattr(p, "protocol", "") in ("", "file", "local")


def uri(p) -> str:
    """What polars, pyarrow and img2dataset take: a local path or a URL."""
    return os.fspath(p) if is_local(p) else str(p)


def read_json(path):
    """A JSON file of a build or a run (manifest.json, sizes.json, config.json): damaged (a disk
    that filled mid-copy, a hand edit) it is a one-line error naming it, not a traceback."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def create_folder(folder) -> None:
    """mkdir -p for a folder the user named (--out): a failure (no permission, a file in the way,
    a read-only disk) is their one-line error, not a traceback."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{folder}: cannot create this folder ({err.strerror}); choose another --out") from None


def temporary_path(final) -> Path:
    """Where a local file is written before it is renamed into place (remove_stale_tmp finds these)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(final):
    """Yield a local path to write; `final` appears, complete, only if the block succeeds."""
    if is_local(final):
        tmp = temporary_path(final)
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return
    with tempfile.TemporaryDirectory(prefix="wukong-upload-") as folder:
        tmp = Path(folder) / final.name
        yield tmp
        final.fs.put_file(str(tmp), final.path)


def write_json_atomic(path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def move(source, target) -> None:
    """Rename a complete file into place (on object storage: a copy of the one object, then a delete)."""
    if is_local(target):
        os.replace(source, target)
    else:
        target.fs.mv(source.path, target.path)


def remove_stale_tmp(directory) -> None:
    """Remove temporary files a killed run left behind (only local disks have any)."""
    if is_local(directory) and directory.exists():
        for tmp in directory.glob(".*.tmp-*"):
            tmp.unlink(missing_ok=True)


def local_copy(p, cache: Path) -> Path:
    """A local file or folder for libraries that need one (model weights, training data): `p`
    itself when local, else a copy under `cache`, made once per version of `p` (its files' names,
    sizes and ETags or modification times name the copy, so a rebuilt model is copied again)."""
    if is_local(p):
        return Path(os.fspath(p))
    found = p.fs.find(p.path, detail=True)
    version = json.dumps(sorted((name, info.get("size"), str(info.get("ETag") or info.get("LastModified")
                                                            or info.get("mtime"))) for name, info in found.items()))
    digest = hashlib.sha256(f"{p} {version}".encode()).hexdigest()[:16]
    target = cache / f"{p.name}-{digest}"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as folder:
            staged = Path(folder) / "copy"
            p.fs.get(p.path, str(staged), recursive=p.is_dir())
            os.replace(staged, target)
    return target


def remove(p) -> None:
    """Remove a file or a folder and everything in it, if it exists."""
    if is_local(p):
        import shutil

        try:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        except OSError as err:  # what is left would be taken for finished work
            raise UserError(f"{p}: could not remove it ({err.strerror or err}); remove it by hand and run again") from None
    elif p.exists():
        p.fs.rm(p.path, recursive=True)


def shareable(value):
    """`value` (a report, a recipe: dicts, lists, strings) with each absolute path of this machine
    replaced by its last part: what a build was made from, not where it lay."""
    if isinstance(value, dict):
        return {k: shareable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shareable(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        return PurePath(value).name
    return value
