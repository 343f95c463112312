"""The text development set: real, openly published text the filter's text rules are measured on.

Where it lives: `$WUKONG_TEXT_DEV`, else `text-dev/` in the `shared/` folder beside the
repository (its README gives each source's licence and provenance). Its rows are split into
`dev` (rules tuned on it) and `held` (reported, never tuned on).

    captions.tsv   split, source, text          human-written Chinese image captions
    names.tsv      split, source, text, names   sentences naming people (names joined by |)
    languages.tsv  split, lang, group, source, text

Build it from the public repositories (bare git mirrors, as the search tool's fetch leaves them):

    python tests/textdev.py build --mirrors MIRRORS --out DIR
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def location() -> Path:
    return Path(os.environ.get("WUKONG_TEXT_DEV") or REPO.parent / "shared" / "text-dev")


def read(name: str, split: str | None = None) -> list[dict]:
    """Rows of one file of the set (all splits, or one)."""
    with open(location() / name, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r for r in rows if split is None or r["split"] == split]


# ---- measuring --------------------------------------------------------------------------------

def occurrences(text: str, word: str) -> list[int]:
    starts, i = [], text.find(word)
    while i >= 0:
        starts.append(i)
        i = text.find(word, i + 1)
    return starts


def measure_languages(split: str) -> dict:
    """The language rule on one split: per (lang, group), the share decided right; for Chinese
    that is kept as zh, for Cantonese yue, for the rest anything but zh and yue."""
    import polars as pl

    from wukong_data.stages.filter.language import identify

    rows = read("languages.tsv", split) + [dict(r, lang="zh", group="caption") for r in read("captions.tsv", split)]
    decided = identify(pl.Series([r["text"] for r in rows], dtype=pl.String))["lang"].to_list()
    groups = {}
    for row, lang in zip(rows, decided):
        right = lang == row["lang"] if row["lang"] in ("zh", "yue") else lang not in ("zh", "yue")
        g = groups.setdefault(f"{row['lang']}/{row['group']}", {"n": 0, "right": 0, "errors": []})
        g["n"] += 1
        g["right"] += right
        if not right:
            g["errors"].append((lang, row["text"]))

    def share(keys):
        n = sum(groups[k]["n"] for k in keys)
        return round(sum(groups[k]["right"] for k in keys) / n, 4)

    chinese = [k for k in groups if k.startswith("zh/")]
    foreign_sentences = [k for k in groups if k.split("/")[0] in ("ja", "ko", "vi", "en") and k != "ja/kanji_fragment"]
    return {
        "groups": {k: {"n": g["n"], "right": round(g["right"] / g["n"], 4)} for k, g in sorted(groups.items())},
        "chinese_kept": share(chinese),
        "chinese_with_latin_kept": share(["zh/latin"]),
        "foreign_sentences_rejected": share(foreign_sentences),
        "japanese_kanji_only_sentences": sum(1 for r in rows if r["lang"] == "ja" and r["group"] == "sentence"
                                             and not any("\u3040" <= c <= "\u30ff" for c in r["text"])),
        "cantonese_found": share(["yue/sentence"]),
        "errors": {k: g["errors"] for k, g in groups.items() if g["errors"]},
    }


# ---- building ---------------------------------------------------------------------------------

@dataclass
class Mirrors:
    root: Path

    def show(self, repo: str, path: str) -> str:
        git_dir = self.root / repo.replace("/", "+") / "repo"
        return subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"],
                              check=True, capture_output=True, text=True).stdout

    def commit(self, repo: str) -> str:
        git_dir = self.root / repo.replace("/", "+") / "repo"
        return subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"],
                              check=True, capture_output=True, text=True).stdout.strip()


def conllu_sentences(text: str) -> Iterator[tuple[str, list[str]]]:
    """(sentence text, its tokens) per sentence of a CoNLL-U or IOB2 file."""
    sentence, tokens = None, []
    for line in text.splitlines() + [""]:
        if line.startswith("# text ="):
            sentence = line[len("# text ="):].strip()
        elif line and not line.startswith("#"):
            tokens.append(line.split("\t"))
        elif not line and sentence is not None:
            yield sentence, tokens
            sentence, tokens = None, []


def uner_names(sentence: str, tokens: list[list[str]]) -> list[str]:
    """PER spans of a Universal NER IOB2 sentence, as written in it (Chinese tokens join without
    spaces, Latin ones with)."""
    names, current = [], None
    for token in tokens:
        word, tag = token[1], token[2]
        if tag == "B-PER":
            current = [word]
            names.append(current)
        elif tag == "I-PER" and current is not None:
            current.append(word)
        else:
            current = None
    return ["".join(n) if "".join(n) in sentence else " ".join(n) for n in names]


def weibo_tagged(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(characters, their tags) per message of a Weibo NER CoNLL file (one character per line,
    with its segmentation position digit appended; tags PER.NAM = names, PER.NOM = nominals)."""
    chars, tags = [], []
    for line in text.splitlines() + [""]:
        parts = line.split("\t")
        if len(parts) == 2 and parts[0]:
            chars.append(parts[0][:-1] if parts[0][-1:].isdigit() and len(parts[0]) > 1 else parts[0])
            tags.append(parts[1])
            continue
        if chars:
            yield chars, tags
        chars, tags = [], []


