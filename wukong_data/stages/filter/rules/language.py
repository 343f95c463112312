import polars as pl

from ....recipe import FilterConfig
from ..language import identify
from ..rows import Rows


class ChineseOnly:
    """The caption's language (language.py: scripts, then fastText where they leave it open);
    with chinese_only, a caption not in Chinese (or Cantonese, where kept) is rejected."""
    reasons = ("not_chinese",)
    columns = {"lang": pl.String, "lang_score": pl.Float32, "han_ratio": pl.Float32}
    reads_image = False

    def __init__(self, cfg: FilterConfig):
        self.min_han_ratio = cfg.min_han_ratio
        self.kept = ({"zh", "yue"} if cfg.keep_cantonese else {"zh"}) if cfg.chinese_only else None

    def apply(self, rows: Rows) -> None:
        alive = rows.alive()
        lang, score, han = (rows.column(c) for c in self.columns)
        if not alive:
            return
        found = identify(pl.Series([rows.captions[i] for i in alive], dtype=pl.String), self.min_han_ratio)
        for i, (code, p, ratio) in zip(alive, found.select("lang", "lang_score", "han_ratio").iter_rows()):
            lang[i], score[i], han[i] = code, p, ratio
            if self.kept is not None and code not in self.kept:
                rows.reasons[i] = "not_chinese"
