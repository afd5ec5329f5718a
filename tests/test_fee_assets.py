"""A venue's fee asset running out mid-run: the venue falls back to charging the received asset;
the engine counts and reports it, books what the venue charged, counts a base-asset fee as
exposure, and by policy goes on trading or stops new entries on that venue. The venues' own
balances equal the ledger's at the end either way."""

from __future__ import annotations

from orchestration import balance_agreement, invariants, run, scenario

from basis_core import schema as S
from basis_core.config import from_dict
from basis_core.engine.report import write_run
from basis_core.results.reportjson import read_report


def _little_bnb(**policy) -> dict:
    """The default scenario with enough BNB on beta for a couple of fills only."""
    data = scenario(duration_s=20.0)
    data["venues"]["beta"]["balances"]["BNB"] = 0.05
    # entries sized to max_order_usdt, not capped by the residual limit: BNB runs out in seconds
    data.setdefault("policy", {})["taker_residual_cap"] = False
    if policy:
        data.setdefault("policy", {}).update(policy)
    return data


def test_a_fee_asset_that_runs_out_is_an_event_and_the_venues_end_equal_to_the_ledger(tmp_path):
    data = _little_bnb(on_fee_asset_exhausted="fallback")  # "restore": tests/test_fee_restore.py
    runner, world, found = run(data, tmp_path)
    problems = found + invariants(runner) + balance_agreement(runner, world)
    assert not problems, "\n".join(problems)
    core, ledger = runner.core, runner.ledger
    fees = {(f.venue, f.fee_asset) for f, _ in ledger.fills if f.fee}
    assert {("beta", "BNB"), ("beta", "BTC")} <= fees, fees  # BNB first, then the received asset
    assert core.counters.fee_asset_fallbacks.get("beta", 0) >= 1
    assert any("beta: fee asset BNB exhausted, fees now in BTC" in a for a in core.counters.anomalies)
    # a fee in BTC is BTC the engine does not hold: its positions' net equals the ledger's BTC
    # exposure (fills of every instrument on BTC, fees in BTC included)
    net_btc = sum(p.net_qty(core.orders.orders) for p in core.positions.values())
    btc_fees = sum(f.fee for f, _ in ledger.fills if f.fee_asset == "BTC")
    assert btc_fees > 0
    exposure_btc = ledger.exposure_by_asset(core.now).get("BTC", 0.0) / ledger.mark("BTC", core.now)
    assert abs(net_btc - exposure_btc) < 1e-9, (net_btc, exposure_btc)
    run_dir = tmp_path / "run"
    write_run(runner, from_dict(data), run_dir, 1.0)
    assert read_report(run_dir / "report.json")["fee_asset_fallbacks"] == core.counters.fee_asset_fallbacks


def test_with_policy_stop_no_entry_goes_to_a_venue_whose_fee_asset_ran_out(tmp_path):
    runner, world, found = run(_little_bnb(on_fee_asset_exhausted="stop"), tmp_path)
    problems = found + invariants(runner) + balance_agreement(runner, world)
    assert not problems, "\n".join(problems)
    core = runner.core
    assert "beta" in core.fee_exhausted
    reason = S.RejectReason.FEE_ASSET_EXHAUSTED.name.lower()
    assert core.counters.rejected.get(reason, 0) >= 1, core.counters.rejected
    # the first fill charged in BTC on beta: no entry on beta was decided after it
    first_btc_fee = min(f.ts_ns for f, _ in runner.ledger.fills if f.venue == "beta" and f.fee_asset == "BTC")
    late = [
        o
        for o in core.orders.orders.values()
        if o.venue == "beta" and o.purpose == "entry" and o.created_ns > first_btc_fee + 50_000_000
    ]
    assert not late, [(o.coid, o.created_ns) for o in late]
