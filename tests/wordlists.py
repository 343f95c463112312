"""The sensitive and NSFW word lists: built from openly licensed public lists, pruned with evidence.

A list entry matches as a case-insensitive substring (patterns.contains_any), so a short entry
rejects every caption that merely contains it (乳 in 乳酪, 奶 in 奶茶). Pruning: an entry found in
any human-written text of the development set's `dev` part (image captions and encyclopaedia
sentences, text that is neither sensitive nor NSFW) is dropped, and the file header lists it
with the text it hit. The `held` part then measures what the pruned lists still reject.

    python tests/wordlists.py build --mirrors MIRRORS --out filters/
    python tests/wordlists.py measure --lists filters/
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import textdev

SOURCES = {
    "nsfw_words.txt": [
        ("LDNOOBW/List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words", "zh", "CC BY 4.0"),
        ("konsheng/Sensitive-lexicon", "Vocabulary/色情词库.txt", "MIT"),
    ],
    "sensitive_words.txt": [
        ("konsheng/Sensitive-lexicon", "Vocabulary/涉枪涉爆.txt", "MIT"),
    ],
}
PURPOSE = {
    "nsfw_words.txt": "NSFW text: a caption containing any entry (case-insensitive substring) is rejected as nsfw_text.",
    "sensitive_words.txt": ("Sensitive text (weapons and explosives): a caption containing any entry (case-insensitive "
                            "substring) is rejected as sensitive_text."),
}


def human_text(split: str) -> list[str]:
    """Text of the set that is neither sensitive nor NSFW: image captions, treebank sentences."""
    return ([r["text"] for r in textdev.read("captions.tsv", split)]
            + [r["text"] for r in textdev.read("languages.tsv", split) if r["lang"] in ("zh", "yue")
               and r["group"] != "latin"])


def build(mirrors: textdev.Mirrors, out: Path) -> None:
    evidence = [t.lower() for t in human_text("dev")]
    out.mkdir(parents=True, exist_ok=True)
    for name, sources in SOURCES.items():
        entries, header = {}, [PURPOSE[name], "Sources (entries lower-cased, deduplicated, merged):"]
        for repo, path, licence in sources:
            header.append(f"  {repo} {path} at {mirrors.commit(repo)} ({licence})")
            for line in mirrors.show(repo, path).splitlines():
                word = line.strip().lower()
                if word and not word.startswith("#"):
                    entries.setdefault(word, repo)
        dropped = {}
        for word in entries:
            hit = next((t for t in evidence if word in t), None)
            if hit is not None:
                dropped[word] = hit
        header.append(f"Pruned: {len(dropped)} of {len(entries)} entries occur in human-written text of the "
                      "development set's dev part (tests/textdev.py); each with the text it hit:")
        header += [f"  {w} <- {t[:60]}" for w, t in sorted(dropped.items())]
        kept = sorted(w for w in entries if w not in dropped)
        lines = [f"# {h}" for h in header] + kept
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def measure(lists: Path, split: str) -> dict:
    import polars as pl

    from wukong_data.stages.filter.patterns import contains_any, read_words

    texts = pl.Series(human_text(split))
    result = {"split": split, "human_texts": len(texts)}
    for name in SOURCES:
        words = read_words([lists / name])
        hits = contains_any(texts, words)
        result[name] = {"entries": len(words), "rejected": int(hits.sum()),
                        "rejected_rate": round(float(hits.mean()), 4),
                        "examples": [t[:60] for t in texts.filter(hits).head(10)]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "measure"])
    parser.add_argument("--mirrors", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--lists", type=Path)
    parser.add_argument("--split", default="held", choices=["dev", "held"])
    args = parser.parse_args()
    if args.command == "build":
        build(textdev.Mirrors(args.mirrors), args.out)
    else:
        print(json.dumps(measure(args.lists, args.split), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
