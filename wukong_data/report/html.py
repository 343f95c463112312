"""The report as one self-contained HTML file: inline CSS and SVG, thumbnails as data: URIs, no
script and no link to anything outside the file, so it opens offline in any browser and on a
phone. Every text from the build (captions, URLs, errors) is escaped."""
from __future__ import annotations

import base64
import datetime
import io
from html import escape
from pathlib import Path

from .. import __version__
from ..build import BuildDir
from ..storage import atomic_path
from ..errors import UserError
from ..outputs import meaning
from . import svg
from .images import Thumbnail, thumbnails

CSS = """
:root { --ink: #1d232b; --muted: #5d6875; --line: #dde1e6; --card: #f6f7f9; --kept: #2e8b57; --here: #d0453a; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45; font-size: 16px;
  font-family: "WukongCJK", system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 12px 14px 40px; }
h1 { font-size: 1.5rem; margin: 8px 0 2px; } h2 { font-size: 1.25rem; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 18px 0 6px; } h3 small, .muted { color: var(--muted); font-weight: normal; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .95rem; margin: 8px 0; }
nav a, a { color: #2459a8; }
.totals { font-size: 1.1rem; } .totals b { font-size: 1.3rem; }
svg { width: 100%; height: auto; display: block; max-width: 720px; }
svg text { font-family: inherit; fill: var(--ink); } svg .label { font-size: 14px; font-weight: 600; }
svg .on-bar { font-size: 13px; fill: #fff; font-weight: 600; } svg .tick { font-size: 12px; fill: var(--muted); }
svg .axis { stroke: #8a939e; } svg .grid { stroke: var(--line); }
svg .threshold { stroke: #111; stroke-width: 1.5; stroke-dasharray: 5 3; } svg .threshold-label { font-size: 12px; font-weight: 600; }
.table-wrap { overflow-x: auto; } table { border-collapse: collapse; font-size: .92rem; width: 100%; } td.barcell { width: 30%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.stage td { background: var(--card); font-weight: 600; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.bar { height: .6em; background: var(--here); border-radius: 2px; min-width: 2px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: .9rem; color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 460px), 1fr)); gap: 8px 24px; }
.chart h3 { margin-bottom: 2px; } .chart p { font-size: .85rem; color: var(--muted); margin: 2px 0 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; overflow: hidden;
  display: flex; flex-direction: column; }
.card img, .noimg { width: 100%; height: 130px; object-fit: contain; background: #e9ecef; display: block; }
.noimg { display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: .8rem;
  text-align: center; padding: 6px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 2px; } .pair img { height: 100px; }
.card figcaption { padding: 6px 8px 8px; font-size: .85rem; overflow-wrap: anywhere; }
.cap { margin: 0 0 4px; } .why { margin: 0; color: var(--here); font-weight: 600; } .key { color: var(--muted); font-size: .75rem; margin: 2px 0 0; }
.kept .why { color: var(--kept); font-weight: normal; }
.words { display: flex; flex-wrap: wrap; gap: 6px; } .word { background: var(--card); border: 1px solid var(--line);
  border-radius: 12px; padding: 1px 9px; } .word small { color: var(--muted); }
footer { margin-top: 36px; font-size: .8rem; color: var(--muted); }
@media (max-width: 600px) { body { font-size: 15px; } main { padding: 8px 10px 32px; } .barcell { display: none; }
  th, td { padding: 4px 5px; } .grid { grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px; } }
"""
# The page may load nothing from anywhere: no script, no request; images and styles are inline.
CSP = "default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
# The page carries a CJK font cut to its own CJK characters, first in the family list: it draws
# them the same everywhere, also where no CJK font is installed (Chromium did not reach it after
# system-ui's family, whose fallback drew boxes); other characters fall through to system-ui.
FONT = Path(__file__).parent / "fonts" / "wqy-microhei-gb2312.ttf"
EMBEDDED_FAMILY = "WukongCJK"


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _percent(part: int, whole: int | None) -> str:
    return f"{part / whole:.1%}" if whole else ""


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


# What a sample without a thumbnail shows instead, by reason (default: "no image").
MISSING = {"invalid_url": "not requested", "download_failed": "not downloaded", "opted_out": "not downloaded (opted out)",
           "decode_failed": "not a decodable image"}


