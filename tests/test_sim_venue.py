import asyncio

import pytest
from test_sim_support import (
    START_NS,
    Latency,
    TransferRules,
    VirtualClock,
    book_around,
    linked_venues,
    make_venue,
    run,
    running,
)

from basis_core.errors import OrderNotFound, OrderRejected
from basis_core.schema import Liquidity, OrderType, Side, TransferState
from basis_core.venue import (
    Balance,
    BalanceUpdate,
    Fill,
    FundingPayment,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    TransferInfo,
)


def req(coid, side=Side.BUY, otype=OrderType.LIMIT, qty=0.01, price=49_999.0):
    return OrderRequest(coid, "btc", side, otype, qty, price)


def test_submit_takes_request_plus_response_latency_in_virtual_time():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(request_ms=10.0, response_ms=20.0, jitter_ms=0.0))
        async with running(v):
            book_around(v)
            t0 = clock.now_ns()
            ack = await v.submit(req("1"))
            assert clock.now_ns() - t0 == 30_000_000
            assert ack.status is OrderStatus.OPEN and ack.coid == "1" and ack.venue_order_id
            again = await v.submit(req("1", qty=0.5))  # same coid: the same order, not a new one
            assert again.venue_order_id == ack.venue_order_id and again.qty == 0.01
            assert [o.coid for o in await v.open_orders()] == ["1"]
            canceled = await v.cancel("1")
            assert canceled.status is OrderStatus.CANCELED
            with pytest.raises(OrderNotFound):
                await v.fetch_order("nope")

    clock.run(main())


def test_resting_order_filled_by_another_participant_is_reported_on_the_stream_after_fill_latency():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(fill_ms=50.0, jitter_ms=0.0))
        async with running(v, watch=v) as (user, md):
            book_around(v)
            await v.submit(req("7", price=49_999.99, qty=0.02))  # joins the best bid queue behind 0.2 BTC
            await asyncio.sleep(0.1)
            user.clear()
            v.participant_trade("btc", Side.SELL, 20_000 + 1_000)  # 0.2 ahead of us, then 0.01 of ours
            t_trade = clock.now_ns()
            await asyncio.sleep(0.049)
            assert not [e for e in user if isinstance(e, Fill)]
            await asyncio.sleep(0.002)
            fills = [e for e in user if isinstance(e, Fill)]
            assert len(fills) == 1 and fills[0].qty == 0.01 and fills[0].liquidity == Liquidity.MAKER
            assert fills[0].ts_ns == t_trade and fills[0].fee_asset == "USDT" and fills[0].fee > 0
            updates = [e.order for e in user if isinstance(e, OrderUpdate)]
            assert updates[-1].status is OrderStatus.PARTIALLY_FILLED and updates[-1].filled_qty == 0.01
            page = await v.fills()
            assert [f.trade_id for f in page.fills] == [fills[0].trade_id]
            assert (await v.fills(page.cursor)).fills == ()
            assert any(getattr(e, "price", None) == 49_999.99 for e in md)  # the public trade print

    clock.run(main())


def test_balances_lag_the_fills_by_the_configured_lag():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(balance_lag_ms=2000.0, jitter_ms=0.0))
        async with running(v, watch=v) as (user, _):
            book_around(v)
            before = await v.balances()
            await v.submit(req("1", otype=OrderType.MARKET, price=None, qty=0.1))
            lagging = await v.balances()
            assert lagging["BTC"] == before["BTC"] == Balance("BTC", 2.0, 0.0)
            await asyncio.sleep(2.0)
            now = await v.balances()
            assert now["BTC"].free == pytest.approx(2.1)
            assert now["USDT"].free == pytest.approx(100_000 - 0.1 * 50_000.01 * (1 + 5e-4), abs=1e-6)
            ups = [e for e in user if isinstance(e, BalanceUpdate) and e.balance.asset == "BTC"]
            assert ups and ups[-1].balance.free == pytest.approx(2.1)

    clock.run(main())


def test_rejected_order_raises_typed_error_with_reason():
    async def main():
        v = make_venue(VirtualClock(START_NS))
        async with running(v):
            book_around(v)
            with pytest.raises(OrderRejected) as err:
                await v.submit(req("1", otype=OrderType.POST_ONLY, price=50_001.0))
            assert err.value.reason == "post_only_would_cross"
            with pytest.raises(OrderRejected) as err:
                await v.submit(req("2", qty=0.00001))
            assert err.value.reason == "min_notional"
            with pytest.raises(OrderRejected) as err:
                await v.submit(req("3", qty=3.0))
            assert err.value.reason == "insufficient_funds"
            assert (await v.fetch_order("3")).status is OrderStatus.REJECTED

    run(main())


