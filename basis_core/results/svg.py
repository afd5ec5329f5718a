"""Plots as inline SVG strings: no JavaScript, no stylesheets, no fonts or images to fetch.

Each function returns one `<svg>` element sized by its viewBox so that a browser scales it to
the page. Input with nothing to draw gives a chart frame that says so, never an invented line.
Every label passes through html.escape.
"""

from __future__ import annotations

import math
from html import escape

W, H = 760, 260
ML, MR, MT, MB = 70, 20, 30, 40  # margins: left, right, top, bottom
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
STATE_COLORS = {
    "NORMAL": "#2ca02c",
    "DEGRADED": "#bcbd22",
    "PROTECTIVE": "#ff7f0e",
    "UNWINDING": "#d62728",
    "RECONCILING": "#9467bd",
    "HALTED": "#000000",
    "UP": "#2ca02c",
    "THROTTLED": "#bcbd22",
    "SUSPECT": "#ff7f0e",
    "QUARANTINED": "#9467bd",
    "DOWN": "#d62728",
}


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            out.append(round(v, 12))
        v += step
    return out


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e6 or (0 < a < 1e-3):
        return f"{v:.3g}"
    if a >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.3g}"


def _open(title: str, kind: str) -> list[str]:
    return [
        f'<svg class="plot {kind}" viewBox="0 0 {W} {H}" '
        f'width="100%" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14" '
        f'font-family="sans-serif">{escape(title)}</text>',
    ]


def _empty(title: str, kind: str, why: str) -> str:
    parts = _open(title, kind)
    parts.append(
        f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" fill="none" stroke="#999"/>'
    )
    parts.append(
        f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="13" fill="#666" '
        f'font-family="sans-serif">{escape(why)}</text></svg>'
    )
    return "\n".join(parts)


def _axes(parts: list[str], x0, x1, y0, y1, x_label: str, y_label: str, xt=None) -> tuple:
    pw, ph = W - ML - MR, H - MT - MB
    sx = lambda x: ML + (x - x0) / (x1 - x0) * pw
    sy = lambda y: MT + ph - (y - y0) / (y1 - y0) * ph
    parts.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in nice_ticks(y0, y1):
        y = sy(t)
        parts.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{ML - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" '
            f'font-family="sans-serif">{fmt(t)}</text>'
        )
    for t in xt if xt is not None else nice_ticks(x0, x1, 8):
        x = sx(t)
        parts.append(
            f'<text x="{x:.1f}" y="{MT + ph + 14}" text-anchor="middle" font-size="10" '
            f'font-family="sans-serif">{fmt(t)}</text>'
        )
    parts.append(
        f'<text x="{ML + pw / 2}" y="{H - 6}" text-anchor="middle" font-size="11" '
        f'font-family="sans-serif">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{MT + ph / 2}" text-anchor="middle" font-size="11" font-family="sans-serif" '
        f'transform="rotate(-90 14 {MT + ph / 2})">{escape(y_label)}</text>'
    )
    return sx, sy


def _range(values, pad_zero: bool = True) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if pad_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        hi, lo = hi + 1.0, lo - (1.0 if lo else 0.0)
    pad = (hi - lo) * 0.05
    return lo - (pad if lo < 0 else 0.0), hi + pad


