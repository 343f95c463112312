"""`wukong stats`: the funnel of a build (rows in, kept and rejected per reason) and summaries.

The funnel comes from the manifest (each stage's counts, summed from its per-shard counts files
when it finished): no decision file is read. The summaries of kept rows are streamed one crawl
shard at a time, so memory does not grow with the build.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from rich.table import Table

from .build import BuildDir
from .recipe import stages_before


def funnel(manifest: dict) -> list[dict]:
    statuses = manifest.get("stages", {})
    out = []
    for stage in manifest["recipe"]["stages"]:
        status = statuses.get(stage, {})
        entry = {"stage": stage, "status": status.get("status", "pending")}
        if entry["status"] == "done":
            entry.update({k: status[k] for k in ("rows_in", "kept", "rejected", "shards") if k in status})
        out.append(entry)
    return out


class _Summary:
    """min, mean, max exactly; quantiles from a 1-unit histogram of integer values (sizes, lengths)."""

    def __init__(self, top: int = 100_000):
        self.counts = np.zeros(top + 1, np.int64)
        self.n, self.total, self.low, self.high = 0, 0.0, None, None

    def add(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values.astype(np.float64))].astype(np.int64) if len(values) else values
        if not len(values):
            return
        self.n += len(values)
        self.total += float(values.sum())
        self.low = min(self.low, int(values.min())) if self.low is not None else int(values.min())
        self.high = max(self.high, int(values.max())) if self.high is not None else int(values.max())
        self.counts += np.bincount(np.clip(values, 0, len(self.counts) - 1), minlength=len(self.counts))

    def quantile(self, q: float) -> int:
        return int(np.searchsorted(np.cumsum(self.counts), q * self.n))

    def to_dict(self) -> dict:
        if not self.n:
            return {"count": 0}
        return {"count": self.n, "min": self.low, "p5": self.quantile(0.05), "median": self.quantile(0.5),
                "mean": round(self.total / self.n, 2), "p95": self.quantile(0.95), "max": self.high}


def collect(build_dir: str, summaries: bool = True) -> dict:
    build = BuildDir(build_dir)
    manifest = build.read_manifest()
    stages = manifest["recipe"]["stages"]
    report = {"build": str(build.root), "recipe": manifest["recipe"]["name"], "funnel": funnel(manifest),
              "crawl_source": manifest.get("crawl_source") or {"url_lists": manifest["recipe"]["input"]["path"]}}
    done = {f["stage"]: f for f in report["funnel"] if f["status"] == "done"}
    if "crawl" not in done:
        return report
    last = stages_before(stages, "export")[-1]
    final = done.get("export")
    input_rows = done["crawl"]["rows_in"]
    kept = done[last]["kept"] if last in done else None
    report["totals"] = {
        "input_rows": input_rows,
        "kept_rows": kept,
        "kept_fraction": round(kept / input_rows, 4) if input_rows and kept is not None else None,
        "final_rows": final["kept"] if final else None,
        "final_shards": final["shards"] if final else None,
        "final_dir": str(build.final_dir) if final else None,
    }
    if summaries and last in done:
        found = {"caption_chars": _Summary(), "image_width": _Summary(), "image_height": _Summary()}
        for shard in build.crawl_shards():
            rows = (build.scan_crawl(shard).select("key", "caption", "original_width", "original_height")
                    .join(build.kept(last, shard), on="key", how="semi")
                    .select(caption_chars=pl.col("caption").str.len_chars(), image_width="original_width",
                            image_height="original_height").collect())
            for name, summary in found.items():
                summary.add(rows[name].to_numpy())
        report.update({name: summary.to_dict() for name, summary in found.items()})
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
    source = report.get("crawl_source") or {}
    if source.get("from_crawl"):
        console.print(f"crawl adopted from {', '.join(source['from_crawl'])}")
    if "totals" not in report:
        return
    t = report["totals"]
    if t["kept_rows"] is None:
        return
    console.print(f"input rows {t['input_rows']:,}; kept {t['kept_rows']:,} ({t['kept_fraction']:.1%})"
                  + (f"; final: {t['final_rows']:,} rows in {t['final_shards']} shards at {t['final_dir']}"
                     if t["final_rows"] is not None else ""))
    if not any(report.get(k, {}).get("count") for k in ("caption_chars", "image_width", "image_height")):
        return
    summary = Table(title="kept rows")
    for name in ("", "min", "p5", "median", "mean", "p95", "max"):
        summary.add_column(name, justify="right")
    for label, key in (("caption chars", "caption_chars"), ("image width", "image_width"),
                       ("image height", "image_height")):
        s = report.get(key, {"count": 0})
        if s["count"]:
            summary.add_row(label, *(f"{s[k]:,.0f}" if k != "mean" else f"{s[k]:,.1f}"
                                     for k in ("min", "p5", "median", "mean", "p95", "max")))
    console.print(summary)
