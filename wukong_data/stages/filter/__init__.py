"""Filter: Wukong's image and text rules, cheap ones first.

Order: image size and aspect (crawl metadata) -> meaningless caption -> language ->
sensitive text -> NSFW text -> word count -> person names (masked, or the caption rejected) ->
decode check -> NSFW image model. A row leaves at its first failed rule with that rule's reason;
every row carries the values computed for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ...engines import granted_threads
from ...recipe import FilterConfig
from .image import decodes, nsfw_scorer
from .language import identify
from .names import find_names, mask, recogniser
from ...normalise import normalise
from .patterns import contains_any, is_meaningless, read_words, resolve_list
from .words import count_words, tag


@dataclass
class TextRules:
    cfg: FilterConfig
    generic: list[str]
    sensitive: list[str]
    nsfw: list[str]

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> "TextRules":
        def words(key):
            return read_words([resolve_list(n, f"[filter].{key}") for n in getattr(cfg, key)])

        return cls(cfg, words("generic_words"), words("sensitive_words"), words("nsfw_words"))

    def apply(self, raw_captions: pl.Series, reasons: list) -> pl.DataFrame:
        """Text rules over captions; fills `reasons` (None = still kept) in place.

        Returns the columns: caption (normalised, names masked), lang, lang_score, han_ratio,
        n_words, n_masked (the person names masked, or under person_names = "reject" found).
        """
        cfg, n = self.cfg, len(raw_captions)
        captions = normalise(raw_captions, cfg.traditional_to_simplified)
        for i in is_meaningless(captions, self.generic).arg_true():
            reasons[i] = reasons[i] or "meaningless_caption"

        alive = [i for i in range(n) if reasons[i] is None]
        lang = pl.DataFrame({"lang": [None] * n, "lang_score": [None] * n, "han_ratio": [None] * n},
                            schema={"lang": pl.String, "lang_score": pl.Float32, "han_ratio": pl.Float32})
        if alive:
            found = identify(captions.gather(alive), cfg.min_han_ratio)
            lang = lang.with_row_index().update(found.with_columns(index=pl.Series(alive, dtype=pl.UInt32)),
                                                on="index").drop("index")
            if cfg.chinese_only:
                kept = {"zh", "yue"} if cfg.keep_cantonese else {"zh"}
                for i, code in zip(alive, found["lang"]):
                    if code not in kept:
                        reasons[i] = "not_chinese"
        for reason, words in (("sensitive_text", self.sensitive), ("nsfw_text", self.nsfw)):
            for i in contains_any(captions, words).arg_true():
                reasons[i] = reasons[i] or reason

        out_captions = captions.to_list()
        n_words, n_masked = [None] * n, [None] * n
        for i in range(n):
            if reasons[i] is not None:
                continue
            n_words[i] = count_words(tag(out_captions[i]))
            if n_words[i] < cfg.min_words:
                reasons[i] = "too_few_words"
            elif n_words[i] > cfg.max_words:
                reasons[i] = "too_many_words"
        if cfg.person_names != "keep":
            alive = [i for i in range(n) if reasons[i] is None]
            found = find_names([out_captions[i] for i in alive], recogniser(granted_threads()),
                               cfg.person_name_placeholder, cfg.name_batch_size, cfg.person_name_min_probability)
            for i, spans in zip(alive, found):
                n_masked[i] = len(spans)
                if spans and cfg.person_names == "reject":
                    reasons[i] = "person_name"
                elif spans:
                    out_captions[i] = mask(out_captions[i], spans, cfg.person_name_placeholder)
        return lang.with_columns(
            caption=pl.Series(out_captions, dtype=pl.String),
            n_words=pl.Series(n_words, dtype=pl.Int32),
            n_masked=pl.Series(n_masked, dtype=pl.Int32),
        )


class FilterStage:
    """The per-row processor of the filter stage (run shard by shard by per_shard.ShardStage)."""

    def __init__(self, cfg: FilterConfig, image_column: str):
        self.cfg = cfg
        self.image_column = image_column
        self.text = TextRules.from_config(cfg)
        self.input_columns = ["key", "caption", "original_width", "original_height", image_column]

    @classmethod
    def from_config(cls, config: dict) -> "FilterStage":
        return cls(FilterConfig(**config["filter"]), config["image_column"])

    def process(self, rows: pl.DataFrame) -> pl.DataFrame:
        cfg, n = self.cfg, rows.height
        width, height = rows["original_width"], rows["original_height"]
        short = rows.select(pl.min_horizontal("original_width", "original_height"))[:, 0]
        ratio = (width / height).to_list()
        reasons: list[str | None] = [None] * n
        for i, (s, r) in enumerate(zip(short.to_list(), ratio)):
            if s is None or s < cfg.min_side:
                reasons[i] = "image_too_small"
            elif not cfg.min_aspect_ratio <= r <= cfg.max_aspect_ratio:
                reasons[i] = "bad_aspect_ratio"
        columns = self.text.apply(rows["caption"], reasons)

        images = rows[self.image_column]
        if cfg.decode_check or cfg.nsfw_image:  # the NSFW model reads only images that decode
            for i in range(n):
                if reasons[i] is None and not decodes(images[i]):
                    reasons[i] = "decode_failed"
        nsfw = [None] * n
        if cfg.nsfw_image:
            alive = [i for i in range(n) if reasons[i] is None]
            scores = nsfw_scorer().scores([images[i] for i in alive], cfg.nsfw_batch_size) if alive else []
            for i, score in zip(alive, scores):
                nsfw[i] = round(float(score), 4)
                if score >= cfg.nsfw_image_threshold:
                    reasons[i] = "nsfw_image"
        return pl.DataFrame({"key": rows["key"], "reason": pl.Series(reasons, dtype=pl.String)}).hstack(
            columns.with_columns(nsfw_score=pl.Series(nsfw, dtype=pl.Float32))
        )
