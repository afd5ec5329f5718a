"""Reconciliation against the simulated venue (adapters/sim), on virtual time: a lost ack is
adopted and never resent, a submit that never arrived is declared lost only after a targeted
query and the grace window, partial fills and non-quote fees reach the ledger once, lagging
balances and a pending transfer raise nothing inside the lag window, a real difference is
raised after it, perp positions agree."""

import asyncio
from dataclasses import replace

import pytest
from test_sim_support import (
    SPOT,
    START_NS,
    Fault,
    Latency,
    TransferRules,
    VirtualClock,
    book_around,
    info,
    linked_venues,
    make_venue,
    running,
)

from adapters.sim.exchange import Exchange
from adapters.sim.faults import FaultSchedule
from adapters.sim.matching import FeeSchedule
from adapters.sim.venue import SimVenue
from basis_core.accounting import Ledger
from basis_core.accounting.convert import ledger_fill
from basis_core.errors import OrderNotFound, RequestTimeout
from basis_core.reconcile.balances import BalanceReconciler
from basis_core.reconcile.fills import FillSync, ordinal_id, sync_fills
from basis_core.reconcile.orders import KnownOrder, apply, reconcile_orders, recover_orders
from basis_core.reconcile.positions import PositionPolicy, PositionReconciler
from basis_core.reconcile.runner import Reconciler, engine_event
from basis_core.schema import OrderType, Side, make_coid
from basis_core.state.tables import EngineEvent
from basis_core.units import S
from basis_core.venue import Fill, OrderRequest, OrderStatus

MARKS = {"BTC": 50_000.0, "BNB": 600.0}


def one_leg_ok():
    """These tests place single legs on purpose: the position layer's hedge checks are not under test."""
    return PositionReconciler(PositionPolicy(hedge_window_ns=3600 * S, max_residual_usdt=1e9))


def coid(opp, leg=0):
    return str(make_coid(opp, leg))


def known(venue, req, now):
    return KnownOrder(req.coid, venue, req.instrument, req.side, req.qty, req.price, None, submitted_ns=now)


async def seeded_ledger(*venues):
    led = Ledger(lambda a, t: MARKS[a])
    for v in venues:
        for asset, bal in (await v.balances()).items():
            if bal.total:
                led.deposit(v.name, asset, bal.total, START_NS)
    return led


