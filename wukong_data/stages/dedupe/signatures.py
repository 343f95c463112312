"""Per-row signatures for dedupe, computed once in the parallel map phase.

url_hash      normalised URL (scheme and host lower-cased, default port and fragment dropped)
image_hash    the first 64 bits of the crawl's sha256 of the image bytes
caption_hash  the caption after whitespace normalisation
view_hashes   K = 4 perceptual hashes of the picture, one per view (VIEWS):
              0 the whole picture, once uniform borders (white, black, coloured, letterbox
                bars) are trimmed; 1-3 the same less 8% of the width and height at one corner
                (top right, bottom left, bottom right)
view_colours  per view, 58 bytes of 4-bit levels that near duplicates share within `colour_tolerance`:
              - a 6x6 colour grid (54 bytes): the cell's chroma (Cb, Cr) in steps of 4 around
                grey, fine enough to tell a hue-rotated photo from its original, and its green
                level in steps of 16, which follows brightness and parts the saturated reds,
                oranges and yellows whose chroma is out of that range. pHash sees grey levels
                only, so a red and a blue circle hash alike;
              - the view's edge orientations (4 bytes): the share of its edge energy (squared
                gradient of the grey thumbnail) in each of 8 directions, in steps of 1/30. The
                hash and the grid see where a flat picture's shape is, not its outline: a red
                circle and a red diamond at one place hash alike and fill the cells alike, but a
                circle's edges point every way, a diamond's two ways, a square's two others.
                Totals over the view, they barely move when a crop or a zoom shifts the picture
phash, colour view 0's hash and levels
pixels        original width x height, to keep the largest copy of a near-duplicate group

Two images are near duplicates when, for a pair (a, b) of MATCHING_VIEWS (either way round),
view a of one and view b of the other have hashes within `hamming_radius` bits and no level of
their colour grids and edge orientations more than `colour_tolerance` apart. (k, k) pairs catch
an overlay (a banner, a watermark) at the edge a corner view leaves out; (k, 0) pairs catch a
copy cropped at a corner: its whole picture is the original's view without that corner.

The hash is pHash's (the signs against their median of the 8x8 lowest DCT coefficients of a
32x32 grey thumbnail), taken of the thumbnail less its mean and tapered towards the edges
(sin), so that the strip a crop cuts away or a border shifts counts less. The 64 signs are
balanced, so two hashes always differ in an even number of bits: radius 8 is also radius 9.

Measured (benchmarks/near_dup_signatures.py) on 42 real photographs and 17 web edits of each
(tests/data/photos, tests/web_edits.py), 15 more photos held out, and flat drawings (one shape
of one colour on a plain background, as the demo draws and product shots are:
tests/flat_drawings.py): with the defaults 0.965 of edited copies meet their original (held
out: 0.957), against 0.47 for the previous single pHash and RGB grid at radius 7; no two
distinct photos, none of the 138 hue-rotated look-alikes and no two of the demo's distinct
drawings merge. Why these settings, on the tuning photos:
- views: each is an index entry per row, and the search's cost grows faster than the entries.
  The whole picture alone catches 0.76 of the edited copies, with its middle 84% 0.88, with two
  corner views 0.94, three 0.965, four 0.98. Three are the fewest that keep 0.95: the corner
  left out is the top left, so a copy that keeps the bottom right of its original (cut at
  the top and the left by 5-10%) meets it only by chance. Corner views at 8%: a corner crop of
  2-3% still meets view 0, of 5-10% the view without that corner.
- the taper: sin lets more crops meet than sin^0.5 (0.965 and 0.962 with these views).
- hamming_radius 8: 6 catches 0.94 of the edited copies, 8 0.965, 10 0.97 (as many probes
  per block in the search, 8 // 4 = 10 // 4, but more pairs of distinct pictures to confirm:
  4 of 25,536 photo quarters within 8 bits, 7 within 10).
- colour_tolerance 3: 2 catches 0.94, 3 0.965, 4 0.97 but merges a pair of distinct photos
  and 7 pairs of the demo's drawings (yellow and orange shapes). The edge orientations of an
  edited copy and its original differ by 0-1 steps (98%; 3 at most), those of two drawings of
  one colour at one place in other shapes by 5 or more.
Why flat pictures needed the edge orientations: such a picture's hash says where its shape is
and how large, little else (a shape 11 px across in the 32 px thumbnail, finer than the 8
lowest frequencies resolve), so two drawings of one colour at one place in other shapes are
22 bits apart at the median and 5% within 8 bits (distinct photos: 14 at the least); each more
view pair is another chance, its 8% shift and zoom near what sets two such drawings apart
(nearest view pair: 14 bits at the median, 59 of 479 pairs within 8); and the grid's cells
differ only along the slivers where the outlines part, or not at all where a saturated colour
clips the chroma (62 of 479 within the tolerance). Without the orientations 22 of the 51,020
pairs of the demo's distinct drawings merged, all of them the same colour at one place.
Missed: crops at the top-left corner (above), some 10% centre crops (5% off every side: no
view matches them well; 0.88 meet), and a letterbox bar on a photo whose edge has the bar's
colour (it is not a border there). A small yellow and a small orange shape at one place can
merge (1 of 153,120 pairs of drawings drawn again): only the green level parts those colours,
by 4 steps where the shape fills a cell, which a small diamond seldom does.
"""
from __future__ import annotations