def test_transfer_goes_sent_confirming_confirmed_and_credits_the_destination_at_the_end():
    clock = VirtualClock(START_NS)

    async def main():
        a, b = linked_venues(
            clock,
            TransferRules(delay_s=30.0, confirmations=3, confirm_interval_s=10.0),
            Latency(balance_lag_ms=0.0),
        )
        async with running(a, b, watch=b) as (user_b, _):
            t0 = clock.now_ns()
            info = await a.transfer("USDT", 1_000.0, "beta")
            assert info.state is TransferState.SENT and info.eta_ns - info.requested_ns == 50 * 10**9
            assert (await a.balances())["USDT"].free == pytest.approx(99_000.0)
            await asyncio.sleep(45.0)
            assert (await b.balances())["USDT"].free == pytest.approx(100_000.0)
            await asyncio.sleep(10.0)
            assert (await b.balances())["USDT"].free == pytest.approx(101_000.0)
            states = [(e.state, e.confirmations) for e in user_b if isinstance(e, TransferInfo)]
            assert states == [
                (TransferState.SENT, 0),
                (TransferState.CONFIRMING, 1),
                (TransferState.CONFIRMING, 2),
                (TransferState.CONFIRMED, 3),
            ]
            done = (await b.transfers())[-1]
            assert done.state is TransferState.CONFIRMED and done.updated_ns - t0 >= 50 * 10**9
            with pytest.raises(OrderRejected) as err:
                await a.transfer("USDT", 10**9, "beta")
            assert err.value.reason == "insufficient_funds"

    clock.run(main())


def test_perp_position_pays_funding_on_schedule():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, perp=True)
        v.funding_interval_s = 3600.0
        async with running(v, watch=v) as (user, _):
            book_around(v, levels=3, lots=1000)
            await v.submit(OrderRequest("1", "btc", Side.BUY, OrderType.MARKET, 0.5))
            pos = (await v.positions())["btc"]
            assert pos.qty == 0.5 and pos.entry_price == pytest.approx(50_000.1)
            v.update_funding("btc", mark=50_000.0, index=49_990.0, rate=0.0001)
            await asyncio.sleep(3600.0)
            with pytest.raises(OrderRejected):  # would flip the position: not reduce-only
                await v.submit(OrderRequest("2", "btc", Side.SELL, OrderType.MARKET, 0.6, reduce_only=True))
            with pytest.raises(OrderRejected):  # same direction as the position
                await v.submit(OrderRequest("3", "btc", Side.BUY, OrderType.MARKET, 0.1, reduce_only=True))
            await v.submit(OrderRequest("4", "btc", Side.SELL, OrderType.MARKET, 0.2, reduce_only=True))
            await v.submit(OrderRequest("5", "btc", Side.BUY, OrderType.MARKET, 0.2))
            pays = [e for e in user if isinstance(e, FundingPayment)]
            assert len(pays) == 1 and pays[0].amount == pytest.approx(-0.5 * 50_000 * 0.0001)
            assert (await v.positions())["btc"].funding_paid == pytest.approx(2.5)

    clock.run(main())


def test_client_order_ids_travel_as_decimal_strings():
    from basis_core.schema import make_coid
    from basis_core.venue import coid_from_wire, coid_to_wire

    coid = make_coid(123456789, 3)
    assert coid_to_wire(coid) == str(coid) and coid_from_wire(str(coid)) == coid
    assert coid_from_wire(str(2**64)) is None and coid_from_wire("x-TKT5PX2F") is None
    assert coid_from_wire("007") is None
    with pytest.raises(ValueError):
        coid_to_wire(0)


@pytest.mark.parametrize(
    "kwargs",
    [dict(qty=float("nan")), dict(qty=-1.0), dict(price=float("inf")), dict(price=None), dict(coid="")],
)
def test_bad_order_requests_are_refused_before_any_venue_sees_them(kwargs):
    args = (
        dict(coid="1", instrument="btc", side=Side.BUY, type=OrderType.LIMIT, qty=0.01, price=100.0) | kwargs
    )
    with pytest.raises(OrderRejected) as err:
        OrderRequest(**args)
    assert err.value.reason == "bad_input"


def test_a_bounded_event_log_holds_the_newest_items_and_hashes_every_one():
    from adapters.sim.venue import EventLog

    whole, bounded = EventLog(), EventLog(keep=100)
    for i in range(1_000):
        item = (i, "md", f"event {i}")
        whole.append(item)
        bounded.append(item)
        assert len(bounded) <= 200
    assert bounded.count == whole.count == len(whole) == 1_000
    assert list(bounded) == list(whole)[-len(bounded) :]
    assert bounded.digest() == whole.digest()
    bounded.append((1_000, "md", "one more"))
    assert bounded.digest() != whole.digest()