def test_lost_ack_is_adopted_and_not_resent():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, faults=[Fault("ack_lost", on="submit", nth=1)])
        async with running(v):
            book_around(v)
            req = OrderRequest(coid(1), "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_990.0)
            with pytest.raises(RequestTimeout):
                await v.submit(req)
            ours = {}  # the process died before recording the send
            rnd = await reconcile_orders(v, ours, clock.now_ns())
            assert [o.coid for o in rnd.adopt] == [req.coid] and rnd.mismatches == []
            apply(ours, v.name, rnd)
            assert ours[req.coid].origin == "adopted" and ours[req.coid].status is OrderStatus.OPEN
            again = await reconcile_orders(v, ours, clock.now_ns())
            assert again.adopt == [] and again.to_query == [] and again.updates == []
            assert [o.coid for o in await v.open_orders()] == [req.coid]  # exactly one order at the venue

    clock.run(main())


def test_submit_that_never_arrived_is_lost_only_after_query_and_grace_window():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, faults=[Fault("timeout", on="submit", nth=1, reached="no")])
        async with running(v):
            book_around(v)
            req = OrderRequest(coid(2), "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_990.0)
            ours = {req.coid: known(v.name, req, clock.now_ns())}
            with pytest.raises(RequestTimeout):
                await v.submit(req)
            rnd = await reconcile_orders(v, ours, clock.now_ns(), grace_ns=5 * S)
            assert rnd.to_query == [req.coid] and rnd.unresolved == [req.coid] and rnd.lost == []
            await asyncio.sleep(5.0)
            rnd = await reconcile_orders(v, ours, clock.now_ns(), grace_ns=5 * S)
            assert rnd.lost == [req.coid] and [m.cause for m in rnd.mismatches] == [
                "not known to the venue after the grace window: lost"
            ]
            apply(ours, v.name, rnd)
            assert ours[req.coid].lost and not ours[req.coid].working

    clock.run(main())


def test_order_that_partly_filled_while_unseen_is_found_by_targeted_query_and_its_fills_booked_once():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(
            clock,
            faults=[Fault("timeout", on="submit", nth=1, reached="yes")],
            latency=Latency(balance_lag_ms=2000.0),
        )
        async with running(v):
            book_around(v)
            led = await seeded_ledger(v)
            # sweeps the 2 levels up to its limit (0.2 BTC each): 2 fills, the rest expires
            req = OrderRequest(coid(3), "btc", Side.BUY, OrderType.IOC, 0.5, 50_000.02)
            orders = {req.coid: known(v.name, req, clock.now_ns())}
            with pytest.raises(RequestTimeout):
                await v.submit(req)
            rec = Reconciler([v], led, orders, balance_lag_ns=3 * S, position=one_leg_ok())
            p = await rec.run(clock.now_ns())
            assert p.orders["alpha"].to_query == [req.coid]
            assert orders[req.coid].status is OrderStatus.EXPIRED and orders[
                req.coid
            ].filled_qty == pytest.approx(0.4)
            assert p.fills_booked == 2 and led.balance("alpha", "BTC") == pytest.approx(2.4)
            # the venue's balances lag the fills just booked: inside the lag window that is consistent
            assert p.raised == [] and p.balances_pending == {}
            await asyncio.sleep(2.5)  # the venue's balances catch up inside the lag window
            p = await rec.run(clock.now_ns())
            assert p.fills_booked == 0 and p.raised == [] and p.clean
            assert engine_event(p) == EngineEvent.POLICY_CHECKS_PASSED

    clock.run(main())


def test_fee_in_a_third_asset_is_converted_and_balances_agree_after_the_lag():
    clock = VirtualClock(START_NS)

    async def main():
        ex = Exchange("alpha", {"btc": (SPOT, FeeSchedule(1.0, 5.0, asset="BNB", asset_price=600.0))})
        for asset, amount in (("USDT", 100_000.0), ("BTC", 2.0), ("BNB", 10.0)):
            ex.accounts.deposit("basis", asset, round(amount * 1e8))
        v = SimVenue(
            "alpha",
            ex,
            {"btc": info("btc", SPOT)},
            clock,
            latency=Latency(balance_lag_ms=1000.0),
            faults=FaultSchedule((), start_ns=START_NS),
        )
        async with running(v):
            book_around(v)
            led = await seeded_ledger(v)
            rec = Reconciler([v], led, {}, balance_lag_ns=2 * S, position=one_leg_ok())
            await v.submit(OrderRequest(coid(4), "btc", Side.SELL, OrderType.MARKET, 0.2, None))
            p = await rec.run(clock.now_ns())
            assert p.fills_booked == 1 and p.raised == []
            fee_bnb = 0.2 * 49_999.99 * 5e-4 / 600.0
            assert led.balance("alpha", "BNB") == pytest.approx(10.0 - fee_bnb, rel=1e-6)
            assert led.fees_usdt == pytest.approx(
                fee_bnb * 600.0, rel=1e-6
            )  # at the BNB mark, not the fill's quote
            await asyncio.sleep(1.5)
            p = await rec.run(clock.now_ns())
            assert p.clean and p.raised == []

    clock.run(main())


def test_real_balance_difference_is_raised_only_after_the_lag_window():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(balance_lag_ms=0.0))
        async with running(v):
            led = await seeded_ledger(v)
            rec = Reconciler([v], led, {}, balance_lag_ns=2 * S)
            v.credit("BTC", round(0.3 * 1e8))  # BTC that no fill or transfer of ours explains
            p1 = await rec.run(clock.now_ns())
            assert p1.raised == [] and "alpha:BTC" in p1.balances_pending
            await asyncio.sleep(1.0)
            assert (await rec.run(clock.now_ns())).raised == []
            await asyncio.sleep(1.5)
            p3 = await rec.run(clock.now_ns())
            assert [(m.layer, m.key, m.ours, m.theirs) for m in p3.raised] == [
                ("balance", "alpha:BTC", 2.0, pytest.approx(2.3))
            ]
            assert engine_event(p3) == EngineEvent.RECONCILE_MISMATCH
            assert rec.log.counts()["balance"] == 1

    clock.run(main())


