"""`wukong stats`: the funnel of a build and a curator's report of it (wukong_data/report/).

The funnel comes from the manifest (each stage's counts, summed from its per-shard counts files
when it finished): no decision file is read, so the summary printed after every build costs
milliseconds at any size. The rest of the report streams the build a batch of shards at a time
(report/collect.py), in memory bounded whatever the row count.
"""
from __future__ import annotations

from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from .build import BuildDir
from .storage import shareable
from .recipe import stages_before
from .report.funnel import SCHEMA_VERSION, funnel
from .report.svg import compact

def collect(build_dir: str, summaries: bool = True, workers: int = 1) -> dict:
    """The report of a build as a JSON-ready dict (its schema: README, "wukong stats"). Without
    `summaries`, the funnel and totals only (from the manifest); with them, the build is read in
    batches of shards by `workers` processes."""
    build = BuildDir(build_dir)
    manifest = build.read_manifest()
    stages = manifest["recipe"]["stages"]
    report = {"schema_version": SCHEMA_VERSION, "build": str(build.root), "recipe": manifest["recipe"]["name"],
              "funnel": funnel(manifest),
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
    if summaries:
        from .report.collect import scan

        report.update(scan(build, manifest, workers))
    return report


def make_report(build_dir: str, html: Path | None = None, compare: str | None = None, workers: int = 1,
                paths: bool = False) -> dict:
    """`wukong stats`: the report of a build (or, with `compare`, of two builds side by side),
    written as an HTML page too when `html` is given. Reports are for sharing: paths on this
    machine are cut to their names unless `paths`."""
    from .report import html as pages

    if compare is not None:
        from .report.compare import collect_comparison

        report = collect_comparison(build_dir, compare)
        shared = report if paths else _without_paths(report)
        if html is not None:
            pages.write_comparison(report, html, shared)
        return shared
    report = collect(build_dir, workers=workers)
    shared = report if paths else _without_paths(report)
    if html is not None:
        pages.write_report(report, html, shared)
    return shared


def _without_paths(report: dict) -> dict:
    """The report with the builds' and inputs' locations cut to their names (storage.shareable);
    captions and URLs stay as they are."""
    out = dict(report)
    for key in ("build", "crawl_source"):
        if key in out:
            out[key] = shareable(out[key])
    if out.get("totals", {}).get("final_dir"):
        out["totals"] = {**out["totals"], "final_dir": f"{shareable(out['build'])}/final"}
    for side in ("a", "b"):
        if side in out:
            out[side] = {**out[side], "build": shareable(out[side]["build"])}
    return out


def print_report(report: dict, console) -> None:
    if report.get("kind") == "comparison":
        from .report.compare import render_comparison

        render_comparison(report, console)
    else:
        render(report, console)


def _number(value) -> str:
    if isinstance(value, (int, float)) and abs(value) >= 10_000:
        return compact(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return "" if value is None else str(value)


def _percent(part: int, whole: int | None) -> str:
    return f"{part / whole:.1%}" if whole else ""


def render(report: dict, console) -> None:
    """The report as rich tables: funnel, then (when collected) languages, distributions,
    duplicate groups, top words and one example per reason."""
    console.print(_funnel_table(report))
    for f in report["funnel"]:
        if f.get("error"):
            console.print(f"[red]{f['stage']} {f['status']}[/]: {escape(f['error'])}\nto resume: {escape(f['resume'] or '')}")
    source = report.get("crawl_source") or {}
    if source.get("from_crawl"):
        console.print(f"crawl adopted from {', '.join(source['from_crawl'])}")
    totals = report.get("totals")
    if totals and totals["kept_rows"] is not None:
        console.print(f"input rows {totals['input_rows']:,}; kept {totals['kept_rows']:,} ({totals['kept_fraction']:.1%})"
                      + (f"; final: {totals['final_rows']:,} rows in {totals['final_shards']} shards at "
                         f"{totals['final_dir']}" if totals["final_rows"] is not None else ""))
    if report.get("languages"):
        table = Table(title="languages (rows the filter identified)")
        for name, justify in (("lang", "left"), ("rows", "right"), ("kept", "right"), ("rejected", "left")):
            table.add_column(name, justify=justify)
        for lang in report["languages"]:
            table.add_row(lang["lang"], f"{lang['rows']:,}", f"{lang['kept']:,}",
                          ", ".join(f"{r} {n:,}" for r, n in lang["rejected"].items()))
        console.print(table)
    if report.get("columns"):
        console.print(_distribution_table(report["columns"]))
    groups = report.get("duplicate_groups")
    if groups and groups.get("groups"):
        size = groups["size"]
        console.print(f"duplicate groups: {groups['groups']:,}"
                      + (f" (a {groups['sampled_fraction']:.2%} hash sample of groups)" if groups["sampled_fraction"] < 1 else "")
                      + f"; rows per group: median {size['median']}, p99 {size['p99']}, max {size['max']}")
    words = report.get("top_words")
    if words and words.get("words"):
        console.print(f"top words of kept captions ({words['captions_read']:,} of {words['kept_rows']:,} read, a hash "
                      f"sample): " + "  ".join(f"{w} {n:,}" for w, n in words["words"][:20]))
    elif words and words.get("error"):
        console.print(f"top words: {words['error']}")
    if report.get("samples", {}).get("rejected"):
        console.print(_examples_table(report["samples"]["rejected"]))


def _funnel_table(report: dict) -> Table:
    table = Table(title=f"wukong build {report['recipe']} — {report['build']}")
    for name, justify in (("stage", "left"), ("status", "left"), ("", "left"), ("rows", "right"),
                          ("% of input", "right")):
        table.add_column(name, justify=justify)
    input_rows = report.get("totals", {}).get("input_rows")
    for f in report["funnel"]:
        if "rows_in" not in f:
            table.add_row(f["stage"], f"[red]{f['status']}[/]" if f.get("error") else f["status"], "", "", "")
            continue
        table.add_section()
        table.add_row(f["stage"], f["status"], "rows in", f"{f['rows_in']:,}", _percent(f["rows_in"], input_rows))
        for reason, n in f["rejected"].items():
            table.add_row("", "", f"[red]{reason}[/]", f"{n:,}", _percent(n, input_rows))
        table.add_row("", "", "[green]kept[/]", f"{f['kept']:,}", _percent(f["kept"], input_rows))
    return table


def _distribution_table(columns: dict) -> Table:
    table = Table(title="distributions (rows where the stage wrote the value)", box=box.SIMPLE_HEAD, padding=(0, 1))
    for name in ("", "rows", "min", "p5", "median", "p95", "max", "recipe"):
        table.add_column(name, justify="left" if name in ("", "recipe") else "right", no_wrap=True)
    for name, column in columns.items():
        s = column["all"]
        recipe = "–".join(f"{v:g}" for v in column["thresholds"].values())
        table.add_row(name, compact(s["count"]), *(_number(s[k]) for k in ("min", "p5", "median", "p95", "max")), recipe)
    return table


def _examples_table(groups: list[dict]) -> Table:
    table = Table(title="an example per reason (wukong stats DIR --html FILE shows more, with images)")
    for name in ("stage", "reason", "key", "caption", "decided by"):
        table.add_column(name, overflow="fold")
    for group in groups:
        row = group["rows"][0]
        decided = "; ".join(f"{e} {_number(row['values'].get(e, row.get(e)))}"[:48] for e in group["evidence"]
                            if e != "caption" and (row["values"].get(e, row.get(e)) is not None))
        caption = row["caption"] or ""
        table.add_row(group["stage"], group["reason"], row["key"],
                      escape(caption[:40] + ("…" if len(caption) > 40 else "")), escape(decided))
    return table
