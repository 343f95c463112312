import polars as pl

from ....engines import granted_threads
from ....recipe import FilterConfig
from ..names import find_names, mask, recogniser
from ..rows import Rows


class PersonNames:
    """Person names (names.py) masked by the placeholder, or the caption rejected, per the
    recipe's person_names; n_masked counts the names found."""
    reasons = ("person_name",)
    columns = {"n_masked": pl.Int32}
    reads_image = False

    def __init__(self, cfg: FilterConfig):
        self.cfg = cfg

    def apply(self, rows: Rows) -> None:
        cfg, n_masked = self.cfg, rows.column("n_masked")
        if cfg.person_names == "keep":
            return
        alive = rows.alive()
        found = find_names([rows.captions[i] for i in alive], recogniser(granted_threads()),
                           cfg.person_name_placeholder, cfg.name_batch_size, cfg.person_name_min_probability)
        for i, spans in zip(alive, found):
            n_masked[i] = len(spans)
            if spans and cfg.person_names == "reject":
                rows.reasons[i] = "person_name"
            elif spans:
                rows.captions[i] = mask(rows.captions[i], spans, cfg.person_name_placeholder)
