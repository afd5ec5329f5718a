"""A long run of the default scenario stays flat: its engine handles as many events per CPU
second at the end as at the start, and its memory stops growing once it is warm.

Nothing in the engine, the io side, the simulated venues or the reporting may grow with the
run's length unless it is written to disk; a structure that did (a scan over every order of
the run per step, every venue event kept in memory, every latency sample kept, the journal's
written pages counted in the resident set) shows here as a falling event rate or a rising
RSS. The windows start after the scenario's first minute, which holds all of its scripted faults
(a 429 burst, a maintenance window, a volatility spike ...: minutes of another kind of work). The
short form (CI) runs 7 simulated minutes and compares its second minute with its last;
BASIS_SOAK=full runs 30 minutes and 2 hours and compares 5-minute windows (minutes 1-6 with the
last 5).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from orchestration import run, scenario
from soak import SOAK

from basis_core.config import load
from basis_core.engine.scenario import run_simulated
from basis_core.scenarios import DEFAULT

DURATIONS_S = [420.0] if SOAK != "full" else [1800.0, 7200.0]
#: the default scenario's scripted faults all fall in its first minute
WARM_UP_S = 60.0
#: the last window's events per CPU second against the first window's
MIN_RATE_RATIO = 0.8
#: the peak resident set against the resident set at the end of the first window
MAX_RSS_GROWTH = 1.2
_PROGRESS = re.compile(r"t=\s*([\d.]+)s events=\s*([\d,]+)")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.parametrize("duration_s", DURATIONS_S)
def test_a_long_default_run_keeps_its_event_rate_and_its_memory_flat(tmp_path, duration_s):
    cfg = load(DEFAULT)
    cfg = replace(cfg, run=replace(cfg.run, duration_s=duration_s))
    samples: list[tuple[float, int, float, float]] = []  # (t, events, process CPU s, RSS MiB)

    def progress(line: str) -> None:
        m = _PROGRESS.search(line)
        if m:
            events = int(m.group(2).replace(",", ""))
            samples.append((float(m.group(1)), events, time.process_time(), _rss_mib()))

    report = run_simulated(cfg, tmp_path / "run", progress=progress)
    assert report["events_processed"] > 0 and (tmp_path / "run" / "report.html").exists()

    window = 60.0 if duration_s < 1800 else 300.0
    first = [s for s in samples if WARM_UP_S <= s[0] <= WARM_UP_S + window]
    last = [s for s in samples if s[0] >= duration_s - window]
    assert len(first) >= 10 and len(last) >= 10, "progress lines too sparse to measure"

    def rate(span) -> float:
        """Events per CPU second over the window (CPU, not wall: the machine may be shared): all
        the window's events over all its CPU time, as the acceptance's "throughput over a window"
        is. A cost that grows with the run lowers it; a per-interval statistic (a quartile of the
        2-second rates) swung by +-25 % between identical runs here."""
        return (span[-1][1] - span[0][1]) / (span[-1][2] - span[0][2])

    ratio = rate(last) / rate(first)
    rss_warm = first[-1][3]
    peak = max(s[3] for s in samples)
    figures = (
        f"{duration_s:g} s run: {rate(first):,.0f} -> {rate(last):,.0f} events/CPU-s ({ratio:.2f}); "
        f"RSS {rss_warm:.0f} MiB after {WARM_UP_S + window:g} s, peak {peak:.0f} MiB ({peak / rss_warm:.2f}x)"
    )
    print(figures)
    assert ratio >= MIN_RATE_RATIO, figures
    assert peak <= MAX_RSS_GROWTH * rss_warm, figures


def test_state_counts_kept_as_states_change_agree_with_a_count_of_every_order_and_position(tmp_path):
    """What the live figures read instead of going over every order and position of the run."""
    runner, _, found = run(scenario(duration_s=15.0), tmp_path)
    assert not found, found
    core = runner.core
    orders: dict[tuple[str, str], int] = {}
    for o in core.orders.orders.values():
        orders[(o.venue, o.state.name)] = orders.get((o.venue, o.state.name), 0) + 1
    positions: dict[str, int] = {}
    for p in core.positions.values():
        positions[p.state.name] = positions.get(p.state.name, 0) + 1
    assert len(core.positions) >= 5 and len(positions) >= 1
    assert core.orders.counts == orders and core.position_counts == positions