import hashlib
import io
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import polars as pl
from PIL import Image

from ...images import decodable_size
from ...normalise import normalise

_DEFAULT_PORTS = {"http": 80, "https": 443}
# What Pillow raises for bytes it cannot read as an image (truncated, corrupt, a bomb, not an
# image at all).
_DECODER_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


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


SIGNATURE_VERSION = 3  # changes whenever a signature of the same image would: cached ones are stale
GRID = 6  # colour grid cells per side
_THUMB = 32  # the grey thumbnail the DCT is taken of
_CORNER = 0.08  # the share of the width and height a corner view leaves out
# (left, top, right, bottom) of each view, as fractions of the trimmed picture.
VIEWS = (
    (0, 0, 1, 1),
    (0, _CORNER, 1 - _CORNER, 1),  # without the top-right corner
    (_CORNER, 0, 1, 1 - _CORNER),  # without the bottom-left corner
    (0, 0, 1 - _CORNER, 1 - _CORNER),  # without the bottom-right corner
)
MATCHING_VIEWS = [(0, 0), (1, 1), (2, 2), (3, 3), (1, 0), (2, 0), (3, 0)]
_CHROMA_STEP = 4  # Cb and Cr levels per 4-bit step: 128 +- 32 spans the 16 steps
_ORIENTATIONS = 8  # edge directions, 22.5 degrees apart
COLOUR_BYTES = GRID * GRID * 3 // 2 + _ORIENTATIONS // 2  # view_colours: 4-bit levels, two to a byte
_ORIENTATION_STEP = 1 / 30  # share of a view's edge energy per 4-bit step; the top level, 1/2, is a square's

_k = np.arange(_THUMB)
_DCT = np.cos(np.pi * np.outer(np.arange(8), 2 * _k + 1) / (2 * _THUMB))  # the 8 lowest frequencies
_TAPER = np.outer(*2 * [np.sin(np.pi * (_k + 0.5) / _THUMB)]).astype(np.float32)

# Border trimming: a border is a run of edge lines, 95% of each line's pixels within 6 levels of
# the edge line's colour, and never more than a third of a side (so a blank image stays whole).
_BORDER_TOLERANCE = 6
_BORDER_SHARE = 0.95
_BORDER_MAX = 1 / 3
_BORDER_EDGE = 0.2  # the share of the line after a border that differs from it by 3x the tolerance


def _border_lines(lines: np.ndarray, limit: int) -> int:
    """How many of the leading `lines` (each (length, 3)) are a border: of the first line's
    colour, and ending at a sharp edge (a gradient of sky or wall drifts out of any tolerance
    at a point that noise and JPEG move, so it is not trimmed)."""
    if limit <= 0:
        return 0
    edge = np.median(lines[0], axis=0)
    if (np.abs(lines[0] - edge).max(axis=1) <= _BORDER_TOLERANCE).mean() < _BORDER_SHARE:
        return 0  # most pictures: the edge line is not one colour
    deviation = np.abs(lines[:limit + 1] - edge).max(axis=2)
    one_colour = (deviation <= _BORDER_TOLERANCE).mean(axis=1) >= _BORDER_SHARE
    n = int(one_colour.argmin())
    if one_colour[n] or n >= limit:
        return 0  # one colour a third of the way in: a blank picture, not a border
    sharp = (deviation[n] > 3 * _BORDER_TOLERANCE).mean() >= _BORDER_EDGE
    return n if sharp else 0


