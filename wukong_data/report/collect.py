"""The report's figures beyond the manifest's funnel, in one pass over the build, a batch of shards
at a time (rows.py), with every accumulator bounded:

- distributions: grid counts per metric and fate (metrics.py)
- languages: rows per `lang` and fate
- samples: per fate, the rows with the smallest seeded hashes of their keys (a uniform sample,
  the same rows every run, mergeable across batches)
- top words: the kept captions whose key hash falls below a fraction chosen so that about
  WORD_SAMPLE captions are read
- duplicate groups: the sizes of the groups whose kept row's key hash falls below a fraction
  chosen so that about GROUP_SAMPLE groups are counted
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..build import BuildDir
from ..stages.export import row_hash
from . import metrics as M
from .images import read_crawled
from ..outputs import meaning
from .rows import batches, fates, finished_stages, read_rows

SEED = 7  # the samples' hash seed (any fixed number: the same rows every run)
KEPT_SAMPLES = 24
SAMPLES_PER_REASON = 4
WORD_SAMPLE = 50_000
GROUP_SAMPLE = 200_000
ROWS_PER_BATCH = 200_000  # rows joined at once, per worker: a few tens of MB
TOP_WORDS = 50
DUP_REASONS = ("dup_url", "dup_image", "near_dup_image")


def _hash(keys: pl.Series) -> np.ndarray:
    with np.errstate(over="ignore"):  # row_hash multiplies in wrapping uint64 arithmetic
        return row_hash(keys, SEED)


def _fraction(wanted: int, out_of: int) -> float:
    return 1.0 if out_of <= wanted else wanted / out_of


def _below(hashes: np.ndarray, fraction: float) -> np.ndarray:
    return hashes < np.uint64(min(fraction * 2**64, 2**64 - 1))


def _bottom(rows: pl.DataFrame, kept_samples: int, per_reason: int) -> pl.DataFrame:
    """The rows with the smallest hashes: `kept_samples` kept ones, `per_reason` of every other fate."""
    kept = rows.filter(M.is_kept()).bottom_k(kept_samples, by="h")
    others = [c for c in rows.columns if c != "fate"]
    rejected = rows.filter(~M.is_kept()).group_by("fate").agg(pl.col(others).bottom_k_by("h", per_reason)).explode(others)
    return pl.concat([kept, rejected.select(kept.columns)])


def _merge(a: pl.DataFrame | None, b: pl.DataFrame | None, by: list[str], column: str = "len") -> pl.DataFrame | None:
    if a is None or b is None:
        return a if b is None else b
    return pl.concat([a, b]).group_by(by).agg(pl.col(column).sum())


@dataclass(frozen=True)
class Settings:
    """What a batch's scan needs (picklable: batches may run in other processes)."""

    root: str
    stages: tuple[str, ...]
    fates: tuple[str, ...]
    metrics: tuple[str, ...]
    word_fraction: float
    group_fraction: float
    kept_samples: int
    per_reason: int


