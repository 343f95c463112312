"""Meaningless captions (regular expressions + a generic-word list) and word-list matching for
sensitive and NSFW text (polars' Aho-Corasick `contains_any`, vectorised: no Python per row).
The lists are plain-text files in filters/."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import polars as pl

from ...errors import UserError

_MEANINGLESS = [
    r"(?i)^[\w\-. ]*\.(jpe?g|png|gif|webp|bmp|tiff?|heic)$",  # IMG_0001.jpg, 000.jpg
    r"(?i)^(img|dsc|dscn|dscf|pic|photo|image|screenshot|mmexport|wx_camera)[_\- ]?\d+",  # DSC_1234
    r"(?i)^(https?://|www\.)\S+$",  # a bare URL
    r"^[\p{N}\p{P}\p{S}\p{Z}]*$",  # digits, punctuation, symbols only (or empty)
]


def resolve_list(name: str, where: str) -> Path:
    """A word list by path, or by the name of a bundled one in filters/."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = resources.files("wukong_data.filters") / name
    if bundled.is_file():
        return Path(str(bundled))
    raise UserError(f"{where}: word list {name!r} is neither a file nor a bundled list")


def read_words(paths: list[Path]) -> list[str]:
    words = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                words.append(line.lower())
    return words


def is_meaningless(captions: pl.Series, generic_words: list[str]) -> pl.Series:
    lowered = captions.str.to_lowercase()
    hit = lowered.is_in(generic_words)
    for pattern in _MEANINGLESS:
        hit = hit | lowered.str.contains(pattern)
    return hit


def contains_any(captions: pl.Series, words: list[str]) -> pl.Series:
    """Does each caption contain any of `words` (lower-cased substring match)?"""
    if not words:
        return pl.Series([False] * len(captions))
    return captions.str.to_lowercase().str.contains_any(words)