def trimmed_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of `pixels` (h, w, 3) inside its uniform borders. Nested borders
    (a frame around a letterbox) come off in turn: each pass takes one colour from each side."""
    h, w = pixels.shape[:2]
    left, top, right, bottom = 0, 0, w, h
    max_rows, max_columns = int(h * _BORDER_MAX), int(w * _BORDER_MAX)
    for _ in range(4):
        before = (left, top, right, bottom)
        top += _border_lines(pixels[top:bottom, left:right], max_rows - top)
        bottom -= _border_lines(pixels[top:bottom, left:right][::-1], max_rows - (h - bottom))
        left += _border_lines(pixels[top:bottom, left:right].transpose(1, 0, 2), max_columns - left)
        right -= _border_lines(pixels[top:bottom, left:right].transpose(1, 0, 2)[::-1], max_columns - (w - right))
        if (left, top, right, bottom) == before:
            break
    return left, top, right, bottom


def _phashes(thumbs: np.ndarray) -> list[int]:
    """(views, 32, 32) grey thumbnails -> one 64-bit hash each."""
    centred = (thumbs - thumbs.mean(axis=(1, 2), keepdims=True)) * _TAPER
    coefficients = (_DCT @ centred @ _DCT.T).reshape(len(thumbs), 64)
    bits = coefficients > np.median(coefficients, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().tolist()


def _colour_grids(cells: np.ndarray) -> np.ndarray:
    """(views, GRID, GRID, 3) YCbCr cell means -> (views, GRID * GRID * 3) 4-bit levels: green, Cb, Cr."""
    y, cb, cr = (cells[..., c].astype(np.float32) for c in range(3))
    nibbles = np.empty(cells.shape, np.uint8)
    nibbles[..., 0] = np.clip(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), 0, 255).astype(np.uint8) >> 4
    nibbles[..., 1:] = np.clip(np.round((cells[..., 1:].astype(np.int16) - 128) / _CHROMA_STEP) + 8, 0, 15)
    return nibbles.reshape(len(cells), -1)


def _edge_orientations(thumbs: np.ndarray) -> np.ndarray:
    """(views, 32, 32) grey thumbnails -> (views, 8) 4-bit levels: the share of each view's edge
    energy (squared gradient) in each direction, split linearly between the two nearest."""
    gx = thumbs[:, 1:-1, 2:] - thumbs[:, 1:-1, :-2]
    gy = thumbs[:, 2:, 1:-1] - thumbs[:, :-2, 1:-1]
    energy = gx * gx + gy * gy
    position = np.arctan2(gy, gx) % np.pi / (np.pi / _ORIENTATIONS)
    lower = np.floor(position).astype(np.int64)
    upper_share = position - lower
    first = np.arange(len(thumbs))[:, None, None] * _ORIENTATIONS  # each view's own bins
    size = len(thumbs) * _ORIENTATIONS
    bins = (np.bincount((first + lower % _ORIENTATIONS).ravel(), (energy * (1 - upper_share)).ravel(), size)
            + np.bincount((first + (lower + 1) % _ORIENTATIONS).ravel(), (energy * upper_share).ravel(), size))
    bins = bins.reshape(len(thumbs), _ORIENTATIONS)
    shares = bins / np.maximum(bins.sum(axis=1, keepdims=True), 1e-9)  # a blank view: all 0
    return np.minimum(np.round(shares / _ORIENTATION_STEP), 15).astype(np.uint8)


def _packed(nibbles: np.ndarray) -> list[bytes]:
    """(views, n) 4-bit levels, n even -> n / 2 bytes each, two levels to a byte."""
    return [row.tobytes() for row in (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]]


def image_signature(data: bytes | None, views=VIEWS) -> list[tuple[int, bytes]] | None:
    """(hash as an unsigned 64-bit int, packed colour grid and edge orientations) of each of
    `views`, or None if the image won't decode."""
    if not decodable_size(data):  # a decompression bomb is never decoded
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, several times faster
            rgb = image.convert("RGB")
    except _DECODER_ERRORS:  # not an image Pillow can read: no signature, the row skips near-dup search
        return None
    # What follows is our own computation: an error in it is a bug and stops the stage.
    left, top, right, bottom = trimmed_box(np.asarray(rgb, np.int16))
    grey, ycc = rgb.convert("L"), rgb.convert("YCbCr")  # cell means of YCbCr = YCbCr of the means
    boxes = [(left + x0 * (right - left), top + y0 * (bottom - top), left + x1 * (right - left),
              top + y1 * (bottom - top)) for x0, y0, x1, y1 in views]
    thumbs = np.stack([np.asarray(grey.resize((_THUMB, _THUMB), Image.Resampling.LANCZOS, box=box), np.float32)
                       for box in boxes])
    cells = np.stack([np.asarray(ycc.resize((GRID, GRID), Image.Resampling.BOX, box=box)) for box in boxes])
    levels = np.concatenate([_colour_grids(cells), _edge_orientations(thumbs)], axis=1)
    return list(zip(_phashes(thumbs), _packed(levels)))


def unpack_colours(packed: np.ndarray) -> np.ndarray:
    """(n, 58) packed colour grids and edge orientations -> (n, 116) 4-bit levels."""
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
        "phash": pl.Series([s[0][0] if s else None for s in sigs], dtype=pl.UInt64),
        "colour": pl.Series([s[0][1] if s else None for s in sigs], dtype=pl.Binary),
        "view_hashes": pl.Series([[h for h, _ in s] if s else None for s in sigs], dtype=pl.List(pl.UInt64)),
        "view_colours": pl.Series([[c for _, c in s] if s else None for s in sigs], dtype=pl.List(pl.Binary)),
        "pixels": (rows["original_width"].cast(pl.UInt32) * rows["original_height"].cast(pl.UInt32)),
    })
