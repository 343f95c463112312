import polars as pl

from ....recipe import FilterConfig
from ..image import nsfw_scorer
from ..rows import Rows


class NsfwImage:
    """nudenet's best exposed-body class score (image.py) at or above the threshold."""
    reasons = ("nsfw_image",)
    columns = {"nsfw_score": pl.Float32}
    reads_image = True

    def __init__(self, cfg: FilterConfig):
        self.on, self.threshold, self.batch_size = cfg.nsfw_image, cfg.nsfw_image_threshold, cfg.nsfw_batch_size

    def apply(self, rows: Rows) -> None:
        nsfw = rows.column("nsfw_score")
        if not self.on:
            return
        alive = rows.alive()
        images = rows.images
        scores = nsfw_scorer().scores([images[i] for i in alive], self.batch_size) if alive else []
        for i, score in zip(alive, scores):
            nsfw[i] = round(float(score), 4)
            if score >= self.threshold:
                rows.reasons[i] = "nsfw_image"
