"""An exchange emulator on loopback that speaks Binance spot REST, over the simulated venues' books.

The books, matching and balances are the simulated venue's own (`adapters.sim.exchange.Exchange`,
`adapters.sim.matching.MatchingEngine`): the emulator adds only the wire. It serves the endpoints
ccxt uses for Binance spot (exchangeInfo, depth, account, order POST/GET/DELETE, openOrders,
myTrades, time, ping; the wallet's tradeFee for our commission rates), verifies signatures and
recvWindow (`auth`), counts request weights and escalates 429 → 418 (`limits`), and injects the
faults of `faults.Faults`. A websocket depth
stream for ccxt.pro's `watch_order_book` lives in `stream`; the user-data stream (listen keys
on /api/v3/userDataStream, /ws/<listenKey>, and the WebSocket API's /ws-api/v3 subscription)
in `userstream`, fed from every matching-engine result the emulator absorbs.

Every API key belongs to one account holder (`keys`: api_key → (secret, owner)). Answers carry
Binance's usage headers. Order ids are the engine's per-instrument ids; client order ids are
unique per holder for the emulator's lifetime. An order the engine rejected is unknown to the
wire (GET answers -2013), as on the venue.

Run it inside a test's event loop (`await emu.start()`), or on its own thread and loop
(`EmulatorThread`). State is guarded by one lock, so tests may call the set-up methods
(`deposit`, `set_book`, `trade_against`) from any thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

from adapters.sim.exchange import Exchange
from adapters.sim.matching import MARKET, FeeSchedule, MatchFill, Result, Spec
from basis_core.errors import OrderNotFound
from basis_core.schema import OrderType, RejectReason, Side
from basis_core.venue import OrderStatus

from . import auth, wire
from .faults import Faults
from .limits import WEIGHTS, RateLimiter, RateLimitsConfig, depth_weight
from .stream import DepthStreams
from .userstream import UserStreams

#: the emulator's fee schedule unless one is given (a frozen value, shared safely)
_DEFAULT_FEES = FeeSchedule(maker_bps=2.0, taker_bps=10.0)


@dataclass(frozen=True)
class Placed:
    """One order the matching engine accepted (duplicates and rejects are not counted)."""

    symbol: str
    owner: str
    coid: str
    oid: int


class _Refused(Exception):
    def __init__(self, status: int, code: int, msg: str):
        self.status, self.code, self.msg = status, code, msg


def _refuse(reason: RejectReason) -> _Refused:
    status, code, msg = wire.REJECTS.get(reason, (400, -2010, "NEW_ORDER_REJECTED"))
    return _Refused(status, code, msg)


class Emulator:
    """One emulated venue: books and accounts, faults, limits and the aiohttp application."""

    def __init__(
        self,
        specs: list[Spec],
        keys: dict[str, tuple[str, str]],
        *,
        name: str = "emulator",
        fees: FeeSchedule = _DEFAULT_FEES,
        limits: RateLimitsConfig | None = None,
    ):
        self.name = name
        self.fees = fees
        self.exchange = Exchange(name, {s.symbol: (s, fees) for s in specs})
        self.formats = {s.symbol: wire.Formatter(s) for s in specs}
        self._secrets = {k: secret for k, (secret, _) in keys.items()}
        self._owners = {k: owner for k, (_, owner) in keys.items()}
        self.faults = Faults()
        self.limiter = RateLimiter(limits)
        self.lock = threading.RLock()
        self.placed: list[Placed] = []
        self.log: list[tuple[str, str, int]] = []  # (method, path, HTTP status) per request
        #: called with each order request (POST / DELETE of an order endpoint) once answered:
        #: {"ts_ns", "method", "path", "coid", "status"} (`basis emulator --order-log`)
        self.order_log: Callable[[dict], None] | None = None
        self.streams = DepthStreams(self)
        #: the user-data stream (listen keys, WebSocket API); `users.key_ttl_s` sets key expiry
        self.users = UserStreams(self._secrets, self._owners, self.now_ms)
        self._trades: dict[tuple[str, str], list[tuple[MatchFill, int]]] = {}
        self._auto_id = 0
        self._t0 = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._routes = {
            ("GET", "/api/v3/ping"): (False, self._ping),
            ("GET", "/api/v3/time"): (False, self._time),
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/api/v3/depth"): (False, self._depth),
            ("GET", "/api/v3/account"): (True, self._account),
            ("POST", "/api/v3/order"): (True, self._post_order),
            ("GET", "/api/v3/order"): (True, self._get_order),
            ("DELETE", "/api/v3/order"): (True, self._delete_order),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
            ("GET", "/sapi/v1/asset/tradeFee"): (True, self._trade_fee),
        }

    # -- set-up and inspection (any thread) ------------------------------------------------

    def deposit(self, owner: str, asset: str, amount: float) -> None:
        with self.lock:
            acc = self.exchange.accounts
            acc.deposit(owner, asset, acc.to_atoms(asset, amount))

    def balance(self, owner: str, asset: str) -> tuple[float, float]:
        """(free, locked) of `owner` in `asset`."""
        with self.lock:
            acc = self.exchange.accounts
            a = acc.get(owner, asset)
            return acc.to_float(asset, a.free), acc.to_float(asset, a.locked)

    def set_book(self, symbol: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        """Make the other participants' resting depth exactly `bids` and `asks` (price, qty)."""
        with self.lock, self.streams.watch(symbol):
            eng = self.exchange.engine(symbol)
            for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
                want: dict[int, int] = {}
                for p, q in levels:
                    px, lots = eng.to_ticks(p), eng.to_lots(q)
                    if px is None or lots is None:
                        raise ValueError(f"{symbol}: a level is off the tick/lot grid: {levels}")
                    want[px] = lots
                for px in set(eng.market_levels(side)) | set(want):
                    self._absorb(
                        symbol, self.exchange.set_level(symbol, side, px, want.get(px, 0), time.time_ns())
                    )

    def trade_against(self, symbol: str, side: Side, qty: float, limit: float | None = None) -> Result:
        """Another participant sends an aggressive order of `side` for `qty` (IOC at `limit`)."""
        with self.lock, self.streams.watch(symbol):
            eng = self.exchange.engine(symbol)
            px = None if limit is None else eng.to_ticks(limit)
            lots = eng.to_lots(qty)
            if lots is None or (limit is not None and px is None):
                raise ValueError(f"{symbol}: trade of {qty} at {limit} is off the tick/lot grid")
            result = self.exchange.participant_trade(symbol, side, lots, time.time_ns(), px)
            self._absorb(symbol, result)
            return result

    def exhaust_weight(self, window_s: float | None = None) -> None:
        """Fill the request-weight window from now on (someone else on our address used it)."""
        with self.lock:
            self.limiter.exhaust(self.now_ms() / 1000, window_s)

    def use_weight(self, weight: int) -> None:
        """Someone else on our address spends `weight` of the current request-weight window."""
        with self.lock:
            self.limiter.use_weight(self.now_ms() / 1000, weight)

    def orders_of(self, owner: str) -> list[Placed]:
        with self.lock:
            return [p for p in self.placed if p.owner == owner]

    # -- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.streams.handle)
        app.router.add_get("/ws/{n}", self._ws_path)
        app.router.add_get("/ws-api/v3", self.users.handle_ws_api)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on `host:port` (0 = a free port) in the running loop; returns the port."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def _ws_path(self, request: web.Request) -> web.StreamResponse:
        """`/ws/<n>`: a depth stream (n a stream number) or a listen key's user stream."""
        if request.match_info["n"].isdigit():
            return await self.streams.handle(request)
        return await self.users.handle_listen_key(request)

    async def stop(self) -> None:
        await self.users.close()
        await self.streams.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- request pipeline ------------------------------------------------------------------

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.faults.clock_skew_ms

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        resp = await self._answer(request)
        if self.faults.mutate is not None:
            resp = self._mutated(request, resp)
        self.log.append((request.method, request.path, resp.status))
        if (
            self.order_log is not None
            and request.method in ("POST", "DELETE")
            and request.path.endswith("/order")
        ):
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(await request.text(), keep_blank_values=True))  # (read: cached)
            coid = params.get("newClientOrderId") or params.get("origClientOrderId") or ""
            self.order_log(
                {
                    "ts_ns": time.time_ns(),
                    "method": request.method,
                    "path": request.path,
                    "coid": coid,
                    "status": resp.status,
                }
            )
        return resp

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        f = self.faults
        if f.latency_s:
            await asyncio.sleep(f.latency_s)
        if f.maintenance == "html":
            return web.Response(
                status=503, text="<html><body>503 Service Unavailable</body></html>", content_type="text/html"
            )
        if f.maintenance:
            return self._json(503, wire.error(1, "System is under maintenance."))
        if request.path == "/api/v3/userDataStream":  # listen keys: API key, no signature
            body = (await request.text()) if request.can_read_body else ""
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))
            with self.lock:
                status, out = self.users.rest(request.method, request.headers.get("X-MBX-APIKEY"), params)
            return self._json(status, out)
        route = self._routes.get((request.method, request.path))
        if route is None:
            return self._json(404, wire.error(-1000, f"unknown endpoint {request.method} {request.path}"))
        signed, handler = route
        query = request.query_string
        body = (await request.text()) if request.can_read_body else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        weight, is_order = self._cost(request.method, request.path, params)
        with self.lock:
            verdict = self.limiter.check(self.now_ms() / 1000, weight, is_order)
        if verdict.status:
            return self._json(
                verdict.status,
                wire.error(verdict.code, verdict.message),
                {"Retry-After": str(verdict.retry_after_s)},
            )
        owner = None
        if signed:
            got = auth.verify(
                request.headers.get("X-MBX-APIKEY"), self._secrets, query, body, params, self.now_ms()
            )
            if isinstance(got, auth.AuthFailure):
                return self._json(got.status, wire.error(got.code, got.message))
            owner = self._owners[got]
        try:
            out = await handler(owner, params)
        except _Refused as r:
            return self._json(r.status, wire.error(r.code, r.msg))
        if isinstance(out, web.StreamResponse):
            return out
        return self._json(200, out)

    def _mutated(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        """`resp` as `faults.mutate` rewrites it (JSON answers only; the usage headers kept)."""
        mutate = self.faults.mutate
        if mutate is None or not isinstance(resp, web.Response) or resp.content_type != "application/json":
            return resp
        assert isinstance(resp.body, bytes)  # json_response's text, encoded
        out = mutate(request.method, request.path, resp.status, json.loads(resp.body))
        if out is None:
            return resp
        status, body, content_type = out
        headers = {
            k: v for k, v in resp.headers.items() if k.lower() not in ("content-type", "content-length")
        }
        return web.Response(status=status, body=body, content_type=content_type, headers=headers)

    def _cost(self, method: str, path: str, params: dict) -> tuple[int, bool]:
        """(request weight, whether it counts as a new order) of one request."""
        weight = WEIGHTS.get((method, path), 1)
        if path == "/api/v3/depth":
            weight = depth_weight(int(params.get("limit", "100") or 100))
        elif path == "/api/v3/openOrders" and "symbol" not in params:
            weight = 80
        elif path == "/api/v3/myTrades" and "orderId" in params:
            weight = 5
        return weight, method == "POST"

    def _json(self, status: int, body, extra: dict | None = None) -> web.Response:
        headers = self.limiter.headers(self.now_ms() / 1000)
        if extra:
            headers.update(extra)
        return web.json_response(body, status=status, headers=headers)

    # -- helpers -----------------------------------------------------------------------------

    def _symbol(self, p: dict) -> str:
        sym = p.get("symbol")
        if sym is None:
            raise _Refused(
                400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if sym not in self.formats:
            raise _Refused(400, -1121, "Invalid symbol.")
        return sym

    @staticmethod
    def _number(p: dict, name: str) -> float:
        try:
            return float(p[name])
        except (KeyError, ValueError):
            raise _Refused(
                400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
            ) from None

    def _absorb(self, symbol: str, result: Result) -> None:
        """Keep every fill of a real account holder for myTrades."""
        eng = self.exchange.engine(symbol)
        for f in result.fills:
            if f.owner != MARKET:
                oid = eng.query(f.owner, f.coid).oid
                self._trades.setdefault((f.owner, symbol), []).append((f, oid))
        self.users.publish_result(self, symbol, result)

    def _commission(self, f: MatchFill) -> float:
        return self.exchange.accounts.to_float(f.fee_asset, f.fee_atoms)

    def _find(self, owner: str, symbol: str, p: dict):
        """The order named by orderId or origClientOrderId; REJECTED orders do not exist."""
        eng = self.exchange.engine(symbol)
        view = None
        try:
            if p.get("origClientOrderId"):
                view = eng.query(owner, p["origClientOrderId"])
            elif p.get("orderId"):
                oid = int(p["orderId"])
                view = next(
                    (
                        eng.query(owner, x.coid)
                        for x in self.placed
                        if x.symbol == symbol and x.owner == owner and x.oid == oid
                    ),
                    None,
                )
            else:
                raise _Refused(
                    400,
                    -1102,
                    "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
                )
        except (OrderNotFound, ValueError):
            view = None
        if view is None or view.status == OrderStatus.REJECTED:
            return None
        return view

    # -- endpoints ---------------------------------------------------------------------------

    async def _ping(self, owner, p):
        return {}

    async def _time(self, owner, p):
        return {"serverTime": self.now_ms() + self.faults.time_endpoint_error_ms}

    async def _exchange_info(self, owner, p):
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": self.limiter.published(),
            "exchangeFilters": [],
            "symbols": [f.symbol_info() for f in self.formats.values()],
        }

    async def _depth(self, owner, p):
        sym = self._symbol(p)
        limit = int(p.get("limit", "100") or 100)
        fmt = self.formats[sym]
        with self.lock:
            bids, asks = self.exchange.engine(sym).book(min(limit, 5000))
            uid = self.streams.update_id(sym)
        return {
            "lastUpdateId": uid,
            "bids": [[fmt.px(a), fmt.qty(b)] for a, b in bids],
            "asks": [[fmt.px(a), fmt.qty(b)] for a, b in asks],
        }

    async def _account(self, owner, p):
        with self.lock:
            acc = self.exchange.accounts
            balances = []
            for asset in acc.assets(owner):
                a = acc.get(owner, asset)
                balances.append(
                    {
                        "asset": asset,
                        "free": f"{acc.to_float(asset, a.free):.8f}",
                        "locked": f"{acc.to_float(asset, a.locked):.8f}",
                    }
                )
        return {
            "makerCommission": round(self.fees.maker_bps),
            "takerCommission": round(self.fees.taker_bps),
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
        }

    async def _trade_fee(self, owner, p):
        """Our commission rates per symbol (fractions), as ccxt's fetch_trading_fees reads them."""
        syms = [self._symbol(p)] if "symbol" in p else list(self.formats)
        maker, taker = f"{self.fees.maker_bps * 1e-4:.8f}", f"{self.fees.taker_bps * 1e-4:.8f}"
        return [{"symbol": s, "makerCommission": maker, "takerCommission": taker} for s in syms]

    def _order_type(self, p: dict) -> OrderType:
        wtype, tif = p.get("type"), p.get("timeInForce")
        if wtype == "LIMIT":
            if tif in (None, "GTC"):
                return OrderType.LIMIT
            if tif == "IOC":
                return OrderType.IOC
            raise _Refused(400, -1115, "Invalid timeInForce.")
        if wtype == "LIMIT_MAKER":
            return OrderType.POST_ONLY
        if wtype == "MARKET":
            if "quoteOrderQty" in p:
                raise _Refused(400, -1013, "quoteOrderQty is not supported by this emulator.")
            return OrderType.MARKET
        raise _Refused(400, -1116, "Invalid orderType.")

    async def _post_order(self, owner, p):
        sym = self._symbol(p)
        side = wire.SIDE_OF.get(p.get("side", ""))
        if side is None:
            raise _Refused(
                400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."
            )
        otype = self._order_type(p)
        qty = self._number(p, "quantity")
        price = None if otype == OrderType.MARKET else self._number(p, "price")
        coid = p.get("newClientOrderId")
        if not coid:
            self._auto_id += 1
            coid = f"emu{self._auto_id}"
        f = self.faults
        if f.take("insufficient_balance"):
            raise _refuse(RejectReason.INSUFFICIENT_FUNDS)
        if f.filter_failure and f.take("filter_failure_count"):
            raise _refuse(wire.FILTER_FAILURES[f.filter_failure])
        if f.take("slow_submit"):
            if not f.slow_submit_placed:
                await asyncio.sleep(f.slow_s)
                return web.Response(status=503, text="upstream timed out", content_type="text/plain")
            body = self._place(owner, sym, coid, side, otype, qty, price, p)
            await asyncio.sleep(f.slow_s)
            return body
        if f.take("empty_reply"):
            self._place(owner, sym, coid, side, otype, qty, price, p)
            return {}
        return self._place(owner, sym, coid, side, otype, qty, price, p)

    def _place(self, owner, sym, coid, side, otype, qty, price, p) -> dict:
        with self.lock, self.streams.watch(sym):
            result = self.exchange.submit(owner, sym, coid, side, otype, qty, price, time.time_ns())
            view = result.order
            assert view is not None  # a submit's result always holds its order
            if result.duplicate:
                if view.status == OrderStatus.REJECTED:
                    raise _refuse(view.reason)
                raise _Refused(400, -2010, "Duplicate order sent.")
            if view.status == OrderStatus.REJECTED:
                self.users.publish_result(self, sym, result)
                raise _refuse(view.reason)
            self.placed.append(Placed(sym, owner, coid, view.oid))
            self._absorb(sym, result)
            fmt = self.formats[sym]
            fills = [
                fmt.fill(x, self._commission(x)) for x in result.fills if x.owner == owner and x.coid == coid
            ]
            ms = self.now_ms()
        resp_type = p.get("newOrderRespType", "FULL")
        body = fmt.order(view, ms, fills if resp_type == "FULL" else None)
        if resp_type == "ACK":
            body = {k: body[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId", "transactTime")}
        return body

    def _stale(self, view):
        """The lagging view of an order with fills (`faults.stale_order_view`): as placed, or None
        (unknown); `view` itself when the view does not lag or the order has no fills."""
        lag = self.faults.stale_order_view
        if not lag or view is None or view.filled_qty <= 0:
            return view
        if lag == "unknown":
            return None
        return dataclasses.replace(
            view, status=OrderStatus.OPEN, filled_qty=0.0, avg_price=0.0, filled_lots=0
        )

    async def _get_order(self, owner, p):
        sym = self._symbol(p)
        with self.lock:
            view = self._stale(self._find(owner, sym, p))
        if view is None:
            raise _Refused(400, -2013, "Order does not exist.")
        return self.formats[sym].order(view, self.now_ms())

    async def _delete_order(self, owner, p):
        sym = self._symbol(p)
        with self.lock, self.streams.watch(sym):
            view = self._find(owner, sym, p)
            if view is None:
                raise _Refused(400, -2011, "Unknown order sent.")
            stale = self._stale(view)
            if stale is not view:  # answered from the lagging view
                if stale is None:
                    raise _Refused(400, -2011, "Unknown order sent.")
                if not view.status.terminal:
                    self.exchange.cancel(owner, sym, view.coid, time.time_ns())
                self._auto_id += 1
                body = self.formats[sym].order(
                    dataclasses.replace(stale, status=OrderStatus.CANCELED),
                    self.now_ms(),
                    client_id=p.get("newClientOrderId") or f"emucancel{self._auto_id}",
                )
                body["origClientOrderId"] = view.coid
                return body
            if self.faults.fill_on_cancel and not view.status.terminal:
                opposite = Side.SELL if view.side == Side.BUY else Side.BUY
                eng = self.exchange.engine(sym)
                levels = eng.book_lots(1 << 30)[0 if view.side == Side.BUY else 1]
                better = (
                    (lambda px: px >= view.price_ticks)
                    if view.side == Side.BUY
                    else (lambda px: px <= view.price_ticks)
                )
                lots = sum(
                    n for px, n in levels if not view.price_ticks or better(px)
                )  # the queue up to ours
                self._absorb(
                    sym,
                    self.exchange.participant_trade(
                        sym, opposite, lots, time.time_ns(), view.price_ticks or None
                    ),
                )
                view = eng.query(owner, view.coid)
            if view.status.terminal:
                raise _Refused(400, -2011, "Unknown order sent.")
            result = self.exchange.cancel(owner, sym, view.coid, time.time_ns())
            self._auto_id += 1
            cancel_id = p.get("newClientOrderId") or f"emucancel{self._auto_id}"
            self.users.publish_result(self, sym, result, cancel_id)
        assert result.order is not None  # a cancel's result always holds its order
        body = self.formats[sym].order(result.order, self.now_ms(), client_id=cancel_id)
        body["origClientOrderId"] = view.coid
        return body

    async def _open_orders(self, owner, p):
        syms = [self._symbol(p)] if "symbol" in p else list(self.formats)
        out = []
        with self.lock:
            for sym in syms:
                for view in self.exchange.engine(sym).resting(owner):
                    out.append(self.formats[sym].order(view, self.now_ms()))
        return out

    async def _my_trades(self, owner, p):
        sym = self._symbol(p)
        limit = min(int(p.get("limit", "500") or 500), 1000)
        from_id = int(p["fromId"]) if p.get("fromId") else None
        order_id = int(p["orderId"]) if p.get("orderId") else None
        start_ms = int(p["startTime"]) if p.get("startTime") else None
        fmt = self.formats[sym]
        with self.lock:
            rows = list(self._trades.get((owner, sym), ()))
        rows = [
            (f, oid)
            for f, oid in rows
            if (from_id is None or f.trade_id >= from_id)
            and (order_id is None or oid == order_id)
            and (start_ms is None or f.ts_ns // 1_000_000 >= start_ms)
        ]
        return [fmt.trade(f, oid, self._commission(f)) for f, oid in rows[:limit]]


class EmulatorThread:
    """Runs an Emulator on its own event loop in a daemon thread (for sync callers and demos)."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0):
        self.emulator, self.host, self.port = emulator, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 10.0) -> int:
        def run():
            self._loop = asyncio.new_event_loop()
            try:
                self.port = self._loop.run_until_complete(self.emulator.start(self.host, self.port))
            except BaseException as exc:  # reported to the starting thread
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.emulator.stop())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"emulator-{self.emulator.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("emulator did not start")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
