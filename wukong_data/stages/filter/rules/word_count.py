import polars as pl

from ....recipe import FilterConfig
from ..rows import Rows
from ..words import count_words, tag


class WordCount:
    """Words by jieba-compatible segmentation (rjieba) within [min_words, max_words]."""
    reasons = ("too_few_words", "too_many_words")
    columns = {"n_words": pl.Int32}
    reads_image = False

    def __init__(self, cfg: FilterConfig):
        self.min_words, self.max_words = cfg.min_words, cfg.max_words

    def apply(self, rows: Rows) -> None:
        n_words = rows.column("n_words")
        for i in rows.alive():
            n_words[i] = count_words(tag(rows.captions[i]))
            if n_words[i] < self.min_words:
                rows.reasons[i] = "too_few_words"
            elif n_words[i] > self.max_words:
                rows.reasons[i] = "too_many_words"
