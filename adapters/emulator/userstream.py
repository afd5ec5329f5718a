"""The user-data stream: our account's order and balance events, pushed over websockets.

Two ways in, both Binance's:

- **WebSocket API** (what ccxt.pro's binance uses for spot): connect to `/ws-api/v3`, send
  `{"id": ..., "method": "userDataStream.subscribe.signature", "params": {"apiKey", "timestamp",
  "recvWindow"?, "signature"}}` (HMAC-SHA256 of the other params sorted by name, as a query
  string); the answer is `{"id": ..., "status": 200, "result": {"subscriptionId": n}}` and every
  event then arrives as `{"subscriptionId": n, "event": {...}}`. `userDataStream.unsubscribe`
  and `ping` are answered too.
- **Listen key**: `POST /api/v3/userDataStream` (header `X-MBX-APIKEY`, no signature) gives
  `{"listenKey": k}`; `PUT` with `listenKey=k` keeps it alive, `DELETE` closes it. A websocket
  on `/ws/<k>` (or `/private/ws?listenKey=k`, the USDⓈ-M form) receives the bare events. A key
  not kept alive for `key_ttl_s` (60 minutes on Binance) expires: its sockets get
  `{"e": "listenKeyExpired", ...}` and are closed, and the key is refused from then on.

Events. `publish(owner, event)` sends one event dict to every subscriber of that account
holder: this is the interface for the futures emulator's `ORDER_TRADE_UPDATE` and
`ACCOUNT_UPDATE` (its `/fapi/v1/listenKey` is `rest(..., key_required=False)`, its
`/private/ws?listenKey=` route `handle_listen_key`; it publishes its own events and never calls
`publish_result`, which sends spot's). For spot, `publish_result` turns one matching
engine `Result` into `executionReport` events (NEW, TRADE with the last fill's qty, price,
commission and trade id, CANCELED with the cancel's client id in `c` and the order's in `C`,
EXPIRED, REJECTED) followed by one `outboundAccountPosition` per account it touched. The
emulator pushes REJECTED for an order its matching engine refused as well as answering the
POST with the error (real Binance only answers the POST); a client must take either.

Publishing happens under the emulator's lock from any thread: each subscriber is a (loop,
queue) pair fed with `call_soon_threadsafe`. A subscriber's queue holds at most `MAX_QUEUED`
messages; one that falls further behind is disconnected (as a venue drops a slow consumer).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from adapters.sim.matching import MARKET, MatchFill, OrderView, Result
from basis_core.schema import Liquidity, OrderEventType

from . import auth, wire

if TYPE_CHECKING:  # pragma: no cover
    from .server import Emulator

#: a subscriber further behind than this is disconnected
MAX_QUEUED = 10_000
#: Binance's listen key lifetime without a keepalive
KEY_TTL_S = 3600.0

EXEC_TYPE = {
    OrderEventType.ACK: "NEW",
    OrderEventType.PARTIAL_FILL: "TRADE",
    OrderEventType.FILL: "TRADE",
    OrderEventType.CANCELED: "CANCELED",
    OrderEventType.EXPIRED: "EXPIRED",
    OrderEventType.REJECT: "REJECTED",
}


@dataclass(eq=False)
class _Sub:
    """One subscriber: the loop and queue of its socket, and how its events are wrapped."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    ws: web.WebSocketResponse
    subscription_id: int | None = None  # WebSocket API: events go wrapped with this id
    dropped: bool = False


@dataclass
class _Key:
    owner: str
    expires: float
    subs: set = field(default_factory=set)


