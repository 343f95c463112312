"""`wukong stats`: the funnel of a build (rows in, kept, rejected per reason) and summaries."""
from __future__ import annotations

import json

import polars as pl
from rich.table import Table

from .build import BuildDir
from .recipe import stages_before


def stage_counts(build: BuildDir, stages: list[str], stage: str) -> dict:
    """rows_in, kept, rejected per reason of one stage of a build with these stages."""
    if stage == "export":
        rows_in = build.kept_keys(stages_before(stages, "export")).select(pl.len()).collect().item()
        sizes_path = build.final_dir / "sizes.json"
        sizes = json.loads(sizes_path.read_text()) if sizes_path.exists() else {}
        return {"rows_in": rows_in, "kept": sum(sizes.values()), "rejected": {}, "shards": len(sizes)}
    counts = build.decisions(stage).group_by("reason").agg(pl.len().alias("n")).collect()
    rejected = {r: n for r, n in counts.iter_rows() if r is not None}
    kept = sum(n for r, n in counts.iter_rows() if r is None)
    return {"rows_in": kept + sum(rejected.values()), "kept": kept,
            "rejected": dict(sorted(rejected.items(), key=lambda kv: -kv[1]))}


def _summary(values: pl.Series) -> dict:
    if values.len() == 0:
        return {"count": 0}
    return {
        "count": values.len(), "min": values.min(), "p5": values.quantile(0.05), "median": values.median(),
        "mean": round(values.mean(), 2), "p95": values.quantile(0.95), "max": values.max(),
    }


def collect(build_dir: str) -> dict:
    build = BuildDir(build_dir)
    manifest = build.read_manifest()
    recipe = manifest["recipe"]
    statuses = manifest.get("stages", {})
    funnel = []
    for stage in recipe["stages"]:
        status = statuses.get(stage, {}).get("status", "pending")
        entry = {"stage": stage, "status": status}
        if status == "done":
            entry.update(stage_counts(build, recipe["stages"], stage))
        funnel.append(entry)

    report = {"build": str(build.root), "recipe": recipe["name"], "funnel": funnel}
    if statuses.get("crawl", {}).get("status") == "done":
        kept = build.kept_keys(stages_before(recipe["stages"], "export"))
        crawl = pl.scan_parquet([build.crawl_path(s) for s in build.crawl_shards()])
        rows = (
            crawl.select("key", "caption", "original_width", "original_height")
            .join(kept, on="key", how="semi")
            .with_columns(pl.col("caption").str.len_chars().alias("caption_chars"))
            .collect()
        )
        input_rows = funnel[0].get("rows_in", 0)
        final = next((f for f in funnel if f["stage"] == "export" and f["status"] == "done"), None)
        report["totals"] = {
            "input_rows": input_rows,
            "kept_rows": rows.height,
            "kept_fraction": round(rows.height / input_rows, 4) if input_rows else 0.0,
            "final_rows": final["kept"] if final else None,
            "final_shards": final["shards"] if final else None,
            "final_dir": str(build.final_dir) if final else None,
        }
        report["caption_chars"] = _summary(rows["caption_chars"])
        report["image_width"] = _summary(rows["original_width"])
        report["image_height"] = _summary(rows["original_height"])
    return report


def render(report: dict, console) -> None:
    funnel = Table(title=f"wukong build {report['recipe']} — {report['build']}")
    for name, justify in (("stage", "left"), ("status", "left"), ("rows in", "right"), ("kept", "right"),
                          ("rejected", "right"), ("reasons", "left")):
        funnel.add_column(name, justify=justify)
    for f in report["funnel"]:
        if "rows_in" not in f:
            funnel.add_row(f["stage"], f["status"], "", "", "", "")
            continue
        reasons = ", ".join(f"{r} {n:,}" for r, n in f["rejected"].items())
        funnel.add_row(f["stage"], f["status"], f"{f['rows_in']:,}", f"{f['kept']:,}",
                       f"{sum(f['rejected'].values()):,}", reasons)
    console.print(funnel)
    if "totals" not in report:
        return
    t = report["totals"]
    console.print(f"input rows {t['input_rows']:,}; kept {t['kept_rows']:,} ({t['kept_fraction']:.1%})"
                  + (f"; final: {t['final_rows']:,} rows in {t['final_shards']} shards at {t['final_dir']}"
                     if t["final_rows"] is not None else ""))
    summary = Table(title="kept rows")
    for name in ("", "min", "p5", "median", "mean", "p95", "max"):
        summary.add_column(name, justify="right")
    for label, key in (("caption chars", "caption_chars"), ("image width", "image_width"),
                       ("image height", "image_height")):
        s = report[key]
        if s["count"]:
            summary.add_row(label, *(f"{s[k]:,.0f}" if k != "mean" else f"{s[k]:,.1f}"
                                     for k in ("min", "p5", "median", "mean", "p95", "max")))
    console.print(summary)
