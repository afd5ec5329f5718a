"""USDⓈ-M user data over the websocket: the futures emulator's listen-key stream (ORDER_TRADE_UPDATE,
ACCOUNT_UPDATE in Binance's layout) and the ccxt venue (`binanceusdm`, user_data "ws") taking its
fills from it, with the REST backstop on each subscription, one fill passed on once, the listen key
kept alive and a new one taken after expiry, and funding read at once on a FUNDING_FEE update."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import pytest
from io_records import fills_of, order_events
from waiting import run_within, until

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator.futures import FuturesEmulator
from adapters.sim.matching import Spec
from basis_core import schema as S
from basis_core.engine.io import VenueIO
from basis_core.errors import RequestTimeout
from basis_core.registry import Registry
from basis_core.schema import OrderType, Side
from basis_core.venue import Fill, FundingPayment, OrderRequest, OrderStatus, OrderUpdate

KEY, SECRET = "k-perps-ws", "s-perps-ws"
SYM, NAME = "BTCUSDT", "BTCPERP"
BID = 50_000.0  # the best bid: 1.0 of the market's own rests there before ours


def emulator() -> FuturesEmulator:
    emu = FuturesEmulator(
        [Spec(SYM, "BTC", "USDT", tick=0.1, lot=0.001, min_notional=5.0)], {KEY: (SECRET, "basis")}
    )
    emu.deposit("basis", "USDT", 10_000.0)
    emu.set_book(SYM, [(BID, 1.0), (49_990.0, 2.0)], [(50_000.1, 1.0), (50_010.0, 2.0)])
    return emu


def run(coro):
    return run_within(coro, 20)


@contextlib.asynccontextmanager
async def venue(**cfg):
    emu = emulator()
    await emu.start()
    config = from_dict(
        {
            "exchange": "binanceusdm",
            "base_url": emu.url,
            "timeout_ms": 2000,
            "user_data": "ws",
            "instruments": {NAME: "BTC/USDT:USDT"},
            "leverage": {NAME: 10},
            "funding_poll_s": 3600.0,
            **cfg,
        },
        "venues.usdm",
    )
    v = CcxtVenue("usdm", config, Credentials(KEY, SECRET), poll_s=10.0)
    try:
        await v.start()
        yield emu, v
    finally:
        await v.close()
        await emu.stop()


def buy(coid: str, qty: float) -> OrderRequest:
    return OrderRequest(coid, NAME, Side.BUY, OrderType.LIMIT, qty, BID)


def io_for(v: CcxtVenue) -> tuple[VenueIO, list]:
    reg = Registry()
    reg.venues.add("usdm")
    reg.instruments.add(NAME)
    out: list = []
    return VenueIO({"usdm": v}, reg, time.time_ns, out.append, {1: NAME}), out


def polled(emu: FuturesEmulator, path: str) -> int:
    return sum(1 for _, p, _ in emu.log if p == path)


async def consume(v: CcxtVenue, events: list, losses: list, go: asyncio.Event | None = None):
    """What the io side does: subscribe again after a loss (at once, or when `go` is set)."""
    while True:
        try:
            async for ev in v.user_events():
                events.append(ev)
        except RequestTimeout as exc:
            losses.append(str(exc))
            if go is not None:
                await go.wait()
                go.clear()


def test_the_emulator_pushes_order_trade_and_account_updates_on_a_listen_key():
    async def body():
        emu = emulator()
        await emu.start()
        try:
            async with aiohttp.ClientSession() as http:
                hdr = {"X-MBX-APIKEY": KEY}
                async with http.post(f"{emu.url}/fapi/v1/listenKey", headers=hdr) as r:
                    key = (await r.json())["listenKey"]
                async with http.put(f"{emu.url}/fapi/v1/listenKey", headers=hdr) as r:
                    assert r.status == 200  # the caller's live key, no listenKey parameter
                async with http.post(f"{emu.url}/fapi/v1/listenKey") as r:
                    assert r.status == 401  # no API key
                url = f"ws://127.0.0.1:{emu.port}/private/ws?listenKey={key}"
                async with http.ws_connect(url) as ws:

                    async def next_event() -> dict:
                        return json.loads((await ws.receive(timeout=5)).data)

                    sell = (SYM, "5001", Side.SELL, OrderType.IOC, 0.4, 50_000.0, {})
                    emu._place("basis", *sell)  # a short of 0.4, taken from the bid
                    new, trade, account = [await next_event() for _ in range(3)]
                    assert (new["e"], new["o"]["x"], new["o"]["X"], new["o"]["c"]) == (
                        "ORDER_TRADE_UPDATE",
                        "NEW",
                        "NEW",
                        "5001",
                    )
                    o = trade["o"]
                    assert (o["x"], o["X"], o["l"], o["L"], o["z"], o["ps"], o["N"]) == (
                        "TRADE",
                        "FILLED",
                        "0.400",
                        "50000.0",
                        "0.400",
                        "BOTH",
                        "USDT",
                    )
                    assert float(o["n"]) == pytest.approx(0.4 * 50_000.0 * 4e-4) and o["t"] > 0
                    assert o["m"] is False and float(o["rp"]) == 0.0
                    a = account["a"]
                    assert (account["e"], a["m"], a["P"][0]["s"], a["P"][0]["pa"]) == (
                        "ACCOUNT_UPDATE",
                        "ORDER",
                        SYM,
                        "-0.400",
                    )
                    assert float(a["B"][0]["wb"]) == pytest.approx(10_000.0 - float(o["n"]))
                    # closing at a higher price realizes a loss: rp on the TRADE
                    emu._place("basis", SYM, "5002", Side.BUY, OrderType.IOC, 0.4, 50_000.1, {})
                    _, close, _ = [await next_event() for _ in range(3)]
                    assert float(close["o"]["rp"]) == pytest.approx(-0.1 * 0.4)
                    # a resting order canceled; an IOC that finds nothing expires
                    emu._place("basis", SYM, "5003", Side.BUY, OrderType.LIMIT, 0.01, 49_000.0, {})
                    assert (await next_event())["o"]["x"] == "NEW"
                    await emu._delete_order("basis", {"symbol": SYM, "origClientOrderId": "5003"})
                    canceled = (await next_event())["o"]
                    assert (canceled["x"], canceled["X"], canceled["c"]) == ("CANCELED", "CANCELED", "5003")
                    emu._place("basis", SYM, "5004", Side.BUY, OrderType.IOC, 0.01, 49_000.0, {})
                    xs = [(await next_event())["o"]["x"] for _ in range(2)]
                    assert xs == ["NEW", "EXPIRED"]
                    # funding on a position: the wallet and the payment, no positions (cross)
                    emu._place("basis", SYM, "5005", Side.SELL, OrderType.IOC, 0.1, 50_000.0, {})
                    [await next_event() for _ in range(3)]
                    emu.apply_funding(SYM, 0.0001, 50_000.0)
                    fee = await next_event()
                    assert (fee["e"], fee["a"]["m"], fee["a"]["P"]) == ("ACCOUNT_UPDATE", "FUNDING_FEE", [])
                    assert float(fee["a"]["B"][0]["bc"]) == pytest.approx(0.1 * 50_000.0 * 0.0001)
                async with http.delete(f"{emu.url}/fapi/v1/listenKey", headers=hdr) as r:
                    assert r.status == 200
                async with http.ws_connect(url) as ws:  # a closed key is refused
                    pytest.fail("connected on a closed listen key")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 400
        finally:
            await emu.stop()

    run(body())


def test_fills_pushed_on_the_futures_stream_reach_the_io_side_without_polling():
    async def body():
        async with venue() as (emu, v):
            assert v.user_stream is not None and v.user_stream.linear
            io, out = io_for(v)
            pump = asyncio.create_task(io.pump_user("usdm"))
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            trades_before = polled(emu, "/fapi/v1/userTrades")
            await v.submit(buy("1001", 0.01))
            await until(lambda: S.OrderEventType.ACK in order_events(out), what="the pushed NEW")
            emu.trade_against(SYM, Side.SELL, 1.01)  # the market's 1.0 first, then all of ours
            await until(lambda: S.OrderEventType.FILL in order_events(out), what="the pushed FILL")
            assert fills_of(out) == [(0.01, BID, 1)]
            # nothing was polled: the fill came on the websocket
            assert polled(emu, "/fapi/v1/userTrades") == trades_before
            pump.cancel()

    run(body())


def test_the_backstop_finds_a_fill_made_while_the_stream_was_down_and_passes_fills_once():
    async def body():
        async with venue() as (emu, v):
            events: list = []
            losses: list = []
            go = asyncio.Event()
            task = asyncio.create_task(consume(v, events, losses, go))
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            await v.submit(buy("3001", 0.003))
            emu.trade_against(SYM, Side.SELL, 1.001)  # trade A: 0.001 of ours, pushed
            fills = lambda: [e for e in events if isinstance(e, Fill)]
            await until(lambda: len(fills()) == 1, what="fill A on the stream")
            emu.users.disconnect()
            await until(lambda: losses, what="the loss")
            emu.trade_against(SYM, Side.SELL, 0.001)  # trade B, while down: nothing pushed
            go.set()
            await until(lambda: v.user_stream.subscriptions == 2, what="the second subscription")
            await until(lambda: len(fills()) == 2, what="fill B from the backstop")
            await asyncio.sleep(0.2)
            ids = [f.trade_id for f in fills()]
            assert len(ids) == len(set(ids)) == 2, ids
            assert [f.qty for f in fills()] == [0.001, 0.001]
            assert v.user_stream.backstop_fills == 1  # A was read again by the backstop, held back
            assert polled(emu, "/fapi/v1/userTrades") >= 1
            last = [e for e in events if isinstance(e, OrderUpdate)][-1].order
            assert (last.coid, last.status, last.filled_qty) == ("3001", OrderStatus.PARTIALLY_FILLED, 0.002)
            task.cancel()

    run(body())


def test_the_listen_key_is_kept_alive_and_a_new_one_taken_after_expiry():
    async def body():
        async with venue() as (emu, v):
            emu.users.key_ttl_s = 0.6
            v.user_stream.keepalive_s = 0.15
            events: list = []
            losses: list = []
            task = asyncio.create_task(consume(v, events, losses))
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            await asyncio.sleep(1.5)  # past the key's life: kept alive
            assert losses == [] and v.user_stream.keepalives >= 5
            assert polled(emu, "/fapi/v1/listenKey") >= 6
            v.user_stream.keepalive_s = 100.0  # no more keepalives (from the next subscription)
            emu.users.disconnect()
            await until(lambda: v.user_stream.subscriptions == 2, what="the second subscription")
            await until(lambda: len(losses) == 2, timeout_s=3.0, what="the key's expiry")
            assert "listen key expired" in losses[1]
            await until(lambda: v.user_stream.subscriptions == 3, what="a subscription on a new key")
            await v.submit(buy("4001", 0.01))
            emu.trade_against(SYM, Side.SELL, 1.01)
            await until(lambda: any(isinstance(e, Fill) for e in events), what="a fill on the new key")
            assert v.user_stream.backstop_fills == 0
            task.cancel()

    run(body())


def test_a_funding_fee_update_reads_the_funding_payment_at_once():
    async def body():
        async with venue() as (emu, v):
            events: list = []
            losses: list = []
            task = asyncio.create_task(consume(v, events, losses))
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            await v.submit(OrderRequest("6001", NAME, Side.SELL, OrderType.IOC, 0.5, BID))
            await asyncio.sleep(0.3)
            reads = polled(emu, "/fapi/v1/income")  # the read at start; the next in an hour
            emu.apply_funding(SYM, 0.0003, 50_020.0)
            await until(
                lambda: any(isinstance(e, FundingPayment) for e in events), what="the funding payment"
            )
            (pay,) = [e for e in events if isinstance(e, FundingPayment)]
            assert (pay.instrument, pay.amount, pay.position_qty) == (
                NAME,
                pytest.approx(0.5 * 50_020.0 * 0.0003),
                pytest.approx(-0.5),
            )
            assert polled(emu, "/fapi/v1/income") == reads + 1
            task.cancel()

    run(body())
