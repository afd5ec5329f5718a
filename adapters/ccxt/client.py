"""A centralized venue through ccxt (async): `basis_core.venue.Venue` over one ccxt client.

One `ccxt.async_support` client per venue, `enableRateLimit` off: every request passes the
venue's `Gate` (Cython router: priority, throttle, sequence number). Orders carry OUR client
order ids (`params={"clientOrderId": coid}`); fetch and cancel address orders by that id.

Failures go through the ONE table of `constants.ERRORS`: each ccxt exception becomes a typed
`basis_core.errors` error (messages redacted of every secret), and its failure mode is reported
to `observer(event, error)` — a `VenueEvent` (TIMEOUT → SUSPECT, RATE_LIMITED → THROTTLED,
MAINTENANCE → QUARANTINED, DISCONNECTED → DOWN) and, for rate limits, `EngineEvent.RATE_LIMITED`
(→ DEGRADED). Retries follow `basis_ext.router.RetryPolicy`: queries and cancels are retried
blindly, a rate-limited submit after the venue's Retry-After, and a submit whose outcome is
unknown (timeout, 5xx, unreadable answer) is first looked up by client order id: adopted when the
venue has it (observer gets VERIFIED), sent again once when it does not.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from basis_core.errors import (
    ConfigError,
    IpBanned,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueError,
    VenueUnavailable,
    redact,
)
from basis_core.schema import OrderType, Side, VenueReport
from basis_core.state.tables import VenueEvent
from basis_core.venue import (
    Balance,
    BookUpdate,
    FillsPage,
    FundingUpdate,
    InstrumentInfo,
    OrderRequest,
    OrderStatus,
    Position,
    TransferInfo,
    Venue,
    VenueOrder,
    VenueStatus,
    require_finite,
)
from basis_core.venue_errors import report_of
from basis_ext import router as R

from . import parsing, perps, streams
from .auth import Credentials, RedactingFilter
from .config import CcxtVenueConfig
from .constants import (
    ANSWER_SHAPES,
    BALANCE_ROWS,
    BAN_DEFAULT_S,
    BAN_RULE,
    BAN_STATUS,
    BAN_UNTIL,
    ENDPOINT_NAMES,
    FILL_POLL_SHARE,
    FRAME_SHAPES,
    VENUE_MESSAGES,
    ErrorRule,
    rule_for,
)
from .dispatch import Gate, Limits, ban_end_ms, published_limits

_headers: contextvars.ContextVar[dict | None] = contextvars.ContextVar("basis_ccxt_headers", default=None)
_status: contextvars.ContextVar[int] = contextvars.ContextVar("basis_ccxt_status", default=0)
#: the JSON of each success answer of the current request, by path (what ccxt parsed it from)
_answers: contextvars.ContextVar[dict | None] = contextvars.ContextVar("basis_ccxt_answers", default=None)
_OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
Observer = Callable[[object, VenueError | None], None]


def _client_class(exchange: str, websocket: bool = False):
    """ccxt's async class for `exchange` (its ccxt.pro class when `websocket`), extended to keep
    each answer's headers (Retry-After, usage) and HTTP status (a 418 ban) for its caller in context
    variables: concurrent requests never see each other's. An instance's `basis_on_response`, when
    set, is handed (status, url, body) of every answer; on a ccxt.pro class its `basis_on_message`,
    when set, sees every websocket message (and its connection's URL) before ccxt handles it."""
    base = getattr(ccxt_pro, exchange, None) if websocket else getattr(ccxt_async, exchange, None)
    if base is None:
        raise ConfigError("exchange", f"ccxt has no exchange {exchange!r}")

    def on_rest_response(
        self, code, reason, url, method, response_headers, response_body, request_headers, request_body
    ):
        _headers.set(dict(response_headers or {}))
        _status.set(int(code or 0))
        hook = getattr(self, "basis_on_response", None)
        if hook is not None:
            hook(code, url, response_body)
        parsed = _require_json(self.id, code, url, response_body)
        answers = _answers.get()
        if parsed is not None and answers is not None:
            answers[parsed[0]] = parsed[1]
        return base.on_rest_response(
            self, code, reason, url, method, response_headers, response_body, request_headers, request_body
        )

    attrs: dict[str, object] = {"on_rest_response": on_rest_response}
    if websocket:

        def handle_message(self, client, message):
            hook = getattr(self, "basis_on_message", None)  # the user stream's (streams.py)
            if hook is not None:
                hook(message, getattr(client, "url", ""))
            frame = message.get("data", message) if isinstance(message, dict) else None  # (combined streams)
            fields = (
                FRAME_SHAPES.get(self.id, {}).get(str(frame.get("e"))) if isinstance(frame, dict) else None
            )
            if fields is not None:
                problem = parsing.shape_error(frame, fields) or parsing.diff_error(frame)
                if problem is not None:
                    client.on_error(ccxt.BadResponse(f"{self.id} {message.get('e')}: {problem}"))
                    return None
            return base.handle_message(self, client, message)

        def client(self, url):
            """ccxt.pro's connection to `url`, which ends with BadResponse (every watch on it
            fails, the next one connects again) on a message it cannot read: ccxt would log the
            error from its receive loop and read nothing more, the watches waiting for ever."""
            conn = base.client(self, url)
            if not getattr(conn, "basis_guarded", False):
                conn.basis_guarded = True
                conn.handle_text_or_binary_message = _guarded(
                    self.id, conn, conn.handle_text_or_binary_message
                )
            return conn

        attrs["handle_message"] = handle_message
        attrs["client"] = client
    return type(f"basis_{exchange}", (base,), attrs)


def _guarded(exchange: str, conn, handle):
    def guarded(data):
        try:
            return handle(data)
        except Exception as exc:
            conn.on_error(
                ccxt.BadResponse(f"{exchange} websocket message not readable: {type(exc).__name__}")
            )

    return guarded


def rewrite_urls(urls: dict, base_url: str) -> dict:
    """Every REST base URL of a ccxt `urls["api"]` moved to `base_url`, path prefixes kept."""
    out = {}
    for name, url in urls.items():
        if isinstance(url, str) and "://" in url:
            rest = url.split("://", 1)[1]
            path = rest.split("/", 1)[1] if "/" in rest else ""
            out[name] = base_url.rstrip("/") + "/" + path
        else:
            out[name] = url
    return out


class CcxtVenue(Venue):
    """One ccxt venue. `venue_id` is its registry id (sequence numbers are per venue id)."""

    def __init__(
        self,
        name: str,
        config: CcxtVenueConfig,
        credentials: Credentials,
        *,
        venue_id: int = 0,
        router: R.Router | None = None,
        observer: Observer | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        poll_s: float = 0.5,
        coid_prefix: str = "",
    ):
        if not isinstance(credentials, Credentials):
            raise ConfigError(f"venues.{name}.credentials", "expected a Credentials object")
        self.name, self.config, self._cred = name, config, credentials
        if coid_prefix and not (coid_prefix.isascii() and coid_prefix.isalnum() and len(coid_prefix) <= 12):
            raise ConfigError(
                f"venues.{name}", f"client order id prefix {coid_prefix!r} is not 1-12 letters/digits"
            )
        #: the run's mark on every client order id this venue sends (see `venue_coid`): a venue
        #: remembers ids across runs, and an id of another run must never be read as one of ours
        self.coid_prefix = coid_prefix
        self._secrets = credentials.secrets()
        self.observer = observer
        self.poll_s = poll_s
        limits = Limits.of(config.pools, config.endpoints, ENDPOINT_NAMES)  # ConfigError here, at start
        self.gate = Gate(
            venue_id,
            limits.throttle(clock()),
            router,
            clock,
            name=name,
            max_block_s=config.max_backoff_s,
            limits=limits,
        )
        self.clock_offset_ms = 0  # the venue's clock minus ours, measured at start and on -1021
        self._synced_ns = 0  # time.monotonic_ns() of the last measurement
        self._clock_bad = False  # a timestamp error outlived a re-measurement; status() re-checks
        self._exchange_info: str | None = None  # the body of the exchangeInfo answer (its limits)
        self._ep = {n: i for i, n in enumerate(ENDPOINT_NAMES)}
        self.policy = R.RetryPolicy(config.max_attempts, config.backoff_s, config.max_backoff_s)
        self._ex = None
        self._instruments: dict[str, InstrumentInfo] = {}
        self._by_symbol: dict[str, str] = {}
        self._orders: dict[str, tuple[str, OrderRequest | None]] = {}  # coid -> (instrument, request)
        self._coid_of: dict[tuple[str, str], str] = {}  # (instrument, venue id) -> coid
        self._last: dict[str, VenueOrder] = {}  # coid -> last view
        self._live: set[str] = set()  # orders not known to be finished (the user stream's backstop)
        #: per instrument, ws books: sequence gaps repaired by a fresh snapshot; silences marked stale
        self.book_resyncs: dict[str, int] = {}
        self.book_stale: dict[str, int] = {}
        #: user_data "ws": our order updates and fills pushed by the venue (streams.py)
        self.user_stream = streams.UserStream(self) if config.user_data_mode == "ws" else None
        self._perps: perps.Perps | None = None  # the perp side (positions, funding), see perps.py
        self._closed = asyncio.Event()
        self.log = logging.getLogger(f"basis.venue.{name}")

    def __repr__(self) -> str:
        return f"CcxtVenue({self.name!r}, exchange={self.config.exchange!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._ex is not None:
            return
        cfg = self.config
        logger = logging.getLogger(f"basis.ccxt.{self.name}")
        RedactingFilter.install(logger, self._secrets)
        params = {
            "apiKey": self._cred.api_key,
            "secret": self._cred.secret,
            "enableRateLimit": False,
            "timeout": cfg.timeout_ms,
            "options": perps.client_options(cfg.exchange, dict(_OPTIONS, recvWindow=cfg.recv_window_ms)),
            "logger": logger,
        }
        if self._cred.password:
            params["password"] = self._cred.password
        ex = _client_class(cfg.exchange, "ws" in (cfg.market_data, cfg.user_data_mode))(params)
        if cfg.sandbox:
            ex.set_sandbox_mode(True)
        if cfg.base_url:
            ex.urls["api"] = rewrite_urls(ex.urls["api"], cfg.base_url)
        ws_url = cfg.ws_url or (("ws" + cfg.base_url[4:]).rstrip("/") + "/ws" if cfg.base_url else "")
        if cfg.market_data == "ws" and ws_url and isinstance(ex.urls["api"].get("ws"), dict):
            ex.urls["api"]["ws"] = dict(ex.urls["api"]["ws"], spot=ws_url)
        if self.user_stream is not None:
            ws_api = cfg.ws_api_url or (
                ("ws" + cfg.base_url[4:]).rstrip("/") + "/ws-api/v3" if cfg.base_url else ""
            )
            urls_ws = ex.urls["api"].get("ws")
            if ws_api and isinstance(urls_ws, dict):
                urls_ws["ws-api"] = dict(urls_ws.get("ws-api") or {}, spot=ws_api)
            ex.basis_on_message = self.user_stream.on_message
        streamed = "ws" in (cfg.market_data, cfg.user_data_mode)
        perps.stand_in(ex, cfg.exchange, cfg.base_url, ws_url if streamed else "")
        ex.basis_on_response = self._on_response
        self._ex = ex
        try:
            await self.sync_clock()
            markets = await self._call(R.OP_MARKETS, "markets", R.QUERY, ex.load_markets)
            self._learn_limits()
        except BaseException:
            await self.close()
            raise
        for name, symbol in cfg.instruments.items():
            if symbol not in markets:
                await self.close()
                raise ConfigError(
                    f"venues.{self.name}.instruments.{name}", f"{symbol} is not listed by {cfg.exchange}"
                )
            self._instruments[name] = parsing.instrument(self.name, name, markets[symbol])
            self._by_symbol[symbol] = name
        try:
            self._perps = perps.Perps.attach(self)
            if self._perps is not None:
                await self._perps.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closed.set()
        await self.gate.close()
        if self._ex is not None:
            await self._ex.close()
            self._ex = None

    def set_degraded(self, degraded: bool) -> None:
        """Lower this venue's routing rate to `config.degraded_rate` while the engine is DEGRADED
        (hedges and cancels keep their priority), or restore it."""
        self.gate.degrade(self.config.degraded_rate if degraded else 1.0)

    def instruments(self) -> dict[str, InstrumentInfo]:
        return dict(self._instruments)

    async def trading_fees(self) -> dict[str, tuple[float, float]]:
        """Our (maker, taker) fees in bps per instrument, as the venue reports them (ccxt's
        fetch_trading_fees); {} when the exchange has no such call, or not on these endpoints
        (Binance spot's testnet: ccxt has no sandbox URL for the /sapi fee call). Typed errors
        only."""
        ex = self._ex_or_fail()
        if not ex.has.get("fetchTradingFees"):
            return {}
        try:
            fees = await self._call(R.OP_MARKETS, "markets", R.QUERY, ex.fetch_trading_fees)
        except VenueError as exc:
            if exc.code == "not_supported":
                return {}
            raise
        out = {}
        for name, info in self._instruments.items():
            fee = fees.get(info.symbol) if isinstance(fees, dict) else None
            if not fee or fee.get("maker") is None or fee.get("taker") is None:
                continue
            maker = require_finite(self.name, "maker fee", fee["maker"])
            taker = require_finite(self.name, "taker fee", fee["taker"])
            out[name] = (maker * 1e4, taker * 1e4)
        return out

    # -- the venue's clock and limits ------------------------------------------------------------

    async def sync_clock(self) -> int:
        """Measure the venue's clock against ours from its time endpoint (the middle of the round
        trip) and sign every request on the venue's clock from now on (ccxt's `timeDifference`,
        which its `nonce` subtracts). Returns the offset, venue minus local, in ms."""
        ex = self._ex_or_fail()
        if not ex.has.get("fetchTime"):
            return self.clock_offset_ms
        before = time.time_ns()
        server = await self._call(R.OP_MARKETS, "time", R.QUERY, ex.fetch_time)
        after = time.time_ns()
        if not isinstance(server, int | float) or not math.isfinite(server) or server <= 0:
            raise MalformedResponse(self.name, "malformed", f"server time {server!r}")
        offset = int(server) - (before + after) // 2_000_000
        if offset != self.clock_offset_ms:
            self.log.info("%s: venue clock offset %+d ms (was %+d)", self.name, offset, self.clock_offset_ms)
        self.clock_offset_ms = offset
        ex.options["timeDifference"] = -offset
        self._synced_ns = time.monotonic_ns()
        return offset

    def venue_now_ms(self) -> int:
        """The venue's clock now, as last measured."""
        return time.time_ns() // 1_000_000 + self.clock_offset_ms

    def _on_response(self, code, url: str, body) -> None:
        if code == 200 and isinstance(url, str) and url.split("?", 1)[0].endswith("/exchangeInfo"):
            self._exchange_info = body if isinstance(body, str) else None

    def _learn_limits(self) -> None:
        """The limits the venue published with its markets replace higher configured ones; a
        weight that no longer fits is a ConfigError now, at start."""
        if not self._exchange_info:
            return
        try:
            info = json.loads(self._exchange_info)
        except ValueError:
            raise MalformedResponse(self.name, "malformed", "exchangeInfo is not JSON") from None
        published = published_limits(self.name, info)
        self._exchange_info = None
        if published and self.gate.limits is not None:
            try:
                self.gate.retune(self.gate.limits.learn(published))
            except ConfigError as exc:
                raise ConfigError(
                    f"venues.{self.name}.{exc.path}", f"{exc.message} (with the limits the venue publishes)"
                ) from None

    # -- the request path ---------------------------------------------------------------------

    def _emit(self, event, error: VenueError | None) -> None:
        if self.observer is not None:
            self.observer(event, error)

    def _translate(self, exc: ccxt.BaseError) -> tuple[VenueError, ErrorRule]:
        """Our typed error (redacted) and its rule for one ccxt exception."""
        rule = rule_for(exc)
        assert rule is not None  # ERRORS has a rule for ccxt.BaseError itself
        text = redact(str(exc), self._secrets)
        if rule.error is RateLimited and _status.get() == BAN_STATUS:
            return self._banned(text), BAN_RULE
        code, reason = rule.code, rule.reason
        venue_msg = _venue_message(text, self.config.exchange)
        if venue_msg in VENUE_MESSAGES:
            code, refined = VENUE_MESSAGES[venue_msg]
            if rule.error is OrderRejected:
                reason = refined
        err: VenueError
        if rule.error is OrderRejected:
            err = OrderRejected(self.name, code, text, reason=reason)
        elif rule.error is RateLimited:
            err = RateLimited(self.name, code, text, retry_after_s=_retry_after(_headers.get()))
        else:
            err = rule.error(self.name, code, text)
        return err, rule

    def _banned(self, text: str) -> IpBanned:
        """The IpBanned of a 418 answer: its end from Retry-After, else from the venue-time end
        the message names, else BAN_DEFAULT_S; the gate sends nothing until then."""
        left = _retry_after(_headers.get())
        if left is None:
            end_ms = ban_end_ms(text, BAN_UNTIL)
            left = max(0.0, (end_ms - self.venue_now_ms()) / 1000) if end_ms is not None else BAN_DEFAULT_S
        err = IpBanned(
            self.name, "ip_banned", text, retry_after_s=left, until_ns=time.time_ns() + int(left * 1e9)
        )
        self.gate.ban(err, left)
        return err

    async def _call(self, op: int, endpoint: str, priority: int, fn, *args, **kwargs):
        """One logical request: admitted by the gate, retried per the policy (never a submit:
        `submit` runs its own verification). A timestamp the venue refuses (-1021) re-measures
        the clock offset and is sent once more. Raises typed errors only."""
        attempt, resynced = 0, False
        ep = self._ep[endpoint]
        while True:
            attempt += 1
            sent_ns = time.monotonic_ns()
            await self.gate.admit(ep, priority)
            _headers.set(None)
            _status.set(0)
            _answers.set({})
            caught: ccxt.BaseError
            try:
                return await fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                caught = exc
            except (
                LookupError,
                TypeError,
                ValueError,
                AttributeError,
                ArithmeticError,  # int(float("inf")) of a timestamp in ccxt's parsing
            ) as exc:  # ccxt could not parse the answer
                caught = ccxt.BadResponse(f"{self.config.exchange} unreadable answer: {exc!r}")
            finally:
                self.gate.observe(ep, _headers.get(), self.venue_now_ms())
            if isinstance(caught, ccxt.InvalidNonce) and not resynced and endpoint != "time":
                resynced, attempt = True, attempt - 1
                if self._synced_ns < sent_ns:  # nobody re-measured since this request left
                    await self.sync_clock()
                continue
            err, rule = self._translate(caught)
            if isinstance(caught, ccxt.InvalidNonce):
                self._clock_bad = True
            if rule.venue_event is not None:
                self._emit(rule.venue_event, err)
            if rule.engine_event is not None:
                self._emit(rule.engine_event, err)
            retry_after = getattr(err, "retry_after_s", None)
            if retry_after:
                self.gate.penalize(retry_after)
            action = self.policy.decide(op, rule.fault, attempt)
            if action != R.RETRY or (retry_after or 0) > self.config.max_backoff_s:
                raise err
            await asyncio.sleep(self.policy.backoff_ns(attempt, 0) / 1e9)

    @staticmethod
    def answer(path: str):
        """The JSON of the last success answer from `path` within the current request (`_call`),
        None if there was none: what ccxt parsed its result from."""
        return (_answers.get() or {}).get(path)

    def _ex_or_fail(self):
        if self._ex is None:
            raise VenueUnavailable(self.name, "not_started", "call start() first")
        return self._ex

    def _symbol(self, instrument: str) -> str:
        info = self._instruments.get(instrument)
        if info is None:
            raise OrderRejected(self.name, "unknown_instrument", instrument, reason="bad_input")
        return info.symbol

    # -- orders -------------------------------------------------------------------------------

    def venue_coid(self, coid: str) -> str:
        """The client order id the venue sees for our wire id `coid`: the run's prefix, then the
        id (letters and digits only, at most 32 characters: Binance takes 36, OKX 32)."""
        return self.coid_prefix + coid

    def our_coid(self, venue_coid: str | None) -> str | None:
        """Our wire id behind a venue's client order id. An id without this run's prefix (placed
        by hand, by ccxt, or by another run of basis) is foreign: `coid_from_wire` must not read
        it as ours, so one of bare digits comes back marked with "~" (others as they are). It is
        reconciled as a foreign order, never adopted as one of this run's."""
        if not venue_coid or not self.coid_prefix:
            return venue_coid
        if venue_coid.startswith(self.coid_prefix) and venue_coid[len(self.coid_prefix) :].isdigit():
            return venue_coid[len(self.coid_prefix) :]
        return "~" + venue_coid if venue_coid.isdigit() else venue_coid

    def _wire(self, order: OrderRequest) -> tuple[str, float | None, dict]:
        """ccxt (type, price, params) for our order; a protected MARKET goes as a limit IOC at
        its bound (ccxt would turn a priced market order into a quote amount)."""
        params: dict = {"clientOrderId": self.venue_coid(order.coid)}
        if order.reduce_only and self._perps is not None and order.instrument in self._perps.perps:
            params["reduceOnly"] = True
        if order.type == OrderType.LIMIT:
            return "limit", order.price, params
        if order.type == OrderType.IOC or (order.type == OrderType.MARKET and order.price is not None):
            return "limit", order.price, dict(params, timeInForce="IOC")
        if order.type == OrderType.POST_ONLY:
            return "limit", order.price, dict(params, postOnly=True)
        return "market", None, params

    def _check(self, order: OrderRequest) -> InstrumentInfo:
        info = self._instruments.get(order.instrument)
        if info is None:
            raise OrderRejected(self.name, "unknown_instrument", order.instrument, reason="bad_input")
        if not parsing.on_grid(order.qty, info.lot) or order.qty > info.max_qty:
            raise OrderRejected(
                self.name, "lot_size", f"{order.coid}: qty {order.qty} off lot {info.lot}", reason="lot_size"
            )
        if order.price is not None and not parsing.on_grid(order.price, info.tick):
            raise OrderRejected(
                self.name,
                "price_filter",
                f"{order.coid}: price {order.price} off tick {info.tick}",
                reason="bad_input",
            )
        return info

    def _adopt(self, order: OrderRequest | None, raw, instrument: str, coid: str | None = None) -> VenueOrder:
        req_type = order.type if order is not None else None
        if coid is None and isinstance(raw, dict):
            coid = self.our_coid(raw.get("clientOrderId"))
        vo = parsing.order(self.name, raw, instrument, coid, req_type)
        last = self._last.get(vo.coid)
        if not vo.fee_asset and last is not None and last.fee_asset:
            vo = dataclasses.replace(vo, fee=last.fee, fee_asset=last.fee_asset)  # a query reports no fees
        self._last[vo.coid] = vo
        if vo.status.terminal:
            self._live.discard(vo.coid)
        else:
            self._live.add(vo.coid)
        self._orders.setdefault(vo.coid, (instrument, order))
        self._coid_of[(instrument, vo.venue_order_id)] = vo.coid
        return vo

    async def submit(self, order: OrderRequest, priority: int = R.ENTRY) -> VenueOrder:
        """Place `order` (priority: router ENTRY, HEDGE ...). Idempotent by client order id."""
        ex = self._ex_or_fail()
        info = self._check(order)
        if order.coid in self._orders:  # sent before: the venue's copy, if it has one
            try:
                return await self.fetch_order(order.coid, order.instrument, min(priority, R.QUERY))
            except OrderNotFound:
                pass  # it never got there: sending is safe
        self._orders[order.coid] = (order.instrument, order)
        self._live.add(order.coid)
        otype, price, params = self._wire(order)
        side = "buy" if order.side == Side.BUY else "sell"
        sends = 0
        while True:
            sends += 1
            try:
                raw = await self._call(
                    R.OP_SUBMIT,
                    "order",
                    priority,
                    ex.create_order,
                    info.symbol,
                    otype,
                    side,
                    order.qty,
                    price,
                    dict(params),
                )
                return self._adopt(order, raw, order.instrument, order.coid)
            except OrderRejected as err:
                if err.code != "duplicate":
                    self._live.discard(order.coid)  # refused: not in flight
                    raise
                return await self._verify(order, priority, err)  # the venue has it: adopt it
            except (RequestTimeout, VenueUnavailable, MalformedResponse) as err:
                if not self.config.verify_submits:
                    raise
                try:
                    return await self._verify(order, priority, err)
                except OrderNotFound:
                    if sends >= 2:  # sent twice, never placed
                        raise err from None
                    # not placed: send it once more

    async def _verify(self, order: OrderRequest, priority: int, cause: VenueError) -> VenueOrder:
        """After an unknown outcome: the order as the venue has it (adopted; VERIFIED reported),
        OrderNotFound if it never reached the venue, or `cause` again if the lookup fails too."""
        try:
            vo = await self.fetch_order(order.coid, order.instrument, min(priority, R.QUERY))
        except OrderNotFound:
            self._emit(VenueEvent.VERIFIED, None)
            raise
        except VenueError:
            raise cause from None
        self._emit(VenueEvent.VERIFIED, None)
        self.log.info("%s: order %s adopted after %s", self.name, order.coid, cause.code)
        return vo

    async def cancel(self, coid: str, instrument: str | None = None) -> VenueOrder:
        """Cancel by client order id. The outcome is checked against the order's trades: a
        cancel that lost the race with a fill is reported with the fill (FILLED, or the filled
        quantity) even when the venue's order view lags behind its trade list (it answers
        CANCELED, NEW or unknown)."""
        ex = self._ex_or_fail()
        instrument = self._instrument_of(coid, instrument)
        symbol = self._symbol(instrument)
        try:
            raw = await self._call(
                R.OP_CANCEL,
                "cancel",
                R.CANCEL,
                ex.cancel_order,
                None,
                symbol,
                {"origClientOrderId": self.venue_coid(coid)},
            )
        except OrderNotFound as gone:  # filled or gone first: tell which
            try:
                vo = await self.fetch_order(coid, instrument, R.CANCEL)
            except OrderNotFound:
                last = self._last.get(coid)
                if last is None:
                    raise
                vo = await self._with_trades(last, symbol)  # the view lags: the trades say
                if vo is last:
                    raise gone from None
                return vo
            return await self._with_trades(vo, symbol)
        vo = self._adopt(self._orders.get(coid, (None, None))[1], raw, instrument, coid)
        return await self._with_trades(vo, symbol)

    async def _with_trades(self, vo: VenueOrder, symbol: str) -> VenueOrder:
        """`vo` corrected by the venue's trades of the order when they show more filled than it
        does: FILLED when they fill it, else its filled quantity (a canceled order keeps its
        status; an open one is PARTIALLY_FILLED). `vo` itself when they show nothing more or
        cannot be read (the fills stream books them later)."""
        if vo.status == OrderStatus.FILLED or not vo.venue_order_id:
            return vo
        ex = self._ex_or_fail()
        try:
            rows = await self._call(
                R.OP_FILLS,
                "order_fills",
                R.CANCEL,
                ex.fetch_my_trades,
                symbol,
                None,
                None,
                {"orderId": vo.venue_order_id},
            )
            fills = [
                parsing.fill(self.name, t, vo.instrument, vo.coid)
                for t in rows
                if str(t.get("order")) == vo.venue_order_id
            ]
        except VenueError as err:
            self.log.warning("%s: trades of %s not read after its cancel: %s", self.name, vo.coid, err.code)
            return vo
        filled = sum(f.qty for f in fills)
        if filled <= vo.filled_qty * (1 + 1e-9) + 1e-12:
            return vo
        status: OrderStatus = vo.status
        if filled >= vo.qty * (1 - 1e-9):
            status, filled = OrderStatus.FILLED, vo.qty
        elif status not in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            status = OrderStatus.PARTIALLY_FILLED
        assets = {f.fee_asset for f in fills}
        fee, fee_asset = (
            (sum(f.fee for f in fills), assets.pop()) if len(assets) == 1 else (vo.fee, vo.fee_asset)
        )
        out = dataclasses.replace(
            vo,
            status=status,
            filled_qty=filled,
            avg_price=sum(f.price * f.qty for f in fills) / sum(f.qty for f in fills),
            fee=fee,
            fee_asset=fee_asset,
            updated_ns=max([vo.updated_ns] + [f.ts_ns for f in fills]),
        )
        self.log.info(
            "%s: %s reported %s filled %g; its trades fill %g: %s",
            self.name,
            vo.coid,
            vo.status.name,
            vo.filled_qty,
            filled,
            status.name,
        )
        self._last[vo.coid] = out
        return out

    async def fetch_order(
        self, coid: str, instrument: str | None = None, priority: int = R.QUERY
    ) -> VenueOrder:
        ex = self._ex_or_fail()
        instrument = self._instrument_of(coid, instrument)
        raw = await self._call(
            R.OP_FETCH_ORDER,
            "fetch_order",
            priority,
            ex.fetch_order,
            None,
            self._symbol(instrument),
            {"origClientOrderId": self.venue_coid(coid)},
        )
        return self._adopt(self._orders.get(coid, (None, None))[1], raw, instrument, coid)

    def _instrument_of(self, coid: str, instrument: str | None) -> str:
        if instrument:
            return instrument
        known = self._orders.get(coid)
        if known is None:
            raise OrderNotFound(self.name, "unknown_order", f"{coid}: instrument unknown")
        return known[0]

    async def open_orders(self, instrument: str | None = None) -> list[VenueOrder]:
        ex = self._ex_or_fail()
        out = []
        for name in [instrument] if instrument else list(self._instruments):
            rows = await self._call(
                R.OP_OPEN_ORDERS, "open_orders", R.QUERY, ex.fetch_open_orders, self._symbol(name)
            )
            for raw in rows:
                known = self._orders.get(self.our_coid(raw.get("clientOrderId")) or "")
                out.append(self._adopt(known[1] if known else None, raw, name))
        return out

    async def fills(self, cursor: str | None = None, limit: int = 1000) -> FillsPage:
        """Fills per instrument after the cursor (JSON {instrument: next trade id}), oldest first."""
        ex = self._ex_or_fail()
        try:
            after = json.loads(cursor) if cursor else {}
            if not isinstance(after, dict):
                raise ValueError
        except ValueError:
            raise MalformedResponse(
                self.name, "bad_cursor", f"not a cursor of this venue: {cursor!r}"
            ) from None
        out, nxt, more = [], dict(after), False
        for name in self._instruments:
            params = {"fromId": int(after[name])} if name in after else {}
            rows = await self._call(
                R.OP_FILLS, "fills", R.QUERY, ex.fetch_my_trades, self._symbol(name), None, limit, params
            )
            more = more or len(rows) >= limit
            for t in rows:
                coid = await self._coid_for(name, str(t.get("order")))
                out.append(parsing.fill(self.name, t, name, coid))
                nxt[name] = max(int(nxt.get(name, 0)), int(t["id"]) + 1)
        out.sort(key=lambda f: (f.ts_ns, f.instrument, int(f.trade_id) if f.trade_id.isdigit() else 0))
        return FillsPage(tuple(out), json.dumps(nxt, sort_keys=True) if nxt else cursor, more)

    async def _coid_for(self, instrument: str, venue_order_id: str) -> str:
        coid = self._coid_of.get((instrument, venue_order_id))
        if coid is None:
            raw = await self._call(
                R.OP_FETCH_ORDER,
                "fetch_order",
                R.QUERY,
                self._ex_or_fail().fetch_order,
                venue_order_id,
                self._symbol(instrument),
            )
            coid = self._adopt(None, raw, instrument).coid
        return coid

    # -- funds, status, streams -----------------------------------------------------------------

    async def balances(self) -> dict[str, Balance]:
        ex = self._ex_or_fail()
        raw = await self._call(R.OP_BALANCES, "balances", R.QUERY, ex.fetch_balance)
        if self._perps is not None:
            return self._perps.balances(raw)
        return parsing.balances(self.name, raw, BALANCE_ROWS.get(self.config.exchange))

    async def positions(self) -> dict[str, Position]:
        """Perp positions by instrument (none on a spot venue)."""
        return await self._perps.positions() if self._perps is not None else {}

    async def transfer(self, asset: str, amount: float, to_venue: str) -> TransferInfo:
        raise VenueError(self.name, "not_supported", "withdrawals through ccxt are not implemented yet")

    async def transfers(self) -> list[TransferInfo]:
        raise VenueError(self.name, "not_supported", "transfer history through ccxt is not implemented yet")

    async def status(self) -> VenueStatus:
        """What a light public request says: OK, RATE_LIMITED, TIMEOUT or MAINTENANCE; after a
        timestamp error that persisted, the clock is measured again and a signed request must
        pass too (MAINTENANCE clock_skew until one does)."""
        ex = self._ex_or_fail()
        try:
            symbol = next(iter(self._by_symbol))
            await self._call(R.OP_BOOK, "book", R.QUERY, ex.fetch_order_book, symbol, 5)
            if self._clock_bad:
                await self.sync_clock()
                await self._call(R.OP_OPEN_ORDERS, "open_orders", R.QUERY, ex.fetch_open_orders, symbol)
                self._clock_bad = False
        except VenueError as err:
            report = report_of(err)
            if report is None:
                raise
            return VenueStatus(self.name, report, message=err.code)
        except StopIteration:
            pass
        return VenueStatus(self.name, VenueReport.OK)

    async def book(self, instrument: str, depth: int = 20) -> BookUpdate:
        """One REST snapshot of `instrument`'s book."""
        ex = self._ex_or_fail()
        raw = await self._call(
            R.OP_BOOK, "book", R.QUERY, ex.fetch_order_book, self._symbol(instrument), depth
        )
        if not isinstance(raw, dict):
            raise MalformedResponse(self.name, "malformed", "order book without bids/asks")
        bids = parsing.levels(self.name, "bids", raw.get("bids"))
        asks = parsing.levels(self.name, "asks", raw.get("asks"))
        return BookUpdate(
            self.name,
            instrument,
            time.time_ns(),
            bids,
            asks,
            snapshot=True,
            update_id=parsing.time_ms(self.name, "book update id", raw.get("nonce")),
        )

    async def market_data(
        self, instruments: list[str] | None = None
    ) -> AsyncIterator[BookUpdate | FundingUpdate]:
        """Book snapshots of `instruments`: REST polls every `poll_s` ("rest"), or the book ccxt.pro
        keeps from the venue's websocket diffs, after each update ("ws"). Ends at `close`."""
        names = instruments or list(self._instruments)
        if self.config.market_data == "ws":
            async for update in self._watch_books(names):
                yield update
            return
        next_marks = 0.0
        while not self._closed.is_set():
            for name in names:
                yield await self.book(name)
            if self._perps is not None and time.monotonic() >= next_marks:
                next_marks = time.monotonic() + self.config.mark_poll_s
                for update in await self._perps.funding_updates():
                    if update.instrument in names:
                        yield update
            try:
                await asyncio.wait_for(self._closed.wait(), self.poll_s)
            except TimeoutError:
                pass

    async def _watch_books(self, names: list[str]) -> AsyncIterator[BookUpdate | FundingUpdate]:
        self._ex_or_fail()
        queue: asyncio.Queue = asyncio.Queue()

        async def watch(name: str):  # gaps -> a fresh snapshot, silence -> stale (streams.py)
            await streams.watch_book(self, name, queue.put)

        async def marks():  # perps: mark, index and funding rate from the premium index
            assert self._perps is not None  # started only for a venue with perps
            while not self._closed.is_set():
                try:
                    updates = await self._perps.funding_updates()
                except VenueError as err:
                    await queue.put(err)
                    return
                for update in updates:
                    if update.instrument in names:
                        await queue.put(update)
                try:
                    await asyncio.wait_for(self._closed.wait(), self.config.mark_poll_s)
                except TimeoutError:
                    pass

        tasks = [asyncio.create_task(watch(n)) for n in names]
        if self._perps is not None:
            tasks.append(asyncio.create_task(marks()))
        closed = asyncio.create_task(self._closed.wait())
        try:
            while True:
                got = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({got, closed}, return_when=asyncio.FIRST_COMPLETED)
                if got not in done:
                    got.cancel()
                    return
                item = got.result()
                if isinstance(item, VenueError):
                    raise item
                yield item
        finally:
            closed.cancel()
            for t in tasks:
                t.cancel()

    def fill_poll_s(self) -> float:
        """The REST fill poll's period: `poll_s`, or longer where polling that often (one trade
        list request per instrument) would take more than FILL_POLL_SHARE of a pool the trade
        list draws (the limits learned at start)."""
        limits = self.gate.limits
        each = limits.period_s("fills", FILL_POLL_SHARE) if limits else 0.0
        return max(self.poll_s, each * len(self._instruments))

    async def user_events(self) -> AsyncIterator:
        """Our fills, polled every `fill_poll_s()` from the venue's trade history ("rest"); with
        user_data "ws", our order updates, fills and balances as the venue pushes them, REST as
        the backstop (streams.UserStream)."""
        if self.user_stream is not None:
            async for ev in self.user_stream.events():
                yield ev
            return
        page = await self.fills(None)
        cursor = page.cursor
        while not self._closed.is_set():
            try:
                await asyncio.wait_for(self._closed.wait(), self.fill_poll_s())
                return
            except TimeoutError:
                pass
            page = await self.fills(cursor)
            cursor = page.cursor
            for f in page.fills:
                yield f
            every_s = self.config.funding_poll_s
            if self._perps is not None and self._perps.income_due(int(time.time() * 1000), every_s):
                for pay in await self._perps.funding_payments(every_s):
                    yield pay


def _require_json(exchange: str, code, url, body) -> tuple[str, object] | None:
    """Every answer the venue means as a success is a JSON object or array, of the shape
    `ANSWER_SHAPES` names for its path: ccxt would read an empty, cut-off or HTML body, a bare
    JSON value or a missing list as an answer with nothing in it (no balances, no trades, an
    empty book). Such an answer, and an HTTP status that is neither a success nor an error, is
    ccxt's BadResponse (MalformedResponse through the error table)."""
    status = int(code or 0)
    if status >= 400:
        return None  # an error: ccxt raises it from its status and body
    if not 200 <= status < 300:
        raise ccxt.BadResponse(f"{exchange} answered HTTP {status}")
    try:
        parsed = json.loads(body, parse_constant=_not_json) if isinstance(body, str | bytes) else None
    except ValueError:  # (NaN and Infinity are not JSON: ccxt would read the answer as text)
        parsed = None
    if not isinstance(parsed, dict | list):
        raise ccxt.BadResponse(f"{exchange} answered HTTP {status} without a JSON object or array")
    path = "/" + url.split("?", 1)[0].split("://", 1)[-1].partition("/")[2] if isinstance(url, str) else ""
    shape = ANSWER_SHAPES.get(exchange, {}).get(path)
    if isinstance(shape, list):
        if not isinstance(parsed, list):
            raise ccxt.BadResponse(f"{exchange} {path}: the answer is not a list")
        for row in parsed:
            _require_fields(exchange, path, row, shape[0])
    elif shape is not None:
        _require_fields(exchange, path, parsed, shape)
    return path, parsed


def _require_fields(exchange: str, path: str, obj, fields: dict[str, type]) -> None:
    problem = parsing.shape_error(obj, fields)
    if problem is not None:
        raise ccxt.BadResponse(f"{exchange} {path}: {problem}")


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _venue_message(text: str, exchange: str) -> str:
    """The venue's own message inside a ccxt exception text ("binance {json}" or "binance msg")."""
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
            if isinstance(body, dict) and isinstance(body.get("msg"), str):
                return body["msg"]
        except ValueError:
            pass
    prefix = exchange + " "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _retry_after(headers: dict | None) -> float | None:
    if not headers:
        return None
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                out = float(v)
            except (TypeError, ValueError):
                return None
            return out if math.isfinite(out) and out >= 0 else None
    return None
