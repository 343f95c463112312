"""Filter throughput per core on real Wukong release captions (the shared real-text folder,
tests/namedev.py), repeated: the whole text chain with person names masked, beside the same
chain with names kept in the same run; the parts of name masking (the screen, the share it sends
to LAC, LAC's encoder, the layer and LAC's CRF decoding on those); NSFW images/s on CPU; the
floor (reading the caption column).

    python benchmarks/filter.py --captions 100000
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
# the models, as a worker on one core is (the chain then uses the models loaded before timing).
os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import polars as pl  # noqa: E402

from wukong_data.recipe import FilterConfig  # noqa: E402
from wukong_data.stages.filter import FilterStage  # noqa: E402
from wukong_data.stages.filter.rules import TEXT_RULES  # noqa: E402
from wukong_data.stages.filter.image import nsfw_scorer  # noqa: E402
from wukong_data.stages.filter.names import LAC_PERSON_EASE, recogniser  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import namedev  # noqa: E402


def real_captions(n: int) -> list[str]:
    """The Wukong release captions, shuffled, repeated to n."""
    texts = namedev.lines("wukong")
    random.Random(0).shuffle(texts)
    return [texts[i % len(texts)] for i in range(n)]


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def chain(captions: pl.Series, rules: FilterStage, chunk: int = 10_000) -> tuple[float, int]:
    """(seconds, rows kept) for the text rules over the captions, a shard-sized chunk at a time."""
    start, kept = time.perf_counter(), 0
    for offset in range(0, captions.len(), chunk):
        kept += len(rules.decide(captions.slice(offset, chunk)).alive())
    return time.perf_counter() - start, kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    n = args.captions
    result = {"captions": n, "processes": 1,
              "note": "per core: one process, one thread; real Wukong release captions (shared real-text), repeated"}

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "captions.parquet")
        pl.DataFrame({"key": [f"{i:09d}" for i in range(n)], "caption": real_captions(n)}).write_parquet(path)
        captions, seconds = timed(lambda: pl.read_parquet(path, columns=["caption"])["caption"])
        result["floor_read_caption_column_per_s"] = rate(n, seconds)

    rec = recogniser(threads=1)
    rec.person_spans(["张三在北京"])  # load the models before timing
    for name, policy in (("text_chain_names_kept", "keep"), ("text_chain", "mask")):
        seconds, kept = chain(captions, FilterStage(FilterConfig(person_names=policy), "", TEXT_RULES))
        result[f"{name}_per_s"] = rate(n, seconds)
        result[f"{name}_kept_fraction"] = round(kept / n, 4)
    result["text_chain_ratio_to_names_kept"] = round(result["text_chain_per_s"] / result["text_chain_names_kept_per_s"], 3)
    result["target_per_s"] = 10_000

    texts = [t for t in captions.slice(0, min(n, 20_000)).to_list() if t]
    ids, seconds = timed(lambda: [rec.encoder.ids(t) for t in texts])
    parts = {"character_ids_per_s": rate(len(texts), seconds)}
    _, seconds = timed(lambda: rec.screen.probabilities(ids))
    parts["screen_per_s"] = rate(len(texts), seconds)
    sent = [texts[i] for i in rec.screened(texts)]
    parts["screen_sends_fraction"] = round(len(sent) / len(texts), 4)
    batches, seconds = timed(lambda: list(rec.encoder.batches(sent)))
    parts["lac_encoder_on_sent_per_s"] = rate(len(sent), seconds)
    probabilities, seconds = timed(lambda: [rec.layer.probabilities(f) for _, f in batches])
    parts["layer_on_sent_per_s"] = rate(len(sent), seconds)
    # LAC's words are decoded only for the texts with a character at min_probability less LAC's ease.
    floor = FilterConfig().person_name_min_probability - LAC_PERSON_EASE
    sure = [f[p.max(axis=1) >= floor] for (_, f), p in zip(batches, probabilities)]
    parts["crf_decoded_fraction_of_sent"] = round(sum(len(f) for f in sure) / max(len(sent), 1), 4)
    _, seconds = timed(lambda: [rec.encoder.decode(f) for f in sure if len(f)])
    parts["crf_decode_per_s_of_sent"] = rate(len(sent), seconds)
    result["parts_on"] = len(texts)
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
