"""`wukong queries`: Wukong's first step, a search-query list from a Chinese text corpus.

High-frequency words and two-word phrases (jieba-compatible segmentation by rjieba), with a
minimum count, stop words removed and the top K kept, for crawling through an image search
engine.
"""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import rjieba

from .errors import UserError
from .stages.filter.patterns import read_words, resolve_list


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from f
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read as UTF-8 text ({err})") from None


def _is_query_word(word: str, stop: set[str]) -> bool:
    return len(word) >= 2 and word not in stop and any("\u4e00" <= ch <= "\u9fff" for ch in word)


def count_queries(corpus: list[Path], stop_words: list[str]) -> Counter:
    stop = set(read_words([resolve_list(n, "--stop-words") for n in stop_words]))
    counts: Counter = Counter()
    for path in corpus:
        if not path.is_file():
            raise UserError(f"{path}: corpus file not found")
        for line in _lines(path):
            words = rjieba.cut(line.strip())
            for i, word in enumerate(words):
                if not _is_query_word(word, stop):
                    continue
                counts[word] += 1
                # A phrase is two adjacent query words ("红色 连衣裙" -> "红色连衣裙").
                if i + 1 < len(words) and _is_query_word(words[i + 1], stop):
                    counts[word + words[i + 1]] += 1
    return counts


def build_queries(corpus: list[Path], min_count: int = 5, top_k: int = 10000,
                  stop_words: list[str] | None = None) -> list[tuple[str, int]]:
    counts = count_queries(corpus, stop_words if stop_words is not None else ["stop_words.txt"])
    ranked = sorted(((q, n) for q, n in counts.items() if n >= min_count), key=lambda qn: (-qn[1], qn[0]))
    return ranked[:top_k]


def write_queries(queries: list[tuple[str, int]], out: Path, with_counts: bool) -> None:
    from .storage import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text("".join(f"{q}\t{n}\n" if with_counts else f"{q}\n" for q, n in queries), encoding="utf-8")