def page(title: str, body: list[str]) -> str:
    text = title + "".join(body)
    return ('<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><style>{font_face(text)}{CSS}</style></head><body><main>'
            + "".join(body)
            + f'<footer>wukong-data {_e(__version__)} · written {datetime.datetime.now():%Y-%m-%d %H:%M} · one file, '
              'no network: images are embedded thumbnails</footer></main></body></html>\n')


def font_face(text: str) -> str:
    """The @font-face of the bundled CJK font cut to the CJK characters of `text` (ideographs,
    kana, CJK and full-width punctuation: a few KB of glyphs each), or nothing where there are
    none."""
    wanted = "".join(sorted({c for c in text if 0x2E80 <= ord(c) <= 0x9FFF or 0xF900 <= ord(c) <= 0xFAFF
                             or 0xFF00 <= ord(c) <= 0xFFEF}))
    if not wanted:
        return ""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(str(FONT))
    options = subset.Options()
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=wanted)
    subsetter.subset(font)
    data = io.BytesIO()
    font.save(data)
    encoded = base64.b64encode(data.getvalue()).decode("ascii")
    return f'@font-face {{ font-family: "{EMBEDDED_FAMILY}"; src: url(data:font/ttf;base64,{encoded}) format("truetype"); }}\n'


def write(html: str, path: Path) -> None:
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(html, encoding="utf-8")
    except OSError as err:
        raise UserError(f"--html {path}: cannot write the report ({err.strerror})") from None


def card(row: dict, thumbs: dict[str, Thumbnail], why: str, missing: str = "no image", kept: bool = False) -> str:
    """A sample: its thumbnail (and its kept copy's, for a duplicate), caption, the deciding value."""
    def image(key: str | None, alt: str) -> str:
        thumb = thumbs.get(key) if key else None
        if thumb is None:
            return f'<div class="noimg">{_e(missing)}</div>'
        return f'<img src="{thumb.uri}" width="{thumb.width}" height="{thumb.height}" alt="{_e(alt)}">'

    dup_of = row["values"].get("dup_of")
    picture = image(row["key"], f"row {row['key']}")
    if dup_of:
        picture = f'<div class="pair">{picture}{image(dup_of, f"kept copy {dup_of}")}</div>'
    return (f'<figure class="card{" kept" if kept else ""}">{picture}<figcaption>'
            f'<p class="cap">{_e(row["caption"])}</p>' + (f'<p class="why">{why}</p>' if why else "")
            + f'<p class="key">key {_e(row["key"])}{f" · kept copy {_e(dup_of)}" if dup_of else ""}</p>'
            '</figcaption></figure>')


def evidence_text(row: dict, fields: list[str]) -> str:
    parts = []
    for field in fields:
        value = row["values"].get(field, row.get(field))
        if field == "caption" or value is None or field == "dup_of":
            continue
        parts.append(f"{_e(field)} {_number(value) if value != '' else '(empty)'}")
    return " · ".join(parts)


def sample_keys(samples: dict) -> list[str]:
    rows = samples["kept"] + [r for g in samples["rejected"] for r in g["rows"]]
    return [r["key"] for r in rows] + [r["values"]["dup_of"] for r in rows if r["values"].get("dup_of")]


def _funnel(report: dict) -> list[str]:
    totals = report["totals"]
    input_rows = totals["input_rows"]
    rows = []
    for stage in report["funnel"]:
        if "rows_in" not in stage:
            rows.append(f'<tr class="stage"><td>{_e(stage["stage"])}</td><td>{_e(stage["status"])}</td>'
                        '<td class="n"></td><td class="n"></td><td class="barcell"></td></tr>')
            continue
        rows.append(f'<tr class="stage"><td>{_e(stage["stage"])}</td><td>rows in</td><td class="n">{stage["rows_in"]:,}'
                    f'</td><td class="n">{_percent(stage["rows_in"], input_rows)}</td><td class="barcell"></td></tr>')
        for i, (reason, n) in enumerate(stage["rejected"].items()):
            share = n / input_rows if input_rows else 0
            rows.append(
                f'<tr><td></td><td><span class="swatch" style="background:{svg.reason_colour(i)}"></span>'
                f'<a href="#{_anchor(stage["stage"], reason)}">{_e(reason)}</a><br><span class="muted">'
                f'{_e(meaning(stage["stage"], reason))}</span></td><td class="n">{n:,}</td><td class="n">{share:.2%}</td>'
                f'<td class="barcell"><div class="bar" style="width:{min(100, share * 100 * 4):.1f}%"></div></td></tr>')
        rows.append(f'<tr><td></td><td><span class="swatch" style="background:{svg.KEPT}"></span>kept</td>'
                    f'<td class="n">{stage["kept"]:,}</td><td class="n">{_percent(stage["kept"], input_rows)}</td>'
                    '<td class="barcell"></td></tr>')
    return ['<section id="funnel"><h2>Funnel</h2>', svg.funnel(report["funnel"], input_rows),
            '<p class="muted">Bars scale with the build\'s input rows; the table\'s red bars are each reason\'s share '
            'of the input, drawn ×4.</p><div class="table-wrap"><table><thead><tr><th>stage</th><th></th>'
            '<th>rows</th><th>% of input</th><th class="barcell"></th></tr></thead><tbody>', *rows, '</tbody></table></div></section>']


