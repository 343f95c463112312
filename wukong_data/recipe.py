"""Build recipes: TOML files validated into dataclasses.

A recipe names its stages and gives one table of settings per stage. Unknown keys and wrong
types are user errors that name the file and the key.
"""
from __future__ import annotations

import dataclasses
import itertools
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import UserError
from .fetch import parse_networks
from .filip.presets import MODELS
from .images import IMAGE_FORMATS

STAGE_ORDER = ("crawl", "dedupe", "filter", "score", "export")


def stages_before(stages: list[str], stage: str) -> list[str]:
    """The recipe's stages before `stage` (all of them when `stage` is not in the recipe)."""
    return list(itertools.takewhile(lambda s: s != stage, stages))
INPUT_FORMATS = ("auto", "csv", "tsv", "jsonl", "parquet")
RESIZE_MODES = ("no", "border", "keep_ratio", "keep_ratio_largest", "center_crop")
EXPORT_FORMATS = ("webdataset", "parquet")
PERSON_NAME_POLICIES = ("mask", "reject", "keep")
# Keys recipes used to have, and what says the same now.
_REPLACED = {("filter", "mask_person_names"): 'person_names = "mask" (or "keep", or "reject")'}


@dataclass
class InputConfig:
    path: str | None = None  # a file, a folder or a glob; relative paths are relative to the recipe
    # Or an img2dataset download (output_format parquet or webdataset), a folder or a glob of
    # several, adopted as the crawl stage instead of crawling (stages/adopt.py).
    from_crawl: str | None = None
    format: str = "auto"
    url_column: str = "url"
    caption_column: str = "caption"
    delimiter: str | None = None  # csv/tsv only; default "," or "\t"


@dataclass
class CrawlConfig:
    image_size: int = 256
    resize_mode: str = "keep_ratio"
    resize_only_if_bigger: bool = True
    encode_format: str = "jpg"
    encode_quality: int = 95
    skip_reencode: bool = True
    timeout: int = 10  # seconds a connection may wait for the server's next bytes
    max_image_seconds: float = 60.0  # a whole download (connect, redirects, body) ends by then
    max_image_bytes: int = 32_000_000  # a download receiving more is abandoned (download_failed)
    # Addresses or networks the crawl may reach although they are loopback, private, link-local,
    # unique-local, CGNAT or cloud metadata (fetch.BLOCKED_RANGES), e.g. ["127.0.0.1"], ["10.1.0.0/16"].
    allow_addresses: list[str] = field(default_factory=list)
    retries: int = 0
    shard_retries: int = 1  # passes over shards whose task failed (img2dataset's max_shard_retry)
    processes: int = 2
    threads: int = 64
    samples_per_shard: int = 10000
    user_agent_token: str | None = "wukong-data"
    disallowed_header_directives: list[str] = field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"]
    )


@dataclass
class DedupeConfig:
    exact_url: bool = True
    exact_image: bool = True
    near_duplicates: bool = True
    hamming_radius: int = 8  # bits between the hashes of two views (signatures.py says why 8)
    colour_tolerance: int = 3  # largest difference of any level of two views' colour grids and edge orientations, 0-15
    max_caption_count: int = 10  # captions seen more often are dropped; 0 keeps all
    against: list[str] = field(default_factory=list)  # evaluation images to decontaminate against
    partitions: int = 0  # hash-range partitions of the global steps; 0: one per 4M rows


@dataclass
class FilterConfig:
    min_side: int = 200  # original shorter side, px (the Wukong paper: > 200, i.e. 201)
    min_aspect_ratio: float = 1 / 3  # width / height
    max_aspect_ratio: float = 3.0
    chinese_only: bool = True
    min_han_ratio: float = 0.5  # for Han captions whose Latin part reads as a sentence (language.py)
    keep_cantonese: bool = True  # written Cantonese (lang "yue") passes chinese_only
    min_words: int = 1
    max_words: int = 32
    traditional_to_simplified: bool = False
    # Word lists: bundled names (files in filters/) or paths; list more to extend, fewer to replace.
    generic_words: list[str] = field(default_factory=lambda: ["generic_words.txt"])
    sensitive_words: list[str] = field(default_factory=lambda: ["sensitive_words.txt"])
    nsfw_words: list[str] = field(default_factory=lambda: ["nsfw_words.txt"])
    # Person names (names.py): "mask" replaces each by the placeholder, "reject" drops the captions
    # that name someone (reason person_name), "keep" leaves captions as they are.
    person_names: str = "mask"
    person_name_placeholder: str = "<人名>"
    # A name's characters average at least this probability of being in one; lower masks more
    # names and more ordinary words.
    person_name_min_probability: float = 0.65
    name_batch_size: int = 64
    decode_check: bool = True
    nsfw_image: bool = True
    nsfw_image_threshold: float = 0.5
    nsfw_batch_size: int = 32


# The [score] keys that name files of weights (resolved against the recipe's folder).
WEIGHT_KEYS = ("checkpoint", "open_clip_weights", "cn_clip_weights")


