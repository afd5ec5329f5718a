"""Websocket depth diffs in Binance's format, for ccxt.pro's `watch_order_book`.

A client connects to `/ws` or `/ws/<n>`, sends
`{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}` and receives
`{"result": null, "id": 1}`, then one `depthUpdate` per change of the book:
`{"e": "depthUpdate", "E": ms, "s": "BTCUSDT", "U": first, "u": last, "b": [[p, q]], "a": [...]}`
where q = "0" deletes a level. Update ids are per symbol and the same counter as REST
`/api/v3/depth`'s `lastUpdateId`, so a client can join a snapshot to the diffs: the first diff
after a snapshot with id L has U = L + 1, and each diff's U is the previous diff's u + 1.

Diffs are computed by comparing the book before and after each change the emulator makes
(`watch`), down to `DEPTH` levels per side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

if TYPE_CHECKING:  # pragma: no cover
    from .server import Emulator

DEPTH = 1000


class DepthStreams:
    """Subscribers and update ids per symbol of one emulator."""

    def __init__(self, emulator: Emulator):
        self.emu = emulator
        self._ids: dict[str, int] = {}
        self._subs: dict[str, set] = {}  # symbol -> {(loop, queue)}
        self._sockets: set[web.WebSocketResponse] = set()

    def update_id(self, symbol: str) -> int:
        return self._ids.get(symbol, 1)

    @contextlib.contextmanager
    def watch(self, symbol: str):
        """Wrap one change of `symbol`'s book (under the emulator's lock): publish its diff."""
        subs = self._subs.get(symbol)
        eng = self.emu.exchange.engine(symbol)
        before = eng.book_lots(DEPTH) if subs else None
        try:
            yield
        finally:
            if not subs:
                self._ids[symbol] = self.update_id(symbol) + 1
            else:
                assert before is not None  # taken above, as someone watches
                after = eng.book_lots(DEPTH)
                bids = self._diff(before[0], after[0])
                asks = self._diff(before[1], after[1])
                if bids or asks:
                    uid = self.update_id(symbol) + 1
                    self._ids[symbol] = uid
                    if self.emu.faults.take("depth_skip"):
                        subs = set()  # the id is used, the diff sent to no one: a gap
                    fmt = self.emu.formats[symbol]
                    frame = {
                        "e": "depthUpdate",
                        "E": time.time_ns() // 1_000_000,
                        "s": symbol,
                        "U": uid,
                        "u": uid,
                        "b": [[fmt.px(eng.price(p)), fmt.qty(eng.qty(q))] for p, q in bids],
                        "a": [[fmt.px(eng.price(p)), fmt.qty(eng.qty(q))] for p, q in asks],
                    }
                    msg = json.dumps(frame)
                    mutate = self.emu.faults.mutate_frame
                    if mutate is not None:
                        msg = mutate(frame) or msg
                    for loop, queue in list(subs):
                        loop.call_soon_threadsafe(queue.put_nowait, msg)

    @staticmethod
    def _diff(old: list[tuple[int, int]], new: list[tuple[int, int]]) -> list[tuple[int, int]]:
        o, n = dict(old), dict(new)
        out = [(p, q) for p, q in n.items() if o.get(p) != q]
        out += [(p, 0) for p in o if p not in n]
        return sorted(out)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.add(ws)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        me = (loop, queue)
        mine: set[str] = set()

        async def pump():
            while True:
                msg = await queue.get()
                while self.emu.faults.depth_paused:  # held, in order (a silent feed)
                    await asyncio.sleep(0.005)
                await ws.send_str(msg)

        writer = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                    method, params = req.get("method"), list(req.get("params") or [])
                except (ValueError, AttributeError):
                    await ws.send_str(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
                    continue
                symbols = [p.split("@", 1)[0].upper() for p in params if "@depth" in p]
                with self.emu.lock:
                    for sym in symbols:
                        if sym not in self.emu.formats:
                            continue
                        if method == "SUBSCRIBE":
                            self._subs.setdefault(sym, set()).add(me)
                            mine.add(sym)
                        elif method == "UNSUBSCRIBE":
                            self._subs.get(sym, set()).discard(me)
                            mine.discard(sym)
                await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
        finally:
            writer.cancel()
            with self.emu.lock:
                for sym in mine:
                    self._subs.get(sym, set()).discard(me)
            self._sockets.discard(ws)
        return ws

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
