"""A run's summary and its RUN_DIR/report.html (`basis report RUN_DIR`, and every run's end).

Reads RUN_DIR/report.json (required, validated) and RUN_DIR/results.sqlite (optional: without
it the per-opportunity and time-series plots say that nothing was recorded). The HTML file is
self-contained: inline SVG plots and an inline style block, no script, no external resource,
so it opens from disk in any browser without a network.

Plots: cumulative PnL (realized, fees, net), residual exposure over time, state timeline per
machine, decision latency histogram, fill symmetry per opportunity.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..errors import ResultsError
from . import svg
from .db import ResultsDB
from .record import HIST_LATENCY, SERIES_FEES, SERIES_NET, SERIES_REALIZED, SERIES_RESIDUAL
from .reportjson import read_report

REPORT_JSON = "report.json"
RESULTS_DB = "results.sqlite"
REPORT_HTML = "report.html"
MAX_LANES = 8
MAX_ROWS = 200
MAX_POINTS = 2000  # per plotted series

_HEADLINE = (
    ("events_processed", "events processed"),
    ("events_per_s", "events / s"),
    ("signals_seen", "signals seen"),
    ("orders_submitted", "orders submitted"),
    ("orders_filled", "orders filled"),
    ("hedges_completed", "hedges completed"),
    ("asymmetric_episodes", "asymmetric episodes"),
    ("unwinds", "unwinds"),
    ("max_residual_exposure_usdt", "max residual exposure (USDT)"),
    ("realized_pnl_usdt", "realized PnL (USDT)"),
    ("fees_usdt", "fees (USDT)"),
    ("slippage_usdt", "slippage (USDT)"),
)


def _n(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1e4 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


class RunData:
    """Everything the report shows, loaded from one run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise ResultsError(f"run directory not found: {self.run_dir}")
        self.report = read_report(self.run_dir / REPORT_JSON)
        self.run: dict | None = None
        self.opportunities: list[dict] = []
        self.transitions: list[dict] = []
        self.exceptions: list[dict] = []
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.latency: tuple[list[float], list[int]] = ([], [])
        self.shortfall: list[dict] = []
        db_path = self.run_dir / RESULTS_DB
        if db_path.is_file():
            with ResultsDB(db_path, readonly=True) as db:
                runs = db.runs()
                wanted = self.report.get("run_id")
                pick = [r for r in runs if r["run_id"] == wanted] if wanted else runs[-1:]
                if pick:
                    self.run = pick[0]
                    rid = self.run["run_id"]
                    self.opportunities = db.opportunities(rid)
                    self.transitions = db.transitions(rid)
                    self.exceptions = db.exceptions(rid)
                    for name in (SERIES_REALIZED, SERIES_FEES, SERIES_NET, SERIES_RESIDUAL):
                        self.series[name] = db.series(rid, name)
                    self.latency = db.histogram(rid, HIST_LATENCY)
                    self.shortfall = db.shortfall(rid)
        if not self.transitions:
            self.transitions = [
                {
                    "t_ns": tr["t"],
                    "machine": tr["machine"],
                    "key": "",
                    "from_state": tr["from"],
                    "to_state": tr["to"],
                    "cause": tr["cause"],
                }
                for tr in self.report["state_transitions"]
            ]

    def t0(self) -> float:
        """The run's time origin (ns): its start, else the earliest recorded time."""
        if self.run:
            return float(self.run["started_ns"])
        times = [tr["t_ns"] for tr in self.transitions] + [t for s in self.series.values() for t, _ in s]
        return float(min(times)) if times else 0.0

    def t_end(self) -> float:
        if self.run and self.run.get("ended_ns"):
            return float(self.run["ended_ns"])
        times = [tr["t_ns"] for tr in self.transitions] + [t for s in self.series.values() for t, _ in s]
        return float(max(times)) if times else self.t0()


