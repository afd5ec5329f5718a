import asyncio

import pytest
from test_sim_support import (
    START_NS,
    Fault,
    FaultSchedule,
    Latency,
    TransferRules,
    VirtualClock,
    book_around,
    linked_venues,
    make_venue,
    running,
)

from basis_core.configio import build
from basis_core.errors import (
    ConfigError,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueUnavailable,
)
from basis_core.schema import OrderType, Side, TransferState, VenueReport
from basis_core.venue import (
    BalanceUpdate,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    TransferInfo,
    VenueStatus,
)

LAT = Latency(
    request_ms=5.0, response_ms=5.0, jitter_ms=0.0, fill_ms=2.0, balance_lag_ms=0.0, timeout_ms=1000.0
)


def req(coid, price=49_999.99, qty=0.01, otype=OrderType.LIMIT, side=Side.BUY):
    return OrderRequest(coid, "btc", side, otype, qty, price)


def scenario(faults, body, latency=LAT, seed=1):
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, faults=faults, latency=latency, seed=seed)
        async with running(v, watch=v) as (user, _):
            book_around(v)
            out = await body(v, clock, user)
        return out, v

    return clock.run(main())


@pytest.mark.parametrize("reached", ["yes", "no"])
def test_timeout_fires_on_the_scheduled_submit_and_the_order_may_or_may_not_be_live(reached):
    async def body(v, clock, user):
        await v.submit(req("1"))
        t0 = clock.now_ns()
        with pytest.raises(RequestTimeout):
            await v.submit(req("2"))
        assert clock.now_ns() - t0 == pytest.approx(1e9, abs=1e6)
        if reached == "yes":
            assert (await v.fetch_order("2")).status is OrderStatus.OPEN
        else:
            with pytest.raises(OrderNotFound):
                await v.fetch_order("2")
        await v.submit(req("3"))  # only the 2nd submit was scheduled to time out

    _, v = scenario([Fault("timeout", nth=2, reached=reached)], body)
    assert [f.kind for f in v.faults.log] == ["timeout"]


def test_random_timeout_outcome_is_the_same_for_the_same_seed_and_varies_with_it():
    def outcome(seed):
        async def body(v, clock, user):
            seen = []
            for i in range(1, 13):
                try:
                    await v.submit(req(str(i)))
                    seen.append("ok")
                except RequestTimeout:
                    try:
                        await v.fetch_order(str(i))
                        seen.append("live")
                    except OrderNotFound:
                        seen.append("lost")
            return seen

        return scenario([Fault("timeout", count=0, probability=0.5)], body, seed=seed)[0]

    a, b = outcome(3), outcome(3)
    assert a == b
    assert {"ok", "live", "lost"} <= set(a)
    assert any(outcome(s) != a for s in (4, 5, 6))


def test_rate_limit_burst_answers_429_with_retry_after_inside_its_window_only():
    async def body(v, clock, user):
        await v.submit(req("1"))
        await asyncio.sleep(1.0)
        with pytest.raises(RateLimited) as err:
            await v.submit(req("2"))
        assert err.value.retry_after_s == 0.5
        st = await v.status()
        assert st.state is VenueReport.RATE_LIMITED and st.until_ns == START_NS + 3 * 10**9
        with pytest.raises(RateLimited):
            await v.balances()
        await asyncio.sleep(2.0)
        assert (await v.submit(req("3"))).status is OrderStatus.OPEN
        assert (await v.status()).state is VenueReport.OK

    scenario([Fault("rate_limit", start_s=1.0, duration_s=2.0, retry_after_s=0.5)], body)


def test_maintenance_window_refuses_requests_and_reports_until_when():
    async def body(v, clock, user):
        await asyncio.sleep(5.0)
        with pytest.raises(VenueUnavailable):
            await v.submit(req("1"))
        with pytest.raises(VenueUnavailable):
            await v.cancel("1")
        st = await v.status()
        assert st.state is VenueReport.MAINTENANCE and st.until_ns == START_NS + 10 * 10**9
        await asyncio.sleep(6.0)
        assert (await v.submit(req("2"))).status is OrderStatus.OPEN
        return clock

    (clock, v) = scenario([Fault("maintenance", venue="alpha", start_s=4.0, duration_s=6.0)], body)
    pushed = [
        (it[0] - START_NS, it[2].state) for it in v.log if it[1] == "md" and isinstance(it[2], VenueStatus)
    ]
    assert pushed == [(4 * 10**9, VenueReport.MAINTENANCE), (10 * 10**9, VenueReport.OK)]


@pytest.mark.parametrize("reason", ["insufficient_funds", "min_notional", "post_only_would_cross"])
def test_scheduled_reject_refuses_an_otherwise_valid_order_with_that_reason(reason):
    async def body(v, clock, user):
        with pytest.raises(OrderRejected) as err:
            await v.submit(req("1"))
        assert err.value.reason == reason
        assert (await v.fetch_order("1")).status is OrderStatus.REJECTED
        assert (await v.submit(req("2"))).status is OrderStatus.OPEN

    scenario([Fault("reject", reason=reason)], body)


def test_lost_ack_leaves_a_live_order_the_client_never_heard_about():
    async def body(v, clock, user):
        t0 = clock.now_ns()
        with pytest.raises(RequestTimeout):
            await v.submit(req("1"))
        assert clock.now_ns() - t0 == pytest.approx(1e9, abs=1e6)  # the client's timeout
        await asyncio.sleep(0.1)
        assert not [e for e in user if isinstance(e, OrderUpdate) and e.order.coid == "1"]
        assert [o.coid for o in await v.open_orders()] == ["1"]
        assert (await v.fetch_order("1")).status is OrderStatus.OPEN

    scenario([Fault("ack_lost")], body)