def test_pending_transfer_raises_nothing_while_in_flight_and_lands_in_the_ledger():
    clock = VirtualClock(START_NS)

    async def main():
        a, b = linked_venues(
            clock,
            TransferRules(delay_s=20.0, confirmations=2, confirm_interval_s=10.0),
            Latency(balance_lag_ms=1000.0),
        )
        async with running(a, b):
            led = await seeded_ledger(a, b)
            rec = Reconciler(
                [a, b], led, {}, balance_lag_ns=2 * S
            )  # the venues' balances lag 1 s; the transfer takes 30 s
            await a.transfer("USDT", 5_000.0, "beta")
            raised = []
            for _ in range(40):  # every second through the transfer's life and after
                p = await rec.run(clock.now_ns())
                raised += p.raised
                await asyncio.sleep(1.0)
            assert raised == []
            assert led.balance("alpha", "USDT") == pytest.approx(95_000.0)
            assert led.balance("beta", "USDT") == pytest.approx(105_000.0) and led.pending_transfers() == []
            assert p.clean

    clock.run(main())


def test_perp_position_agrees_with_the_venue_after_fills_are_synced():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, "gamma", perp=True, latency=Latency(balance_lag_ms=0.0))
        async with running(v):
            book_around(v, lots=20)
            led = await seeded_ledger(v)
            rec = Reconciler([v], led, {}, balance_lag_ns=S)
            await v.submit(OrderRequest(coid(6), "btc", Side.SELL, OrderType.MARKET, 0.015, None))
            p = await rec.run(clock.now_ns())
            assert led.perp_positions() == {("gamma", "btc"): pytest.approx(-0.015)}
            assert p.positions.raised == [] and p.raised == []

    clock.run(main())


