"""Caption normalisation: entities unescaped, control characters dropped, whitespace collapsed,
optionally Traditional -> Simplified. The raw caption stays in the crawl shard."""
from __future__ import annotations

import functools
import html

import polars as pl


def normalise(captions: pl.Series, to_simplified: bool = False) -> pl.Series:
    s = captions.fill_null("")
    # Entities are rare: unescape only the captions that contain '&'.
    if s.str.contains("&", literal=True).any():
        s = s.map_elements(lambda c: html.unescape(c) if "&" in c else c, return_dtype=pl.String)
    s = (
        s.str.replace_all(r"[\t\n\r\f\v\u00a0\u3000]+", " ")
        .str.replace_all(r"[\p{Cc}\p{Cf}\p{Co}]", "")
        .str.replace_all(r" {2,}", " ")
        .str.strip_chars()
    )
    if to_simplified:
        convert = _opencc().convert
        s = s.map_elements(convert, return_dtype=pl.String)
    return s


@functools.lru_cache(maxsize=1)
def _opencc():
    import opencc

    return opencc.OpenCC("t2s")