@dataclass
class ScoreConfig:
    checkpoint: str = ""  # a `wukong train-reference` run folder
    # Or a global CLIP score from a pretrained model and its weights file on local disk: an
    # open_clip model name (or local-dir:PATH), or a Chinese-CLIP architecture (cn_clip package:
    # RN50, ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14) and its .pt checkpoint.
    open_clip_model: str = ""
    open_clip_weights: str = ""
    cn_clip_model: str = ""
    cn_clip_weights: str = ""
    min_score: float = 0.0  # keep pairs scoring at least this...
    keep_top_fraction: float = 0.0  # ...or keep this fraction of all rows, best first (0: off)
    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda
    # Bootstrap: train a reference model on the rows kept so far, then score with it.
    bootstrap_steps: int = 0
    bootstrap_model: str = "tiny"  # or vit-b-32, vit-l-14, lit-nudenet (frozen detector features: real photos)
    bootstrap_batch_size: int = 32
    bootstrap_lr: float = 1e-3


@dataclass
class ExportConfig:
    samples_per_shard: int = 10000
    formats: list[str] = field(default_factory=lambda: list(EXPORT_FORMATS))
    shuffle: bool = True  # final shards mix rows from shuffle_group crawl shards drawn across the build
    shuffle_group: int = 16
    seed: int = 0


@dataclass
class Recipe:
    name: str
    source: str  # where it was loaded from, for messages and the manifest
    stages: list[str]
    description: str = ""
    input: InputConfig = field(default_factory=InputConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHOICES = {
    ("input", "format"): INPUT_FORMATS,
    ("crawl", "resize_mode"): RESIZE_MODES,
    ("crawl", "encode_format"): IMAGE_FORMATS,
    ("score", "device"): ("auto", "cpu", "cuda"),
    ("filter", "person_names"): PERSON_NAME_POLICIES,
    ("score", "bootstrap_model"): MODELS,
}
_POSITIVE = {("crawl", "image_size"), ("crawl", "processes"), ("crawl", "threads"),
             ("crawl", "samples_per_shard"), ("crawl", "timeout"),
             ("crawl", "max_image_seconds"), ("crawl", "max_image_bytes"), ("export", "samples_per_shard"),
             ("filter", "min_aspect_ratio"), ("filter", "max_aspect_ratio"), ("filter", "nsfw_batch_size"),
             ("filter", "name_batch_size"), ("export", "shuffle_group")}


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint) if h is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0]).split(' ', 1)[1]}s"
    return names.get(hint, str(hint))


def _section(cls, table, where: str, section: str):
    if not isinstance(table, dict):
        raise UserError(f"{where}: [{section}] must be a table")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in table.items():
        if (section, key) in _REPLACED:
            raise UserError(f"{where}: [{section}].{key} is no longer read: write {_REPLACED[section, key]}")
        if key not in hints:
            raise UserError(f"{where}: unknown key [{section}].{key} (expected one of: {', '.join(known)})")
        if not _type_ok(value, hints[key]):
            raise UserError(f"{where}: [{section}].{key} must be {_type_name(hints[key])}, got {value!r}")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise UserError(f"{where}: [{section}].{key} must be one of {', '.join(choices)}, got {value!r}")
        if (section, key) in _POSITIVE and value <= 0:
            raise UserError(f"{where}: [{section}].{key} must be positive, got {value!r}")
        values[key] = value
    return cls(**values)


