"""Word counts and person-name masking with a jieba-compatible segmenter.

rjieba (jieba's dictionary and HMM in Rust) tags ~8x faster than jieba's own part-of-speech
tagger; one tagging pass gives both the word count and the person names (POS nr/nrfg).
"""
from __future__ import annotations

import rjieba

_NAME_TAGS = frozenset({"nr", "nrfg"})


def tag(caption: str) -> list[tuple[str, str]]:
    return rjieba.tag(caption)


def count_words(tags: list[tuple[str, str]]) -> int:
    """Words, not punctuation or spaces (jieba tags those 'x')."""
    return sum(1 for _, pos in tags if pos != "x")


def mask_names(caption: str, tags: list[tuple[str, str]], placeholder: str,
               not_names: frozenset[str]) -> tuple[str, int]:
    """The caption with each person name replaced by `placeholder`, and how many were masked.

    `not_names` lists words the tagger wrongly calls names in image captions (e.g. 高清).
    """
    if not any(pos in _NAME_TAGS for _, pos in tags):
        return caption, 0
    parts, masked = [], 0
    for word, pos in tags:
        if pos in _NAME_TAGS and len(word) >= 2 and word not in not_names:
            parts.append(placeholder)
            masked += 1
        else:
            parts.append(word)
    return "".join(parts), masked
