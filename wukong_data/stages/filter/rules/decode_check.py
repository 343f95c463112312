from ....recipe import FilterConfig
from ..image import decodes
from ..rows import Rows


class DecodeCheck:
    """The kept bytes decode in full with Pillow (a truncated file does not); also run when the
    NSFW model is on, since it reads only images that decode."""
    reasons = ("decode_failed",)
    columns: dict = {}
    reads_image = True

    def __init__(self, cfg: FilterConfig):
        self.on = cfg.decode_check or cfg.nsfw_image

    def apply(self, rows: Rows) -> None:
        if not self.on:
            return
        images = rows.images
        for i in rows.alive():
            if not decodes(images[i]):
                rows.reasons[i] = "decode_failed"
