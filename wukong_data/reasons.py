"""The one registry of reason codes a stage may give a rejected row, and how the crawl's are read
from img2dataset's status columns."""
import polars as pl

from .fetch import BLOCKED_MESSAGE

REASONS: dict[str, str] = {
    # crawl
    "invalid_url": "the URL is empty or not http(s)",
    "blocked_address": "the URL's host resolves (or redirects) only to addresses the crawl may not reach",
    "download_failed": "the server did not return the image (HTTP error, timeout, refused)",
    "opted_out": "the server disallowed AI use (X-Robots-Tag noai, noimageai, ...)",
    "decode_failed": "the bytes are not a decodable image",
    # dedupe
    "dup_url": "the same URL (after normalisation) was seen on an earlier row",
    "dup_image": "the same image bytes were seen on an earlier row",
    "near_dup_image": "a perceptually near-identical image is kept elsewhere",
    "frequent_caption": "the caption occurs more often than the recipe allows",
    "eval_overlap": "the image is a near duplicate of an evaluation image",
    # filter
    "image_too_small": "the image's shorter side is below the minimum",
    "bad_aspect_ratio": "the image's aspect ratio is outside the allowed range",
    "not_chinese": "the caption is not Chinese",
    "too_few_words": "the caption has fewer words than the minimum",
    "too_many_words": "the caption has more words than the maximum",
    "meaningless_caption": "the caption is a file name, a URL, digits or a generic word",
    "sensitive_text": "the caption matches the sensitive word list",
    "nsfw_text": "the caption matches the NSFW word list",
    "nsfw_image": "the image's NSFW score is above the threshold",
    "person_name": "the caption names a person (person_names = \"reject\")",
    # score
    "low_filip_score": "the image and caption do not match well enough",
}


def check(reason: str) -> str:
    if reason not in REASONS:
        raise ValueError(f"unregistered reason code {reason!r}")
    return reason


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
