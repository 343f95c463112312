"""Real photographs (tests/data/photos) and the edits that re-hosting on the web applies to them.

EDITS make near duplicates: the dedupe stage must group each with its original. LOOK_ALIKES
keep the layout and change the colours (hue rotated): different images that must stay apart.
FLIP is reported on its own: a mirrored photo is a duplicate for some uses and not for others
(captions that say left and right), so no rule is required of it.

Crop fractions are of each side: "corner 10%" keeps 90% of the width and of the height, anchored
at one corner (which corner varies by photo); "centre 10%" removes 5% from every side.
"""
from __future__ import annotations

import colorsys
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from images import jpeg, resized

PHOTOS = Path(__file__).parent / "data" / "photos"
SPLITS = ("tuning", "heldout")


def photos(split: str) -> dict[str, bytes]:
    """name -> JPEG bytes of one split of the photo set."""
    return {p.stem: p.read_bytes() for p in sorted((PHOTOS / split).glob("*.jpg"))}


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _crop_corner(image: Image.Image, fraction: float, corner: int) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    left, top = (dx if corner in (1, 3) else 0), (dy if corner in (2, 3) else 0)
    return image.crop((left, top, left + w - dx, top + h - dy))


def _crop_centre(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction / 2), round(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def _border(image: Image.Image, fraction: float, colour) -> Image.Image:
    w, h = image.size
    pad = round(max(w, h) * fraction)
    out = Image.new("RGB", (w + 2 * pad, h + 2 * pad), colour)
    out.paste(image, (pad, pad))
    return out


def _letterbox(image: Image.Image) -> Image.Image:
    """Black bars to a square canvas (a square photo gets pillarboxed to 4:3)."""
    w, h = image.size
    size = (max(w, h), max(w, h)) if w != h else (w * 4 // 3, h)
    out = Image.new("RGB", size, (0, 0, 0))
    out.paste(image, ((size[0] - w) // 2, (size[1] - h) // 2))
    return out


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def _banner(image: Image.Image, fraction: float, top: bool) -> Image.Image:
    """A caption bar over the top or bottom of the photo, as news and forum sites add."""
    out = image.copy()
    w, h = out.size
    bar = round(h * fraction)
    y0 = 0 if top else h - bar
    fill, ink = ((250, 250, 250), (30, 30, 30)) if top else ((25, 25, 25), (240, 240, 240))
    d = ImageDraw.Draw(out)
    d.rectangle((0, y0, w, y0 + bar), fill=fill)
    d.text((w * 0.03, y0 + bar * 0.2), "www.example-news.cn  图片来源网络", fill=ink, font=_font(int(bar * 0.6)))
    return out


def _watermark(image: Image.Image, centre: bool) -> Image.Image:
    """Half-transparent text: a site name in the bottom-right corner, or across the centre."""
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    w, h = base.size
    size = round(h * (0.08 if centre else 0.05))
    font = _font(size)
    text = "© photo.example.com"
    tw = d.textlength(text, font=font)
    xy = ((w - tw) / 2, h / 2 - size / 2) if centre else (w - tw - w * 0.02, h - size * 1.4)
    d.text(xy, text, fill=(255, 255, 255, 150), font=font)
    return Image.alpha_composite(base, layer).convert("RGB")


def _hue_rotated(image: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


# name -> edit(image, i): i is the photo's index, to vary corners and colours across photos.
EDITS = {
    "resize_50": lambda im, i: jpeg(resized(im, 0.5)),
    "thumbnail_200": lambda im, i: jpeg(resized(im, 200 / max(im.size))),
    "jpeg_q30": lambda im, i: jpeg(im, 30),
    **{f"crop_corner_{p}": (lambda p: lambda im, i: jpeg(_crop_corner(im, p / 100, i % 4)))(p) for p in (2, 5, 10)},
    **{f"crop_centre_{p}": (lambda p: lambda im, i: jpeg(_crop_centre(im, p / 100)))(p) for p in (2, 5, 10)},
    "border_white_5": lambda im, i: jpeg(_border(im, 0.05, (255, 255, 255))),
    "border_colour_8": lambda im, i: jpeg(_border(im, 0.08, tuple(int(c * 255) for c in colorsys.hsv_to_rgb(i / 7 % 1, 0.7, 0.8)))),
    "letterbox_black": lambda im, i: jpeg(_letterbox(im)),
    "banner_bottom_8": lambda im, i: jpeg(_banner(im, 0.08, top=False)),
    "banner_top_8": lambda im, i: jpeg(_banner(im, 0.08, top=True)),
    "watermark_corner": lambda im, i: jpeg(_watermark(im, centre=False)),
    "watermark_centre": lambda im, i: jpeg(_watermark(im, centre=True)),
    # What a re-hosting site does in one go: crop, shrink, recompress.
    "crop_resize_jpeg": lambda im, i: jpeg(resized(_crop_corner(im, 0.05, i % 4), 0.6), 50),
}
FLIP = lambda im, i: jpeg(im.transpose(Image.FLIP_LEFT_RIGHT))  # noqa: E731
LOOK_ALIKES = {f"hue_{d}": (lambda d: lambda im, i: jpeg(_hue_rotated(im, d)))(d) for d in (60, 120, 180)}


def visibly_recoloured(original: Image.Image, recoloured: Image.Image) -> bool:
    """A hue rotation makes a look-alike only where it changes a region's colour: some 1/64 of the
    picture (an 8x8 cell) moves by 40 or more (RGB distance, 0-255). On grey or nearly grey photos
    it changes nothing a person would see, and the copy is a duplicate, not a look-alike."""
    a = np.asarray(original.convert("RGB").resize((8, 8), Image.BOX), np.float32)
    b = np.asarray(recoloured.convert("RGB").resize((8, 8), Image.BOX), np.float32)
    return float(np.sqrt(((a - b) ** 2).sum(axis=2)).max()) >= 40


def edited_pool(split: str) -> list[tuple[str, str, bytes]]:
    """(photo, kind, JPEG bytes) for every photo of a split: the original ("original"), each of
    EDITS, "flip", and each of LOOK_ALIKES that visibly recolours it."""
    pool = []
    for i, (name, data) in enumerate(photos(split).items()):
        image = decode(data)
        pool.append((name, "original", data))
        pool += [(name, kind, edit(image, i)) for kind, edit in EDITS.items()]
        pool.append((name, "flip", FLIP(image, i)))
        for kind, edit in LOOK_ALIKES.items():
            data = edit(image, i)
            if visibly_recoloured(image, decode(data)):
                pool.append((name, kind, data))
    return pool
