"""Image bytes as every stage reads them: the image formats a build may hold, and a bound on the
pixels any decoder is asked to produce (checked on the header, before decoding)."""
from __future__ import annotations

import io

from PIL import Image

# crawl.encode_format values; each is also the image column of the crawl and final Parquet
# files and the image member's extension in the WebDataset tars.
IMAGE_FORMATS = ("jpg", "png", "webp")
# A decompression bomb declares enormous dimensions in a few bytes; nothing above this is decoded.
MAX_PIXELS = 8192 * 8192


def image_column(names, where: str) -> str:
    """The image column among `names` (a schema or a WebDataset sample's keys)."""
    for fmt in IMAGE_FORMATS:
        if fmt in names:
            return fmt
    from .errors import UserError

    raise UserError(f"{where}: no image column (expected one of {', '.join(IMAGE_FORMATS)})")


def declared_pixels(data: bytes) -> int | None:
    """Width x height from the header alone, or None if the bytes are not an image Pillow knows."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - any header error: not a readable image
        return None
    return width * height


def decodable_size(data: bytes | None) -> bool:
    """The header is readable and declares no more than MAX_PIXELS."""
    pixels = declared_pixels(data) if data else None
    return pixels is not None and pixels <= MAX_PIXELS
