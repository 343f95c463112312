import polars as pl

from ....recipe import FilterConfig
from ..rows import Rows


class ImageShape:
    """Size and aspect from the crawl's metadata: nothing is decoded."""
    reasons = ("image_too_small", "bad_aspect_ratio")
    columns: dict = {}
    reads_image = True

    def __init__(self, cfg: FilterConfig):
        self.min_side, self.min_ratio, self.max_ratio = cfg.min_side, cfg.min_aspect_ratio, cfg.max_aspect_ratio

    def apply(self, rows: Rows) -> None:
        frame = rows.frame
        short = frame.select(pl.min_horizontal("original_width", "original_height"))[:, 0].to_list()
        ratio = (frame["original_width"] / frame["original_height"]).to_list()
        for i in rows.alive():
            if short[i] is None or short[i] < self.min_side:
                rows.reasons[i] = "image_too_small"
            elif not self.min_ratio <= ratio[i] <= self.max_ratio:
                rows.reasons[i] = "bad_aspect_ratio"