def parse(data: dict, source: str, base_dir: Path | None) -> Recipe:
    top_level = {"name", "description", "stages", "input", *STAGE_ORDER}
    for key in data:
        if key not in top_level:
            raise UserError(f"{source}: unknown key {key!r} (expected one of: {', '.join(sorted(top_level))})")
    stages = data.get("stages", ["crawl", "dedupe", "filter", "export"])
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise UserError(f"{source}: 'stages' must be a list of stage names")
    for stage in stages:
        if stage not in STAGE_ORDER:
            raise UserError(f"{source}: unknown stage {stage!r} in 'stages' (expected: {', '.join(STAGE_ORDER)})")
    if stages != sorted(set(stages), key=STAGE_ORDER.index):
        raise UserError(f"{source}: 'stages' must list each stage once, in the order {', '.join(STAGE_ORDER)}")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{source}: {key!r} must be a string")

    recipe = Recipe(
        name=data.get("name", Path(source).stem),
        source=source,
        stages=stages,
        description=data.get("description", ""),
        input=_section(InputConfig, data.get("input", {}), source, "input"),
        crawl=_section(CrawlConfig, data.get("crawl", {}), source, "crawl"),
        dedupe=_section(DedupeConfig, data.get("dedupe", {}), source, "dedupe"),
        filter=_section(FilterConfig, data.get("filter", {}), source, "filter"),
        score=_section(ScoreConfig, data.get("score", {}), source, "score"),
        export=_section(ExportConfig, data.get("export", {}), source, "export"),
    )
    for fmt in recipe.export.formats:
        if fmt not in EXPORT_FORMATS:
            raise UserError(f"{source}: [export].formats: unknown format {fmt!r} (expected {', '.join(EXPORT_FORMATS)})")
    if not 0 <= recipe.dedupe.hamming_radius <= 32:
        raise UserError(f"{source}: [dedupe].hamming_radius must be between 0 and 32")
    if recipe.dedupe.partitions < 0:
        raise UserError(f"{source}: [dedupe].partitions must be 0 (one per 4M rows) or positive")
    if recipe.dedupe.max_caption_count < 0:
        raise UserError(f"{source}: [dedupe].max_caption_count must be 0 (off) or positive")
    if base_dir is not None:
        recipe.dedupe.against = [p if Path(p).is_absolute() or "://" in p else str(base_dir / p)
                                 for p in recipe.dedupe.against]
    if not 0 <= recipe.score.keep_top_fraction <= 1:
        raise UserError(f"{source}: [score].keep_top_fraction must be between 0 and 1")
    scorers = [k for k in ("checkpoint", "open_clip_model", "cn_clip_model") if getattr(recipe.score, k)]
    if len(scorers) > 1:
        raise UserError(f"{source}: [score] sets {' and '.join(scorers)}: choose one scorer")
    if recipe.score.cn_clip_model:
        from .stages.score.pretrained import CN_CLIP_MODELS

        if recipe.score.cn_clip_model not in CN_CLIP_MODELS:
            raise UserError(f"{source}: [score].cn_clip_model: unknown Chinese-CLIP model {recipe.score.cn_clip_model!r} "
                            f"(expected {', '.join(CN_CLIP_MODELS)})")
    for key in WEIGHT_KEYS:
        value = getattr(recipe.score, key)
        if value and base_dir is not None and not Path(value).is_absolute() and "://" not in value:
            setattr(recipe.score, key, str(base_dir / value))
    if recipe.filter.min_words > recipe.filter.max_words:
        raise UserError(f"{source}: [filter].min_words must not exceed [filter].max_words")
    if recipe.filter.min_aspect_ratio > recipe.filter.max_aspect_ratio:
        raise UserError(f"{source}: [filter].min_aspect_ratio must not exceed [filter].max_aspect_ratio")
    if recipe.filter.person_names == "mask" and not recipe.filter.person_name_placeholder:
        raise UserError(f"{source}: [filter].person_name_placeholder must not be empty while person_names = \"mask\"")
    if not 0 < recipe.filter.person_name_min_probability < 1:
        raise UserError(f"{source}: [filter].person_name_min_probability must be above 0 and below 1")
    for key in ("generic_words", "sensitive_words", "nsfw_words"):
        for i, name in enumerate(getattr(recipe.filter, key)):
            path = Path(name)
            if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
                getattr(recipe.filter, key)[i] = str(base_dir / path)
            elif not path.is_file() and not (resources.files("wukong_data.filters") / name).is_file():
                raise UserError(f"{source}: [filter].{key}: {name!r} is neither a file nor a bundled word list")
    quality = recipe.crawl.encode_quality
    if recipe.crawl.encode_format == "png" and not 0 <= quality <= 9:
        raise UserError(f"{source}: [crawl].encode_quality is the PNG compression level for encode_format = "
                        f"\"png\" and must be between 0 and 9, got {quality}")
    if recipe.crawl.encode_format != "png" and not 0 <= quality <= 100:
        raise UserError(f"{source}: [crawl].encode_quality must be between 0 and 100, got {quality}")
    try:
        parse_networks(recipe.crawl.allow_addresses)
    except ValueError as err:
        raise UserError(f"{source}: [crawl].allow_addresses: {err}") from None
    if not recipe.export.formats:
        raise UserError(f"{source}: [export].formats must name at least one format")
    for key in ("path", "from_crawl"):
        value = getattr(recipe.input, key)
        if value and base_dir is not None and "://" not in value and not Path(value).is_absolute():
            setattr(recipe.input, key, str(base_dir / value))
    return recipe


def bundled_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("wukong_data.pipelines").iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str) -> Recipe:
    """Load a recipe from a TOML path, or by the name of a bundled recipe (`demo`, `wukong-100m`)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"{name_or_path}: recipe file not found")
        text, source, base_dir = path.read_text(encoding="utf-8"), str(path), path.resolve().parent
    else:
        bundled = resources.files("wukong_data.pipelines") / f"{name_or_path}.toml"
        if not bundled.is_file():
            raise UserError(
                f"{name_or_path}: no such recipe file, and no bundled recipe of that name "
                f"(bundled: {', '.join(bundled_names())})"
            )
        # A bundled recipe has no input of its own: --input gives it.
        text, source, base_dir = bundled.read_text(encoding="utf-8"), f"{name_or_path} (bundled)", None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{source}: not valid TOML: {err}") from None
    return parse(data, source, base_dir)
