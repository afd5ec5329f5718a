"""The pyperf benchmark suites of perf/ (`basis bench`): run one, keep its JSON, summarize it.

Each suite is one pyperf script (SUITES: name -> path from the repository root); adding a suite
is one line there. A run writes `<out>/<suite>-<UTC time>.json` (pyperf's own format, readable
by `python -m pyperf show / stats / compare_to`) and prints one table per suite:

    benchmark                      msgs/s      one-way p50   one-way p99   vs queue
    OneToOneThroughput batch=16    40.1 M/s    -             -             310x
    PingPongLatency                -           180 ns        420 ns        110x / 80x

Benchmark names follow `Topology[impl,params]` or `Topology[impl].pNN`. A `...Throughput`
benchmark's value is seconds per message (shown as msgs/s); a `...Latency[...].pNN` benchmark's
value is that percentile of one-way latency. "vs queue" divides the `queue` baseline of the
same topology and params by the benchmark (higher = faster than the baseline). Other names are
shown as their median time per loop; a `...Share[...]` benchmark's value is a fraction (shown
as a percentage). `--compare-to OLD.json` runs pyperf's compare_to between
OLD and the new file of each suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from .errors import BasisError

ROOT = Path(__file__).resolve().parents[1]

#: suite name -> pyperf script, relative to the repository root
SUITES: dict[str, str] = {
    "rings": "perf/bench_rings.py",
    "cring": "perf/c_ring/bench_c_ring.py",
    "e2e": "perf/bench_e2e.py",
    "router": "perf/bench_router.py",
    "kernels": "perf/bench_kernels.py",
    "journal": "perf/bench_journal.py",
    "peers": "perf/peers/bench_nautilus.py",
    "sim": "perf/bench_sim.py",
    "engine-step": "perf/bench_engine_step.py",
    "md-ws": "perf/bench_md_ws.py",
    "chain": "perf/bench_chain.py",
}

#: suites whose pinned processes can ask for SCHED_FIFO (`basis bench --realtime`)
REALTIME = {"e2e"}

#: exit status of a suite script that cannot run on this host (an optional peer not installed)
SKIPPED = 75
#: per topology, the implementation the "vs" column divides by (default BASELINE)
BASELINES = {"EngineStepThroughput": "python"}

BASELINE = "queue"
_NAME = re.compile(r"^(?P<topo>\w+)\[(?P<impl>[\w-]+)(?:,(?P<params>[^\]]*))?\](?:\.p(?P<pct>\d+))?$")


def _fmt_rate(per_s: float) -> str:
    for scale, unit in ((1e9, "G/s"), (1e6, "M/s"), (1e3, "K/s")):
        if per_s >= scale:
            return f"{per_s / scale:.2f} {unit}"
    return f"{per_s:.0f} /s"


def _fmt_time(s: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.1f} {unit}"
    return f"{s * 1e9:.0f} ns"


def _fmt_ratio(r: float | None) -> str:
    return "-" if r is None else (f"{r:.0f}x" if r >= 10 else f"{r:.2f}x")


def summarize(medians: dict[str, float]) -> list[tuple[str, str, str, str, str]]:
    """Rows (benchmark, msgs/s, p50, p99, vs baseline) from {benchmark name: median value}.
    Baseline benchmarks get their own rows (without a ratio)."""
    rows: dict[tuple[str, str, str], dict] = {}
    other: list[tuple[str, str, str, str, str]] = []
    for name, value in medians.items():
        m = _NAME.match(name)
        if not m:
            other.append((name, f"{_fmt_time(value)}/loop", "-", "-", "-"))
            continue
        if m["topo"].endswith("Share"):  # a fraction, not a time
            other.append((name, f"{value:.1%} of orders", "-", "-", "-"))
            continue
        key = (m["topo"], m["impl"], m["params"] or "")
        row = rows.setdefault(key, {})
        if m["topo"].endswith("Throughput"):
            row["time"] = value
        elif m["pct"]:
            row[f"p{m['pct']}"] = value
        else:
            row["time"] = value
    out = []
    for (topo, impl, params), row in rows.items():
        base_impl = BASELINES.get(topo, BASELINE)
        base = rows.get((topo, base_impl, params)) if impl != base_impl else None

        def ratio(field, base=base, row=row):
            if base is None or field not in row or field not in base or row[field] <= 0:
                return None
            return base[field] / row[field]

        label = f"{topo}[{impl}{',' + params if params else ''}]"
        rate = _fmt_rate(1.0 / row["time"]) if "time" in row and topo.endswith("Throughput") else "-"
        p50 = _fmt_time(row["p50"]) if "p50" in row else "-"
        p99 = _fmt_time(row["p99"]) if "p99" in row else "-"
        if "p999" in row:
            p99 += f" (p999 {_fmt_time(row['p999'])})"
        ratios = [r for r in (ratio("time"), ratio("p50"), ratio("p99")) if r is not None]
        vs = " / ".join(_fmt_ratio(r) for r in ratios) if ratios else "-"
        out.append((label, rate, p50, p99, vs))
    return out + other


def render(rows, baseline: str = BASELINE) -> str:
    head = ("benchmark", "msgs/s", "one-way p50", "one-way p99", f"vs {baseline} (x faster)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_medians(path: Path) -> dict[str, float]:
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(path))
    return {b.get_name(): b.median() for b in suite.get_benchmarks()}


def run_suite(suite: str, out_dir: Path, fast: bool, realtime: bool = False) -> Path | None:
    """Run one suite's pyperf script; returns the JSON file it wrote (None: the script exited
    with SKIPPED, having said why)."""
    script = ROOT / SUITES[suite]
    if not script.exists():
        raise BasisError(f"bench suite {suite!r}: {SUITES[suite]} is not in this checkout")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{suite}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    cmd = [sys.executable, str(script), "--quiet", "-o", str(out)] + (["--fast"] if fast else [])
    if realtime and suite in REALTIME:
        cmd.append("--realtime")
    print(f"basis bench: {suite}: {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode == SKIPPED:
        return None
    if proc.returncode != 0 or not out.exists():
        raise BasisError(f"bench suite {suite!r} failed (exit {proc.returncode}); no results written")
    return out


def compare(old: str | Path, new: Path) -> None:
    """Print pyperf's compare_to table of an earlier JSON file against a new one."""
    subprocess.run([sys.executable, "-m", "pyperf", "compare_to", str(old), str(new), "--table"])
