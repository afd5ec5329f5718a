"""The emulator's depth websocket, consumed by the real ccxt.pro watch_order_book."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import ccxt.pro as ccxt_pro

from adapters.emulator.harness import CCXT_OPTIONS, standard_emulator
from basis_core.schema import Side

KEYS = {"k": ("s", "alice")}


def test_watch_order_book_follows_snapshot_and_diffs():
    async def body():
        emu = standard_emulator(KEYS)
        await emu.start()
        ex = ccxt_pro.binance({"options": dict(CCXT_OPTIONS), "enableRateLimit": False})
        ex.urls["api"] = {
            n: (emu.url + "/" + u.split("://", 1)[1].split("/", 1)[1]) if isinstance(u, str) else u
            for n, u in ex.urls["api"].items()
        }
        ex.urls["api"]["ws"] = {"spot": f"ws://127.0.0.1:{emu.port}/ws"}
        try:
            await ex.load_markets()
            first = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 5)
            assert first["bids"][0] == [50000.0, 0.5] and first["asks"][0] == [50000.01, 0.3]
            nonce = first["nonce"]
            emu.set_book("BTCUSDT", [(50000.0, 0.7)], [(50000.01, 0.3), (50001.0, 1.0)])
            book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 5)
            assert book["bids"] == [[50000.0, 0.7]] and book["nonce"] == nonce + 1
            emu.trade_against("BTCUSDT", Side.BUY, 0.1)  # someone lifts the offer
            book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 5)
            assert book["asks"][0] == [50000.01, 0.2] and book["nonce"] == nonce + 2
        finally:
            await ex.close()
            await emu.stop()

    asyncio.run(body())


def test_diffs_carry_consecutive_ids_and_deletions_as_zero():
    async def body():
        emu = standard_emulator(KEYS)
        await emu.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(f"ws://127.0.0.1:{emu.port}/ws/0") as ws:
                    await ws.send_str(
                        json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 7})
                    )
                    assert json.loads((await ws.receive()).data) == {"result": None, "id": 7}
                    async with http.get(f"{emu.url}/api/v3/depth?symbol=ETHUSDT&limit=1000") as r:
                        snap = await r.json()
                    emu.set_book("ETHUSDT", [(3000.0, 5.0)], [(3000.01, 4.0)])
                    emu.trade_against("ETHUSDT", Side.SELL, 1.0)
                    d1 = json.loads((await ws.receive(timeout=5)).data)
                    d2 = json.loads((await ws.receive(timeout=5)).data)
            assert (d1["e"], d1["s"], d1["U"], d1["u"]) == (
                "depthUpdate",
                "ETHUSDT",
                snap["lastUpdateId"] + 1,
                snap["lastUpdateId"] + 1,
            )
            assert ["2999.00", "0.0000"] in d1["b"] and ["3001.00", "0.0000"] in d1["a"]
            assert ["3000.01", "4.0000"] in d1["a"]
            assert d2["U"] == d1["u"] + 1 and d2["b"] == [["3000.00", "4.0000"]]
        finally:
            await emu.stop()

    asyncio.run(body())