def test_cancel_fill_race_cancel_answers_filled():
    async def body(v, clock, user):
        await v.submit(req("1"))
        got = await v.cancel("1")
        assert got.status is OrderStatus.FILLED and got.filled_qty == 0.01
        assert [f.coid for f in (await v.fills()).fills] == ["1"]
        assert (await v.fetch_order("1")).status is OrderStatus.FILLED

    scenario([Fault("cancel_fill_race")], body)


def test_fill_report_arrives_after_the_cancel_ack():
    async def body(v, clock, user):
        await v.submit(req("1", qty=0.02))
        await asyncio.sleep(0.1)
        user.clear()
        got = await v.cancel("1")
        assert got.status is OrderStatus.CANCELED and got.filled_qty == 0.01
        answered = clock.now_ns()
        await asyncio.sleep(0.1)
        kinds = [
            (type(e).__name__, getattr(getattr(e, "order", None), "status", None))
            for e in user
            if isinstance(e, (Fill, OrderUpdate))
        ]
        assert kinds[0] == ("OrderUpdate", OrderStatus.CANCELED)
        assert ("Fill", None) in kinds[1:]
        fill_ts = [e for e in user if isinstance(e, Fill)][0].ts_ns
        assert fill_ts < answered  # it happened before the ack, but was reported after it

    scenario([Fault("fill_after_cancel_ack")], body)


def test_balance_delay_window_makes_balances_lag_more():
    async def body(v, clock, user):
        await asyncio.sleep(1.0)
        before = (await v.balances())["BTC"].free
        await v.submit(req("1", otype=OrderType.MARKET, price=None, qty=0.1))
        await asyncio.sleep(2.0)
        assert (await v.balances())["BTC"].free == before
        await asyncio.sleep(2.0)
        assert (await v.balances())["BTC"].free == pytest.approx(before + 0.1)

    scenario([Fault("balance_delay", start_s=0.5, duration_s=10.0, delay_s=3.0)], body)


def test_balance_update_held_back_arrives_after_later_ones():
    async def body(v, clock, user):
        await asyncio.sleep(0.5)
        user.clear()
        await v.submit(req("1", otype=OrderType.MARKET, price=None, qty=0.1))
        await v.submit(req("2", otype=OrderType.MARKET, price=None, qty=0.1))
        await asyncio.sleep(3.0)
        ids = [e.update_id for e in user if isinstance(e, BalanceUpdate)]
        assert len(ids) >= 3 and ids != sorted(ids)

    scenario([Fault("balance_reorder", nth=1, delay_s=1.0, start_s=0.4)], body)


def test_transfer_delay_adds_to_the_transfer_time():
    clock = VirtualClock(START_NS)

    async def main():
        faults = FaultSchedule((Fault("transfer_delay", delay_s=60.0),), seed=1, start_ns=START_NS)
        a, b = linked_venues(clock, TransferRules(delay_s=10.0, confirmations=1), LAT, faults)
        async with running(a, b, watch=b) as (user, _):
            info = await a.transfer("BTC", 0.5, "beta")
            assert info.eta_ns - info.requested_ns == 70 * 10**9
            await asyncio.sleep(65.0)
            assert (await b.transfers())[-1].state is TransferState.SENT
            await asyncio.sleep(10.0)
            assert (await b.transfers())[-1].state is TransferState.CONFIRMED
            assert [e.state for e in user if isinstance(e, TransferInfo)][-1] is TransferState.CONFIRMED

    clock.run(main())


def test_same_seed_gives_the_same_venue_event_log_and_fault_firings():
    def once(seed):
        async def body(v, clock, user):
            for i in range(1, 30):
                try:
                    await v.submit(req(str(i), qty=0.01 * (1 + i % 3)))
                    if i % 4 == 0:
                        await v.cancel(str(i - 1))
                except (RequestTimeout, OrderRejected):
                    pass
                v.participant_trade("btc", Side.SELL if i % 2 else Side.BUY, 500 * i)

        faults = [
            Fault("timeout", count=0, probability=0.3),
            Fault("cancel_fill_race", probability=0.5, count=0),
        ]
        _, v = scenario(faults, body, latency=Latency(jitter_ms=3.0), seed=seed)
        return list(v.log), repr(v.faults.log)

    assert once(11) == once(11)
    assert once(11) != once(12)


def test_fault_tables_are_validated_with_key_paths():
    with pytest.raises(ConfigError) as err:
        build(Fault, {"kind": "meteor"}, "faults[0]")
    assert err.value.path == "faults[0].kind"
    with pytest.raises(ConfigError) as err:
        build(Fault, {"kind": "maintenance", "on": "submit"}, "faults[1]")
    assert err.value.path == "faults[1].on"
    with pytest.raises(ConfigError) as err:
        build(Fault, {"kind": "reject", "reason": "because"}, "faults[2]")
    assert err.value.path == "faults[2].reason"


def test_timed_out_cancel_of_an_unknown_order_is_still_a_timeout():
    async def body(v, clock, user):
        with pytest.raises(RequestTimeout):
            await v.cancel("never-sent")

    scenario([Fault("timeout", on="cancel", reached="yes")], body)
