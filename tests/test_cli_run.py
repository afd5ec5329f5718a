"""`basis run` on the embedded default scenario, end to end through the command line."""

import json
import subprocess
import sys
import time

from basis_core.results.reportjson import FIELDS


def test_basis_run_default_scenario_writes_the_run_and_replays_to_the_same_digest(tmp_path):
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "basis_core", "run", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    assert wall < 60
    assert out.stdout.count("events=") >= 10  # progress while it runs
    assert "decision digest" in out.stdout  # the summary table
    report = json.loads((run_dir / "report.json").read_text())
    assert set(FIELDS) <= set(report)
    assert report["orders_submitted"] > 0 and report["hedges_completed"] > 0
    assert {t["machine"] for t in report["state_transitions"]} >= {"engine", "venue:alpha", "venue:gamma"}
    assert report["final_engine_state"] == "NORMAL"
    for name in ("results.sqlite", "report.html", "scenario.json", "registry.json"):
        assert (run_dir / name).exists(), name
    replayed = subprocess.run(
        [sys.executable, "-m", "basis_core", "replay", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert report["decision_digest"] in replayed.stdout and "equal to the run's" in replayed.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "basis_core", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and "orders submitted" in shown.stdout


def test_basis_run_refuses_a_live_venue_on_the_virtual_clock_instead_of_skipping_it(tmp_path, capsys):
    from basis_core.cli import main

    cfg = tmp_path / "ccxt.toml"
    cfg.write_text('[venues.live]\nkind = "ccxt"\n')
    assert main(["run", str(cfg), "--run-dir", str(tmp_path / "run")]) == 1
    assert "run.clock: venue live is a live exchange" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