def _anchor(stage: str, reason: str) -> str:
    return f"reason-{stage}-{reason}"


def _languages(languages: list[dict]) -> list[str]:
    if not languages:
        return []
    rows = [f'<tr><td>{_e(lang["lang"])}</td><td class="n">{lang["rows"]:,}</td><td class="n">{lang["kept"]:,}</td>'
            f'<td>{", ".join(f"{_e(r)} {n:,}" for r, n in lang["rejected"].items())}</td></tr>' for lang in languages]
    return ['<section id="languages"><h2>Languages</h2><p class="muted">The filter\'s <code>lang</code> of every row '
            'it identified, and what became of those rows.</p><div class="table-wrap"><table><thead><tr><th>lang</th>'
            '<th>rows</th><th>kept</th><th>rejected</th></tr></thead><tbody>', *rows, '</tbody></table></div></section>']


def _distributions(columns: dict) -> list[str]:
    if not columns:
        return []
    charts = []
    for name, column in columns.items():
        if not column.get("histogram"):
            continue
        s, kept = column["all"], column["kept"]
        summary = " · ".join(f"{k} {_number(s[k])}" for k in ("min", "p5", "median", "mean", "p95", "max"))
        note = f"{_rows(s['count'])} ({_e(column['stage'])}); {summary}"
        if kept.get("count"):
            note += f"; kept: median {_number(kept['median'])}, {_rows(kept['count'])}"
        if column["histogram"].get("log"):
            note += "; log axis"
        if column.get("rejected_range"):
            low, high = column["rejected_range"]
            note += f"; rejected by {', '.join(map(_e, column['decides']))}: {_number(low)}–{_number(high)}"
        charts.append(f'<div class="chart"><h3>{_e(column["label"])} <small>{_e(name)}</small></h3>'
                      f'{svg.histogram(column, column["label"])}<p>{note}</p></div>')
    legend = (f'<div class="legend"><span><span class="swatch" style="background:{svg.KEPT}"></span>kept</span>'
              f'<span><span class="swatch" style="background:{svg.HERE}"></span>rejected by this column\'s rule</span>'
              f'<span><span class="swatch" style="background:{svg.ELSEWHERE}"></span>rejected for another reason</span>'
              '<span>dashed: the recipe\'s threshold</span></div>')
    return ['<section id="distributions"><h2>Distributions</h2>', legend,
            '<p class="muted">Every row for which the stage wrote the value; the axis runs from the 0.5th to the 99.5th '
            'percentile (its end bins hold the rest). Quantiles are exact to the column\'s grid.</p>',
            f'<div class="charts">{"".join(charts)}</div></section>']


def _duplicates(groups: dict | None) -> list[str]:
    if not groups or not groups.get("groups"):
        return []
    hist, size = groups["histogram"], groups["size"]
    sampled = (f" A {groups['sampled_fraction']:.2%} hash sample of the groups." if groups["sampled_fraction"] < 1 else "")
    return ['<section id="duplicates"><h2>Duplicate groups</h2>',
            f'<p class="muted">{groups["groups"]:,} groups of a kept row and its duplicates (dup_url, dup_image, '
            f'near_dup_image); rows per group: median {size["median"]}, p99 {size["p99"]}, max {size["max"]}.{sampled}</p>',
            svg.bars(hist["sizes"], hist["groups"], "groups by size"), '</section>']


