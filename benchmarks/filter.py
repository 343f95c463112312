"""Filter throughput: the whole text chain per core on synthetic Chinese captions, its parts,
the segmenters (rjieba vs jieba), NSFW images/s on CPU, and the floor (reading the column).

    python benchmarks/filter.py --captions 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # per-core figures: before polars is imported

import polars as pl  # noqa: E402

from wukong_data.recipe import FilterConfig
from wukong_data.stages.filter import TextRules
from wukong_data.stages.filter.image import nsfw_scorer
from wukong_data.stages.filter.language import identify
from wukong_data.stages.filter.normalise import normalise
from wukong_data.stages.filter.patterns import contains_any, is_meaningless
from wukong_data.stages.filter.words import tag

COLOURS = ["红色", "蓝色", "白色", "黑色", "金色", "粉色", "绿色"]
THINGS = ["连衣裙", "小狗", "猫咪", "汽车", "手机壳", "风景", "花朵", "蛋糕", "沙发", "山水画", "雪山", "海滩"]
PLACES = ["北京", "上海", "杭州西湖", "桂林", "草地上", "窗台上", "公园里", "厨房里"]
EXTRAS = ["高清壁纸", "新款", "夏季", "可爱的", "复古风格", "简约", "精美", "实拍图"]
NAMES = ["张伟", "李娜", "王芳", "刘洋"]


def synthetic_captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            out.append(rng.choice(["A cute dog on the grass", "red dress summer new", "beautiful sunset"]))
        elif r < 0.07:
            out.append(rng.choice(["かわいい猫の写真", "東京タワーの夜景です"]))
        elif r < 0.09:
            out.append(rng.choice(["IMG_%04d.jpg" % rng.randrange(10000), "图片", "123456"]))
        elif r < 0.14:
            out.append(f"{rng.choice(NAMES)}在{rng.choice(PLACES)}拍的{rng.choice(THINGS)}")
        else:
            out.append(f"{rng.choice(EXTRAS)}{rng.choice(COLOURS)}的{rng.choice(THINGS)} {rng.choice(PLACES)}")
    return out


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    n = args.captions
    result = {"captions": n, "processes": 1, "note": "per core: one process, one thread"}

    captions = pl.Series("caption", synthetic_captions(n), dtype=pl.String)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "captions.parquet")
        pl.DataFrame({"key": [f"{i:09d}" for i in range(n)], "caption": captions}).write_parquet(path)
        read, seconds = timed(lambda: pl.read_parquet(path, columns=["caption"])["caption"])
        result["floor_read_caption_column_per_s"] = rate(n, seconds)

    rules = TextRules.from_config(FilterConfig())
    chunk = 100_000
    start = time.perf_counter()
    kept = 0
    for offset in range(0, n, chunk):
        part = read.slice(offset, chunk)
        reasons = [None] * part.len()
        rules.apply(part, reasons)
        kept += reasons.count(None)
    seconds = time.perf_counter() - start
    result["text_chain_per_s"] = rate(n, seconds)
    result["text_chain_kept_fraction"] = round(kept / n, 4)
    result["target_per_s"] = 100_000

    sample = read.slice(0, min(n, 200_000))
    m = sample.len()
    clean, seconds = timed(lambda: normalise(sample))
    parts = {"normalise_per_s": rate(m, seconds)}
    _, seconds = timed(lambda: is_meaningless(clean, rules.generic))
    parts["meaningless_per_s"] = rate(m, seconds)
    _, seconds = timed(lambda: identify(clean))
    parts["language_per_s"] = rate(m, seconds)
    texts = clean.to_list()
    _, seconds = timed(lambda: [tag(t) for t in texts])
    parts["rjieba_tag_per_s"] = rate(m, seconds)
    _, seconds = timed(lambda: (contains_any(clean, rules.sensitive), contains_any(clean, rules.nsfw)))
    parts["word_lists_per_s"] = rate(m, seconds)
    import jieba
    import jieba.posseg
    import rjieba

    jieba.setLogLevel(60)
    jieba.initialize()
    few = texts[:20_000]
    _, seconds = timed(lambda: [jieba.lcut(t) for t in few])
    parts["jieba_cut_per_s"] = rate(len(few), seconds)
    _, seconds = timed(lambda: [jieba.posseg.lcut(t) for t in few[:5000]])
    parts["jieba_posseg_per_s"] = rate(5000, seconds)
    _, seconds = timed(lambda: [rjieba.cut(t) for t in texts])
    parts["rjieba_cut_per_s"] = rate(m, seconds)
    result["parts_on"] = m
    result["parts"] = parts

    from wukong_data.demo.synth import BACKGROUNDS, COLOURS as DRAW_COLOURS, POSITIONS, SHAPES, draw, jpeg

    rng = random.Random(0)
    images = [jpeg(draw(rng.choice(list(DRAW_COLOURS)), rng.choice(SHAPES), rng.choice(list(POSITIONS)),
                        rng.choice(list(BACKGROUNDS)), size=(256, 256), rng=rng)) for _ in range(args.images)]
    scorer = nsfw_scorer()
    scorer.scores(images[:4])  # warm up
    _, seconds = timed(lambda: scorer.scores(images, batch_size=32))
    result["nsfw_image_per_s_cpu_1_thread"] = rate(len(images), seconds)
    result["nsfw_image_providers"] = scorer.session.get_providers()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
