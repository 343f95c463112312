import polars as pl

from ....recipe import FilterConfig
from ..patterns import contains_any, read_words, resolve_list
from ..rows import Rows


class _WordList:
    """A caption holding a word of the recipe's lists (filters/*.txt or the user's) is rejected."""
    reason = key = ""
    columns: dict = {}
    reads_image = False

    def __init__(self, cfg: FilterConfig):
        self.words = read_words([resolve_list(n, f"[filter].{self.key}") for n in getattr(cfg, self.key)])
        self.reasons = (self.reason,)

    def apply(self, rows: Rows) -> None:
        alive = rows.alive()
        captions = pl.Series([rows.captions[i] for i in alive], dtype=pl.String)
        for k in contains_any(captions, self.words).arg_true():
            rows.reasons[alive[k]] = self.reason


class SensitiveText(_WordList):
    reason, key = "sensitive_text", "sensitive_words"


class NsfwText(_WordList):
    reason, key = "nsfw_text", "nsfw_words"