def _words(words: dict | None) -> list[str]:
    if not words:
        return []
    if words.get("error"):
        return [f'<section id="words"><h2>Top words</h2><p>{_e(words["error"])}</p></section>']
    chips = "".join(f'<span class="word">{_e(w)} <small>{n:,}</small></span>' for w, n in words["words"])
    return ['<section id="words"><h2>Top words of kept captions</h2>',
            f'<p class="muted">From {words["captions_read"]:,} of {words["kept_rows"]:,} kept captions (a hash sample); '
            'words of two or more characters, stop words left out.</p>', f'<div class="words">{chips}</div></section>']


def _samples(samples: dict, funnel: list[dict], thumbs: dict[str, Thumbnail], input_rows: int) -> list[str]:
    counts = {(f["stage"], r): n for f in funnel for r, n in f.get("rejected", {}).items()}
    kept = "".join(card(r, thumbs, evidence_text(r, ["filip_score"]), kept=True) for r in samples["kept"])
    out = ['<section id="kept"><h2>Kept samples</h2><p class="muted">Rows kept by every finished stage, chosen by a '
           f'seeded hash of their key (the same rows every run).</p><div class="grid">{kept}</div></section>',
           '<section id="rejected"><h2>Rejected samples, per reason</h2>']
    for group in samples["rejected"]:
        n = counts.get((group["stage"], group["reason"]), 0)
        missing = MISSING.get(group["reason"], "no image") if group["stage"] == "crawl" else "no image"
        cards = "".join(card(r, thumbs, evidence_text(r, group["evidence"]), missing) for r in group["rows"])
        out.append(f'<div id="{_anchor(group["stage"], group["reason"])}"><h3>{_e(group["reason"])} '
                   f'<small>{_e(group["stage"])} · {_rows(n)} ({_percent(n, input_rows)} of input)</small></h3>'
                   f'<p class="muted">{_e(group["description"])}</p><div class="grid">{cards}</div></div>')
    out.append('</section>')
    return out


