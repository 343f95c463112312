"""The dataset card written beside the final shards (DIR/final/README.md): Hugging Face front
matter (so `datasets.load_dataset("DIR/final")` reads the Parquet shards), then the recipe, the
funnel with counts per reason, the columns, the sizes, and what a user must know."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from .outputs import STAGES, meaning
from .storage import shareable

def column_meanings(stages: list[str]) -> dict[str, str]:
    """Each column of the final shards and what it means, from the stages' declarations: a later
    stage's version of a column (the filter's caption) replaces the crawl's."""
    out = dict(STAGES["crawl"].columns)
    for stage in stages:
        if stage != "crawl":
            out.update({column: f"{stage}: {text}" for column, text in STAGES[stage].columns.items()})
    return out


def _front_matter(name: str, rows: int) -> str:
    size = next(label for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                                           (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                                           (100_000_000, "10M<n<100M"), (float("inf"), "100M<n<1B"))
                if rows < limit)
    return "\n".join([
        "---",
        "license: other",
        "license_name: image-owners",
        "language:",
        "- zh",
        "task_categories:",
        "- image-to-text",
        "- text-to-image",
        "- zero-shot-image-classification",
        "size_categories:",
        f"- {size}",
        f"pretty_name: {name}",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        '    path: "*.parquet"',
        "---",
    ])


def card(final: Path, manifest: dict, sizes: dict[str, int], formats: list[str]) -> str:
    """The text of final/README.md."""
    recipe = manifest["recipe"]
    stages = manifest.get("stages", {})
    rows = sum(sizes.values())
    lines = [_front_matter(recipe["name"], rows), "", f"# {recipe['name']}", ""]
    if recipe.get("description"):
        lines += [recipe["description"], ""]
    lines += [f"{rows:,} image-text pairs in {len(sizes)} shards, built by wukong-data "
              f"{manifest.get('versions', {}).get('wukong-data', '')} with the recipe below "
              f"(stages: {' → '.join(recipe['stages'])}).", ""]
    lines += ["## Funnel", "", "| stage | rows in | kept | rejected (reason: rows) |", "|---|---|---|---|"]
    for stage in recipe["stages"]:
        status = stages.get(stage, {})
        if stage == "export":
            status = {"rows_in": status.get("rows_in", rows), "kept": rows, "rejected": {}}
        if "rows_in" not in status:
            continue
        rejected = ", ".join(f"`{r}`: {n:,}" for r, n in status.get("rejected", {}).items()) or "—"
        lines.append(f"| {stage} | {status['rows_in']:,} | {status['kept']:,} | {rejected} |")
    codes = [(stage, r) for stage in recipe["stages"] for r in stages.get(stage, {}).get("rejected", {})]
    if codes:
        lines += ["", "Reason codes:", ""] + [f"- `{r}` ({stage}): {meaning(stage, r)}" for stage, r in codes]
    lines += ["", "## Files", ""]
    lines += _shard_sections(final, sorted(sizes), formats, rows, recipe["stages"]) if sizes else \
        ["No pair was kept: this folder holds no shards.", ""]
    lines += ["## Recipe", "", "```json", json.dumps(shareable(recipe), indent=2, ensure_ascii=False), "```", ""]
    lines += ["## Caveats", "",
              "- The images and captions are as crawled from the web: their copyright belongs to their owners, "
              "and this card grants no licence to them. Use them as the law where you are allows (e.g. text and "
              "data mining exceptions), and honour removal requests.",
              "- Rows whose servers opted out of AI use (X-Robots-Tag noai, noimageai, noindex, noimageindex) were "
              "not kept; other opt-out mechanisms were not checked.",
              "- The rules above are automatic: language identification, word lists, NSFW models and near-duplicate "
              "search have error rates (the wukong-data README gives the measured ones). Expect some non-Chinese, "
              "offensive, NSFW, duplicated or mismatched pairs to remain, and some good ones to be dropped.",
              *_person_names(recipe),
              "- URLs age: many will stop serving their images; the bytes here are what the crawl saw.", ""]
    return "\n".join(lines)


def _person_names(recipe: dict) -> list[str]:
    """The caveat on person names: the policy the build used."""
    if "filter" not in recipe["stages"]:
        return ["- Person names were not looked for (no filter stage): captions may name people."]
    cfg = recipe["filter"]
    policy = cfg["person_names"]
    if policy == "keep":
        return ['- Person names were left as they are (`person_names = "keep"`): captions may name people.']
    done = (f"replaced by `{cfg['person_name_placeholder']}`" if policy == "mask"
            else "looked for, and captions naming someone dropped (reason `person_name`)")
    return [f"- Person names were {done} (`person_names = \"{policy}\"`, `person_name_min_probability = "
            f"{cfg['person_name_min_probability']}`) by a named-entity recogniser tuned for precision on real web "
            "captions: it misses many names (one in four on held-out Wukong captions at 0.65; the wukong-data "
            "README gives the measured rates) and takes a few words for names."]


def _shard_sections(final, shards: list[str], formats: list[str], rows: int, stages: list[str]) -> list[str]:
    """The card's description of the shards, their columns and how to load them."""
    lines = []
    if "webdataset" in formats:
        lines.append(f"- `NNNNN.tar` ({shards[0]} … {shards[-1]}): WebDataset shards; each sample is `KEY.<image>`, "
                     "`KEY.txt` (caption, UTF-8) and `KEY.json` (the other columns). `sizes.json` gives the samples "
                     "per shard (open_clip reads it).")
    if "parquet" in formats:
        lines.append("- `NNNNN.parquet`: the same rows and order, one row per pair, image bytes in a column; "
                     "row groups of 256 rows for streaming readers.")
    lines.append("- Rows are shuffled across the whole build (seeded) unless the recipe's `[export].shuffle` is false.")
    first = next(iter(sorted(final.glob("[0-9]*.parquet"))), None)
    if first is not None:
        lines += ["", "## Columns", "", "| column | type | meaning |", "|---|---|---|"]
        with first.open("rb") as f:
            schema = pq.read_schema(f)
        meanings = column_meanings(stages)
        for field in schema:
            lines.append(f"| `{field.name}` | {field.type} | {meanings.get(field.name, '')} |")
    # No absolute path: the card stays true wherever the folder is copied (the same build anywhere
    # gives the same bytes).
    lines += ["", "## Load it", ""]
    if "parquet" in formats:
        lines += ["```python",
                  'final = "path/to/this/folder"             # or its copy on the Hugging Face Hub',
                  "from datasets import load_dataset          # with this README in place",
                  'ds = load_dataset(final, split="train")',
                  "import polars as pl                       # or any Parquet reader",
                  'pl.scan_parquet(f"{final}/*.parquet")',
                  "```", ""]
    if "webdataset" in formats:
        first, last = (name.split(".")[0] for name in (shards[0], shards[-1]))
        lines += [f"open_clip: `--dataset-type webdataset --train-data 'path/to/this/folder/{{{first}..{last}}}.tar' "
                  f"--train-num-samples {rows}`.", ""]
    return lines
