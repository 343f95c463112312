"""`wukong stats A --compare B`: two builds of the same input side by side (two threshold choices,
two recipes): recipe differences, funnel deltas, how rows moved between fates, and samples of the
rows one build kept and the other did not.

Rows are matched by key, which both builds give the same input row; the URL of every row is checked
to be the same in both. Both builds are read a batch of shards at a time (rows.py), so memory is
bounded; the sampled rows are then read again from their shards with every value both builds wrote.
"""
from __future__ import annotations

import polars as pl

from ..build import BuildDir
from ..errors import UserError
from . import metrics as M
from .collect import KEPT_SAMPLES, _hash, evidence, sample_rows
from .funnel import SCHEMA_VERSION, funnel
from .images import read_crawled
from .rows import KEPT, batches, fates, finished_stages, read_rows

ROWS_PER_BATCH = 200_000
TOP_CHANGES = 30


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def recipe_differences(a: dict, b: dict) -> list[dict]:
    """Recipe settings that differ (the input path and recipe source aside: they name files)."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    ignored = {"input.path", "source"}
    return [{"key": k, "a": flat_a.get(k), "b": flat_b.get(k)} for k in sorted(set(flat_a) | set(flat_b))
            if k not in ignored and flat_a.get(k) != flat_b.get(k)]


def _funnel_deltas(funnel_a: list[dict], funnel_b: list[dict]) -> list[dict]:
    by_stage_b = {f["stage"]: f for f in funnel_b}
    out = []
    for fa in funnel_a:
        fb = by_stage_b.get(fa["stage"], {})
        if "rows_in" not in fa or "rows_in" not in fb:
            out.append({"stage": fa["stage"], "status": [fa["status"], fb.get("status", "absent")]})
            continue
        reasons = list(dict.fromkeys([*fa["rejected"], *fb["rejected"]]))
        out.append({"stage": fa["stage"], "rows_in": [fa["rows_in"], fb["rows_in"]], "kept": [fa["kept"], fb["kept"]],
                    "kept_delta": fb["kept"] - fa["kept"],
                    "rejected": [{"reason": r, "a": fa["rejected"].get(r, 0), "b": fb["rejected"].get(r, 0),
                                  "delta": fb["rejected"].get(r, 0) - fa["rejected"].get(r, 0)} for r in reasons]})
    return out


def _check_same_input(a: BuildDir, b: BuildDir) -> None:
    if a.crawl_shards() != b.crawl_shards() or a.layout != b.layout:
        raise UserError(f"{b.root}: not a build of the same input as {a.root} (its crawl shards differ); "
                        "--compare needs two builds of one URL list")


def _url_mismatch(a: BuildDir, b: BuildDir, shards: list[str]) -> str | None:
    """The first key whose URL differs between the builds, if any."""
    def urls(build):
        return pl.concat([build.scan_crawl(s).select(pl.col("key"), pl.col("url").alias(str(build.root)))
                          for s in shards])
    both = urls(a).join(urls(b), on="key", how="full", coalesce=True).filter(
        pl.col(str(a.root)).ne_missing(pl.col(str(b.root)))).head(1).collect()
    return both["key"][0] if both.height else None


def collect_comparison(dir_a: str, dir_b: str, samples: int = KEPT_SAMPLES) -> dict:
    """The comparison of two builds as a JSON-ready dict (schema: README, "wukong stats")."""
    a, b = BuildDir(dir_a), BuildDir(dir_b)
    manifest_a, manifest_b = a.read_manifest(), b.read_manifest()
    _check_same_input(a, b)
    shards = a.crawl_shards()
    stages_a, stages_b = finished_stages(manifest_a), finished_stages(manifest_b)
    if not stages_a or not stages_b:
        raise UserError("--compare needs two builds whose crawl has finished")
    fate_a, fate_b = fates(manifest_a, stages_a), fates(manifest_b, stages_b)
    changes: pl.DataFrame | None = None
    chosen: pl.DataFrame | None = None
    kept = {"both": 0, "only_a": 0, "only_b": 0}
    per_batch = max(1, ROWS_PER_BATCH // manifest_a["recipe"]["crawl"]["samples_per_shard"])
    for batch in batches(shards, per_batch):
        mismatch = _url_mismatch(a, b, batch)
        if mismatch is not None:
            raise UserError(f"{b.root}: row {mismatch} has another URL than in {a.root}; --compare needs two builds "
                            "of one URL list")
        pair = read_rows(a, stages_a, fate_a, batch).select("key_id", fate_a=pl.col("fate").cast(pl.String)).join(
            read_rows(b, stages_b, fate_b, batch).select("key_id", fate_b=pl.col("fate").cast(pl.String)),
            on="key_id", how="inner")
        kept_a, kept_b = pl.col("fate_a") == KEPT, pl.col("fate_b") == KEPT
        counted = pair.select(both=(kept_a & kept_b).sum(), only_a=(kept_a & ~kept_b).sum(),
                              only_b=(~kept_a & kept_b).sum()).row(0, named=True)
        kept = {k: kept[k] + int(v) for k, v in counted.items()}
        moved = pair.filter(pl.col("fate_a") != pl.col("fate_b")).group_by("fate_a", "fate_b").len()
        changes = moved if changes is None else pl.concat([changes, moved]).group_by("fate_a", "fate_b").agg(
            pl.col("len").sum())
        differing = pair.filter(kept_a != kept_b).with_columns(h=pl.Series(_hash(pair.filter(kept_a != kept_b)["key_id"]),
                                                                             dtype=pl.UInt64))
        chosen = _choose(differing if chosen is None else pl.concat([chosen, differing]), samples)
    changes = changes.sort("len", descending=True) if changes is not None else None
    return {
        "schema_version": SCHEMA_VERSION, "kind": "comparison",
        "a": {"build": str(a.root), "recipe": manifest_a["recipe"]["name"]},
        "b": {"build": str(b.root), "recipe": manifest_b["recipe"]["name"]},
        "recipe_differences": recipe_differences(manifest_a["recipe"], manifest_b["recipe"]),
        "funnel": _funnel_deltas(funnel(manifest_a), funnel(manifest_b)),
        "kept": kept,
        "changes": [] if changes is None else [
            {"a": fa, "b": fb, "rows": int(n)} for fa, fb, n in changes.head(TOP_CHANGES).iter_rows()],
        "samples": _samples(a, b, stages_a, stages_b, fate_a, fate_b, chosen),
    }


def _choose(rows: pl.DataFrame, samples: int) -> pl.DataFrame:
    """Per direction (kept only by A, kept only by B), the rows with the smallest key hashes."""
    return pl.concat([rows.filter(pl.col("fate_a") == KEPT).bottom_k(samples, by="h"),
                      rows.filter(pl.col("fate_b") == KEPT).bottom_k(samples, by="h")])


def _samples(a: BuildDir, b: BuildDir, stages_a, stages_b, fate_a, fate_b, chosen: pl.DataFrame | None) -> dict:
    """The chosen rows with their caption, URL and every value each build wrote for them."""
    if chosen is None or not chosen.height:
        return {"only_a": [], "only_b": []}
    chosen = chosen.sort("h")
    keys = chosen.select(a.layout.key_expr(pl.col("key_id")))[:, 0].to_list()
    shards = sorted({a.layout.shard_of(k) for k in keys})
    crawled = read_crawled(a, keys, ["caption", "url", "error_message"])

    def described(build, stages, fate):
        rows = pl.concat([read_rows(build, stages, fate, [s]) for s in shards], how="diagonal_relaxed")
        rows = rows.join(chosen.select("key_id", "h"), on="key_id").sort("h")
        metrics = M.available(stages, rows.columns)
        return {r["key"]: r for r in sample_rows(rows, metrics, build.layout, crawled)}

    in_a, in_b = described(a, stages_a, fate_a), described(b, stages_b, fate_b)
    out = {"only_a": [], "only_b": []}
    for key, fa, fb in zip(keys, chosen["fate_a"], chosen["fate_b"]):
        side, other_fate = ("only_a", fb) if fa == KEPT else ("only_b", fa)
        reason = other_fate.split("/", 1)[1]
        row = in_a[key] if side == "only_a" else in_b[key]
        out[side].append({"key": key, "caption": row["caption"], "url": row["url"], "fate_a": fa, "fate_b": fb,
                          "evidence": evidence(reason), "values_a": in_a[key]["values"], "values_b": in_b[key]["values"]})
    return out


def render_comparison(report: dict, console) -> None:
    """The comparison as rich tables."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    a, b = report["a"], report["b"]
    console.print(f"A: {escape(a['build'])} ({escape(a['recipe'])})\nB: {escape(b['build'])} ({escape(b['recipe'])})")
    if report["recipe_differences"]:
        table = Table(title="recipe settings that differ", box=box.SIMPLE_HEAD)
        for name in ("setting", "A", "B"):
            table.add_column(name)
        for d in report["recipe_differences"]:
            table.add_row(d["key"], *(escape(", ".join(map(str, v)) if isinstance(v, list) else str(v))
                                      for v in (d["a"], d["b"])))
        console.print(table)
    table = Table(title="funnel: A, B and B - A", box=box.SIMPLE_HEAD)
    for name, justify in (("stage", "left"), ("", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
        table.add_column(name, justify=justify)
    for f in report["funnel"]:
        if "kept" not in f:
            table.add_row(f["stage"], "status", *f["status"], "")
            continue
        table.add_section()
        table.add_row(f["stage"], "rows in", f"{f['rows_in'][0]:,}", f"{f['rows_in'][1]:,}",
                      f"{f['rows_in'][1] - f['rows_in'][0]:+,}")
        for r in f["rejected"]:
            table.add_row("", f"[red]{r['reason']}[/]", f"{r['a']:,}", f"{r['b']:,}", f"{r['delta']:+,}")
        table.add_row("", "[green]kept[/]", f"{f['kept'][0]:,}", f"{f['kept'][1]:,}", f"{f['kept_delta']:+,}")
    console.print(table)
    kept = report["kept"]
    console.print(f"kept by both: {kept['both']:,}; kept by A only: {kept['only_a']:,}; kept by B only: {kept['only_b']:,}")
    if report["changes"]:
        table = Table(title="rows whose fate differs (fate in A -> fate in B)", box=box.SIMPLE_HEAD)
        for name, justify in (("A", "left"), ("B", "left"), ("rows", "right")):
            table.add_column(name, justify=justify)
        for c in report["changes"]:
            table.add_row(c["a"], c["b"], f"{c['rows']:,}")
        console.print(table)
    for side, title in (("only_a", "kept by A only (fate in B)"), ("only_b", "kept by B only (fate in A)")):
        rows = report["samples"][side]
        if not rows:
            continue
        table = Table(title=f"samples: {title}", box=box.SIMPLE_HEAD)
        for name in ("key", "caption", "fate", "values (A / B)"):
            table.add_column(name, overflow="fold")
        for row in rows[:8]:
            fate = row["fate_b"] if side == "only_a" else row["fate_a"]
            table.add_row(row["key"], escape((row["caption"] or "")[:30]), fate, escape(evidence_pair(row)))
        console.print(table)


def evidence_pair(row: dict) -> str:
    """The deciding values of a compared row in both builds: "filip_score 0.31 / 0.31"."""
    parts = []
    for field in row["evidence"]:
        va, vb = row["values_a"].get(field), row["values_b"].get(field)
        if field != "caption" and (va is not None or vb is not None):
            parts.append(f"{field} {va if va is not None else '-'} / {vb if vb is not None else '-'}")
    return "; ".join(parts)
