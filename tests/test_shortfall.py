"""Implementation shortfall (basis_core/results/shortfall.py): a hand-computed example, the
report.json schema of its totals, results.sqlite rows, and a short run that measures it without
changing a decision."""

from __future__ import annotations

import math

import pytest

from basis_core.config import from_dict
from basis_core.engine.report import shortfall_rows, write_run
from basis_core.errors import ResultsError
from basis_core.results import ResultsDB, validate
from basis_core.results.report import RunData, render_html
from basis_core.results.shortfall import Fill, Plan, shortfall, totals
from tests.orchestration import run, scenario


def _plan(**kw) -> Plan:
    base = dict(
        opportunity_id=7,
        strategy="spread",
        qty=1.0,
        buy_instrument="alpha-BTCUSDT",
        sell_instrument="beta-BTCUSDT",
        mid_buy=100.0,
        mid_sell=102.0,
        end_mid_buy=101.0,
        end_mid_sell=101.5,
    )
    base.update(kw)
    return Plan(**base)


def test_hand_computed_example():
    # plan: buy 1 on alpha at mid 100, sell 1 on beta at mid 102.
    # fills: bought 0.6 @ 100.5 and 0.2 @ 100.25 (fees 0.06, 0.02); sold 0.5 @ 101.9 (fee 0.05);
    # an unwind sold 0.1 of the long back on alpha @ 99.8 (fee 0.01).
    fills = [
        Fill("alpha-BTCUSDT", "buy", 0.6, 100.5, 0.06),
        Fill("alpha-BTCUSDT", "buy", 0.2, 100.25, 0.02),
        Fill("beta-BTCUSDT", "sell", 0.5, 101.9, 0.05),
        Fill("alpha-BTCUSDT", "sell", 0.1, 99.8, 0.01),
    ]
    sf = shortfall(_plan(), fills)
    # execution: 0.6*0.5 + 0.2*0.25 + 0.5*(102-101.9) - 0.1*(99.8-100) = 0.3 + 0.05 + 0.05 + 0.02
    assert sf.execution_usdt == pytest.approx(0.42)
    assert sf.fees_usdt == pytest.approx(0.14)
    # unfilled: buy leg 1 - 0.7 = 0.3 missing, its mid rose 1.0 -> 0.3; sell leg -1 - (-0.5) = -0.5
    # missing, its mid fell 0.5 -> (-0.5)*(-0.5) = 0.25 (both moves against us)
    assert sf.unfilled_usdt == pytest.approx(0.55)
    assert sf.shortfall_usdt == pytest.approx(0.42 + 0.14 + 0.55)
    assert sf.paper_notional_usdt == pytest.approx(202.0)
    assert sf.shortfall_bps == pytest.approx(1.11 / 202.0 * 1e4)
    # VWAP over the fills in each leg's own direction (the unwind sell is not in the buy VWAP)
    assert sf.vwap_buy == pytest.approx((0.6 * 100.5 + 0.2 * 100.25) / 0.8)
    assert sf.vwap_sell == pytest.approx(101.9)
    assert (sf.bought, sf.sold) == (pytest.approx(0.8), pytest.approx(0.5))


def test_fully_filled_at_the_mids_costs_only_fees_and_a_favourable_move_is_negative():
    at_mid = [Fill("alpha-BTCUSDT", "buy", 1.0, 100.0, 0.1), Fill("beta-BTCUSDT", "sell", 1.0, 102.0, 0.1)]
    sf = shortfall(_plan(), at_mid)
    assert (sf.execution_usdt, sf.unfilled_usdt, sf.shortfall_usdt) == (0.0, 0.0, pytest.approx(0.2))
    # nothing filled, the buy mid fell 2 and the sell mid rose 1: not trading saved 3
    nothing = shortfall(_plan(end_mid_buy=98.0, end_mid_sell=103.0), [])
    assert nothing.unfilled_usdt == pytest.approx(-3.0)
    assert nothing.vwap_buy == nothing.vwap_sell == 0.0


