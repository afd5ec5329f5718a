"""What real venues do, met by the real ccxt client against the exchange emulator on loopback:
a clock that is off by seconds, limits the venue publishes and counts, an IP ban, a cancel that
loses to a fill while the venue's order view lags, and configuration found wrong only at start."""

from __future__ import annotations

import asyncio
import contextlib
import time

import ccxt
import pytest

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.client import _headers, _status
from adapters.ccxt.config import from_dict
from adapters.emulator import RateLimitsConfig
from adapters.emulator.harness import binance_client, standard_emulator
from basis_core import schema as S
from basis_core.engine.io import VenueIO
from basis_core.errors import (
    ConfigError,
    IpBanned,
    OrderNotFound,
    RateLimited,
    VenueError,
    VenueUnavailable,
)
from basis_core.registry import Registry
from basis_core.schema import OrderType, Side
from basis_core.state.tables import VENUE, EngineEvent, VenueEvent, VenueState
from basis_core.venue import OrderRequest, OrderStatus
from basis_core.venue_errors import Call, outcome_of, report_of

KEY, SECRET = "k3y-Bob-5e1d0c", "s3cret-Bob-a90f37c2"
KEYS = {KEY: (SECRET, "bob")}


def run(coro):
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def venue(limits=None, skew_ms=0, **cfg):
    emu = standard_emulator(KEYS, limits=limits)
    emu.faults.clock_skew_ms = skew_ms
    await emu.start()
    config = from_dict(
        {
            "base_url": emu.url,
            "timeout_ms": 1000,
            "instruments": {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"},
            **cfg,
        }
    )
    events: list = []
    v = CcxtVenue("emu", config, Credentials(KEY, SECRET), observer=lambda ev, err: events.append(ev))
    try:
        await v.start()
        yield emu, v, events
    finally:
        await v.close()
        await emu.stop()


def buy(coid, qty=0.01, price=49_999.5):
    return OrderRequest(coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, qty, price)


def statuses(emu, path=None) -> list[int]:
    return [s for _, p, s in emu.log if path is None or p == path]


# -- the venue's clock -------------------------------------------------------------------------


@pytest.mark.parametrize("skew_ms", [5_000, -5_000])
def test_a_venue_clock_seconds_off_is_measured_at_start_and_signed_calls_work(skew_ms):
    async def body():
        async with venue(skew_ms=skew_ms, recv_window_ms=3000) as (emu, v, _):
            assert abs(v.clock_offset_ms - skew_ms) < 250
            ack = await v.submit(buy("1"))
            assert (await v.fetch_order("1")).venue_order_id == ack.venue_order_id
            assert (await v.cancel("1")).status == OrderStatus.CANCELED
            assert await v.balances()
            assert 400 not in statuses(emu)  # no -1021 on the way
            raw = binance_client(emu.url, KEY, SECRET)  # the same client without the offset
            raw.options["recvWindow"] = 3000
            try:
                with pytest.raises(ccxt.InvalidNonce):
                    await raw.fetch_balance()
            finally:
                await raw.close()

    run(body())


@pytest.mark.parametrize("new_skew_ms", [6_000, -6_000])
def test_a_clock_that_moves_mid_run_is_measured_again_on_the_timestamp_error(new_skew_ms):
    async def body():
        async with venue(recv_window_ms=3000) as (emu, v, events):
            assert abs(v.clock_offset_ms) < 250
            await v.submit(buy("10"))
            emu.faults.clock_skew_ms = new_skew_ms  # the venue's clock jumps
            ack = await v.submit(buy("11"))  # -1021, re-measured, sent once more
            assert ack.status == OrderStatus.OPEN
            assert abs(v.clock_offset_ms - new_skew_ms) < 250
            assert [p.coid for p in emu.orders_of("bob")] == ["10", "11"]
            assert statuses(emu, "/api/v3/order").count(400) == 1
            assert (await v.cancel("11")).status == OrderStatus.CANCELED
            assert VenueEvent.MAINTENANCE not in events  # cured: the venue's health untouched

    run(body())


def test_a_timestamp_error_that_persists_is_a_typed_error_that_quarantines_the_venue():
    async def body():
        async with venue(recv_window_ms=3000) as (emu, v, events):
            emu.faults.clock_skew_ms = 8_000
            emu.faults.time_endpoint_error_ms = -8_000  # its time endpoint misreports its clock
            with pytest.raises(VenueUnavailable) as ei:
                await v.submit(buy("20"))
            assert ei.value.code == "clock_skew"
            assert VenueEvent.MAINTENANCE in events
            assert report_of(ei.value) == S.VenueReport.MAINTENANCE  # the io path: QUARANTINED
            assert emu.orders_of("bob") == []
            assert (await v.status()).state == S.VenueReport.MAINTENANCE  # its book answers, signing fails
            emu.faults.time_endpoint_error_ms = 0  # the venue answers the truth again
            assert (await v.status()).state == S.VenueReport.OK  # measured again, a signed call passed
            assert (await v.submit(buy("21"))).status == OrderStatus.OPEN

    run(body())


# -- the venue's limits ------------------------------------------------------------------------


def test_published_limits_lower_than_the_defaults_keep_a_concurrent_burst_under_them():
    limits = RateLimitsConfig(weight_limit=400, weight_window_s=2.0, orders_limit=5, orders_window_s=1.0)

    async def body():
        async with venue(limits=limits) as (emu, v, _):
            pools = v.gate.limits.pools
            assert pools["weight_2s"].limit == pytest.approx(360.0)  # 90 % of what it publishes
            assert pools["orders_1s"].limit == pytest.approx(4.5)
            assert pools["orders_1d"].limit == 180_000.0  # the default, no higher than published
            assert pools["weight_1m"].limit == 5400.0  # the default where it is the lower one
            assert "orders_10s" not in pools  # 4.5 a second keeps it: a pool fewer
            books = [v.book("BTCUSDT", 5) for _ in range(100)]  # 500 weight
            orders = [v.submit(buy(str(100 + i), price=40_000.0)) for i in range(10)]
            t0 = time.monotonic()
            got = await asyncio.gather(*books, *orders, return_exceptions=True)
            took = time.monotonic() - t0
            assert not [g for g in got if isinstance(g, BaseException)], got
            assert 429 not in statuses(emu) and 418 not in statuses(emu)
            assert len(emu.orders_of("bob")) == 10
            assert took > 1.0  # paced, not sent at once
            raw = binance_client(emu.url, KEY, SECRET)  # the same burst unpaced is refused
            try:
                await raw.load_markets()
                t0 = time.monotonic()
                unpaced = await asyncio.gather(
                    *[raw.fetch_order_book("BTC/USDT", 5) for _ in range(100)], return_exceptions=True
                )
                # refused, unless a loaded machine spread the 100 requests over more than a window
                refused = any(isinstance(r, ccxt.DDoSProtection) for r in unpaced)
                assert refused or time.monotonic() - t0 > limits.weight_window_s
            finally:
                await raw.close()

    run(body())


def test_the_used_weight_header_corrects_the_local_count():
    limits = RateLimitsConfig(weight_limit=100, weight_window_s=2.0, ban_after=100)

    async def body():
        async with venue(limits=limits) as (emu, v, _):
            await asyncio.sleep(2.3 - v.venue_now_ms() % 2000 / 1000)  # early in a fresh window
            emu.use_weight(75)  # another program on our address
            await v.book("BTCUSDT", 5)  # its answer says 80 are used
            assert v.gate.corrections >= 1
            got = await asyncio.gather(*[v.book("BTCUSDT", 5) for _ in range(8)], return_exceptions=True)
            assert not [g for g in got if isinstance(g, BaseException)], got
            assert 429 not in statuses(emu)

    run(body())


def test_an_ip_ban_is_its_own_error_the_venue_is_down_and_nothing_is_sent_until_it_ends():
    limits = RateLimitsConfig(weight_limit=40, weight_window_s=2.0, ban_after=2, ban_s=3.0, publish=False)

    async def body():
        async with venue(limits=limits) as (emu, v, events):
            emu.exhaust_weight()  # another program on our address spent the window: a burst now
            got = await asyncio.gather(*[v.book("BTCUSDT", 5) for _ in range(14)], return_exceptions=True)
            assert statuses(emu).count(429) >= 1 and statuses(emu).count(418) >= 1  # 429 then 418
            bans = [g for g in got if isinstance(g, IpBanned)]
            assert bans and all(2.0 <= b.retry_after_s <= 3.0 for b in bans)
            assert bans[0].until_ns > time.time_ns()
            assert VenueEvent.DISCONNECTED in events  # DOWN, not only throttled
            sent = len(emu.log)
            with pytest.raises(IpBanned):
                await v.balances()
            with pytest.raises(IpBanned):
                await v.submit(buy("30"))
            assert (await v.status()).state == S.VenueReport.DISCONNECTED
            assert len(emu.log) == sent  # refused here: nothing reached the venue
            await asyncio.sleep(max(0.0, (bans[0].until_ns - time.time_ns()) / 1e9) + 0.1)
            assert (await v.status()).state == S.VenueReport.OK
            assert (await v.submit(buy("31"))).status == OrderStatus.OPEN
            assert emu.limiter.counts[418] == statuses(emu).count(418)

    run(body())


def test_a_ban_without_retry_after_ends_where_the_venue_says_on_its_clock():
    v = CcxtVenue("emu", from_dict({}), Credentials(KEY, SECRET))
    v.clock_offset_ms = 4_000  # the venue runs 4 s ahead of us
    end_ms = v.venue_now_ms() + 90_000
    _status.set(418)
    _headers.set({})
    err, rule = v._translate(
        ccxt.DDoSProtection(
            f'binance 418 I\'m a teapot {{"code":-1003,"msg":"Way too many requests; '
            f'IP(10.0.0.1) banned until {end_ms}. Please use the websocket for live updates."}}'
        )
    )
    assert isinstance(err, IpBanned) and rule.venue_event == VenueEvent.DISCONNECTED
    assert rule.engine_event is None
    assert err.retry_after_s == pytest.approx(90.0, abs=0.5)
    _status.set(429)
    err, rule = v._translate(ccxt.DDoSProtection("binance 429 Too Many Requests"))
    assert type(err) is RateLimited and rule.engine_event == EngineEvent.RATE_LIMITED


class Refusing:
    """A venue whose every submit raises `exc` (what the io path does with it is under test)."""

    def __init__(self, exc):
        self.exc = exc

    async def submit(self, req):
        raise self.exc


def _submit_through_io(exc) -> list[tuple]:
    """The records the io path leaves for one submit that fails with `exc`."""
    reg = Registry()
    reg.venues.add("emu")
    reg.instruments.add("BTCUSDT")
    out: list = []

    async def go():
        io = VenueIO({"emu": Refusing(exc)}, reg, lambda: 10**9, out.append, {1: "BTCUSDT"}, 5)
        rec = S.empty(S.Kind.ORDER_NEW)
        rec["ts_ns"], rec["venue"], rec["instrument"], rec["coid"] = 10**9, 1, 1, 7
        rec["sub"], rec["qty"], rec["price"] = int(Side.BUY), 0.01, 40_000.0
        rec["aux"] = int(OrderType.LIMIT) | int(S.Purpose.ENTRY) << 8
        await io._execute("emu", (rec, 0))

    asyncio.run(go())
    got = []
    for rec in out:
        if S.Kind(int(rec["kind"][0])) == S.Kind.ORDER_EVENT:
            r = rec.view(S.ORDER_EVENT)[0]
            got.append((S.OrderEventType(int(r["sub"])), S.RejectReason(int(r["reason"]))))
        else:
            got.append(S.VenueReport(int(rec.view(S.VENUE_STATUS)[0]["sub"])))
    return got


def test_a_ban_puts_the_venue_down_and_a_429_only_throttles_it():
    ban = IpBanned("emu", "ip_banned", retry_after_s=60.0)
    assert _submit_through_io(ban) == [
        S.VenueReport.DISCONNECTED,  # the engine: DISCONNECTED -> DOWN
        (S.OrderEventType.REJECT, S.RejectReason.RATE_LIMITED),  # refused, not resent
    ]
    assert _submit_through_io(RateLimited("emu", "rate_limited")) == [S.VenueReport.RATE_LIMITED]  # resent
    assert report_of(ban) == S.VenueReport.DISCONNECTED
    assert not outcome_of(Call.SUBMIT, ban).resend  # the ban outlasts any resend
    assert VENUE.lookup(VenueState.UP, VenueEvent.DISCONNECTED).next == VenueState.DOWN
    assert VENUE.lookup(VenueState.DOWN, VenueEvent.RECONNECTED).next == VenueState.SUSPECT
    assert VENUE.lookup(VenueState.UP, VenueEvent.RATE_LIMITED).next == VenueState.THROTTLED


# -- a cancel that loses the race with a fill ----------------------------------------------------


@pytest.mark.parametrize("lag", ["unknown", "new"])
def test_a_cancel_that_lost_to_a_fill_is_reported_filled_while_the_order_view_lags(lag):
    async def body():
        async with venue() as (emu, v, _):
            await v.submit(buy("40", qty=0.01))
            emu.trade_against("BTCUSDT", Side.SELL, 0.51, 49_999.5)  # 0.5 above us, then ours
            emu.faults.stale_order_view = lag
            if lag == "unknown":
                with pytest.raises(OrderNotFound):
                    await v.fetch_order("40")  # the view does not know it yet
            else:
                assert (await v.fetch_order("40")).status == OrderStatus.OPEN  # the view says NEW
            got = await v.cancel("40")
            assert (got.status, got.filled_qty, got.avg_price) == (OrderStatus.FILLED, 0.01, 49_999.5)
            assert got.fee > 0 and got.fee_asset == "USDT"  # from the trades: the view had none
            assert statuses(emu, "/api/v3/myTrades")[-1] == 200

    run(body())


def test_a_partly_filled_order_canceled_from_a_lagging_view_keeps_its_fill():
    async def body():
        async with venue() as (emu, v, _):
            await v.submit(buy("50", qty=0.03))
            emu.trade_against("BTCUSDT", Side.SELL, 0.51, 49_999.5)  # 0.01 of our 0.03
            emu.faults.stale_order_view = "new"  # answers CANCELED with nothing executed
            got = await v.cancel("50")
            assert (got.status, got.filled_qty) == (OrderStatus.CANCELED, pytest.approx(0.01))
            assert emu.exchange.engine("BTCUSDT").query("bob", "50").status == OrderStatus.CANCELED

    run(body())


def test_a_cancel_of_an_order_never_placed_is_still_not_found():
    async def body():
        async with venue() as (emu, v, _):
            v._orders["60"] = ("BTCUSDT", None)  # sent, never reached the venue
            with pytest.raises(OrderNotFound):
                await v.cancel("60")

    run(body())


# -- configuration is checked at start -------------------------------------------------------


def test_a_pool_that_never_refills_is_refused_at_start_not_when_its_budget_runs_out():
    pools = {
        "weight_1m": {"limit": 5400, "window_s": 60},
        "orders_10s": {"limit": 90, "window_s": 10},
        "orders_1d": {"limit": 2, "window_s": 86400, "burst": 1.0},
    }
    with pytest.raises(ConfigError) as ei:
        CcxtVenue("emu", from_dict({"pools": pools}), Credentials(KEY, SECRET))
    assert ei.value.path == "pools.orders_1d.burst"

    async def body():  # a day's budget of 2 that refills: the third order is a typed refusal
        pools["orders_1d"]["burst"] = 0.5
        async with venue(pools=pools) as (emu, v, _):
            await v.submit(buy("70", price=40_000.0))
            with pytest.raises(VenueError) as ei:
                await v.submit(buy("71", price=40_000.0))
            assert isinstance(ei.value, RateLimited) and ei.value.retry_after_s > 3600
            assert [p.coid for p in emu.orders_of("bob")] == ["70"]

    run(body())


def test_published_limits_no_request_could_fit_are_a_config_error_at_start():
    async def body():
        with pytest.raises(ConfigError) as ei:
            async with venue(limits=RateLimitsConfig(weight_limit=22, weight_window_s=10.0)):
                pass
        assert ei.value.path == "venues.emu.endpoints.markets"  # weighs 20 > 90 % of 22

    run(body())


def test_the_rest_fill_poll_takes_a_quarter_of_the_weight_and_orders_are_not_kept_waiting():
    """user_data "rest" polls the trade list (weight 20, a request per instrument) no faster than
    a quarter of the weight pool refills: polled every poll_s (0.05 s here, 0.1 s in a run) it took
    more than the venue's whole budget, and queries go before entries, so orders waited behind it
    for seconds."""
    limits = RateLimitsConfig(weight_limit=4800, weight_window_s=60.0)

    async def body():
        async with venue(limits=limits, user_data="rest") as (emu, v, _):
            v.poll_s = 0.05
            assert v.fill_poll_s() == pytest.approx(2 * 20 * 60 / (0.9 * 4800 * 0.25))  # 2.2 s
            polled_from = len(statuses(emu, "/api/v3/myTrades"))

            async def follow():
                async for _ in v.user_events():
                    pass

            task = asyncio.create_task(follow())
            try:
                await asyncio.sleep(0.5)
                t0 = time.monotonic()
                placed = await v.submit(buy("7", price=40_000.0))
                assert placed.status is OrderStatus.OPEN and time.monotonic() - t0 < 0.5
                await asyncio.sleep(2.2)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            polls = len(statuses(emu, "/api/v3/myTrades")) - polled_from
            assert 2 <= polls <= 4  # the first read and one poll (2 instruments), not 2 x 54

    run(body())
