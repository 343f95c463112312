"""The name development set: person names labelled by hand in real web text that the filter's name
masking will meet, read from the shared real-text folder (never copied into the repository).

    wukong    Wukong release captions (extra/captions_wukong50k.txt.gz, one caption a line)
    product   Product1M titles (extra/product1m_titles.csv.gz, its caption column)
    cococn    COCO-CN human captions (extra/captions_cococn_icap2020.txt.gz)

A sample is drawn with a fixed seed from each set's distinct texts (a text that repeats is
drawn at its first line) and split in two halves: `dev` (rules tuned on it) and `held` (reported,
never tuned on). The labels (tests/data/names/labels.tsv) give, per sampled line, the character
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
import gzip
import io
import os
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABELS = Path(__file__).parent / "data" / "names" / "labels.tsv"
# (file under real-text/, its caption column for a CSV, sample size)
SETS = {
    "wukong": ("extra/captions_wukong50k.txt.gz", None, 1200),
    "product": ("extra/product1m_titles.csv.gz", "caption", 400),
    "cococn": ("extra/captions_cococn_icap2020.txt.gz", None, 1000),
}


def real_text() -> Path:
    return Path(os.environ.get("WUKONG_REAL_TEXT") or REPO.parent / "shared" / "real-text")


def lines(name: str) -> list[str]:
    """The texts of one set, in file order (line 1 is the first text)."""
    path, column, _ = SETS[name]
    with gzip.open(real_text() / path, "rt", encoding="utf-8") as f:
        if column is None:
            return [line.rstrip("\n") for line in f]
        return [row[column] for row in csv.DictReader(io.StringIO(f.read()))]


def sample(name: str) -> list[tuple[int, str]]:
    """(split, line) of the sampled texts of one set: distinct texts, the first half dev."""
    first: dict[str, int] = {}
    for number, text in enumerate(lines(name), 1):
        if text.strip():
            first.setdefault(text, number)
    chosen = random.Random(f"names-{name}").sample(sorted(first.values()), SETS[name][2])
    half = len(chosen) // 2
    return [("dev" if i < half else "held", number) for i, number in enumerate(chosen)]


def labels() -> dict[tuple[str, int], tuple[str, list[tuple[int, int, str]]]]:
    """(set, line) -> (split, [(start, end, P or A)])."""
    out = {}
    with open(LABELS, encoding="utf-8") as f:
        next(f)
        for row in f:
            name, line, split, spans = row.rstrip("\n").split("\t")
            out[(name, int(line))] = (split, [(int(a), int(b), k) for s in spans.split()
                                              for (a, b), k in [(s.split(":")[0].split("-"), s.split(":")[1])]])
    return out


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