def test_recovery_after_a_restart_makes_every_order_the_venue_knows_ours_and_declares_the_rest_lost():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(
            clock,
            faults=[
                Fault("ack_lost", on="submit", nth=2),
                Fault("timeout", on="submit", nth=4, reached="no"),
            ],
        )
        async with running(v):
            book_around(v)
            reqs = {
                "resting": OrderRequest(coid(10), "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_990.0),
                "ack_lost": OrderRequest(coid(11), "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_991.0),
                "unjournaled_fill": OrderRequest(coid(12), "btc", Side.BUY, OrderType.MARKET, 0.01, None),
                "never_arrived": OrderRequest(coid(13), "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_992.0),
                "filled_while_down": OrderRequest(
                    coid(14), "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_999.99
                ),
            }
            ours, sent, timed_out = {}, {}, []
            for name, req in reqs.items():
                if name != "unjournaled_fill":  # the journal lost its tail for this one
                    sent[req.coid] = known(v.name, req, clock.now_ns())
                try:
                    ack = await v.submit(req)
                except RequestTimeout:
                    timed_out.append(name)
                    continue
                if name in ("resting", "filled_while_down"):
                    ours[req.coid] = replace(sent[req.coid], status=ack.status)
            assert timed_out == ["ack_lost", "never_arrived"]
            v.participant_trade(
                "btc", Side.SELL, 20_000 + 1_000
            )  # takes the best bid queue, then ours at 49_999.99
            await asyncio.sleep(10.0)  # the engine is down
            rnd = await recover_orders(v, ours, sent, clock.now_ns(), grace_ns=5 * S)
            apply(ours, v.name, rnd)
            assert rnd.lost == [reqs["never_arrived"].coid] and rnd.unresolved == []
            assert {o.coid for o in rnd.adopt} == {reqs["unjournaled_fill"].coid}
            assert ours[reqs["ack_lost"].coid].status is OrderStatus.OPEN
            assert ours[reqs["filled_while_down"].coid].status is OrderStatus.FILLED
            # parity: every coid the venue knows is known here, and every order here not lost is at the venue
            venue_known = {o.coid for o in await v.open_orders()} | {f.coid for f in (await v.fills()).fills}
            for c in sent:
                try:
                    await v.fetch_order(c)
                    venue_known.add(c)
                except OrderNotFound:
                    pass
            assert venue_known == {c for c, o in ours.items() if not o.lost}
            # nothing left to do: a normal round finds the book in step
            again = await reconcile_orders(v, ours, clock.now_ns())
            assert again.adopt == [] and again.updates == [] and again.lost == [] and again.mismatches == []
            assert [o.coid for o in await v.open_orders()].count(reqs["ack_lost"].coid) == 1

    clock.run(main())


def test_fills_booked_from_the_stream_by_ordinal_are_not_booked_again_by_the_sync():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(balance_lag_ms=0.0))
        async with running(v, watch=v) as (user, _):
            book_around(v)
            led = await seeded_ledger(v)
            await v.submit(OrderRequest(coid(7), "btc", Side.BUY, OrderType.IOC, 0.3, 50_000.02))  # 2 fills
            await v.submit(OrderRequest(coid(8), "btc", Side.SELL, OrderType.MARKET, 0.25, None))  # 2 fills
            await asyncio.sleep(0.1)
            counts = {}
            for f in (
                e for e in user if isinstance(e, Fill)
            ):  # what a replayed journal books: fill_no per order
                counts[f.coid] = counts.get(f.coid, 0) + 1
                assert led.book_fill(
                    ledger_fill(f, v.instruments()["btc"], fill_id=ordinal_id(counts[f.coid]))
                )
            assert sum(counts.values()) == 4
            rec = Reconciler([v], led, {}, balance_lag_ns=S, position=one_leg_ok(), ordinal_fill_ids=True)
            p = await rec.run(clock.now_ns())
            assert p.fills_booked == 0 and rec.fills["alpha"].repeated == 4
            assert p.raised == [] and p.clean

    clock.run(main())


def test_partial_fill_missing_from_the_ledger_is_raised_after_the_window_and_resolved_once_booked():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(balance_lag_ms=500.0))
        async with running(v):
            book_around(v)
            led = await seeded_ledger(v)
            bal = BalanceReconciler(lag_ns=2 * S)
            await v.submit(OrderRequest(coid(9), "btc", Side.BUY, OrderType.LIMIT, 0.05, 49_999.99))
            v.participant_trade("btc", Side.SELL, 20_000 + 2_000)  # the queue ahead, then 0.02 of our 0.05
            raised = []
            for _ in range(5):  # 0 .. 2 s: the venue's balances move, the ledger's do not (fill not booked)
                raised += bal.check("alpha", await v.balances(), led, clock.now_ns()).raised
                await asyncio.sleep(0.5)
            assert raised == []
            await asyncio.sleep(0.1)
            late = bal.check("alpha", await v.balances(), led, clock.now_ns())
            assert sorted(m.key for m in late.raised) == ["alpha:BTC", "alpha:USDT"]
            btc = next(m for m in late.raised if m.key == "alpha:BTC")
            assert btc.ours == pytest.approx(2.0) and btc.theirs == pytest.approx(2.02)
            assert await sync_fills(v, led, FillSync()) == 1  # the partial fill, booked
            clean = bal.check("alpha", await v.balances(), led, clock.now_ns())
            assert clean.raised == [] and sorted(clean.resolved) == ["alpha:BTC", "alpha:USDT"]

    clock.run(main())


def test_a_balance_mismatch_raised_and_resolved_during_a_run_is_resolved_in_results_sqlite(tmp_path):
    """Money that appears at a venue and leaves again is raised past the lag window, then
    resolved; results.sqlite records both, as the in-memory log does."""
    from orchestration import run, scenario

    from basis_core.config import from_dict
    from basis_core.engine.report import write_run
    from basis_core.results.db import ResultsDB

    async def after_start(runner):
        async def gift():
            venue = runner.venues["gamma"]
            atoms = venue.exchange.accounts.to_atoms("USDT", 1_000.0)
            await asyncio.sleep(1.0)
            venue.credit("USDT", atoms)  # from outside: the ledger never hears of it
            await asyncio.sleep(4.0)
            venue.debit("USDT", atoms)

        asyncio.get_running_loop().create_task(gift())

    data = scenario(duration_s=8.0)
    runner, _, found = run(data, tmp_path, after_start=after_start)
    assert not found, found
    log = runner.reconciler.log
    resolved = [e for e in log.entries if not hasattr(e, "cause") and e.key == "gamma:USDT"]
    assert resolved and not log.open(), log.entries
    write_run(runner, from_dict(data), tmp_path / "run", 1.0)
    with ResultsDB(tmp_path / "run" / "results.sqlite") as db:
        rows = [e for e in db.exceptions(db.runs()[0]["run_id"]) if e["key"] == "gamma:USDT"]
    assert [r["resolved_ns"] for r in rows] == [resolved[0].ts_ns]