def weibo_messages(text: str) -> Iterator[tuple[str, list[str]]]:
    """(message, named person mentions) of a Weibo NER CoNLL file."""
    for chars, tags in weibo_tagged(text):
        names, current = [], None
        for char, tag in zip(chars, tags):
            if tag == "B-PER.NAM":
                current = [char]
                names.append(current)
            elif tag == "I-PER.NAM" and current is not None:
                current.append(char)
            else:
                current = None
        yield "".join(chars), ["".join(n) for n in names]


_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CLAUSE = re.compile(r"[，。；：！？、,;:!?（）()「」“”\"]+")


def clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def sample(rows: list, n: int, seed: str) -> list:
    rows = sorted(set(rows))
    random.Random(seed).shuffle(rows)
    return rows[:n]


def build(mirrors: Mirrors, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    used = {}

    def src(repo, path):
        used.setdefault(repo, mirrors.commit(repo))
        return mirrors.show(repo, path)

    # Human-written Chinese captions (Flickr8k-CN "zhc"), split by Flickr8k's own image lists.
    flickr = "li-xirong/flickr8kcn"
    split_of = {}
    for split, name in (("dev", "flickr8ktrain.txt"), ("held", "flickr8ktest.txt")):
        for image in src(flickr, f"data/{name}").split():
            split_of[image] = split
    by_split = {"dev": [], "held": []}
    english = {"dev": [], "held": []}
    for name, bucket in (("flickr8kzhc.caption.txt", by_split), ("flickr8kenc.caption.txt", english)):
        for line in src(flickr, f"data/{name}").splitlines():
            key, _, text = line.partition(" ")
            split = split_of.get(key.split(".jpg")[0])
            if split and clean(text):
                bucket[split].append((key, clean(text)))
    captions = [("dev", "flickr8k-cn:" + k, t) for k, t in sample(by_split["dev"], 3000, "captions-dev")]
    captions += [("held", "flickr8k-cn:" + k, t) for k, t in sample(by_split["held"], 1500, "captions-held")]

    # Sentences naming people: Universal NER over UD Chinese-GSDSimp (Wikipedia) and Weibo NER.
    names = []
    uner = "UniversalNER/UNER_Chinese-GSDSIMP"
    for split, files in (("dev", ["zh_gsdsimp-ud-train.iob2", "zh_gsdsimp-ud-dev.iob2"]),
                         ("held", ["zh_gsdsimp-ud-test.iob2"])):
        rows = []
        for f in files:
            for sentence, tokens in conllu_sentences(src(uner, f)):
                found = uner_names(sentence, tokens)
                if found:
                    rows.append((f"uner-gsdsimp:{f}", clean(sentence), "|".join(found)))
        names += [(split, *r) for r in sample(rows, 400, f"uner-{split}")]
    weibo = "hltcoe/golden-horse"
    for split, files in (("dev", ["weiboNER_2nd_conll.train", "weiboNER_2nd_conll.dev"]),
                         ("held", ["weiboNER_2nd_conll.test"])):
        rows = []
        for f in files:
            for message, found in weibo_messages(src(weibo, f"data/{f}")):
                if found:
                    rows.append((f"weibo-ner:{f}", clean(message), "|".join(found)))
        names += [(split, *r) for r in sample(rows, 300, f"weibo-{split}")]

    # Labelled sentences per language (Universal Dependencies), plus English captions.
    languages = []
    # (lang, group, repo, dev files, held files, rows per split); dev files are the tuning part
    # (the train files are over the mirror's size limit), test files the held-out part.
    treebanks = [
        ("zh", "simplified", "UniversalDependencies/UD_Chinese-GSDSimp",
         ["zh_gsdsimp-ud-dev.conllu"], ["zh_gsdsimp-ud-test.conllu"], 300),
        ("zh", "traditional", "UniversalDependencies/UD_Chinese-GSD",
         ["zh_gsd-ud-dev.conllu"], ["zh_gsd-ud-test.conllu"], 300),
        ("ja", "sentence", "UniversalDependencies/UD_Japanese-GSD",
         ["ja_gsd-ud-dev.conllu"], ["ja_gsd-ud-test.conllu"], 300),
        ("ko", "sentence", "UniversalDependencies/UD_Korean-GSD",
         ["ko_gsd-ud-dev.conllu"], ["ko_gsd-ud-test.conllu"], 300),
        ("vi", "sentence", "UniversalDependencies/UD_Vietnamese-VTB",
         ["vi_vtb-ud-dev.conllu"], ["vi_vtb-ud-test.conllu"], 300),
        ("en", "sentence", "UniversalDependencies/UD_English-EWT",
         ["en_ewt-ud-dev.conllu"], ["en_ewt-ud-test.conllu"], 300),
    ]
    all_sentences = {}
    for lang, group, repo, dev_files, held_files, n in treebanks:
        for split, files in (("dev", dev_files), ("held", held_files)):
            rows = [(f"{repo.split('/')[1]}:{f}", clean(s)) for f in files
                    for s, _ in conllu_sentences(src(repo, f)) if clean(s)]
            all_sentences[(repo, split)] = rows
            languages += [(split, lang, group, s, t) for s, t in sample(rows, n, f"{repo}-{split}")]

    # Hong Kong: the Cantonese treebank and its Mandarin translation have test files only:
    # the first half of each is dev, the second half held out.
    for lang, group, repo, f in (("yue", "sentence", "UniversalDependencies/UD_Cantonese-HK", "yue_hk-ud-test.conllu"),
                                 ("zh", "hongkong", "UniversalDependencies/UD_Chinese-HK", "zh_hk-ud-test.conllu")):
        rows = [clean(s) for s, _ in conllu_sentences(src(repo, f)) if clean(s)]
        half = len(rows) // 2
        languages += [("dev" if i < half else "held", lang, group, f"{repo.split('/')[1]}:{f}", t)
                      for i, t in enumerate(rows)]

    for split in ("dev", "held"):
        languages += [(split, "en", "caption", "flickr8k-cn:" + k, t)
                      for k, t in sample(english[split], 300, f"english-{split}")]

    # Chinese with Latin script (brands, models, units, English words): every such sentence of
    # the Chinese treebanks and Weibo NER, and each clause of them that carries Latin letters
    # (short like a product title). No openly licensed product-title set was found.
    for split in ("dev", "held"):
        rows = []
        for repo in ("UniversalDependencies/UD_Chinese-GSDSimp", "UniversalDependencies/UD_Chinese-GSD"):
            for source, text in all_sentences[(repo, split)]:
                if _LATIN_WORD.search(text) and _HAN.search(text):
                    rows.append((source, text))
                    rows += [(source + "#clause", c.strip()) for c in _CLAUSE.split(text)
                             if _LATIN_WORD.search(c) and _HAN.search(c) and c.strip() != text]
        weibo_files = ["weiboNER_2nd_conll.train", "weiboNER_2nd_conll.dev"] if split == "dev" else ["weiboNER_2nd_conll.test"]
        for f in weibo_files:
            for message, _ in weibo_messages(src(weibo, f"data/{f}")):
                if _LATIN_WORD.search(message) and _HAN.search(message):
                    rows.append((f"weibo-ner:{f}", clean(message)))
        languages += [(split, "zh", "latin", s, t) for s, t in sample(rows, 400, f"latin-{split}")]

    # Japanese without kana, beyond the few such sentences: runs of kanji-only tokens (3+
    # characters) in Japanese GSD sentences, compound nouns and names as a tag would carry them.
    repo = "UniversalDependencies/UD_Japanese-GSD"
    for split, files in (("dev", ["ja_gsd-ud-dev.conllu"]), ("held", ["ja_gsd-ud-test.conllu"])):
        rows = []
        for f in files:
            for _, tokens in conllu_sentences(src(repo, f)):
                run = []
                for token in tokens + [["", ""]]:
                    word = token[1] if len(token) > 1 else ""
                    if word and all(_HAN.match(c) for c in word):
                        run.append(word)
                        continue
                    phrase = "".join(run)
                    if len(phrase) >= 3:
                        rows.append((f"UD_Japanese-GSD:{f}", phrase))
                    run = []
        languages += [(split, "ja", "kanji_fragment", s, t) for s, t in sample(rows, 300, f"kanji-{split}")]

    write(out / "captions.tsv", ["split", "source", "text"], captions)
    write(out / "names.tsv", ["split", "source", "text", "names"], names)
    write(out / "languages.tsv", ["split", "lang", "group", "source", "text"], languages)
    return used


def write(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            assert not any("\t" in str(v) or "\n" in str(v) for v in row), row
            f.write("\t".join(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "measure"])
    parser.add_argument("--mirrors", type=Path, help="build: the folder of bare git mirrors")
    parser.add_argument("--out", type=Path, help="build: where to write the set")
    parser.add_argument("--split", default="held", choices=["dev", "held"], help="measure: which part")
    args = parser.parse_args()
    if args.command == "build":
        for repo, commit in build(Mirrors(args.mirrors), args.out).items():
            print(f"{repo} {commit}")
        return
    # The names on this set: tests/namedev.py (measure_corpora), beside the web text they meet.
    languages = measure_languages(args.split)
    print(json.dumps({"split": args.split, "languages": {k: v for k, v in languages.items() if k != "errors"}},
                     indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
