"""Every `basis bench` suite script runs in its smallest form and writes a valid pyperf JSON
with the benchmarks it promises (the figures themselves are not judged here: one value on a
shared host means nothing). The end-to-end suite runs the product's engine process and checks,
before it reports, that the commands it read from the order ring are the journal's and that a
replay of the journal decides them again, so a passing smoke run is also a correctness run of
the pipeline.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from basis_core import schema
from basis_core.bench import ROOT, SKIPPED, SUITES, load_medians, render, summarize
from basis_core.rings import leftovers

SINGLE = ["--debug-single-value", "--quiet"]


def run(script: str, args: list[str], out: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *SINGLE, *args, "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def names(path: Path) -> set[str]:
    medians = load_medians(path)
    assert all(v > 0 for v in medians.values()), medians
    assert render(summarize(medians)).splitlines()[0].startswith("benchmark")
    return set(medians)


def test_suites_point_at_scripts():
    for suite, script in SUITES.items():
        if suite == "kernels" and not (ROOT / script).exists():
            continue  # registered ahead of its script
        assert (ROOT / script).is_file(), suite


def test_e2e_smallest_form(tmp_path):
    """The product's engine process (procs.engine_main) fed unpaced and at 10K/s; each value is
    checked (order ring = journal = replay) before it is written."""
    out = tmp_path / "e2e.json"
    proc = run(SUITES["e2e"], ["--smoke", "--min-events", "4000"], out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert names(out) == {
        "E2EThroughput[engine]",
        "TickToOrderLatency[engine,rate=10K].p99",
    }
    assert not [n for n in leftovers() if n.startswith("bench-e2e-")]


def test_peer_basis_side_decides_every_opportunity():
    """The peer suite's basis side (EngineCore over the quote ticks, journal on) runs without
    NautilusTrader; its own checks (a decision per opportunity, two orders each, all filled,
    every hedge completed) hold on a short stream."""
    spec = importlib.util.spec_from_file_location("bench_nautilus", ROOT / SUITES["peers"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    side = mod.BasisSide(1000)
    assert side.run() > 0
    top = side.ticks.view(schema.TOP_OF_BOOK)
    # the first opportunity taken out of the stream: its venue quotes what the other one does
    top["bid_px"][98], top["ask_px"][98] = top["bid_px"][97], top["ask_px"][97]
    with pytest.raises(AssertionError, match="9 decisions"):
        side.run()


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler")
def test_c_ring_smallest_form(tmp_path):
    out = tmp_path / "cring.json"
    proc = run(SUITES["cring"], [], out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert names(out) == {
        "OneToOneThroughput[c,batch=1]",
        "OneToOneThroughput[c,batch=16]",
        "OneToOneThroughput[c,batch=256]",
        "PingPongLatency[c].p50",
        "PingPongLatency[c].p99",
    }


def test_peer_smallest_form_or_a_clear_skip(tmp_path):
    out = tmp_path / "peers.json"
    proc = run(SUITES["peers"], ["--ticks", "1000"], out)
    if importlib.util.find_spec("nautilus_trader") is None:
        assert proc.returncode == SKIPPED and "not installed" in proc.stderr and not out.exists()
        return
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert names(out) == {
        "PeerThroughput[basis]",
        "PeerThroughput[nautilus]",
        "PeerThroughput[nautilus,noorders]",
    }


@pytest.mark.parametrize("suite", ["router", "journal"])
def test_other_suites_smallest_form(tmp_path, suite):
    out = tmp_path / f"{suite}.json"
    proc = run(SUITES[suite], [], out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert names(out)


def test_engine_step_smallest_form(tmp_path):
    """Before timing, the suite checks that the compiled step and the Python path it replaced
    decide the same (digest, counters, marks, levels) over three streams."""
    out = tmp_path / "engine-step.json"
    proc = run(SUITES["engine-step"], [], out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert names(out) == {
        f"EngineStepThroughput[{impl},batch={b}]" for impl in ("python", "numba") for b in (8, 64)
    }
