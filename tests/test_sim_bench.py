"""perf/bench_sim.py plays what it says: every step's depth and every participant trade of
the default scenario, through real SimVenues, idle or with our orders resting."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from basis_core.bench import ROOT, SUITES, load_medians

sys.path.insert(0, str(ROOT / "perf"))
import bench_sim


def test_play_counts_every_level_set_and_every_print_and_rests_our_orders():
    cfg = bench_sim.scenario(duration_s=8.0)
    levels, listings = cfg.market.levels, len(cfg.instruments)
    steps = round(8.0 / cfg.market.step_s) + 1  # t = 0, 0.1, ..., 8.0
    _, generated, _, _ = bench_sim.run_once(cfg, None)
    assert generated == steps * listings * 2 * levels
    _, idle, idle_fills, world = bench_sim.run_once(cfg, False)
    prints = idle - generated
    assert prints > 0 and idle_fills == 0
    assert all(
        v.exchange.engine(i).live_orders() == 0 for v in world.venues.values() for i in v.instruments()
    )
    md = [item for v in world.venues.values() for item in v.log if item[1] == "md"]
    assert len([e for _, _, e in md if type(e).__name__ == "BookUpdate"]) >= steps * listings
    _, resting, _, world = bench_sim.run_once(cfg, True)
    assert resting > generated
    assert all(
        v.exchange.engine(i).live_orders() == 1 for v in world.venues.values() for i in v.instruments()
    )


def test_same_seed_same_play_different_seed_different_play():
    cfg = bench_sim.scenario(duration_s=5.0)
    other = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=cfg.run.seed + 1))
    logs = [
        [repr(item) for v in bench_sim.run_once(c, True)[3].venues.values() for item in v.log]
        for c in (cfg, cfg, other)
    ]
    assert logs[0] == logs[1] and logs[0] != logs[2]


def test_suite_runs_in_its_smallest_form(tmp_path):
    out = tmp_path / "sim.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / SUITES["sim"]), "--debug-single-value", "--quiet", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    medians = load_medians(out)
    assert set(medians) == {
        "SimMarketThroughput[generate]",
        "SimMarketThroughput[play,idle]",
        "SimMarketThroughput[play,resting]",
    }
    assert all(v > 0 for v in medians.values())
