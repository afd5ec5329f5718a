"""CcxtVenue end to end: the real ccxt async client against the exchange emulator on loopback."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from adapters.ccxt import CcxtVenue, Credentials, parsing
from adapters.ccxt.config import from_dict
from adapters.emulator import RateLimitsConfig
from adapters.emulator.harness import binance_client, standard_emulator
from basis_core.errors import (
    AuthenticationFailed,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueUnavailable,
)
from basis_core.schema import OrderType, Side
from basis_core.state.tables import EngineEvent, VenueEvent
from basis_core.venue import OrderRequest, OrderStatus
from basis_ext import router as R

KEY, SECRET = "k3y-Alice-7f3a9c", "s3cret-Alice-b81d44e0"
KEYS = {KEY: (SECRET, "alice")}


def run(coro):
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def venue(limits=None, timeout_ms=400, secret=SECRET, **cfg):
    emu = standard_emulator(KEYS, limits=limits)
    await emu.start()
    config = from_dict(
        {
            "base_url": emu.url,
            "timeout_ms": timeout_ms,
            "instruments": {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"},
            **cfg,
        }
    )
    events = []
    v = CcxtVenue(
        "emu", config, Credentials(KEY, secret), venue_id=4, observer=lambda ev, err: events.append((ev, err))
    )
    try:
        await v.start()
        yield emu, v, events
    finally:
        await v.close()
        await emu.stop()


def buy(coid, qty=0.001, price=40000.0, inst="BTCUSDT", otype=OrderType.LIMIT):
    return OrderRequest(coid, inst, Side.BUY, otype, qty, price)


def test_instruments_come_from_the_venue():
    async def body():
        async with venue() as (emu, v, _):
            btc = v.instruments()["BTCUSDT"]
            assert (btc.symbol, btc.tick, btc.lot, btc.min_notional) == ("BTC/USDT", 0.01, 0.00001, 5.0)

    run(body())


def test_place_fetch_cancel_by_our_client_order_id():
    async def body():
        async with venue() as (emu, v, _):
            ack = await v.submit(buy("1001"))
            assert (ack.coid, ack.status, ack.qty, ack.price) == ("1001", OrderStatus.OPEN, 0.001, 40000.0)
            assert [p.coid for p in emu.orders_of("alice")] == ["1001"]
            got = await v.fetch_order("1001")
            assert got.venue_order_id == ack.venue_order_id and got.status == OrderStatus.OPEN
            assert [o.coid for o in await v.open_orders("BTCUSDT")] == ["1001"]
            canceled = await v.cancel("1001")
            assert (canceled.coid, canceled.status) == ("1001", OrderStatus.CANCELED)
            assert await v.open_orders() == []
            again = await v.cancel("1001")  # already terminal: returned unchanged
            assert again.status == OrderStatus.CANCELED
            with pytest.raises(OrderNotFound):
                await v.fetch_order("999", "BTCUSDT")
            with pytest.raises(OrderNotFound):
                await v.fetch_order("999")  # instrument unknown to us

    run(body())


def test_submit_is_idempotent_by_client_order_id():
    async def body():
        async with venue() as (emu, v, _):
            first = await v.submit(buy("1101"))
            second = await v.submit(buy("1101"))
            assert second.venue_order_id == first.venue_order_id
            assert len(emu.orders_of("alice")) == 1

    run(body())


def test_partial_fill_then_fills_and_balances_reconcile():
    async def body():
        async with venue() as (emu, v, _):
            ack = await v.submit(buy("1201", qty=0.5, price=50000.01))
            assert (ack.status, ack.filled_qty, ack.avg_price) == (
                OrderStatus.PARTIALLY_FILLED,
                0.3,
                50000.01,
            )
            assert ack.fee == pytest.approx(0.3 * 50000.01 * 0.001) and ack.fee_asset == "USDT"
            page = await v.fills()
            assert [(f.coid, f.qty, f.price) for f in page.fills] == [("1201", 0.3, 50000.01)]
            emu.trade_against("BTCUSDT", Side.SELL, 0.2)
            page2 = await v.fills(page.cursor)
            assert [(f.coid, f.qty, f.liquidity.name) for f in page2.fills] == [("1201", 0.2, "MAKER")]
            assert (await v.fills(page2.cursor)).fills == ()
            done = await v.fetch_order("1201")
            assert (done.status, done.filled_qty) == (OrderStatus.FILLED, 0.5)
            bal = await v.balances()
            assert bal["BTC"].free == pytest.approx(2.5) and bal["USDT"].locked == 0.0
            spent = 0.3 * 50000.01 * 1.001 + 0.2 * 50000.01 * 1.0002
            assert bal["USDT"].free == pytest.approx(100_000 - spent, abs=1e-6)

    run(body())


def test_fills_of_orders_we_did_not_send_are_resolved_by_venue_id():
    async def body():
        async with venue() as (emu, v, _):
            ex = binance_client(emu.url, KEY, SECRET)
            try:
                await ex.create_order("ETH/USDT", "market", "buy", 0.5, None, {"clientOrderId": "manual-1"})
            finally:
                await ex.close()
            page = await v.fills()
            assert [(f.coid, f.instrument) for f in page.fills] == [("manual-1", "ETHUSDT")]

    run(body())


def test_a_cancel_that_loses_the_race_to_a_fill_returns_the_filled_order():
    async def body():
        async with venue() as (emu, v, _):
            await v.submit(buy("1301", qty=0.01, price=49000.0))
            emu.faults.fill_on_cancel = True
            out = await v.cancel("1301")
            assert (out.status, out.filled_qty) == (OrderStatus.FILLED, 0.01)

    run(body())


def test_insufficient_funds_is_a_reject_with_its_reason():
    async def body():
        async with venue() as (emu, v, _):
            with pytest.raises(OrderRejected) as ei:
                await v.submit(buy("1401", qty=3.0, price=49000.0))  # 147 000 USDT > 100 000
            assert ei.value.reason == "insufficient_funds"
            emu.faults.insufficient_balance = 1
            with pytest.raises(OrderRejected) as ei:
                await v.submit(buy("1402"))
            assert ei.value.reason == "insufficient_funds" and ei.value.code == "insufficient_funds"
            assert emu.orders_of("alice") == []

    run(body())


def test_filter_failures_map_to_reasons_and_off_grid_orders_never_leave():
    async def body():
        async with venue() as (emu, v, _):
            with pytest.raises(OrderRejected) as ei:
                await v.submit(buy("1501", qty=0.00001, price=50000.0))  # 0.5 USDT < NOTIONAL 5
            assert ei.value.reason == "min_notional"
            emu.faults.filter_failure, emu.faults.filter_failure_count = "LOT_SIZE", 1
            with pytest.raises(OrderRejected) as ei:
                await v.submit(buy("1502"))
            assert ei.value.reason == "lot_size"
            sent = len(emu.log)
            with pytest.raises(OrderRejected) as ei:
                await v.submit(buy("1503", qty=0.0010001))  # off the lot grid
            assert ei.value.reason == "lot_size"
            with pytest.raises(OrderRejected) as ei:
                await v.submit(buy("1504", price=40000.005))  # off the tick grid
            assert ei.value.reason == "bad_input"
            assert len(emu.log) == sent
            with pytest.raises(OrderRejected) as ei:
                await v.submit(OrderRequest("1505", "BTCUSDT", Side.BUY, OrderType.POST_ONLY, 0.001, 50001.0))
            assert ei.value.reason == "post_only_would_cross"

    run(body())


def test_protected_market_order_goes_as_limit_ioc_at_its_bound():
    async def body():
        async with venue() as (emu, v, _):
            out = await v.submit(buy("1601", qty=0.5, price=50000.01, otype=OrderType.MARKET))
            assert out.type == OrderType.MARKET
            assert (out.status, out.filled_qty) == (OrderStatus.EXPIRED, 0.3)  # never past the bound
            plain = await v.submit(OrderRequest("1602", "ETHUSDT", Side.SELL, OrderType.MARKET, 1.0))
            assert (plain.status, plain.filled_qty, plain.avg_price) == (OrderStatus.FILLED, 1.0, 3000.0)

    run(body())


def test_bad_signature_is_an_authentication_failure_and_marks_the_venue_down():
    async def body():
        async with venue(secret="wrong-secret-value") as (emu, v, events):
            with pytest.raises(AuthenticationFailed) as ei:
                await v.balances()
            assert ei.value.code == "auth"
            assert [e for e, _ in events] == [VenueEvent.DISCONNECTED]
            assert emu.log[-1] == ("GET", "/api/v3/account", 400)
            with pytest.raises(AuthenticationFailed):
                await v.submit(buy("1701"))
            assert emu.orders_of("alice") == []

    run(body())


@pytest.mark.parametrize("style", ["json", "html"])
def test_maintenance_is_venue_unavailable_and_reports_quarantine(style):
    async def body():
        async with venue(max_attempts=2, backoff_s=0.01) as (emu, v, events):
            emu.faults.maintenance = style
            with pytest.raises(VenueUnavailable):
                await v.balances()  # retried once, then raised
            assert [e for e, _ in events] == [VenueEvent.MAINTENANCE] * 2
            assert (await v.status()).state.name == "MAINTENANCE"
            emu.faults.maintenance = ""
            assert (await v.status()).state.name == "OK"

    run(body())


def test_429_is_rate_limited_with_retry_after_and_the_gate_holds_until_then():
    async def body():
        limits = RateLimitsConfig(
            weight_limit=45, weight_window_s=1.0, ban_after=2, ban_s=30.0, publish=False
        )
        async with venue(limits=limits, max_backoff_s=0.5, backoff_s=0.01) as (emu, v, events):
            errors = []
            for _ in range(4):
                try:
                    await v.balances()  # weight 20 each
                except RateLimited as err:
                    errors.append(err)
            assert errors, "the emulator's 45-per-second weight limit must have been hit"
            venue_said = [e for e in errors if e.code == "rate_limited"]
            held_here = [e for e in errors if e.code == "throttled"]  # refused without a request
            assert venue_said and all(e.retry_after_s == 1.0 for e in venue_said)
            assert all(0 < e.retry_after_s <= 1.0 for e in held_here)
            assert sum(1 for _, _, s in emu.log if s == 429) == len(venue_said)
            kinds = [e for e, _ in events]
            assert VenueEvent.RATE_LIMITED in kinds and EngineEvent.RATE_LIMITED in kinds
            assert 418 not in [s for _, _, s in emu.log], "the gate must wait out Retry-After"
            assert v.gate.throttle.blocked_until > 0

    run(body())


def test_a_429_storm_never_reaches_a_ban_and_hedges_leave_before_entries():
    async def body():
        limits = RateLimitsConfig(
            orders_limit=2, orders_window_s=1.0, ban_after=10, ban_s=30.0, publish=False
        )
        async with venue(limits=limits, max_attempts=4, max_backoff_s=2.0, backoff_s=0.01) as (
            emu,
            v,
            events,
        ):
            first = len(v.gate.admitted)
            entries = [v.submit(buy(str(2000 + i)), R.ENTRY) for i in range(4)]
            hedges = [
                v.submit(
                    OrderRequest(str(3000 + i), "ETHUSDT", Side.SELL, OrderType.LIMIT, 0.01, 3100.0), R.HEDGE
                )
                for i in range(2)
            ]
            results = await asyncio.gather(*entries, *hedges, return_exceptions=True)
            admitted = [p for _, p in v.gate.admitted[first:]]
            assert admitted[:6] == [R.HEDGE, R.HEDGE] + [R.ENTRY] * 4  # queued together: hedges first
            assert all(not isinstance(r, Exception) for r in results), results
            placed = [p.coid for p in emu.orders_of("alice")]
            assert sorted(placed) == sorted(["2000", "2001", "2002", "2003", "3000", "3001"])
            statuses = [s for _, _, s in emu.log]
            assert 429 in statuses and 418 not in statuses
            assert EngineEvent.RATE_LIMITED in [e for e, _ in events]

    run(body())


@pytest.mark.parametrize("placed", [True, False])
def test_a_submit_that_times_out_is_looked_up_by_client_id_before_any_resend(placed):
    async def body():
        async with venue(timeout_ms=300) as (emu, v, events):
            emu.faults.slow_submit, emu.faults.slow_submit_placed, emu.faults.slow_s = 1, placed, 0.6
            out = await v.submit(buy("1801"))
            assert (out.coid, out.status) == ("1801", OrderStatus.OPEN)
            assert [p.coid for p in emu.orders_of("alice")] == ["1801"]  # exactly one, either way
            lookups = [s for m, p, s in emu.log if (m, p) == ("GET", "/api/v3/order")]
            assert lookups[0] == (200 if placed else 400)
            kinds = [e for e, _ in events]
            assert kinds[:2] == [VenueEvent.TIMEOUT, VenueEvent.VERIFIED]
            await asyncio.sleep(0.4)  # let the held answer finish
            posts = [m for m, p, _ in emu.log if (m, p) == ("POST", "/api/v3/order")]
            assert len(posts) == (1 if placed else 2)

    run(body())


def test_a_submit_timing_out_twice_without_the_order_placed_raises_timeout():
    async def body():
        async with venue(timeout_ms=300) as (emu, v, events):
            emu.faults.slow_submit, emu.faults.slow_submit_placed, emu.faults.slow_s = 2, False, 0.5
            with pytest.raises(RequestTimeout):
                await v.submit(buy("1901"))
            assert emu.orders_of("alice") == []

    run(body())


def test_an_empty_200_answer_is_malformed_and_the_order_is_verified_by_client_id():
    async def body():
        async with venue() as (emu, v, events):
            emu.faults.empty_reply = 1
            out = await v.submit(buy("2101"))
            assert (out.coid, out.status) == ("2101", OrderStatus.OPEN) and out.venue_order_id
            assert [e for e, _ in events] == [VenueEvent.VERIFIED]
            assert len(emu.orders_of("alice")) == 1
            with pytest.raises(MalformedResponse, match="without order id or status"):
                parsing.order("emu", v._ex.parse_order({}), "BTCUSDT")

    run(body())


def test_requests_carry_deterministic_sequence_numbers_in_dispatch_order():
    async def body():
        async with venue() as (emu, v, _):
            start = v.gate.router.sequencer.peek(4)
            await v.submit(buy("2201"))
            await v.fetch_order("2201")
            await v.cancel("2201")  # the cancel, then the order's trades (a fill it lost to)
            seqs = [s for s, _ in v.gate.admitted]
            assert seqs[-4:] == [start, start + 1, start + 2, start + 3]
            assert [p for _, p in v.gate.admitted][-4:] == [R.ENTRY, R.QUERY, R.CANCEL, R.CANCEL]

    run(body())


def test_market_data_polls_rest_snapshots_until_close():
    async def body():
        async with venue(timeout_ms=1000) as (emu, v, _):
            v.poll_s = 0.05
            stream = v.market_data(["BTCUSDT"])
            first = await stream.__anext__()
            assert first.snapshot and first.bids[0] == (50000.0, 0.5) and first.asks[0] == (50000.01, 0.3)
            emu.set_book("BTCUSDT", [(49000.0, 1.0)], [(49001.0, 2.0)])
            second = await stream.__anext__()
            assert second.bids == ((49000.0, 1.0),) and second.asks == ((49001.0, 2.0),)
            await stream.aclose()

    run(body())


def test_market_data_over_the_websocket_through_ccxt_pro():
    async def body():
        async with venue(timeout_ms=1000, market_data="ws") as (emu, v, _):
            stream = v.market_data(["ETHUSDT"])
            first = await asyncio.wait_for(stream.__anext__(), 5)
            assert first.bids[0] == (3000.0, 5.0)
            emu.trade_against("ETHUSDT", Side.SELL, 2.0)
            nxt = await asyncio.wait_for(stream.__anext__(), 5)
            assert nxt.bids[0] == (3000.0, 3.0) and nxt.update_id == first.update_id + 1
            await stream.aclose()

    run(body())


def test_degraded_routing_slows_refill_and_restores():
    async def body():
        async with venue(degraded_rate=0.25) as (emu, v, _):
            v.set_degraded(True)
            assert v.gate.throttle.rate_factor == 0.25
            await v.submit(buy("2301"))  # still served: the burst is there
            v.set_degraded(False)
            assert v.gate.throttle.rate_factor == 1.0

    run(body())


def test_resubmitting_a_refused_order_sends_it_again_after_a_lookup():
    async def body():
        async with venue() as (emu, v, _):
            emu.faults.insufficient_balance = 1
            with pytest.raises(OrderRejected):
                await v.submit(buy("2401"))
            out = await v.submit(buy("2401"))
            assert out.status == OrderStatus.OPEN
            methods = [(m, s) for m, p, s in emu.log if p == "/api/v3/order"]
            assert methods == [("POST", 400), ("GET", 400), ("POST", 200)]
            assert [p.coid for p in emu.orders_of("alice")] == ["2401"]

    run(body())


def test_a_long_retry_after_refuses_at_once_instead_of_queueing_stale_requests():
    async def body():
        async with venue(max_backoff_s=0.5) as (emu, v, _):
            sent = len(emu.log)
            v.gate.penalize(30.0)
            with pytest.raises(RateLimited) as ei:
                await v.submit(buy("2501"))
            assert ei.value.code == "throttled" and 29 < ei.value.retry_after_s <= 30
            assert len(emu.log) == sent  # nothing left
            v.gate.throttle.block_until(0)  # never shortens a block
            with pytest.raises(RateLimited):
                await v.balances()

    run(body())


def test_without_adapter_verification_an_unknown_outcome_is_raised_for_the_caller_to_verify():
    async def body():
        async with venue(timeout_ms=300, verify_submits=False) as (emu, v, events):
            emu.faults.empty_reply = 1
            with pytest.raises(MalformedResponse):
                await v.submit(buy("2601"))
            emu.faults.slow_submit, emu.faults.slow_s = 1, 0.5
            with pytest.raises(RequestTimeout):
                await v.submit(buy("2602"))
            assert [e for e, _ in events] == [VenueEvent.TIMEOUT]  # no lookup was made here
            assert (await v.fetch_order("2601")).status == OrderStatus.OPEN  # the caller's lookup
            await asyncio.sleep(0.3)
            assert sorted(p.coid for p in emu.orders_of("alice")) == ["2601", "2602"]

    run(body())


def test_closing_ends_the_gate_even_when_a_wake_up_races_the_cancel():
    async def body():
        from adapters.ccxt.constants import BINANCE_ENDPOINTS, BINANCE_POOLS, ENDPOINT_NAMES
        from adapters.ccxt.dispatch import Gate, build_throttle

        for _ in range(50):
            gate = Gate(1, build_throttle(BINANCE_POOLS, BINANCE_ENDPOINTS, 0, ENDPOINT_NAMES))
            await gate.admit(0, R.QUERY)
            await asyncio.sleep(0)
            gate.penalize(0.0)  # the pump's waiter completes ...
            await asyncio.wait_for(gate.close(), 2.0)  # ... as the cancel lands: close still ends
            with pytest.raises(RateLimited):
                await gate.admit(0, R.QUERY)

    run(body())
