"""Flat pictures for the near-duplicate tests: the demo's drawings (wukong_data/demo/synth.py, one
shape of one colour on a plain, faintly shaded background, as product shots on a plain backdrop
are) with what each one shows, and the look-alike drawings of the dedupe stage's test.

Distinct drawings must never merge. The demo's 300 good drawings show 300 of the 320 combinations
of colour, shape, position and background; its 20 mismatched-caption drawings show 20 other
combinations, on a background no good drawing uses.
"""
from __future__ import annotations

import random

import wukong_data.demo.synth as synth

# (colour, shape) at the same place: same shape other colour, same colour other shape.
LOOK_ALIKES = [("红色", "圆形"), ("蓝色", "圆形"), ("橙色", "圆形"),
               ("红色", "正方形"), ("红色", "三角形"), ("红色", "菱形")]


def look_alike(colour: str, shape: str) -> bytes:
    return synth.jpeg(synth.draw(colour, shape, "中间", "白色", size=(300, 300), rng=random.Random(99)))


def recorded_drawings(make_samples) -> list[tuple[tuple[str, str, str, str], bytes]]:
    """((colour, shape, position, background), JPEG) of each sample `make_samples()` draws."""
    shown = []
    draw = synth.draw

    def recorded(colour, shape, position, background, **kwargs):
        shown.append((colour, shape, position, background))
        return draw(colour, shape, position, background, **kwargs)

    synth.draw = recorded  # a caption does not always say what is drawn: record it
    try:
        samples = make_samples()
    finally:
        synth.draw = draw
    return list(zip(shown, [s.body for s in samples]))


def demo_drawings() -> list[tuple[tuple[str, str, str, str], bytes]]:
    """The demo's 300 good drawings and its 20 mismatched-caption ones, with what each shows."""
    return recorded_drawings(lambda: synth.good_samples(300) + synth.mismatched_samples(20))


def planted_copies() -> list[tuple[bytes, bytes]]:
    """(original, copy) of each near duplicate the demo plants (half size, JPEG quality 30)."""
    good = synth.good_samples(4)
    planted = [s.body for s in synth.planted_samples(good) if s.kind == "near_duplicate_image"]
    return [(good[2].body, planted[0]), (good[3].body, planted[1])]
