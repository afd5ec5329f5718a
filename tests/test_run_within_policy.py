"""A run ends within policy or says loudly that it did not (issue 17).

Scenario tests on the simulated venues (virtual clock): an opportunity whose legs never filled
is booked and reported, writing results never stops half-way; unwinds check funds on every path
and a HALTED engine holding exposure keeps trying them; the residual limit holds while the hedge
venue is in maintenance; a run that ends with a position open says so, writes everything and
exits with its own code.
"""

from pathlib import Path

import pytest
from orchestration import invariants, run, scenario

from basis_core.config import from_dict
from basis_core.engine.report import write_run
from basis_core.results.db import ResultsDB


def _ok(found, runner):
    problems = list(found) + invariants(runner)
    assert not problems, "\n".join(problems)


def test_an_opportunity_whose_legs_never_filled_is_booked_and_reported(tmp_path):
    # the first two submits on every venue are refused: the first opportunity fills nothing
    faults = [
        {
            "kind": "reject",
            "venue": "*",
            "on": "submit",
            "start_s": 0.0,
            "duration_s": 30.0,
            "reason": "insufficient_funds",
            "count": 2,
        }
    ]
    data = scenario(duration_s=8.0, faults=faults)
    runner, world, found = run(data, tmp_path)
    _ok(found, runner)
    book = runner.core.orders.orders
    unfilled = [p for p in runner.core.positions.values() if not any(o.filled for o in p.orders(book))]
    assert unfilled, "the scenario must leave an opportunity with no fill"
    run_dir = tmp_path / "run"
    write_run(runner, from_dict(data), run_dir, 1.0)
    for name in ("report.json", "results.sqlite", "report.html"):
        assert (run_dir / name).is_file(), name
    with ResultsDB(run_dir / "results.sqlite") as db:
        [rid] = [r["run_id"] for r in db.runs()]
        opps = {o["opportunity_id"]: o for o in db.opportunities(rid)}
    assert set(opps) == set(runner.core.positions)
    for pos in unfilled:
        row = opps[pos.opp_id]
        assert row["fills"] == 0 and row["expected_edge_usdt"] != 0.0
        assert "no fill" in row["outcome"] and "insufficient_funds" in row["outcome"], row["outcome"]


def test_writing_results_tries_every_file_and_names_the_one_that_failed(tmp_path, monkeypatch):
    from basis_core.engine import report as report_mod
    from basis_core.errors import ResultsError

    data = scenario(duration_s=3.0)
    runner, world, found = run(data, tmp_path)

    def broken(*args, **kwargs):
        raise ResultsError("disk full")

    monkeypatch.setattr(report_mod, "record_ledger", broken)
    run_dir = Path(tmp_path / "run")
    with pytest.raises(ResultsError, match="results.sqlite not written: disk full"):
        write_run(runner, from_dict(data), run_dir, 1.0)
    assert (run_dir / "report.json").is_file() and (run_dir / "report.html").is_file()
