"""Drawn images whose Chinese captions describe them, plus planted bad cases.

Every image shows one coloured shape at a named position on a plain background, so a caption
such as "白色背景的左上角有一个红色的圆形" is true of its image, and a model can learn it.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

COLOURS = {"红色": (220, 30, 30), "绿色": (30, 160, 60), "蓝色": (30, 70, 220), "黄色": (240, 200, 20),
           "紫色": (140, 50, 170), "橙色": (250, 130, 20), "黑色": (20, 20, 20), "青色": (20, 190, 200)}
SHAPES = ("圆形", "正方形", "三角形", "菱形")
POSITIONS = {"左上角": (0.25, 0.25), "右上角": (0.75, 0.25), "左下角": (0.25, 0.75), "右下角": (0.75, 0.75),
             "中间": (0.5, 0.5)}
BACKGROUNDS = {"白色": (250, 250, 250), "灰色": (170, 170, 170)}
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


def draw(colour: str, shape: str, position: str, background: str, size=(288, 256), rng=None) -> Image.Image:
    rng = rng or random.Random(0)
    w, h = size
    image = Image.new("RGB", size, BACKGROUNDS[background])
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
    ok = jpeg(draw("红色", "圆形", "中间", "白色"))
    return [
        Sample("/img/missing.jpg", "一张已经删除的图片", None, "http_404"),
        Sample("/img/not-an-image.jpg", "网页而不是图片", b"<html><body>not an image</body></html>", "not_an_image"),
        Sample("/img/truncated.jpg", "下载到一半的图片", ok[: len(ok) // 2], "truncated_jpeg"),
        Sample("/img/optout.jpg", "不允许用于训练的图片", ok, "opted_out", {"X-Robots-Tag": "noai"}),
        Sample("", "没有网址的行", None, "invalid_url", url=""),
        Sample("", "不是网页地址的行", None, "invalid_url", url="ftp://example.org/a.jpg"),
        Sample("/img/tiny.jpg", "一个很小的红色圆形", jpeg(draw("红色", "圆形", "中间", "白色", size=(48, 40))), "tiny_image"),
        Sample("/img/wide.jpg", "一条很长的蓝色横幅", jpeg(draw("蓝色", "正方形", "中间", "白色", size=(1200, 200))),
               "extreme_aspect_ratio"),
        Sample(good[0].url_path, good[0].caption, good[0].body, "duplicate_url"),
        Sample("/img/copy-of-1.jpg", "另一个网站转载的同一张图", good[1].body, "duplicate_image"),
        Sample("/img/english.jpg", "A red circle in the middle of a white background", ok, "english_caption"),
        Sample("/img/japanese.jpg", "白い背景の真ん中に赤い丸があります", ok, "japanese_caption"),
        Sample("/img/filename.jpg", "IMG_0001.jpg", ok, "meaningless_caption"),
        Sample("/img/generic.jpg", "图片", ok, "meaningless_caption"),
    ]