def report_page(report: dict, thumbs: dict[str, Thumbnail]) -> str:
    totals = report.get("totals")
    body = [f'<h1>{_e(report["recipe"])} <small class="muted">build report</small></h1>',
            f'<p class="muted">{_e(report["build"])}</p>']
    if totals and totals["kept_rows"] is not None:
        body.append(f'<p class="totals"><b>{totals["input_rows"]:,}</b> input rows → <b>{totals["kept_rows"]:,}</b> kept '
                    f'({totals["kept_fraction"]:.1%})'
                    + (f'; {totals["final_rows"]:,} in {totals["final_shards"]} final shards' if totals["final_rows"] is not None else "")
                    + '</p>')
    sections = [("funnel", "Funnel"), ("languages", "Languages"), ("distributions", "Distributions"),
                ("duplicates", "Duplicates"), ("words", "Top words"), ("kept", "Kept samples"), ("rejected", "Rejected samples")]
    body.append("<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in sections) + "</nav>")
    if totals:
        body += _funnel(report)
    body += _languages(report.get("languages", []))
    body += _distributions(report.get("columns", {}))
    body += _duplicates(report.get("duplicate_groups"))
    body += _words(report.get("top_words"))
    if report.get("samples"):
        body += _samples(report["samples"], report["funnel"], thumbs, totals["input_rows"])
    return page(f"{report['recipe']} — wukong build report", body)


def image_column(build: BuildDir) -> str:
    return build.read_manifest()["recipe"]["crawl"]["encode_format"]


def write_report(report: dict, path: Path, shown: dict) -> None:
    """The report (stats.collect) as one HTML file, with thumbnails of its samples; the page
    shows `shown` (the report, or its shareable form)."""
    build = BuildDir(report["build"])
    thumbs = thumbnails(build, sample_keys(report["samples"]), image_column(build)) if report.get("samples") else {}
    write(report_page(shown, thumbs), path)


def _setting(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _delta(n: int) -> str:
    return f"{n:+,}" if n else ""


def _compare_funnel(report: dict) -> list[str]:
    rows = []
    for f in report["funnel"]:
        if "kept" not in f:
            rows.append(f'<tr class="stage"><td>{_e(f["stage"])}</td><td>status</td><td class="n">{_e(f["status"][0])}'
                        f'</td><td class="n">{_e(f["status"][1])}</td><td></td></tr>')
            continue
        rows.append(f'<tr class="stage"><td>{_e(f["stage"])}</td><td>rows in</td><td class="n">{f["rows_in"][0]:,}</td>'
                    f'<td class="n">{f["rows_in"][1]:,}</td><td class="n">{_delta(f["rows_in"][1] - f["rows_in"][0])}</td></tr>')
        for r in f["rejected"]:
            rows.append(f'<tr><td></td><td>{_e(r["reason"])}</td><td class="n">{r["a"]:,}</td><td class="n">{r["b"]:,}</td>'
                        f'<td class="n">{_delta(r["delta"])}</td></tr>')
        rows.append(f'<tr><td></td><td>kept</td><td class="n">{f["kept"][0]:,}</td><td class="n">{f["kept"][1]:,}</td>'
                    f'<td class="n">{_delta(f["kept_delta"])}</td></tr>')
    return ['<section id="funnel"><h2>Funnel</h2><div class="table-wrap"><table><thead><tr><th>stage</th><th></th>'
            '<th>A</th><th>B</th><th>B − A</th></tr></thead><tbody>', *rows, '</tbody></table></div></section>']


def comparison_page(report: dict, thumbs: dict[str, Thumbnail]) -> str:
    from .compare import evidence_pair

    a, b, kept = report["a"], report["b"], report["kept"]
    body = ['<h1>Two builds compared</h1>',
            f'<p><b>A</b> {_e(a["recipe"])} <span class="muted">{_e(a["build"])}</span><br>'
            f'<b>B</b> {_e(b["recipe"])} <span class="muted">{_e(b["build"])}</span></p>',
            f'<p class="totals">kept by both <b>{kept["both"]:,}</b> · by A only <b>{kept["only_a"]:,}</b> · '
            f'by B only <b>{kept["only_b"]:,}</b></p>']
    if report["recipe_differences"]:
        body.append('<section id="recipes"><h2>Recipe settings that differ</h2><div class="table-wrap"><table><thead>'
                    '<tr><th>setting</th><th>A</th><th>B</th></tr></thead><tbody>'
                    + "".join(f'<tr><td>{_e(d["key"])}</td><td>{_e(_setting(d["a"]))}</td><td>{_e(_setting(d["b"]))}</td></tr>'
                              for d in report["recipe_differences"]) + '</tbody></table></div></section>')
    body += _compare_funnel(report)
    if report["changes"]:
        body.append('<section id="changes"><h2>Rows whose fate differs</h2><div class="table-wrap"><table><thead>'
                    '<tr><th>in A</th><th>in B</th><th>rows</th></tr></thead><tbody>'
                    + "".join(f'<tr><td>{_e(c["a"])}</td><td>{_e(c["b"])}</td><td class="n">{c["rows"]:,}</td></tr>'
                              for c in report["changes"]) + '</tbody></table></div></section>')
    for side, title, other in (("only_a", "Kept by A only", "B"), ("only_b", "Kept by B only", "A")):
        rows = report["samples"][side]
        cards = "".join(card({"key": r["key"], "caption": r["caption"], "values": r["values_a"] if side == "only_a"
                              else r["values_b"]}, thumbs,
                             f'{other}: {_e(r["fate_b"] if side == "only_a" else r["fate_a"])}<br>'
                             f'<span class="muted">{_e(evidence_pair(r))}</span>', kept=False) for r in rows)
        body.append(f'<section id="{side}"><h2>{title}</h2><p class="muted">Rows kept by one build and not the other, '
                    f'chosen by a seeded hash of their key; under each, its fate in {other} and its deciding values '
                    f'in A / B.</p><div class="grid">{cards}</div></section>')
    return page("Two wukong builds compared", body)


def write_comparison(report: dict, path: Path, shown: dict) -> None:
    """The comparison (compare.collect_comparison) as one HTML file, with thumbnails of its
    samples; the page shows `shown` (the comparison, or its shareable form)."""
    build = BuildDir(report["a"]["build"])
    keys = [r["key"] for side in ("only_a", "only_b") for r in report["samples"][side]]
    write(comparison_page(shown, thumbnails(build, keys, image_column(build))), path)
