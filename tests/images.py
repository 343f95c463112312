"""Test images: textured scenes (photo-like, so perceptual hashes spread as on real photos)
and the transformations re-hosting sites apply to them."""
import io
import random

import numpy as np
from PIL import Image, ImageDraw


def scene(seed: int, size=(400, 360)) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    c1, c2 = (np.array([rng.randrange(256) for _ in range(3)]) for _ in range(2))
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    image = Image.fromarray((c1 * (1 - t) + c2 * t + np.zeros((h, w, 3))).clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(image)
    for _ in range(6):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 90)
        [d.ellipse, d.rectangle][rng.randrange(2)]((x - r, y - r, x + r, y + r), fill=colour)
    noise = np.random.default_rng(seed).normal(0, 6, (h, w, 3))
    return Image.fromarray((np.asarray(image) + noise).clip(0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def resized(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)


def cropped(image: Image.Image, area_removed: float) -> Image.Image:
    """A centred crop removing `area_removed` of the area."""
    side = (1 - (1 - area_removed) ** 0.5) / 2
    dx, dy = int(image.width * side), int(image.height * side)
    return image.crop((dx, dy, image.width - dx, image.height - dy))
