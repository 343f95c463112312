"""Per-row signatures for dedupe, computed once in the parallel map phase.

url_hash     normalised URL (scheme and host lower-cased, default port and fragment dropped)
image_hash   the first 64 bits of the crawl's sha256 of the image bytes
caption_hash the caption after whitespace normalisation
phash        64-bit perceptual hash (imagehash.phash: DCT of the 32x32 grey image)
view_hashes, view_colours  the views the near-duplicate search compares (here one: phash, colour)
colour       6x6 grid of mean RGB at 4 bits a channel (54 bytes): pHash sees grey levels only,
             so a red and a blue circle hash alike; the grid tells them apart. Measured on
             photo-like scenes: copies (resized, JPEG q30, 5% crop) differ by at most 1 in any
             cell and channel, look-alikes (same shape other colour, same colour other shape)
             by at least 3 (a 4x4 grid: 1 and 2, too close; 8x8: 2 and 3, and 96 bytes)
pixels       original width x height, to keep the largest copy of a near-duplicate group
"""
from __future__ import annotations

import hashlib
import io
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import polars as pl
from PIL import Image

from ...images import decodable_size
from ..filter.normalise import normalise

_DEFAULT_PORTS = {"http": 80, "https": 443}
GRID = 6
# One view per image (the whole picture): view_hashes and view_colours hold it for the search,
# which compares view a of one image with view b of another for each pair listed here.
MATCHING_VIEWS = [(0, 0)]
SIGNATURE_VERSION = 1  # changes whenever a signature of the same image would: cached ones are stale


def normalise_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), (parts.hostname or "")
        port = parts.port
    except ValueError:  # a malformed port or host: compare the URL as written
        return url.strip()
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def image_signature(data: bytes | None) -> tuple[int, bytes] | None:
    """(phash as an unsigned 64-bit int, packed colour grid), or None if the image won't decode."""
    import imagehash

    if not decodable_size(data):  # a decompression bomb is never decoded
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, several times faster
            rgb = image.convert("RGB")
        bits = imagehash.phash(rgb).hash.flatten()
        grid = np.asarray(rgb.resize((GRID, GRID), Image.Resampling.BOX), dtype=np.uint8).flatten() >> 4
    except Exception:  # noqa: BLE001 - any decoder error: no signature, the row skips near-dup search
        return None
    phash = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return phash, ((grid[0::2] << 4) | grid[1::2]).astype(np.uint8).tobytes()


def unpack_colours(packed: np.ndarray) -> np.ndarray:
    """(n, 54) packed grids -> (n, 108) 4-bit channel means."""
    out = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.int16)
    out[:, 0::2] = packed >> 4
    out[:, 1::2] = packed & 15
    return out


def signatures(rows: pl.DataFrame, image_column: str) -> pl.DataFrame:
    """rows: key, url, caption, sha256, original_width, original_height, image -> the map record."""
    sigs = [image_signature(b) for b in rows[image_column]]
    return pl.DataFrame({
        "key": rows["key"],
        "url_hash": pl.Series([hash64(normalise_url(u)) for u in rows["url"]], dtype=pl.UInt64),
        "image_hash": pl.Series([int(h[:16], 16) if h else None for h in rows["sha256"]], dtype=pl.UInt64),
        "caption_hash": pl.Series([hash64(c) for c in normalise(rows["caption"])], dtype=pl.UInt64),
        "phash": pl.Series([s[0] if s else None for s in sigs], dtype=pl.UInt64),
        "colour": pl.Series([s[1] if s else None for s in sigs], dtype=pl.Binary),
        "view_hashes": pl.Series([[s[0]] if s else None for s in sigs], dtype=pl.List(pl.UInt64)),
        "view_colours": pl.Series([[s[1]] if s else None for s in sigs], dtype=pl.List(pl.Binary)),
        "pixels": (rows["original_width"].cast(pl.UInt32) * rows["original_height"].cast(pl.UInt32)),
    })
