"""What each stage writes, declared once: the reason codes it may give a rejected row (in the
order its rules apply) and the columns its decision files add to key and reason. The dataset
card's column table, the report's columns and reason descriptions, the README's reason table (a
test holds it to this) and the check of every decision file before it is written
(BuildDir.write_decisions) come from here; and how the crawl's reasons are read from
img2dataset's status columns."""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .errors import ContractError
from .fetch import BLOCKED_MESSAGE


@dataclass(frozen=True)
class StageOutput:
    reasons: dict[str, str]  # code -> meaning
    columns: dict[str, str]  # column -> meaning (the crawl's: those that travel to final/)
    report: tuple[str, ...] = ()  # the columns `wukong stats` reads


_IMAGE = "image bytes as crawled (resized by the crawl settings)"
STAGES: dict[str, StageOutput] = {
    "crawl": StageOutput(
        reasons={
            "invalid_url": "the URL is empty, not http(s), or holds whitespace or control characters (never requested)",
            "blocked_address": "the host resolves, or a redirect leads, only to addresses the crawl may not reach: "
                               "loopback, private, link-local, unique-local, CGNAT, cloud metadata (nothing was sent "
                               "to them)",
            "download_failed": "HTTP error (429 and 503 included: Retry-After is not waited for), timeout, refused or "
                               "reset connection, truncated body, redirect loop, more than `max_image_seconds` or "
                               "`max_image_bytes`",
            "opted_out": "the server sent X-Robots-Tag noai / noimageai / noindex / noimageindex",
            "decode_failed": "the bytes are not a decodable image (HTML, empty, truncated JPEG, ...) or the header "
                             "declares more than 8192×8192 pixels (a decompression bomb: never decoded)",
        },
        columns={
            "key": "unique row id: crawl shard, then the row's index in it (img2dataset's key)",
            "url": "where the image was downloaded from",
            "caption": "the caption as given in the input",
            "jpg": _IMAGE, "png": _IMAGE, "webp": _IMAGE,
            "width": "width of the stored image, px",
            "height": "height of the stored image, px",
            "original_width": "width of the image as served, px",
            "original_height": "height of the image as served, px",
            "sha256": "sha256 of the image bytes as served",
        },
        report=("original_width", "original_height")),
    "dedupe": StageOutput(
        reasons={
            "dup_url": "the same URL after normalisation (scheme/host case, default port, fragment) is kept on an "
                       "earlier row",
            "dup_image": "the same image bytes (sha256) are kept on an earlier row",
            "frequent_caption": "the caption (whitespace-normalised) occurs more than `max_caption_count` times in "
                                "the build; all its rows go",
            "eval_overlap": "a near duplicate of an image in `[dedupe].against` (an evaluation set)",
            "near_dup_image": "a near duplicate (a view's pHash within `hamming_radius`, same colour layout and edge "
                              "directions) of a larger or earlier image that is kept",
        },
        columns={
            "dup_of": "the kept row this one duplicates (null for kept rows)",
            "phash": "64-bit perceptual hash of the image",
        },
        report=("dup_of",)),
    "filter": StageOutput(
        reasons={
            "image_too_small": "the original shorter side is below `min_side`",
            "bad_aspect_ratio": "width/height outside [`min_aspect_ratio`, `max_aspect_ratio`]",
            "meaningless_caption": "a file name (`IMG_0001.jpg`, `DSC_1234`), a bare URL, digits/punctuation only, "
                                   "or a generic word (`filters/generic_words.txt`)",
            "not_chinese": "the language rule gives a `lang` other than `zh` (or `yue` while `keep_cantonese`)",
            "sensitive_text": "the caption contains a word of `filters/sensitive_words.txt` (or the lists the "
                              "recipe names)",
            "nsfw_text": "the caption contains a word of `filters/nsfw_words.txt` (or the lists the recipe names)",
            "too_few_words": "fewer jieba-compatible words (rjieba) than `min_words`",
            "too_many_words": "more jieba-compatible words (rjieba) than `max_words`",
            "person_name": "the caption names a person and the recipe says `person_names = \"reject\"`",
            "decode_failed": "the kept bytes do not fully decode with Pillow (truncated file), or declare more than "
                             "8192×8192 pixels",
            "nsfw_image": "nudenet's `320n.onnx` score of exposed-body classes at or above `nsfw_image_threshold`",
        },
        columns={
            "caption": "the caption, normalised (entities, control characters, whitespace); person names masked",
            "lang": "the caption's language (zh; yue for written Cantonese)",
            "lang_score": "fastText's CJK probability where it was asked, else null",
            "han_ratio": "share of Han characters among the caption's units",
            "n_words": "words in the caption (jieba-compatible segmentation)",
            "n_masked": "person names replaced by the placeholder (or found, where the recipe rejects captions "
                        "naming someone)",
            "nsfw_score": "nudenet's best exposed-body class score of the image",
        },
        report=("caption", "lang", "lang_score", "han_ratio", "n_words", "n_masked", "nsfw_score")),
    "score": StageOutput(
        reasons={
            "low_filip_score": "below `min_score`, or outside the best `keep_top_fraction` of all rows",
            "decode_failed": "the scorer could not decode the image (it gets no score and takes no place)",
        },
        columns={"filip_score": "FILIP token-wise similarity of the image and its caption (or a pretrained "
                                "CLIP's cosine)"},
        report=("filip_score",)),
    "export": StageOutput(reasons={}, columns={}),
}


def meaning(stage: str, reason: str) -> str:
    """What a stage's reason code means ("" for one the stage does not declare)."""
    return STAGES[stage].reasons.get(reason, "") if stage in STAGES else ""


def check_decisions(stage: str, frame: pl.DataFrame) -> None:
    """A stage's decision file holds key, reason and its declared columns, and only its own
    reason codes: anything else is our bug, caught before the file is written."""
    declared = STAGES[stage]
    extra = [c for c in frame.columns if c not in ("key", "reason") and c not in declared.columns]
    unknown = sorted(set(frame["reason"].drop_nulls().unique()) - set(declared.reasons))
    if extra or unknown or frame.columns[:2] != ["key", "reason"]:
        raise ContractError(f"stage {stage} wrote columns {frame.columns} (undeclared: {extra}) and reasons "
                            f"{unknown} it does not declare (wukong_data/outputs.py)")


# The error texts our code and img2dataset's give these cases; a server cannot forge them (its
# words appear only after "HTTP Error NNN: ").
_BLOCKED_ERROR = f"<urlopen error {BLOCKED_MESSAGE} "
_OPTED_OUT_ERROR = "Use of image disallowed by X-Robots-Tag directive"


def crawl_reason() -> pl.Expr:
    """The reason code of a crawled row, from img2dataset's status and error columns."""
    status, error = pl.col("status"), pl.col("error_message").fill_null("")
    return (
        pl.when(pl.col("url") == "").then(pl.lit("invalid_url"))
        .when(status == "success").then(pl.lit(None, pl.String))
        .when(error.str.starts_with(_BLOCKED_ERROR)).then(pl.lit("blocked_address"))
        .when(error == _OPTED_OUT_ERROR).then(pl.lit("opted_out"))
        .when(status == "failed_to_resize").then(pl.lit("decode_failed"))
        .otherwise(pl.lit("download_failed"))
    )
