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


def undecodable_reason(data: bytes | None) -> str | None:
    """Why an image must not be decoded, from its header alone: not an image Pillow knows, or a
    declared size above MAX_PIXELS (a decompression bomb). None: it may be decoded."""
    if not data:
        return "empty image"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:  # Pillow's own, higher limit: it refuses to open at all
        return f"image declares more than {MAX_PIXELS} pixels"
    except Exception:  # noqa: BLE001 - any header error: not a readable image
        return "not a readable image"
    if width * height > MAX_PIXELS:
        return f"image declares {width}x{height} pixels, more than {MAX_PIXELS}"
    return None


def decodable_size(data: bytes | None) -> bool:
    """The header is readable and declares no more than MAX_PIXELS: decoding it is safe to try."""
    return undecodable_reason(data) is None
