"""Drawn images whose Chinese captions describe them, plus planted bad cases.

Every image shows one coloured shape at a named position on a plain background, so a caption
such as "白色背景的左上角有一个红色的圆形" is true of its image, and a model can learn it.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"红色": (220, 30, 30), "绿色": (30, 160, 60), "蓝色": (30, 70, 220), "黄色": (240, 200, 20),
           "紫色": (140, 50, 170), "橙色": (250, 130, 20), "黑色": (20, 20, 20), "青色": (20, 190, 200)}
SHAPES = ("圆形", "正方形", "三角形", "菱形")
POSITIONS = {"左上角": (0.25, 0.25), "右上角": (0.75, 0.25), "左下角": (0.25, 0.75), "右下角": (0.75, 0.75),
             "中间": (0.5, 0.5)}
BACKGROUNDS = {"白色": (250, 250, 250), "灰色": (170, 170, 170)}
# The planted cases and the mismatched captions are drawn on a background no good drawing uses, so
# that no planted picture is a near duplicate of a good one and each meets its own rule.
PLANTED_BACKGROUND = ("米色", (238, 226, 198))
# On it, the planted cases show these (colour, shape, position); the mismatched captions others.
BOILERPLATE = [(c, s) for c in ("青色", "橙色", "蓝色") for s in ("圆形", "正方形", "三角形", "菱形")]
PLANTED = {("红色", "圆形", "中间"), ("蓝色", "正方形", "中间"), ("绿色", "正方形", "左上角"),
           ("黄色", "圆形", "右上角"), ("紫色", "三角形", "左下角"), ("黑色", "菱形", "右下角")} \
    | {(c, s, "中间") for c, s in BOILERPLATE}
TEMPLATES = ("{bg}背景的{pos}有一个{colour}的{shape}", "一个{colour}{shape}位于{bg}画面的{pos}",
             "{pos}画着{colour}的{shape}，背景是{bg}")


@dataclass
class Sample:
    url_path: str
    caption: str
    body: bytes | None  # None: the server answers 404
    kind: str = "good"  # good, or the planted case
    headers: dict[str, str] = field(default_factory=dict)
    url: str | None = None  # set for rows whose URL is not served by us (invalid ones)


def _texture(base: tuple[int, int, int], size, rng: random.Random) -> Image.Image:
    """A plain background with faint low-frequency shading, different for every image, as photos
    have: without it every 'red circle in the middle' would be a perceptual duplicate."""
    w, h = size
    coarse = np.random.default_rng(rng.randrange(2**32)).normal(0, 14, (4, 4, 1))
    shade = np.asarray(Image.fromarray(coarse[..., 0].astype(np.float32), mode="F").resize(size, Image.BICUBIC))
    pixels = np.asarray(base, np.float32)[None, None, :] + shade[..., None]
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def draw(colour: str, shape: str, position: str, background: str, size=(288, 256), rng=None) -> Image.Image:
    rng = rng or random.Random(0)
    w, h = size
    image = _texture(dict([*BACKGROUNDS.items(), PLANTED_BACKGROUND])[background], size, rng)
    d = ImageDraw.Draw(image)
    cx, cy = POSITIONS[position]
    cx, cy = cx * w + rng.uniform(-6, 6), cy * h + rng.uniform(-6, 6)
    r = min(w, h) * rng.uniform(0.16, 0.21)
    fill = COLOURS[colour]
    if shape == "圆形":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "正方形":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "三角形":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    return image


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def good_samples(n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    combos = [(c, s, p, b) for b in BACKGROUNDS for c in COLOURS for s in SHAPES for p in POSITIONS]
    rng.shuffle(combos)
    samples = []
    for i in range(n):
        colour, shape, position, background = combos[i % len(combos)]
        image = draw(colour, shape, position, background, rng=rng)
        caption = rng.choice(TEMPLATES).format(bg=background, pos=position, colour=colour, shape=shape)
        samples.append(Sample(f"/img/{i:05d}.jpg", caption, jpeg(image)))
    return samples


def planted_samples(good: list[Sample]) -> list[Sample]:
    """One or more rows per bad case a real crawl meets; `kind` names the case."""
    def picture(seed: int, **kw) -> bytes:  # a distinct image per planted case, so each meets its own rule
        return jpeg(draw(kw.get("colour", "红色"), kw.get("shape", "圆形"), kw.get("position", "中间"),
                         PLANTED_BACKGROUND[0], size=kw.get("size", (288, 256)), rng=random.Random(1000 + seed)))

    ok = picture(0)
    return [
        Sample("/img/missing.jpg", "一张已经删除的图片", None, "http_404"),
        Sample("/img/not-an-image.jpg", "网页而不是图片", b"<html><body>not an image</body></html>", "not_an_image"),
        Sample("/img/truncated.jpg", "下载到一半的图片", ok[: len(ok) // 2], "truncated_jpeg"),
        Sample("/img/optout.jpg", "不允许用于训练的图片", ok, "opted_out", {"X-Robots-Tag": "noai"}),
        Sample("", "没有网址的行", None, "invalid_url", url=""),
        Sample("", "不是网页地址的行", None, "invalid_url", url="ftp://example.org/a.jpg"),
        Sample("/img/tiny.jpg", "一个很小的红色圆形", picture(1, size=(48, 40)), "tiny_image"),
        Sample("/img/wide.jpg", "一条很长的蓝色横幅", picture(2, colour="蓝色", shape="正方形", size=(1200, 200)),
               "extreme_aspect_ratio"),
        Sample(good[0].url_path, good[0].caption, good[0].body, "duplicate_url"),
        Sample("/img/copy-of-1.jpg", "另一个网站转载的同一张图", good[1].body, "duplicate_image"),
        Sample("/img/english.jpg", "A green square in the top left corner",
               picture(3, colour="绿色", shape="正方形", position="左上角"), "english_caption"),
        Sample("/img/japanese.jpg", "背景の右上に黄色い丸があります", picture(4, colour="黄色", position="右上角"),
               "japanese_caption"),
        Sample("/img/filename.jpg", "IMG_0001.jpg", picture(5, colour="紫色", shape="三角形", position="左下角"),
               "meaningless_caption"),
        Sample("/img/generic.jpg", "图片", picture(6, colour="黑色", shape="菱形", position="右下角"),
               "meaningless_caption"),
        Sample("/img/half-size-of-2.jpg", "转载时缩小了一半的图", _resized(good[2].body, 0.5), "near_duplicate_image"),
        Sample("/img/recompressed-3.jpg", "转载时重新压缩的图", _recompressed(good[3].body, 30), "near_duplicate_image"),
    ] + mismatched_samples(20) + [
        # Boilerplate shared by many unrelated images: more than 10 times, so all are dropped.
        Sample(f"/img/boilerplate-{i}.jpg", "点击查看原图", picture(10 + i, colour=colour, shape=shape), "frequent_caption")
        for i, (colour, shape) in enumerate(BOILERPLATE)
    ]


def mismatched_samples(n: int, seed: int = 7) -> list[Sample]:
    """Images whose caption describes another picture (other colour, shape, position, background), as
    search-engine captions often do: the score stage's work. Each shows its own combination."""
    rng = random.Random(seed)
    background = PLANTED_BACKGROUND[0]
    shown = rng.sample([(c, s, p) for c in COLOURS for s in SHAPES for p in POSITIONS if (c, s, p) not in PLANTED], n)
    out = []
    for i, (colour, shape, position) in enumerate(shown):
        other_colour = rng.choice([c for c in COLOURS if c != colour])
        other_shape = rng.choice([s for s in SHAPES if s != shape])
        other_position = rng.choice([p for p in POSITIONS if p != position])
        # The caption names a good drawing's background: were it the picture's own (a word only
        # these pairs use), a model would learn to pair them by it.
        other_background = rng.choice(list(BACKGROUNDS))
        image = draw(colour, shape, position, background, rng=rng)
        caption = rng.choice(TEMPLATES).format(bg=other_background, pos=other_position, colour=other_colour,
                                               shape=other_shape)
        out.append(Sample(f"/img/mismatch-{i}.jpg", caption, jpeg(image), "mismatched_caption"))
    return out


def _resized(body: bytes, scale: float) -> bytes:
    image = Image.open(io.BytesIO(body))
    return jpeg(image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS))


def _recompressed(body: bytes, quality: int) -> bytes:
    return jpeg(Image.open(io.BytesIO(body)), quality=quality)
