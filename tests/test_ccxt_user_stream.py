"""The websocket user-data stream: the emulator's side (listen keys, WebSocket API, executionReport)
and the ccxt venue's (pushed fills into the io side, the REST backstop after a reconnect, one
fill passed on once whichever path saw it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
from io_records import fills_of, order_events, records
from waiting import run_within, until

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator.harness import binance_client, standard_emulator
from basis_core import schema as S
from basis_core.engine.io import VenueIO
from basis_core.errors import RequestTimeout
from basis_core.registry import Registry
from basis_core.schema import OrderType, Side
from basis_core.venue import Fill, OrderRequest, OrderStatus, OrderUpdate

KEY, SECRET = "k3y-Alice-7f3a9c", "s3cret-Alice-b81d44e0"
KEYS = {KEY: (SECRET, "alice")}
BID = 49_999.0  # the book's second bid: 1.0 of the market's own rests there before ours


def run(coro):
    return run_within(coro, 30)


@contextlib.asynccontextmanager
async def venue(**cfg):
    emu = standard_emulator(KEYS)
    await emu.start()
    config = from_dict(
        {"base_url": emu.url, "user_data": "ws", "instruments": {"BTCUSDT": "BTC/USDT"}, **cfg}
    )
    v = CcxtVenue("emu", config, Credentials(KEY, SECRET), poll_s=10.0)
    try:
        await v.start()
        yield emu, v
    finally:
        await v.close()
        await emu.stop()


def buy(coid: str, qty: float) -> OrderRequest:
    return OrderRequest(coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, qty, BID)


def io_for(v: CcxtVenue) -> tuple[VenueIO, list]:
    reg = Registry()
    reg.venues.add("emu")
    reg.instruments.add("BTCUSDT")
    out: list = []
    return VenueIO({"emu": v}, reg, time.time_ns, out.append, {1: "BTCUSDT"}), out


def test_fills_pushed_on_the_user_stream_reach_the_io_side():
    async def body():
        async with venue() as (emu, v):
            io, out = io_for(v)
            pump = asyncio.create_task(io.pump_user("emu"))
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            await v.submit(buy("1001", 0.002))
            await until(lambda: S.OrderEventType.ACK in order_events(out), what="the pushed NEW")
            emu.trade_against("BTCUSDT", Side.SELL, 1.502)  # the market's 1.5 first, then all of ours
            await until(lambda: S.OrderEventType.FILL in order_events(out), what="the pushed FILL")
            assert fills_of(out) == [(0.002, BID, 1)]
            balances = records(out, S.Kind.BALANCE_UPDATE)  # outboundAccountPosition
            assert balances and {float(r.view(S.BALANCE_UPDATE)["free"]) for r in balances} >= {2.002}
            # nothing was polled: the fill came on the websocket
            assert not [x for x in emu.log if x[1] == "/api/v3/myTrades"]
            pump.cancel()

    run(body())


def test_the_backstop_finds_a_fill_made_while_the_stream_was_down():
    async def body():
        async with venue() as (emu, v):
            io, out = io_for(v)
            pump = asyncio.create_task(io.pump_user("emu"))
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            await v.submit(buy("2001", 0.002))
            await until(lambda: S.OrderEventType.ACK in order_events(out), what="the pushed NEW")
            emu.users.disconnect()
            statuses = lambda: [int(r["sub"]) for r in records(out, S.Kind.VENUE_STATUS)]
            await until(lambda: S.VenueReport.TIMEOUT in statuses(), what="the loss reported")
            emu.trade_against("BTCUSDT", Side.SELL, 1.502)  # no one subscribed: nothing is pushed
            assert fills_of(out) == []
            await until(lambda: v.user_stream.subscriptions == 2, what="the second subscription")
            await until(lambda: S.OrderEventType.FILL in order_events(out), what="the backstop's FILL")
            assert fills_of(out) == [(0.002, BID, 1)]
            assert v.user_stream.backstop_fills == 1
            paths = [(m, p) for m, p, _ in emu.log]
            assert ("GET", "/api/v3/order") in paths and ("GET", "/api/v3/myTrades") in paths
            pump.cancel()

    run(body())


def test_a_fill_seen_on_both_paths_is_passed_on_once():
    async def body():
        async with venue() as (emu, v):
            events: list = []
            down, go = asyncio.Event(), asyncio.Event()

            async def consume():  # what the io side does: subscribe again after a loss
                while True:
                    try:
                        async for ev in v.user_events():
                            events.append(ev)
                    except RequestTimeout:
                        down.set()
                        await go.wait()

            task = asyncio.create_task(consume())
            await until(lambda: v.user_stream.subscriptions == 1, what="the subscription")
            await v.submit(buy("3001", 0.003))
            emu.trade_against("BTCUSDT", Side.SELL, 1.501)  # trade A: 0.001 of ours, pushed
            fills = lambda: [e for e in events if isinstance(e, Fill)]
            await until(lambda: len(fills()) == 1, what="fill A on the stream")
            emu.users.disconnect()
            await down.wait()
            emu.trade_against("BTCUSDT", Side.SELL, 0.001)  # trade B, while down
            go.set()
            await until(lambda: v.user_stream.subscriptions == 2, what="the second subscription")
            await until(lambda: len(fills()) == 2, what="fill B from the backstop")
            await asyncio.sleep(0.2)
            ids = [f.trade_id for f in fills()]
            assert len(ids) == len(set(ids)) == 2, ids
            assert [f.qty for f in fills()] == [0.001, 0.001]
            # the backstop read both trades of the order; the one already pushed was held back
            ex = binance_client(emu.url, KEY, SECRET)
            try:
                mine = await ex.fetch_my_trades("BTC/USDT")
            finally:
                await ex.close()
            assert sorted(str(t["id"]) for t in mine) == sorted(ids)
            assert v.user_stream.backstop_fills == 1
            last = [e for e in events if isinstance(e, OrderUpdate)][-1].order
            assert (last.coid, last.status, last.filled_qty) == ("3001", OrderStatus.PARTIALLY_FILLED, 0.002)
            task.cancel()

    run(body())


def test_listen_key_stream_pushes_execution_reports_and_expires():
    async def body():
        emu = standard_emulator(KEYS)
        emu.users.key_ttl_s = 0.4
        await emu.start()
        ex = binance_client(emu.url, KEY, SECRET)
        try:
            async with aiohttp.ClientSession() as http:
                hdr = {"X-MBX-APIKEY": KEY}
                async with http.post(f"{emu.url}/api/v3/userDataStream", headers=hdr) as r:
                    key = (await r.json())["listenKey"]
                async with http.post(f"{emu.url}/api/v3/userDataStream") as r:
                    assert r.status == 401  # no API key
                async with http.ws_connect(f"ws://127.0.0.1:{emu.port}/ws/{key}") as ws:
                    await ex.create_order("BTC/USDT", "limit", "buy", 0.001, BID, {"clientOrderId": "4001"})
                    new = json.loads((await ws.receive(timeout=5)).data)
                    assert (new["e"], new["x"], new["X"], new["c"], new["z"]) == (
                        "executionReport",
                        "NEW",
                        "NEW",
                        "4001",
                        "0.00000",
                    )
                    assert json.loads((await ws.receive(timeout=5)).data)["e"] == "outboundAccountPosition"
                    await ex.cancel_order(None, "BTC/USDT", {"origClientOrderId": "4001"})
                    gone = json.loads((await ws.receive(timeout=5)).data)
                    assert (gone["x"], gone["X"], gone["C"]) == ("CANCELED", "CANCELED", "4001")
                    async with http.put(
                        f"{emu.url}/api/v3/userDataStream", headers=hdr, params={"listenKey": key}
                    ) as r:
                        assert r.status == 200  # kept alive: 0.4 s from now
                    await ws.receive(timeout=5)  # the cancel's outboundAccountPosition
                    end = json.loads((await ws.receive(timeout=3)).data)
                    assert end == {"e": "listenKeyExpired", "E": end["E"], "listenKey": key}
                    assert (await ws.receive(timeout=3)).type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                    )
                async with http.put(
                    f"{emu.url}/api/v3/userDataStream", headers=hdr, params={"listenKey": key}
                ) as r:
                    assert r.status == 400 and (await r.json())["code"] == -1125
        finally:
            await ex.close()
            await emu.stop()

    run(body())


def test_listen_keys_expire_and_the_usdm_form_addresses_the_callers_key():
    from adapters.emulator.userstream import UserStreams

    now = [0.0]
    users = UserStreams({KEY: SECRET}, {KEY: "alice"}, lambda: 0, key_ttl_s=60.0, clock=lambda: now[0])
    status, body = users.rest("POST", KEY, {})
    key = body["listenKey"]
    assert status == 200 and users.rest("POST", KEY, {})[1]["listenKey"] == key  # the live one again
    assert users.rest("PUT", KEY, {})[0] == 400  # spot: the key must be named
    now[0] = 50.0
    assert users.rest("PUT", KEY, {}, key_required=False) == (200, {})  # USDⓈ-M: the caller's key
    now[0] = 100.0
    assert users.owner_of_key(key) == "alice"  # kept alive at 50 s: good until 110 s
    now[0] = 111.0
    assert users.owner_of_key(key) is None
    assert users.rest("PUT", KEY, {"listenKey": key})[1]["code"] == -1125
    assert users.rest("DELETE", "other-key", {"listenKey": key})[0] == 401
