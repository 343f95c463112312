import polars as pl

from ....recipe import FilterConfig
from ..patterns import is_meaningless, read_words, resolve_list
from ..rows import Rows


class MeaninglessCaption:
    """A file name, a bare URL, digits or punctuation only, or a generic word."""
    reasons = ("meaningless_caption",)
    columns: dict = {}
    reads_image = False

    def __init__(self, cfg: FilterConfig):
        self.generic = read_words([resolve_list(n, "[filter].generic_words") for n in cfg.generic_words])

    def apply(self, rows: Rows) -> None:
        alive = rows.alive()
        captions = pl.Series([rows.captions[i] for i in alive], dtype=pl.String)
        for k in is_meaningless(captions, self.generic).arg_true():
            rows.reasons[alive[k]] = "meaningless_caption"