def thin(points: list[tuple[int, float]], buckets: int = MAX_POINTS // 4) -> list[tuple[int, float]]:
    """At most ~4 points per time bucket (first, min, max, last), so a long series plots as the
    same envelope in a small file: spikes are kept, the number of SVG vertices is bounded."""
    if len(points) <= MAX_POINTS:
        return points
    t_lo, t_hi = points[0][0], points[-1][0]
    width = max((t_hi - t_lo) / buckets, 1)
    out: list[tuple[int, float]] = []
    group: list[tuple[int, float]] = []  # the points of the current bucket
    edge = t_lo + width

    def close_bucket() -> None:
        if group:
            keep = {
                0,
                len(group) - 1,
                min(range(len(group)), key=lambda i: group[i][1]),
                max(range(len(group)), key=lambda i: group[i][1]),
            }
            out.extend(group[i] for i in sorted(keep))
        group.clear()

    for pt in points:
        if pt[0] >= edge:
            close_bucket()
            edge = t_lo + ((pt[0] - t_lo) // width + 1) * width
        group.append(pt)
    close_bucket()
    return out


def plots(data: RunData) -> dict[str, str]:
    """The five plots as SVG strings, by name."""
    t0 = data.t0()

    def sec(pts):
        pts = thin(pts)
        return [(t - t0) / 1e9 for t, _ in pts], [v for _, v in pts]

    out = {}
    out["cumulative_pnl"] = svg.line_chart(
        "Cumulative PnL (USDT)",
        [
            (label, *sec(data.series.get(name, [])))
            for label, name in (("net", SERIES_NET), ("realized", SERIES_REALIZED), ("fees", SERIES_FEES))
        ],
        "time since start (s)",
        "USDT",
    )
    out["residual_exposure"] = svg.line_chart(
        "Residual unhedged exposure (USDT)",
        [("residual", *sec(data.series.get(SERIES_RESIDUAL, [])))],
        "time since start (s)",
        "USDT",
    )
    out["state_timeline"] = svg.timeline("State timeline", _lanes(data, t0), "time since start (s)")
    edges, counts = data.latency
    out["decision_latency"] = svg.histogram("Decision latency (ns, log bins)", edges, counts, "ns")
    opps = data.opportunities[-MAX_ROWS:]
    out["fill_symmetry"] = svg.bar_chart(
        "Fill symmetry per opportunity (min/max of legs' filled qty)",
        [str(o["opportunity_id"]) for o in opps],
        [o["symmetry"] for o in opps],
        "symmetry",
        y_max=1.05,
        threshold=0.95 if opps else None,
    )
    return out


def _lanes(data: RunData, t0: float) -> list[tuple[str, list[tuple[float, float, str]]]]:
    end = (data.t_end() - t0) / 1e9
    by_lane: dict[str, list[dict]] = {}
    for tr in data.transitions:
        name = tr["machine"] + (f":{tr['key']}" if tr.get("key") else "")
        by_lane.setdefault(name, []).append(tr)
    order = sorted(by_lane, key=lambda n: (not n.startswith("engine"), not n.startswith("venue"), n))
    lanes = []
    for name in order[:MAX_LANES]:
        trs = sorted(by_lane[name], key=lambda tr: tr["t_ns"])
        segs, start = [], 0.0
        for tr in trs:
            t = (tr["t_ns"] - t0) / 1e9
            segs.append((start, t, tr["from_state"]))
            start = t
        segs.append((start, max(end, start), trs[-1]["to_state"]))
        lanes.append((name, segs))
    return lanes


def summary(data: RunData) -> str:
    """The plain-text summary `basis report` prints."""
    r = data.report
    lat = r["decision_latency_ns"]
    lines = [f"run {data.run['run_id'] if data.run else data.run_dir.name}  ({data.run_dir})"]
    for key, label in _HEADLINE:
        lines.append(f"  {label:<32} {_n(r[key]):>18}")
    lines.append(
        f"  {'decision latency p50/p99/p99.9':<32} "
        f"{lat['p50']:>8.0f} / {lat['p99']:.0f} / {lat['p999']:.0f} ns"
    )
    rej = ", ".join(f"{k}={v}" for k, v in sorted(r["signals_rejected"].items())) or "none"
    lines.append(f"  {'signals rejected':<32} {rej}")
    rec = ", ".join(f"{k}={v}" for k, v in sorted(r["reconciliation"].items())) or "none"
    lines.append(f"  {'reconciliation mismatches':<32} {rec}")
    n_transitions = r.get("state_transitions_total", len(r["state_transitions"]))  # the list: the newest
    lines.append(f"  {'state transitions':<32} {n_transitions:>18}")
    sf = r.get("implementation_shortfall")
    if sf:
        lines.append(
            f"  {'implementation shortfall':<32} {_n(sf['shortfall_usdt']):>18} USDT "
            f"({sf['shortfall_bps']:.2f} bps over {sf['opportunities']} opportunities)"
        )
    if data.opportunities:
        n = len(data.opportunities)
        full = sum(1 for o in data.opportunities if o["symmetry"] >= 0.999)
        lines.append(f"  {'opportunities (fully hedged)':<32} {n:>10} ({full})")
    return "\n".join(lines)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_n(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font-family:sans-serif;margin:24px;max-width:1000px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.plot{display:block;margin:8px 0;border:1px solid #eee}"""


def render_html(data: RunData) -> str:
    r = data.report
    title = f"basis run {data.run['run_id'] if data.run else data.run_dir.name}"
    p = plots(data)
    lat = r["decision_latency_ns"]
    head_rows = [[label, r[key]] for key, label in _HEADLINE]
    head_rows.append(
        [
            "decision latency p50 / p99 / p99.9 (ns)",
            f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['p999']:.0f}",
        ]
    )
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>",
        _table(["figure", "value"], head_rows),
        "<h2>Cumulative PnL</h2>",
        p["cumulative_pnl"],
        "<h2>Residual exposure</h2>",
        p["residual_exposure"],
        "<h2>State timeline</h2>",
        p["state_timeline"],
        "<h2>Decision latency</h2>",
        p["decision_latency"],
        "<h2>Fill symmetry</h2>",
        p["fill_symmetry"],
        "<h2>Signals rejected</h2>",
        _table(["reason", "count"], sorted([k, v] for k, v in r["signals_rejected"].items())),
        "<h2>Reconciliation</h2>",
        _table(["layer", "mismatches"], sorted([k, v] for k, v in r["reconciliation"].items())),
    ]
    if data.exceptions:
        parts.append(
            _table(
                ["t (ns)", "layer", "key", "ours", "venue", "cause", "resolved"],
                [
                    [
                        e["t_ns"],
                        e["layer"],
                        e["key"],
                        str(e["ours"]),
                        str(e["theirs"]),
                        e["cause"],
                        e["resolved_ns"] or "",
                    ]
                    for e in data.exceptions[:MAX_ROWS]
                ],
            )
        )
    parts.append("<h2>State transitions</h2>")
    parts.append(
        _table(
            ["t (ns)", "machine", "from", "to", "cause"],
            [
                [
                    tr["t_ns"],
                    tr["machine"] + (f":{tr['key']}" if tr.get("key") else ""),
                    tr["from_state"],
                    tr["to_state"],
                    tr["cause"],
                ]
                for tr in data.transitions[:MAX_ROWS]
            ],
        )
    )
    parts += _shortfall_html(data)
    if data.opportunities:
        parts.append("<h2>Opportunities</h2>")
        parts.append(
            _table(
                ["id", "strategy", "expected edge", "realized", "fees", "slippage", "symmetry", "outcome"],
                [
                    [
                        o["opportunity_id"],
                        o["strategy"],
                        o["expected_edge_usdt"],
                        o["realized_pnl_usdt"],
                        o["fees_usdt"],
                        o["slippage_usdt"],
                        o["symmetry"],
                        o["outcome"],
                    ]
                    for o in data.opportunities[:MAX_ROWS]
                ],
            )
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _shortfall_html(data: RunData) -> list[str]:
    """Implementation shortfall: the run's totals (report.json) and the costliest opportunities."""
    sf = data.report.get("implementation_shortfall")
    if not sf:
        return []
    parts = [
        "<h2>Implementation shortfall</h2>",
        "<p>Against the mids of both legs' books at decision: execution (fills against the mid), "
        "fees, and the unfilled quantity times the mids' move to the opportunity's end.</p>",
        _table(
            ["figure", "value"],
            [
                ["opportunities", sf["opportunities"]],
                ["shortfall (USDT)", sf["shortfall_usdt"]],
                ["shortfall (bps of paper notional)", sf["shortfall_bps"]],
                ["execution (USDT)", sf["execution_usdt"]],
                ["fees (USDT)", sf["fees_usdt"]],
                ["unfilled (USDT)", sf["unfilled_usdt"]],
                ["paper notional (USDT)", sf["paper_notional_usdt"]],
            ],
        ),
    ]
    rows = sorted(data.shortfall, key=lambda r: -r["shortfall_usdt"])[:20]
    if rows:
        parts.append(
            _table(
                [
                    "id",
                    "slices",
                    "qty",
                    "VWAP buy",
                    "VWAP sell",
                    "execution",
                    "fees",
                    "unfilled",
                    "USDT",
                    "bps",
                ],
                [
                    [
                        r["opportunity_id"],
                        r["slices"],
                        r["qty"],
                        r["vwap_buy"],
                        r["vwap_sell"],
                        r["execution_usdt"],
                        r["fees_usdt"],
                        r["unfilled_usdt"],
                        r["shortfall_usdt"],
                        r["shortfall_bps"],
                    ]
                    for r in rows
                ],
            )
        )
    return parts


def write_html(run: str | Path | RunData) -> Path:
    """Build RUN_DIR/report.html from the run's results (a run directory or its loaded
    RunData); returns its path."""
    data = run if isinstance(run, RunData) else RunData(run)
    out = data.run_dir / REPORT_HTML
    out.write_text(render_html(data), encoding="utf-8")
    return out