def line_chart(
    title: str,
    series: list[tuple[str, list[float], list[float]]],
    x_label: str,
    y_label: str,
    *,
    step: bool = True,
) -> str:
    """One polyline per (label, xs, ys); `step` draws values as held until the next point."""
    series = [(lab, list(xs), list(ys)) for lab, xs, ys in series if len(xs)]
    if not series:
        return _empty(title, "line", "no samples recorded")
    xs_all = [x for _, xs, _ in series for x in xs]
    ys_all = [y for _, _, ys in series for y in ys]
    x0, x1 = min(xs_all), max(xs_all)
    if x1 == x0:
        x1 = x0 + 1.0
    y0, y1 = _range(ys_all)
    parts = _open(title, "line")
    sx, sy = _axes(parts, x0, x1, y0, y1, x_label, y_label)
    for i, (label, xs, ys) in enumerate(series):
        pts = []
        for j, (x, y) in enumerate(zip(xs, ys)):
            if step and j:
                pts.append(f"{sx(x):.1f},{sy(ys[j - 1]):.1f}")
            pts.append(f"{sx(x):.1f},{sy(y):.1f}")
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(pts)}"/>')
        parts.append(
            f'<text x="{ML + 8}" y="{MT + 14 + 13 * i}" font-size="11" fill="{color}" '
            f'font-family="sans-serif">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def timeline(title: str, lanes: list[tuple[str, list[tuple[float, float, str]]]], x_label: str) -> str:
    """One lane per machine: coloured segments (t0, t1, state) with a legend of the states."""
    lanes = [(name, segs) for name, segs in lanes if segs]
    if not lanes:
        return _empty(title, "timeline", "no state transitions recorded")
    t0 = min(s[0] for _, segs in lanes for s in segs)
    t1 = max(s[1] for _, segs in lanes for s in segs)
    if t1 <= t0:
        t1 = t0 + 1.0
    pw, ph = W - ML - MR, H - MT - MB - 20
    lane_h = ph / len(lanes)
    parts = _open(title, "timeline")
    sx = lambda x: ML + (x - t0) / (t1 - t0) * pw
    states: dict[str, str] = {}
    for i, (name, segs) in enumerate(lanes):
        y = MT + i * lane_h
        parts.append(
            f'<text x="{ML - 4}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end" font-size="10" '
            f'font-family="sans-serif">{escape(name[:12])}</text>'
        )
        for a, b, state in segs:
            color = states.setdefault(state, STATE_COLORS.get(state, PALETTE[len(states) % len(PALETTE)]))
            parts.append(
                f'<rect x="{sx(a):.1f}" y="{y + 2:.1f}" width="{max(sx(b) - sx(a), 1.0):.1f}" '
                f'height="{max(lane_h - 4, 2):.1f}" fill="{color}"><title>{escape(name)}: {escape(state)} '
                f"{fmt(a)}..{fmt(b)}</title></rect>"
            )
    for t in nice_ticks(t0, t1, 8):
        parts.append(
            f'<text x="{sx(t):.1f}" y="{MT + ph + 12}" text-anchor="middle" font-size="10" '
            f'font-family="sans-serif">{fmt(t)}</text>'
        )
    x = ML
    for state, color in states.items():
        parts.append(f'<rect x="{x}" y="{H - 22}" width="10" height="10" fill="{color}"/>')
        parts.append(
            f'<text x="{x + 13}" y="{H - 13}" font-size="10" font-family="sans-serif">{escape(state)}</text>'
        )
        x += 20 + 7 * len(state)
    parts.append(
        f'<text x="{W - MR}" y="{H - 13}" text-anchor="end" font-size="11" '
        f'font-family="sans-serif">{escape(x_label)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def histogram(title: str, edges: list[float], counts: list[int], x_label: str) -> str:
    """Bars of equal width, one per bin, labelled with the bins' lower edges."""
    if not counts or sum(counts) == 0:
        return _empty(title, "histogram", "no samples recorded")
    n = len(counts)
    parts = _open(title, "histogram")
    _, sy = _axes(parts, 0, n, 0, max(counts) * 1.05, x_label, "count", xt=[])
    pw = W - ML - MR
    bw = pw / n
    label_every = max(1, n // 10)
    for i, c in enumerate(counts):
        x = ML + i * bw
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{sy(c):.1f}" width="{max(bw - 2, 1):.1f}" height="{sy(0) - sy(c):.1f}" '
            f'fill="{PALETTE[0]}"><title>[{fmt(edges[i])}, {fmt(edges[i + 1])}): {c}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{H - MB + 14}" font-size="10" font-family="sans-serif">'
                f"{fmt(edges[i])}</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    title: str,
    labels: list[str],
    values: list[float],
    y_label: str,
    *,
    y_max: float | None = None,
    threshold: float | None = None,
) -> str:
    """One bar per label; bars under `threshold` are drawn in red, with the threshold as a line."""
    if not values:
        return _empty(title, "bars", "nothing recorded")
    top = y_max if y_max is not None else max(max(values), 0.0) * 1.05 or 1.0
    n = len(values)
    parts = _open(title, "bars")
    _, sy = _axes(parts, 0, n, min(0.0, min(values)), top, "", y_label, xt=[])
    bw = (W - ML - MR) / n
    label_every = max(1, n // 15)
    for i, (lab, v) in enumerate(zip(labels, values)):
        x = ML + i * bw
        color = PALETTE[1] if threshold is not None and v < threshold else PALETTE[2]
        y, y0 = sy(max(v, 0.0)), sy(min(v, 0.0))
        parts.append(
            f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(bw - 1, 0.5):.1f}" '
            f'height="{max(y0 - y, 0.5):.1f}" '
            f'fill="{color}"><title>{escape(lab)}: {fmt(v)}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{H - MB + 14}" text-anchor="middle" font-size="9" '
                f'font-family="sans-serif">{escape(lab)}</text>'
            )
    if threshold is not None:
        parts.append(
            f'<line x1="{ML}" y1="{sy(threshold):.1f}" x2="{W - MR}" y2="{sy(threshold):.1f}" '
            f'stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
