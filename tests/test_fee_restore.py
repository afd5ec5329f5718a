"""Base a venue kept as fees once its fee asset ran out is bought back: `[policy]
on_fee_asset_exhausted = "restore"` (the default) ends a run whose BNB ran out flat within what
one restore cannot buy (less than the venue's min notional or a lot), with the venues' own net
base change equal to the ledger's, the restores reported with their reason and decided again by
a replay; `"fallback"` leaves the run short by the fees.

That short is exposure of the whole book that no position holds: once it passed `[limits]
max_residual_usdt` the position layer raised `exposure:BTC` and nothing could resolve it, so the
engine stayed RECONCILING (no new entries) and asked for a reconciliation pass after each
unclean one until the run ended: a 2-hour default run spent its last 40 minutes so, with about
5.7 times the passes of its first minutes. Here the limit is low enough for the fees of a 30 s
run to pass it."""

from __future__ import annotations

import pytest
from orchestration import balance_agreement, invariants, run, scenario

from basis_core.config import from_dict
from basis_core.engine.replay import replay
from basis_core.engine.report import write_run
from basis_core.results.reportjson import read_report


def _little_bnb(policy: str) -> dict:
    """The default scenario with BNB on beta for a few fills: later fills of beta's buys are
    charged in BTC from the first seconds on."""
    data = scenario(duration_s=30.0)
    data["venues"]["beta"]["balances"]["BNB"] = 0.05
    data.setdefault("policy", {})["on_fee_asset_exhausted"] = policy
    data["limits"]["max_residual_usdt"] = 25.0  # the run's BTC fees come to about 45 USDT
    # entries sized to max_order_usdt (not capped to that small a residual limit): the fee
    # asset runs out in seconds
    data["policy"]["taker_residual_cap"] = False
    return data


def _venues_net_btc(runner, world) -> float:
    """BTC the venues hold at the end less at the start (spot balances, the perp position)."""
    net = 0.0
    for name, venue in world.venues.items():
        acc = venue.exchange.accounts
        if "BTC" in set(acc.assets(venue.owner)):
            net += acc.to_float("BTC", acc.get(venue.owner, "BTC").total) - 2.0
        for inst, info in venue._instruments.items():
            if info.kind == "perp":
                pos = venue.exchange.position(venue.owner, inst)
                eng = venue.exchange.engine(inst)
                net += eng.qty(abs(pos.lots)) * (1 if pos.lots >= 0 else -1)
    return net


def _ledger_net_btc(runner) -> float:
    ledger, now = runner.ledger, runner.core.now
    return ledger.exposure_by_asset(now).get("BTC", 0.0) / ledger.mark("BTC", now)


def _one_restore_short(runner) -> float:
    """What a restore cannot buy: below a lot, or below beta's min notional."""
    r = runner.core.rules["beta-BTCUSDT"]
    return max(r.lot, r.min_notional / runner.core.market.mark("BTC")) + r.lot


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("restore")
    data = _little_bnb("restore")
    runner, world, found = run(data, tmp)
    write_run(runner, from_dict(data), tmp / "run", 1.0)
    return tmp / "run", data, runner, world, found


def test_restore_buys_back_the_fee_drift_and_the_run_ends_flat(restored):
    run_dir, _, runner, world, found = restored
    problems = found + invariants(runner) + balance_agreement(runner, world)
    assert not problems, "\n".join(problems)
    core, ledger = runner.core, runner.ledger
    btc_fees = sum(f.fee for f, _ in ledger.fills if f.venue == "beta" and f.fee_asset == "BTC")
    assert btc_fees > 2 * _one_restore_short(runner)  # the drift was worth restoring, several times
    venues, books = _venues_net_btc(runner, world), _ledger_net_btc(runner)
    assert abs(venues - books) < 1e-9, (venues, books)
    assert abs(venues) <= _one_restore_short(runner), (venues, btc_fees)
    # the engine's view: its positions' net plus what restores brought is the ledger's
    restores = [o for o in core.orders.orders.values() if o.purpose == "restore"]
    # on beta, which kept the fees, or on alpha once beta's USDT is spent on the run's buys there
    assert restores and all(o.venue in ("alpha", "beta") and o.side.name == "BUY" for o in restores)
    brought = sum(o.signed_filled for o in restores)
    assert brought > 0 and abs(brought - core.fee_restored["BTC"]) < 1e-12
    net = sum(p.net_qty(core.orders.orders) for p in core.positions.values()) + brought
    assert abs(net - books) < 1e-9, (net, books)
    assert 0 <= core.fee_drift["BTC"] <= _one_restore_short(runner)
    # visible in report.json: each restore with its reason, and what is still owed
    report = read_report(run_dir / "report.json")["fee_restores"]
    assert report["policy"] == "restore" and report["orders_total"] == len(restores)
    assert {o["coid"] for o in report["orders"]} == {o.coid for o in restores}
    assert all(
        o["reason"].startswith("fee drift ") and "(fees charged in BTC on beta" in o["reason"]
        for o in report["orders"]
    )
    assert report["restored"]["BTC"] == pytest.approx(brought)
    # the book's exposure never stayed over the residual limit: trading went on to the end
    assert core.engine.state.name == "NORMAL" and not runner.reconciler.log.open()
    # a restore booked to the opportunity whose id it took leaves that opportunity hedged
    assert "position" not in runner.stats.reconcile_mismatches, runner.stats.reconcile_mismatches
    for o in restores:
        opp = ledger.opportunity(o.opportunity)
        assert opp.symmetry >= 0.95, (o.coid, opp.bought, opp.sold)


def test_a_replay_decides_the_restores_again(restored):
    run_dir, _, runner, _, _ = restored
    again = replay(run_dir)
    assert again.identical and again.digest == runner.core.digest
    assert again.core.fee_restored == runner.core.fee_restored
    assert [r.coid for r in again.core.fee_restores] == [r.coid for r in runner.core.fee_restores]


def test_with_fallback_the_run_ends_short_by_the_fees(tmp_path):
    runner, world, found = run(_little_bnb("fallback"), tmp_path)
    assert not found + balance_agreement(runner, world)
    venues = _venues_net_btc(runner, world)
    assert abs(venues - _ledger_net_btc(runner)) < 1e-9
    assert venues < -2 * _one_restore_short(runner), venues  # nothing bought the fees back
    assert not [o for o in runner.core.orders.orders.values() if o.purpose == "restore"]
    # the short passed the residual limit: an exposure mismatch nothing resolves, and the engine
    # held in RECONCILING to the end
    assert [m.key for m in runner.reconciler.log.open()] == ["exposure:BTC"]
    assert runner.core.engine.state.name == "RECONCILING"