def test_a_rerouted_unwind_counts_on_the_leg_it_flattens():
    # a buy on a third venue flattens the short (sell) leg: measured against the sell mid
    sf = shortfall(_plan(), [Fill("gamma-BTCUSDT-PERP", "buy", 0.5, 102.4, 0.0)])
    assert sf.execution_usdt == pytest.approx(0.5 * 0.4)
    # the sell leg is +0.5 net now: -1 - 0.5 = -1.5 missing; the buy leg 1 missing
    assert sf.unfilled_usdt == pytest.approx(1.0 * 1.0 + (-1.5) * (-0.5))


def test_totals_and_the_report_schema():
    rows = [shortfall(_plan(opportunity_id=i), []) for i in (1, 2)]
    t = totals(rows)
    assert t["opportunities"] == 2
    assert t["shortfall_bps"] == pytest.approx(t["shortfall_usdt"] / 404.0 * 1e4)
    report = _minimal_report()
    validate(report)  # a report without the field (written before it existed) is still valid
    validate({**report, "implementation_shortfall": t})
    bad = dict(t, fees_usdt=-1.0)
    del bad["unfilled_usdt"]
    with pytest.raises(ResultsError) as err:
        validate({**report, "implementation_shortfall": bad})
    assert "implementation_shortfall.fees_usdt" in str(err.value)
    assert "implementation_shortfall.unfilled_usdt: missing" in str(err.value)
    with pytest.raises(ResultsError, match="shortfall_usdt"):
        validate({**report, "implementation_shortfall": dict(t, shortfall_usdt=math.nan)})


def _minimal_report() -> dict:
    from basis_core.results import FIELDS

    out: dict = {}
    for name, kind in FIELDS.items():
        out[name] = {
            "count": 0,
            "number": 0.0,
            "non-negative number": 0.0,
            "latency": {"p50": 0.0, "p99": 0.0, "p999": 0.0},
            "counts": {},
            "transitions": [],
        }[kind]
    return out


def test_rows_round_trip_through_results_sqlite(tmp_path):
    sf = shortfall(_plan(), [Fill("alpha-BTCUSDT", "buy", 1.0, 100.5, 0.1)])
    with ResultsDB(tmp_path / "r.sqlite") as db:
        db.start_run("r", "t", 1, 0)
        db.record_shortfall("r", sf.as_row())
        db.record_shortfall("r", sf.as_row())  # replaced, not doubled
        rows = db.shortfall("r")
    assert len(rows) == 1
    assert rows[0]["opportunity_id"] == 7
    assert rows[0]["shortfall_usdt"] == pytest.approx(sf.shortfall_usdt)
    assert rows[0]["shortfall_bps"] == pytest.approx(sf.shortfall_bps)


def test_a_run_measures_every_opportunity_from_its_positions_and_ledger(tmp_path):
    data = scenario(duration_s=8.0)
    runner, _, problems = run(data, tmp_path)
    assert problems == []
    core = runner.core
    rows = shortfall_rows(core, runner.ledger)
    assert len(rows) == len(core.positions) > 0
    for row in rows:
        pos = core.positions[row.opportunity_id]
        # the mids at decision sit between the touches the signal took
        assert pos.buy.signal_px >= row.mid_buy > 0 and pos.sell.signal_px <= row.mid_sell
        mine = [f for f, _ in runner.ledger.fills if f.opportunity_id == row.opportunity_id]
        assert row.fees_usdt == pytest.approx(sum(fee for f, fee in runner.ledger.fills if f in mine))
        if row.bought:
            assert row.vwap_buy >= row.mid_buy  # a taker buy pays at least the mid
    report = write_run(runner, from_dict(data), tmp_path / "run", 1.0)
    sf = report["implementation_shortfall"]
    assert sf["opportunities"] == len(rows)
    assert sf["shortfall_usdt"] == pytest.approx(sum(r.shortfall_usdt for r in rows))
    assert sf["fees_usdt"] == pytest.approx(sum(r.fees_usdt for r in rows))
    # the run directory: report.json, results.sqlite rows, a table in report.html
    written = RunData(tmp_path / "run")
    assert written.report["implementation_shortfall"]["opportunities"] == len(rows)
    assert [r["opportunity_id"] for r in written.shortfall] == [r.opportunity_id for r in rows]
    assert "Implementation shortfall" in render_html(written)
