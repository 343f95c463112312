"""Inline SVG charts for the HTML report: no script, no font file, sized by their viewBox so that
they scale to any screen (text stays legible on a phone: the drawings are 480 units wide)."""
from __future__ import annotations

from html import escape

WIDTH = 480
KEPT, HERE, ELSEWHERE = "#2e8b57", "#d0453a", "#b9bec5"
REASON_COLOURS = ("#d0453a", "#e8833a", "#c9a227", "#8e5bb5", "#3a78c9", "#c2477f", "#6b8e23", "#8b5a2b", "#4aa3a3",
                  "#a0522d")


def compact(value: float) -> str:
    """1234 -> 1.2k, 0.4567 -> 0.457: axis labels that fit."""
    if value is None:
        return ""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def _svg(height: int, title: str, body: list[str]) -> str:
    return (f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def reason_colour(index: int) -> str:
    return REASON_COLOURS[index % len(REASON_COLOURS)]


def funnel(stages: list[dict], input_rows: int) -> str:
    """One bar per stage, as long as the rows that entered it: kept in green, then each reason's
    rejected rows in its colour (the order of the funnel table)."""
    left, right, row = 72, WIDTH - 8, 40
    scale = (right - left) / max(1, input_rows)
    body, y = [], 8
    for stage in stages:
        if "rows_in" not in stage:
            continue
        body.append(f'<text x="0" y="{y + 17}" class="label">{escape(stage["stage"])}</text>')
        x = left
        width = stage["kept"] * scale
        body.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="24" fill="{KEPT}">'
                    f'<title>kept {stage["kept"]:,}</title></rect>')
        x += width
        for i, (reason, n) in enumerate(stage["rejected"].items()):
            width = max(n * scale, 1.5)
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="24" fill="{reason_colour(i)}">'
                        f'<title>{escape(reason)} {n:,}</title></rect>')
            x += width
        share = stage["kept"] / input_rows if input_rows else 0
        body.append(f'<text x="{left + 4}" y="{y + 17}" class="on-bar">{stage["kept"]:,} kept ({share:.1%})</text>')
        y += row
    return _svg(y, "rows kept and rejected per stage", body)


def histogram(column: dict, title: str) -> str:
    """Stacked bars per bin (kept, rejected by this column's rule, rejected otherwise), the
    recipe's thresholds as dashed lines. A bin with any rows is at least two units tall, so a
    handful of rejected rows beside a million kept ones still shows."""
    hist = column["histogram"]
    edges = hist["edges"]
    stacks = list(zip(hist["kept"], hist["rejected_here"], hist["rejected_elsewhere"]))
    left, right, top, bottom, height = 40, WIDTH - 14, 26, 168, 190
    bins = len(stacks)
    step = (right - left) / bins
    peak = max((sum(s) for s in stacks), default=0) or 1
    body = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>']
    for fraction in (0.5, 1.0):
        y = bottom - fraction * (bottom - top)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{left - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{compact(peak * fraction)}</text>')
    for i, stack in enumerate(stacks):
        y = bottom
        for n, colour in zip(stack, (KEPT, HERE, ELSEWHERE)):
            if not n:
                continue
            h = max(n / peak * (bottom - top), 2)
            y -= h
            label = f"{compact(edges[i] + 0.5)}" if hist.get("unit_bins") else f"{compact(edges[i])}–{compact(edges[i + 1])}"
            body.append(f'<rect x="{left + i * step + 0.5:.1f}" y="{y:.1f}" width="{max(step - 1, 0.8):.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>{label}: {n:,}</title></rect>')
    body += _x_ticks(hist, left, step, bottom)
    for name, value in column["thresholds"].items():
        # On whole-number bins a minimum cuts below its value, a maximum above it.
        boundary = value + (0.5 if name.startswith("max") else -0.5) if hist.get("unit_bins") else value
        x = _position(boundary, edges, left, step)
        if x is None:
            continue
        anchor = "end" if x > WIDTH * 0.6 else "start"
        body.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{bottom}" class="threshold"/>'
                    f'<text x="{x + (-3 if anchor == "end" else 3):.1f}" y="{top - 10}" class="threshold-label" '
                    f'text-anchor="{anchor}">{escape(name)} {compact(value)}</text>')
    return _svg(height, title, body)


def _x_ticks(hist: dict, left: float, step: float, bottom: float) -> list[str]:
    """Bin centres for whole-number bins, else edges; the end labels say when the end bins also
    hold the values beyond the axis (≤, ≥)."""
    edges = hist["edges"]
    if hist.get("unit_bins"):
        points = [(i + 0.5, edges[i] + 0.5) for i in range(len(edges) - 1)]
    else:
        points = list(enumerate(edges))
    out = []
    chosen = _tick_indices(len(points))
    for j in chosen:
        position, value = points[j]
        label = compact(value)
        anchor = "middle"
        if j == chosen[0]:
            label, anchor = ("≤" if hist.get("below") else "") + label, "start" if position == 0 else "middle"
        elif j == chosen[-1]:
            label, anchor = ("≥" if hist.get("above") else "") + label, "end" if position == len(edges) - 1 else "middle"
        out.append(f'<text x="{left + position * step:.1f}" y="{bottom + 16}" class="tick" '
                   f'text-anchor="{anchor}">{escape(label)}</text>')
    return out


def bars(labels: list, counts: list[int], title: str) -> str:
    """A plain bar chart (one bar per label), for small discrete distributions."""
    left, right, top, bottom = 40, WIDTH - 8, 10, 150
    step = min((right - left) / max(1, len(counts)), 48)
    peak = max(counts, default=0) or 1
    body = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>',
            f'<text x="{left - 4}" y="{top + 4}" class="tick" text-anchor="end">{compact(peak)}</text>']
    for i, (label, n) in enumerate(zip(labels, counts)):
        h = n / peak * (bottom - top)
        body.append(f'<rect x="{left + i * step + 1:.1f}" y="{bottom - h:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="{KEPT}"><title>{escape(str(label))}: {n:,}</title></rect>')
    for i in _tick_indices(len(labels)):
        body.append(f'<text x="{left + (i + 0.5) * step:.1f}" y="{bottom + 16}" class="tick" '
                    f'text-anchor="middle">{escape(str(labels[i]))}</text>')
    return _svg(bottom + 24, title, body)


def _tick_indices(n: int, most: int = 6) -> list[int]:
    """Evenly spaced indices into n points, the first always, the last when it is not crowded."""
    step = max(1, -(-n // most))
    chosen = list(range(0, n, step))
    if chosen[-1] != n - 1:
        if n - 1 - chosen[-1] >= step * 0.75:
            chosen.append(n - 1)
        elif len(chosen) > 1:
            chosen[-1] = n - 1
    return chosen


def _position(value: float, edges: list[float], left: float, step: float) -> float | None:
    """x of `value` on an axis whose bins are equally wide (linear or log edges alike)."""
    if not edges[0] <= value <= edges[-1]:
        return None
    for i in range(len(edges) - 1):
        if value <= edges[i + 1]:
            span = edges[i + 1] - edges[i]
            return left + (i + ((value - edges[i]) / span if span else 0)) * step
    return None