class Accumulator:
    """Everything the report counts, from one batch of rows or merged from many: every part is
    bounded (grid counts, bottom-k samples, hash-sampled captions and groups)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.counts: dict[str, pl.DataFrame] = {}
        self.languages: pl.DataFrame | None = None
        self.samples: pl.DataFrame | None = None
        self.captions: list[str] = []
        self.groups: pl.DataFrame | None = None

    @property
    def metrics(self) -> list[M.Metric]:
        return [M.BY_NAME[name] for name in self.settings.metrics]

    @classmethod
    def of_rows(cls, settings: Settings, rows: pl.DataFrame) -> "Accumulator":
        acc = cls(settings)
        rows = rows.with_columns(h=pl.Series(_hash(rows["key_id"]), dtype=pl.UInt64))
        acc.counts = dict(zip(settings.metrics, pl.collect_all([M.batch_counts(rows, m) for m in acc.metrics])))
        if "lang" in rows.columns:
            acc.languages = rows.filter(pl.col("lang").is_not_null()).group_by("lang", "fate").len()
        acc.samples = _bottom(rows, settings.kept_samples, settings.per_reason)
        if "caption" in rows.columns:
            kept = rows.filter(M.is_kept())
            acc.captions = kept.filter(pl.Series(_below(kept["h"].to_numpy(), settings.word_fraction)))["caption"] \
                .drop_nulls().to_list()
        if "dup_of" in rows.columns:
            dups = rows.select("dup_of").drop_nulls()
            acc.groups = dups.filter(pl.Series(_below(_hash(dups["dup_of"]), settings.group_fraction))) \
                .group_by("dup_of").len()
        return acc

    def merge(self, other: "Accumulator") -> None:
        for name, counts in other.counts.items():
            self.counts[name] = M.merge_counts([self.counts[name], counts]) if name in self.counts else counts
        self.languages = _merge(self.languages, other.languages, ["lang", "fate"])
        self.groups = _merge(self.groups, other.groups, ["dup_of"])
        self.captions += other.captions
        self.samples = other.samples if self.samples is None else _bottom(
            pl.concat([self.samples, other.samples]), self.settings.kept_samples, self.settings.per_reason)


def scan_batch(task: tuple[Settings, tuple[str, ...]]) -> Accumulator:
    """The accumulator of one batch of crawl shards (run by the engine, here or in a worker)."""
    settings, shards = task
    rows = read_rows(BuildDir(settings.root), list(settings.stages), pl.Enum(settings.fates), list(shards))
    return Accumulator.of_rows(settings, rows)


def scan(build: BuildDir, manifest: dict, workers: int = 1, rows_per_batch: int = ROWS_PER_BATCH,
         kept_samples: int = KEPT_SAMPLES, per_reason: int = SAMPLES_PER_REASON) -> dict:
    """The report's distributions, languages, duplicate groups, top words and samples, from
    batches of shards mapped over `workers` processes (their results merged as they come)."""
    from ..engines import make_engine

    stages = finished_stages(manifest)
    recipe, counted = manifest["recipe"], manifest["stages"]
    kept_rows = counted[stages[-1]]["kept"]
    dup_rows = sum(counted.get("dedupe", {}).get("rejected", {}).get(r, 0) for r in DUP_REASONS)
    shards = build.crawl_shards()
    if not shards:
        return {}
    fate = fates(manifest, stages)
    metrics = M.available(stages, read_rows(build, stages, fate, shards[:1]).columns)
    settings = Settings(str(build.root), tuple(stages), tuple(fate.categories), tuple(m.name for m in metrics),
                        _fraction(WORD_SAMPLE, kept_rows), _fraction(GROUP_SAMPLE, dup_rows), kept_samples, per_reason)
    acc = Accumulator(settings)
    tasks = [(settings, tuple(b)) for b in batches(shards, max(1, rows_per_batch // recipe["crawl"]["samples_per_shard"]))]
    with make_engine("local", workers) as engine:
        for found in engine.imap(scan_batch, tasks):
            acc.merge(found)
    return {
        "columns": _distributions(acc, recipe),
        "languages": _languages(acc.languages),
        "duplicate_groups": _groups(acc.groups, settings.group_fraction) if "dedupe" in stages else None,
        "top_words": _top_words(acc.captions, settings.word_fraction, kept_rows,
                                recipe["filter"]["person_name_placeholder"] if "filter" in stages else ""),
        "samples": _samples(build, acc.samples, metrics, stages),
    }


def _distributions(acc: Accumulator, recipe: dict) -> dict:
    out = {}
    for metric in acc.metrics:
        counts = acc.counts.get(metric.name)
        if counts is None or not counts.height:
            continue
        thresholds = metric.thresholds(recipe)
        entry = {"label": metric.label, "stage": metric.stage, "decides": list(metric.decides), "thresholds": thresholds,
                 "grid": metric.grid.description, "all": M.summary(counts, metric.grid),
                 "kept": M.summary(counts.filter(M.is_kept()), metric.grid)}
        if metric.decides:
            # Where the rule cut: the value ranges of the rows it rejected and of the others. A cut
            # the recipe does not state (keep_top_fraction) is drawn where the two ranges meet.
            rejected = counts.filter(M.rejected_by(metric.decides))
            passed = counts.filter(~M.rejected_by(metric.decides))
            entry["rejected_range"] = _range(rejected)
            entry["passed_range"] = _range(passed)
            if metric.threshold_rule and not thresholds and rejected.height and passed.height:
                if entry["rejected_range"][1] < entry["passed_range"][0]:
                    thresholds["observed_cut"] = entry["passed_range"][0]
                elif entry["rejected_range"][0] > entry["passed_range"][1]:
                    thresholds["observed_cut"] = entry["rejected_range"][0]
        entry["histogram"] = M.histogram(counts, metric, thresholds)
        out[metric.name] = entry
    return out


def _range(counts: pl.DataFrame) -> list | None:
    return [M.rounded(counts["low"].min()), M.rounded(counts["high"].max())] if counts.height else None


def _languages(found: pl.DataFrame | None) -> list[dict]:
    if found is None:
        return []
    out = []
    for (lang,), rows in found.group_by("lang"):
        rejected = rows.filter(~M.is_kept()).sort("len", descending=True)
        out.append({"lang": lang, "rows": int(rows["len"].sum()), "kept": int(rows.filter(M.is_kept())["len"].sum()),
                    "rejected": {fate: int(n) for fate, n in rejected.select(pl.col("fate").cast(pl.String), "len").iter_rows()}})
    return sorted(out, key=lambda e: (-e["rows"], e["lang"]))


def _groups(groups: pl.DataFrame | None, fraction: float) -> dict:
    if groups is None or not groups.height:
        return {"sampled_fraction": fraction, "groups": 0}
    sizes = groups.select(cell=pl.col("len") + 1).group_by("cell").agg(
        n=pl.len(), total=pl.col("cell").sum().cast(pl.Float64), low=pl.col("cell").min().cast(pl.Float64),
        high=pl.col("cell").max().cast(pl.Float64))
    return {"sampled_fraction": round(fraction, 6), "groups": groups.height,
            "size": M.summary(sizes, M.WHOLE),
            "histogram": {"sizes": sizes.sort("cell")["cell"].to_list(), "groups": sizes.sort("cell")["n"].to_list()}}


def _top_words(captions: list[str], fraction: float, kept_rows: int, placeholder: str) -> dict:
    """The most frequent words (two or more characters with a Han one, stop words out, as `wukong
    queries` counts them) of the sampled kept captions: one segmenter call over all of them."""
    try:
        import rjieba

        from ..queries import _is_query_word
        from ..stages.filter.patterns import read_words, resolve_list
    except ImportError:
        return {"error": "top words need rjieba: pip install 'wukong-data[filter]'"}
    stop = set(read_words([resolve_list("stop_words.txt", "stop words")]))
    text = "\n".join(captions)
    if placeholder:
        text = text.replace(placeholder, " ")
    counted = pl.Series("word", rjieba.cut(text), dtype=pl.String).value_counts().sort(["count", "word"],
                                                                                       descending=[True, False])
    words = []
    for word, n in counted.iter_rows():
        if _is_query_word(word, stop):
            words.append([word, int(n)])
            if len(words) == TOP_WORDS:
                break
    return {"captions_read": len(captions), "kept_rows": kept_rows, "sampled_fraction": round(fraction, 6),
            "words": words}


# What decided each reason, beyond the metrics that decide it (metrics.Metric.decides).
EVIDENCE = {
    "invalid_url": ("url",), "download_failed": ("error",), "opted_out": ("error",), "decode_failed": ("error",),
    "dup_url": ("url", "dup_of"), "dup_image": ("dup_of",), "near_dup_image": ("dup_of",),
    "frequent_caption": ("caption",), "meaningless_caption": ("caption",), "sensitive_text": ("caption",),
    "nsfw_text": ("caption",), "not_chinese": ("lang",),
}


def evidence(reason: str) -> list[str]:
    return [*EVIDENCE.get(reason, ()), *(m.name for m in M.METRICS if reason in m.decides)]


def sample_rows(frame: pl.DataFrame, metrics: list[M.Metric], layout, crawled: dict[str, dict]) -> list[dict]:
    """The sampled rows as the report shows them: key, caption (the filter's where it ran, else the
    crawl's), url, crawl error, and every value the stages wrote for the row."""
    extra = [c for c in ("lang", "dup_of") if c in frame.columns]
    caption = [pl.col("caption").alias("clean_caption")] if "caption" in frame.columns else []
    rows = frame.select(layout.key_expr(pl.col("key_id")).alias("key"), *caption, *extra,
                        *(m.expr().alias(m.name) for m in metrics))
    out = []
    for row in rows.iter_rows(named=True):
        found = crawled.get(row["key"], {})
        values = {k: (M.rounded(v) if isinstance(v, float) else v) for k, v in row.items()
                  if k not in ("key", "clean_caption") and v is not None}
        # The input's rejected URL is kept in invalid_url; url is then empty.
        out.append({"key": row["key"], "caption": row.get("clean_caption") or found.get("caption"),
                    "url": found.get("url") or found.get("invalid_url") or found.get("url"),
                    "error": found.get("error_message"), "values": values})
    return out


def _samples(build: BuildDir, samples: pl.DataFrame, metrics: list[M.Metric], stages: list[str]) -> dict:
    keys = samples.select(build.layout.key_expr(pl.col("key_id")))[:, 0].to_list()
    crawled = read_crawled(build, keys, ["caption", "url", "invalid_url", "error_message"])
    kept = samples.filter(M.is_kept()).sort("h")
    rejected = samples.filter(~M.is_kept()).sort("h")
    groups = []
    for (fate,), rows in rejected.group_by("fate", maintain_order=True):
        stage, reason = fate.split("/", 1)
        groups.append({"stage": stage, "reason": reason, "description": meaning(stage, reason),
                       "evidence": evidence(reason), "rows": sample_rows(rows, metrics, build.layout, crawled)})
    groups.sort(key=lambda g: (stages.index(g["stage"]), g["reason"]))
    return {"seed": SEED, "kept": sample_rows(kept, metrics, build.layout, crawled), "rejected": groups}