class UserStreams:
    """Listen keys, subscribers per account holder, and event publishing (see module docstring).

    `secrets_of`: API key → secret; `owner_of`: API key → account holder; `now_ms`: the venue's
    clock (for the WebSocket API's timestamp check); `clock`: monotonic seconds (key expiry)."""

    def __init__(
        self,
        secrets_of: dict[str, str],
        owner_of: dict[str, str],
        now_ms: Callable[[], int],
        *,
        key_ttl_s: float = KEY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._secrets, self._owners, self.now_ms = secrets_of, owner_of, now_ms
        self.key_ttl_s, self.clock = key_ttl_s, clock
        self._keys: dict[str, _Key] = {}
        self._subs: dict[str, set[_Sub]] = {}  # owner -> subscribers
        self._sockets: set[web.WebSocketResponse] = set()
        self._next_sid = 0
        #: while True, new user-stream connections are refused (HTTP 503) — a test's outage
        self.refuse = False
        #: events published per owner (for tests)
        self.published: dict[str, int] = {}

    # -- listen keys -----------------------------------------------------------------------------

    def create_key(self, owner: str) -> str:
        """A listen key for `owner`: its live one if it has one (Binance answers the same key)."""
        now = self.clock()
        for k, rec in self._keys.items():
            if rec.owner == owner and rec.expires > now:
                rec.expires = now + self.key_ttl_s
                return k
        self._expire(now)
        key = secrets.token_urlsafe(45)[:60]
        self._keys[key] = _Key(owner, now + self.key_ttl_s)
        return key

    def keepalive(self, owner: str, key: str | None = None) -> bool:
        """Extend `key` (or `owner`'s live key when None, the USDⓈ-M form); False if unknown/expired."""
        rec = self._live(owner, key)
        if rec is None:
            return False
        rec.expires = self.clock() + self.key_ttl_s
        return True

    def close_key(self, owner: str, key: str | None = None) -> bool:
        """Close `key` (or `owner`'s live key) and its sockets; False if unknown."""
        rec = self._live(owner, key)
        if rec is None:
            return False
        for k in [k for k, r in self._keys.items() if r is rec]:
            del self._keys[k]
        for sub in list(rec.subs):
            self._drop(sub)
        return True

    def owner_of_key(self, key: str) -> str | None:
        rec = self._keys.get(key)
        return rec.owner if rec is not None and rec.expires > self.clock() else None

    def _live(self, owner: str, key: str | None) -> _Key | None:
        now = self.clock()
        if key is None:
            return next((r for r in self._keys.values() if r.owner == owner and r.expires > now), None)
        rec = self._keys.get(key)
        return rec if rec is not None and rec.owner == owner and rec.expires > now else None

    def _expire(self, now: float) -> None:
        """Forget keys past their expiry (their sockets are closed by their own watchdogs)."""
        for k in [k for k, r in self._keys.items() if r.expires <= now and not r.subs]:
            del self._keys[k]

    def rest(
        self, method: str, api_key: str | None, params: dict, key_required: bool = True
    ) -> tuple[int, dict]:
        """`/api/v3/userDataStream`: (HTTP status, body) for POST / PUT / DELETE. With
        `key_required` False (USDⓈ-M's `/fapi/v1/listenKey`) PUT and DELETE without a
        `listenKey` address the caller's live key."""
        owner = self._owners.get(api_key or "")
        if owner is None:
            return 401, wire.error(-2015, "Invalid API-key, IP, or permissions for action.")
        if method == "POST":
            return 200, {"listenKey": self.create_key(owner)}
        key = params.get("listenKey") or None
        if key is None and key_required:
            return 400, wire.error(
                -1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed."
            )
        done = self.keepalive(owner, key) if method == "PUT" else self.close_key(owner, key)
        if not done:
            return 400, wire.error(-1125, "This listenKey does not exist.")
        return 200, {}

    # -- sockets ---------------------------------------------------------------------------------

    async def _open(self, request: web.Request) -> tuple[web.WebSocketResponse, _Sub] | None:
        if self.refuse:
            return None
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.add(ws)
        return ws, _Sub(asyncio.get_running_loop(), asyncio.Queue(), ws)

    async def _pump(self, sub: _Sub) -> None:
        while True:
            msg = await sub.queue.get()
            if msg is None:
                await sub.ws.close()
                return
            await sub.ws.send_str(msg)

    def _add(self, owner: str, sub: _Sub) -> None:
        self._subs.setdefault(owner, set()).add(sub)

    def _remove(self, sub: _Sub) -> None:
        for subs in self._subs.values():
            subs.discard(sub)
        for rec in self._keys.values():
            rec.subs.discard(sub)

    def _drop(self, sub: _Sub, last: str | None = None) -> None:
        """Stop sending to `sub` and close its socket (after `last`, if given)."""
        if sub.dropped:
            return
        sub.dropped = True
        self._remove(sub)
        if last is not None:
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait, last)
        sub.loop.call_soon_threadsafe(sub.queue.put_nowait, None)

    async def handle_listen_key(self, request: web.Request) -> web.StreamResponse:
        """`/ws/<listenKey>` or `/private/ws?listenKey=...`: the bare events of the key's owner."""
        key = request.match_info.get("n") or request.query.get("listenKey", "")
        owner = self.owner_of_key(key)
        if owner is None:
            return web.json_response(wire.error(-1125, "This listenKey does not exist."), status=400)
        opened = await self._open(request)
        if opened is None:
            return web.Response(status=503, text="user data stream unavailable")
        ws, sub = opened
        rec = self._keys[key]
        rec.subs.add(sub)
        self._add(owner, sub)
        writer = asyncio.create_task(self._pump(sub))
        watchdog = asyncio.create_task(self._watch_key(key, rec, sub))
        try:
            async for _ in ws:  # nothing to answer on a listen-key stream; pings are automatic
                pass
        finally:
            writer.cancel()
            watchdog.cancel()
            self._remove(sub)
            self._sockets.discard(ws)
        return ws

    async def _watch_key(self, key: str, rec: _Key, sub: _Sub) -> None:
        """Close `sub` when its key expires (keepalives push the expiry back)."""
        while not sub.dropped:
            left = rec.expires - self.clock()
            if left <= 0:
                event = {"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key}
                self._drop(sub, json.dumps(event))
                return
            await asyncio.sleep(min(left, 1.0))

    async def handle_ws_api(self, request: web.Request) -> web.StreamResponse:
        """`/ws-api/v3`: the WebSocket API's user-data subscription (see module docstring)."""
        opened = await self._open(request)
        if opened is None:
            return web.Response(status=503, text="websocket api unavailable")
        ws, sub = opened
        writer = asyncio.create_task(self._pump(sub))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                answer = self._ws_api_request(msg.data, sub)
                if not sub.dropped:
                    sub.queue.put_nowait(json.dumps(answer))
        finally:
            writer.cancel()
            self._remove(sub)
            self._sockets.discard(ws)
        return ws

    def _ws_api_request(self, text: str, sub: _Sub) -> dict:
        try:
            req = json.loads(text)
            rid, method, params = req.get("id"), req.get("method"), dict(req.get("params") or {})
        except (ValueError, AttributeError, TypeError):
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON"}}

        def fail(status: int, code: int, msg: str) -> dict:
            return {"id": rid, "status": status, "error": {"code": code, "msg": msg}}

        if method == "ping":
            return {"id": rid, "status": 200, "result": {}}
        if method == "userDataStream.subscribe.signature":
            api_key = str(params.get("apiKey", ""))
            signature = str(params.get("signature", ""))
            payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
            got = auth.verify(
                api_key,
                self._secrets,
                f"{payload}&signature={signature}",
                "",
                {k: str(v) for k, v in params.items()},
                self.now_ms(),
            )
            if isinstance(got, auth.AuthFailure):
                return fail(got.status, got.code, got.message)
            if sub.subscription_id is not None:
                return fail(400, -1000, "A user data stream subscription is already active.")
            self._next_sid += 1
            sub.subscription_id = self._next_sid
            self._add(self._owners[got], sub)
            return {"id": rid, "status": 200, "result": {"subscriptionId": sub.subscription_id}}
        if method == "userDataStream.unsubscribe":
            self._remove(sub)
            sub.subscription_id = None
            return {"id": rid, "status": 200, "result": {}}
        return fail(400, -1000, f"unknown method {method!r}")

    def disconnect(self) -> None:
        """Close every user-stream socket now (a test's connection loss)."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                self._drop(sub)

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # -- events ----------------------------------------------------------------------------------

    def has_subscribers(self, owner: str | None = None) -> bool:
        """Whether anyone (or `owner`) listens: publishers skip building events otherwise."""
        if owner is None:
            return any(self._subs.values())
        return bool(self._subs.get(owner))

    def publish(self, owner: str, event: dict) -> None:
        """Send `event` to every subscriber of `owner` (any thread; under the emulator's lock)."""
        subs = self._subs.get(owner)
        if not subs:
            return
        self.published[owner] = self.published.get(owner, 0) + 1
        bare = json.dumps(event)
        for sub in list(subs):
            if sub.queue.qsize() >= MAX_QUEUED:
                self._drop(sub)
                continue
            msg = bare if sub.subscription_id is None else _wrap(sub.subscription_id, bare)
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait, msg)

    def publish_result(
        self, emu: Emulator, symbol: str, result: Result, cancel_id: str | None = None
    ) -> None:
        """The `executionReport`s and `outboundAccountPosition`s of one matching-engine result."""
        if not result.events or not self._subs:
            return
        fmt = emu.formats[symbol]
        fills: dict[tuple[str, str], deque[MatchFill]] = {}
        for f in result.fills:
            if f.owner != MARKET:
                fills.setdefault((f.owner, f.coid), deque()).append(f)
        touched: dict[str, set[str]] = {}
        ms = emu.now_ms()
        for ev in result.events:
            view = ev.order
            if view.owner == MARKET or not self._subs.get(view.owner):
                continue
            x = EXEC_TYPE.get(ev.type)
            if x is None:
                continue
            fill = None
            if x == "TRADE":
                queue = fills.get((view.owner, view.coid))
                fill = queue.popleft() if queue else None
            report = execution_report(
                fmt,
                view,
                x,
                ms,
                fill,
                emu._commission(fill) if fill is not None else 0.0,
                cancel_id if x == "CANCELED" else None,
            )
            self.publish(view.owner, report)
            assets = touched.setdefault(view.owner, {fmt.spec.base, fmt.spec.quote})
            if fill is not None and fill.fee_asset:
                assets.add(fill.fee_asset)
        acc = emu.exchange.accounts
        for owner, assets in touched.items():
            rows = []
            for asset in sorted(assets):
                a = acc.get(owner, asset)
                rows.append(
                    {
                        "a": asset,
                        "f": f"{acc.to_float(asset, a.free):.8f}",
                        "l": f"{acc.to_float(asset, a.locked):.8f}",
                    }
                )
            self.publish(owner, {"e": "outboundAccountPosition", "E": ms, "u": ms, "B": rows})


def _wrap(subscription_id: int, bare: str) -> str:
    return f'{{"subscriptionId":{subscription_id},"event":{bare}}}'


def execution_report(
    fmt: wire.Formatter,
    view: OrderView,
    x: str,
    ms: int,
    fill: MatchFill | None = None,
    commission: float = 0.0,
    cancel_id: str | None = None,
) -> dict:
    """Binance spot's `executionReport` for one change of one order."""
    otype, tif = wire.TYPE[view.type]
    last_qty = fill.qty if fill is not None else 0.0
    last_px = fill.price if fill is not None else 0.0
    return {
        "e": "executionReport",
        "E": ms,
        "s": fmt.spec.symbol,
        "c": cancel_id if cancel_id is not None else view.coid,
        "S": wire.SIDE[view.side],
        "o": otype,
        "f": tif or "GTC",
        "q": fmt.qty(view.qty),
        "p": fmt.px(view.price),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": view.coid if cancel_id is not None else "",
        "x": x,
        "X": wire.STATUS[view.status],
        "r": "NONE" if x != "REJECTED" else view.reason.name,
        "i": view.oid,
        "l": fmt.qty(last_qty),
        "z": fmt.qty(view.filled_qty),
        "L": fmt.px(last_px),
        "n": f"{commission:.8f}",
        "N": (fill.fee_asset or None) if fill is not None else None,
        "T": (fill.ts_ns // 1_000_000) if fill is not None else view.updated_ns // 1_000_000,
        "t": fill.trade_id if fill is not None else -1,
        "I": 0,
        "w": not view.status.terminal,
        "m": fill is not None and fill.liquidity == Liquidity.MAKER,
        "M": False,
        "O": view.created_ns // 1_000_000,
        "Z": fmt.quote(view.avg_price * view.filled_qty),
        "Y": fmt.quote(last_px * last_qty),
        "Q": "0.00000000",
        "W": view.created_ns // 1_000_000,
        "V": "EXPIRE_MAKER",
    }
