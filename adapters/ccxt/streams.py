"""A ccxt venue's websocket side: order books kept from depth diffs, and the user-data stream.

**Books** (`watch_book`, market_data = "ws"). ccxt.pro's `watch_order_book` keeps the book from
the venue's diffs after a REST snapshot and checks each diff's first update id against the
last one it applied. On a gap it raises `ChecksumError` and drops its book; watching again
subscribes again, which takes a fresh snapshot. The venue's book is unknown meanwhile, so the
engine is told at once: a *stale marker* — an empty snapshot `BookUpdate` (no levels: the
engine's book is cleared and unusable until the next full snapshot) — then the fresh book. A
feed silent for `book_stale_ms` gets the same marker (the engine also judges books by age,
`policy.stale_book_ms`; the marker says it without waiting and whatever that policy is); the
next diff brings the whole book back. More than `MAX_GAPS` gaps in a row, or any other ccxt
error, end the stream with a typed error: the io side reports it as the venue's health and
subscribes again with backoff.

**User data** (`UserStream`, user_data = "ws"). The venue pushes our order changes and fills
(Binance spot: `executionReport` and `outboundAccountPosition` on the WebSocket API's
`userDataStream.subscribe.signature`; USDⓈ-M: `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE` on a
listen-key stream).
ccxt.pro authenticates, subscribes and keeps the connection (`watch_orders`); the messages
themselves are taken from the client's message hook as they arrive (ccxt's `watch_orders` /
`watch_my_trades` would hand over an update that lands while their caller is busy only with
the next one) and parsed with ccxt's own parsers. Each subscription starts with a REST
backstop once the venue confirmed it: every order in flight (`CcxtVenue._live`) is queried by
client order id and, when the venue counts more filled than the fills we passed on, its trades
are read by order id — so a fill made while the stream was down is found. Fills are passed on
once, by trade id, whichever path saw them first. A lost connection ends the iterator with
`RequestTimeout` (the venue goes SUSPECT through the io side's usual path, which subscribes
again with backoff and so runs the backstop again). Events wait in a queue of at most
`QUEUE_MAX`; past that they are dropped and the backstop runs instead.

USDⓈ-M (`binanceusdm`, perps.LINEAR_ONLY): each subscription asks the venue for a listen key
(`POST /fapi/v1/listenKey`, through the venue's gate like every request; the venue answers the
live key when there is one, a fresh one after expiry) and hands it to ccxt.pro, whose
`watch_orders` then connects to `<futures stream base>/private/ws?listenKey=`; the connection's
opening is the venue's confirmation. The key is kept alive every `keepalive_s` (`PUT`); a
refused keepalive or a `listenKeyExpired` event ends the subscription (RequestTimeout), and the
next one takes a new key. Funding: an `ACCOUNT_UPDATE` with reason FUNDING_FEE makes the venue's
income history be read at once (`Perps.funding_payments`, which passes each income on once by
its id); the periodic read (`funding_poll_s`, and after each funding time) stays the backstop.
Balances from `ACCOUNT_UPDATE` are not passed on: it carries the wallet but not what is
available, so perp balances stay with `Perps.balances()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import ccxt

from basis_core.errors import MalformedResponse, OrderNotFound, RequestTimeout, VenueError
from basis_core.venue import (
    Balance,
    BalanceUpdate,
    BookUpdate,
    Fill,
    OrderUpdate,
    UserEvent,
)
from basis_ext import router as R

from . import parsing
from .constants import BALANCE_EVENT_FIELDS, EVENT_SHAPES, TRADE_EVENT_FIELDS
from .perps import LINEAR_ONLY

if TYPE_CHECKING:  # pragma: no cover
    from .client import CcxtVenue

#: sequence gaps in a row (no good book between them) before the stream gives up
MAX_GAPS = 3
#: pushed user events waiting for their consumer before the rest are dropped (backstop instead)
QUEUE_MAX = 10_000
#: trade ids remembered for duplicate suppression (oldest forgotten first)
SEEN_MAX = 100_000
#: user-data events ccxt's binance family pushes that carry our orders or balances
USER_EVENTS = (
    "executionReport",
    "ORDER_TRADE_UPDATE",
    "outboundAccountPosition",
    "ACCOUNT_UPDATE",
    "listenKeyExpired",
)
#: what the URL of a user-data connection holds (a listen key's stream, the WebSocket API):
#: every message there is an event of ours or an answer to a request
USER_CONNECTIONS = ("listenKey=", "/ws-api/")
#: a listen key is kept alive this often (Binance drops one left alone for 60 minutes)
KEEPALIVE_S = 1200.0
#: how often the perp funding backstop is considered while the stream is quiet
FUNDING_CHECK_S = 1.0


#: queued in place of a user-data message that could not be read (see `UserStream.on_message`)
_GARBLED: dict = {"e": "basis.unreadable"}


def _is_answer(message) -> bool:
    """A reply to a request on the stream (`{"result": ..., "id": ...}`), not an event."""
    return isinstance(message, dict) and "id" in message and "e" not in message and "event" not in message


def stale_marker(venue: str, instrument: str) -> BookUpdate:
    """An empty snapshot: the venue's book of `instrument` is not known right now."""
    return BookUpdate(venue, instrument, time.time_ns(), (), (), snapshot=True, update_id=0)


def book_of(venue: str, instrument: str, ob: dict) -> BookUpdate:
    """ccxt's order book as one full snapshot."""
    return BookUpdate(
        venue,
        instrument,
        time.time_ns(),
        parsing.levels(venue, "bids", ob["bids"]),
        parsing.levels(venue, "asks", ob["asks"]),
        snapshot=True,
        update_id=int(ob.get("nonce") or 0),
    )


def _ahead(ex, symbol: str, last: int | None) -> BookUpdate | None:
    """ccxt's book of `symbol` when it is synced and newer than update id `last`. ccxt resolves a
    watch only for a diff that arrives while someone waits on it: diffs that land while the book
    before them is being passed on are in its book, but no watch returns until the next diff."""
    if last is None:
        return None
    ob = ex.orderbooks.get(symbol)
    nonce = ob.get("nonce") if ob is not None else None
    if nonce is None or int(nonce) <= last:
        return None
    return book_of("", "", ob)


async def watch_book(v: CcxtVenue, name: str, put: Callable[[object], Awaitable[None]]) -> None:
    """Hand `put` every book of instrument `name` (see module docstring) until the venue closes;
    the last thing put on a failure is the typed error."""
    ex = v._ex_or_fail()
    symbol = v._symbol(name)
    stale_s = v.config.book_stale_ms / 1000.0
    stale, gaps = False, 0
    last: int | None = None  # the update id of the last book passed on
    pending: asyncio.Future | None = None
    try:
        while not v._closed.is_set():
            if pending is None:
                ahead = _ahead(ex, symbol, last)
                if ahead is not None:  # diffs applied while we were passing the last book on
                    stale, gaps, last = False, 0, ahead.update_id
                    await put(dataclasses.replace(ahead, venue=v.name, instrument=name))
                    continue
                pending = asyncio.ensure_future(ex.watch_order_book(symbol))
            done, _ = await asyncio.wait({pending}, timeout=stale_s)
            if not done:  # silent: keep waiting on the same watch, the book marked stale once
                if not stale:
                    stale = True
                    v.book_stale[name] = v.book_stale.get(name, 0) + 1
                    await put(stale_marker(v.name, name))
                continue
            task, pending = pending, None
            try:
                ob = task.result()
            except ccxt.ChecksumError as exc:  # a sequence gap: ccxt dropped its book
                gaps += 1
                v.book_resyncs[name] = v.book_resyncs.get(name, 0) + 1
                if not stale:
                    stale = True
                    await put(stale_marker(v.name, name))
                if gaps > MAX_GAPS:
                    await put(v._translate(exc)[0])
                    return
                continue  # watching again subscribes again: a fresh snapshot
            except ccxt.BaseError as exc:
                if not stale:
                    await put(stale_marker(v.name, name))
                await put(v._translate(exc)[0])
                return
            try:
                update = book_of(v.name, name, ob)
            except (KeyError, TypeError, ValueError):
                await put(stale_marker(v.name, name))
                await put(MalformedResponse(v.name, "malformed", f"{symbol}: order book without levels"))
                return
            except MalformedResponse as err:  # a level that cannot be: the book is not known
                await put(stale_marker(v.name, name))
                await put(err)
                return
            stale, gaps, last = False, 0, update.update_id
            await put(update)
    finally:
        if pending is not None:
            pending.cancel()


class UserStream:
    """The pushed user data of one `CcxtVenue` (see module docstring)."""

    def __init__(self, venue: CcxtVenue):
        self.v = venue
        self._queue: asyncio.Queue | None = None
        self._overflow = False
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._passed_qty: dict[str, float] = {}  # coid -> quantity of the fills passed on (live orders)
        #: for tests and the status page: subscriptions made, fills found by the backstop
        self.subscriptions = 0
        self.backstop_fills = 0
        #: USDⓈ-M: listen-key user stream (see module docstring)
        self.linear = venue.config.exchange in LINEAR_ONLY
        self.keepalive_s = KEEPALIVE_S
        self.keepalives = 0
        self._funding_now = False
        self._garbled = 0  # user-data messages that could not be read, this subscription

    # -- the ccxt client's message hook (synchronous, on ccxt's receive loop) -------------------

    def on_message(self, message, url: str = "") -> None:
        """Queue a user-data event. A message that should be one and cannot be read (the
        WebSocket API's event wrapper, or anything on a listen key's own stream, without a known
        event type) is counted: the subscription ends with MalformedResponse and the next one's
        REST backstop finds what it carried."""
        if self._queue is None:
            return
        wrapped = isinstance(message, dict) and "event" in message  # the WebSocket API wraps events
        event = message.get("event") if wrapped else message
        if not isinstance(event, dict) or event.get("e") not in USER_EVENTS:
            on_user_data = isinstance(url, str) and any(m in url for m in USER_CONNECTIONS)
            if wrapped or (on_user_data and not _is_answer(message)):
                self._garbled += 1
                try:  # in its place among the events: `_parse` raises there
                    self._queue.put_nowait(_GARBLED)
                except asyncio.QueueFull:
                    self._overflow = True
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._overflow = True

    # -- the subscription -----------------------------------------------------------------------

    async def events(self) -> AsyncIterator[UserEvent]:
        """One subscription: the backstop's findings, then every pushed event, until the venue
        closes (returns), the connection is lost (RequestTimeout) or an event cannot be read
        (MalformedResponse; its connection is closed)."""
        v = self.v
        ex = v._ex_or_fail()
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_MAX)
        self._queue, self._overflow, self._garbled = queue, False, 0
        watcher: asyncio.Future | None = None
        closed = asyncio.ensure_future(v._closed.wait())
        try:
            if self.linear:
                watcher = await self._subscribed_linear(ex)
            else:
                await self._subscribed(ex)
                watcher = asyncio.ensure_future(self._keep(ex))
            self.subscriptions += 1
            for ev in await self._backstop():
                yield ev
            funding_s = FUNDING_CHECK_S if v._perps is not None else None
            while True:
                while not queue.empty():
                    for ev in self._parse(ex, queue.get_nowait()):
                        yield ev
                if self._overflow:
                    self._overflow = False
                    for ev in await self._backstop():
                        yield ev
                for ev in await self._funding():
                    yield ev
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {get, watcher, closed}, timeout=funding_s, return_when=asyncio.FIRST_COMPLETED
                )
                if get in done:
                    for ev in self._parse(ex, get.result()):
                        yield ev
                    continue
                get.cancel()
                if not done:  # quiet: the funding backstop's turn
                    continue
                if closed in done:
                    return
                while not queue.empty():  # what arrived before the connection was lost
                    for ev in self._parse(ex, queue.get_nowait()):
                        yield ev
                raise self._lost(watcher)
        except MalformedResponse:  # an event we cannot read: the next subscription starts afresh
            await self._disconnect(ex)
            raise
        finally:
            self._queue = None
            if watcher is not None:
                watcher.cancel()
            closed.cancel()

    @staticmethod
    async def _disconnect(ex) -> None:
        """Close ccxt.pro's user-data connections (its subscription state goes with them)."""
        for url, client in list((ex.clients or {}).items()):
            if isinstance(url, str) and any(m in url for m in USER_CONNECTIONS):
                ex.clients.pop(url, None)
                await client.close()

    async def _keep(self, ex) -> None:
        """ccxt's watch_orders, again and again: it authenticates, subscribes and keeps the
        connection; it fails when the connection is lost."""
        while True:
            await ex.watch_orders()

    async def _subscribed_linear(self, ex) -> asyncio.Future:
        """USDⓈ-M: a listen key from the venue, handed to ccxt.pro, whose watch_orders connects
        to its stream; returns the task that keeps the stream (and the key) once connected."""
        v = self.v
        got = await v._call(R.OP_MARKETS, "time", R.QUERY, ex.fapiPrivatePostListenKey)
        key = got.get("listenKey") if isinstance(got, dict) else None
        if not isinstance(key, str) or not key:
            raise MalformedResponse(v.name, "malformed", "listen key answer without a listenKey")
        # ccxt's authenticate takes this key as fresh and schedules no keepalive of its own
        ex.options["linear"] = dict(
            ex.safe_dict(ex.options, "linear", {}), listenKey=key, lastAuthenticatedTime=ex.milliseconds()
        )
        url = ex.get_private_ws_url("linear", key)
        old = (ex.clients or {}).pop(url, None)  # the lost connection of an earlier subscription
        if old is not None:
            await old.close()
        client = ex.client(url)
        watcher = asyncio.ensure_future(self._keep_linear(ex, client))
        timeout_s = max(5.0, 3 * v.config.timeout_ms / 1000.0)
        connected = asyncio.ensure_future(asyncio.shield(client.connected))
        done, _ = await asyncio.wait(
            {connected, watcher}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        connected.cancel()
        if connected in done and not connected.cancelled() and connected.exception() is None:
            return watcher
        if watcher in done:
            raise self._lost(watcher)
        watcher.cancel()
        raise RequestTimeout(v.name, "user_stream", "user data stream not connected")

    async def _keep_linear(self, ex, client) -> None:
        """watch_orders again and again, and the listen key's keepalive beside it; a lost
        connection or a keepalive the venue refuses ends it."""
        keeper = asyncio.ensure_future(self._keepalive(ex))
        try:
            while True:
                orders = asyncio.ensure_future(ex.watch_orders())
                done, _ = await asyncio.wait({orders, keeper}, return_when=asyncio.FIRST_COMPLETED)
                if keeper in done:
                    orders.cancel()
                    keeper.result()  # raises the keepalive's failure
                orders.result()
        finally:
            keeper.cancel()

    async def _keepalive(self, ex) -> None:
        v = self.v
        while True:
            await asyncio.sleep(self.keepalive_s)
            await v._call(R.OP_MARKETS, "time", R.QUERY, ex.fapiPrivatePutListenKey)
            self.keepalives += 1
            ex.options["linear"] = dict(
                ex.safe_dict(ex.options, "linear", {}), lastAuthenticatedTime=ex.milliseconds()
            )

    async def _funding(self) -> list[UserEvent]:
        """Perps: the funding payments booked since the last read, when a FUNDING_FEE update
        arrived or the periodic read is due (`Perps.income_due`)."""
        perps = self.v._perps
        if perps is None:
            return []
        every_s = self.v.config.funding_poll_s
        if not (self._funding_now or perps.income_due(int(time.time() * 1000), every_s)):
            return []
        self._funding_now = False
        return list(await perps.funding_payments(every_s))

    def _lost(self, watcher: asyncio.Future) -> VenueError:
        exc = watcher.exception() if not watcher.cancelled() else None
        if isinstance(exc, VenueError):  # the keepalive, refused
            return RequestTimeout(self.v.name, "user_stream", f"listen key not kept alive: {exc}")
        if isinstance(exc, ccxt.BaseError):
            err = self.v._translate(exc)[0]
            if isinstance(err, RequestTimeout) or type(err) is VenueError:
                return RequestTimeout(self.v.name, "user_stream", f"user data stream lost: {err}")
            return err
        return RequestTimeout(self.v.name, "user_stream", f"user data stream ended: {exc!r}")

    async def _subscribed(self, ex) -> None:
        """Subscribe and wait until the venue confirmed it (Binance spot: the WebSocket API's
        answer to userDataStream.subscribe.signature). This call must lead: ccxt lets a second,
        concurrent caller return before the answer, so `_keep` starts only after it."""
        auth = asyncio.ensure_future(ex.authenticate({"type": "spot"}))
        timeout_s = max(5.0, 3 * self.v.config.timeout_ms / 1000.0)
        try:
            done, _ = await asyncio.wait({auth}, timeout=timeout_s)
        finally:
            if not auth.done():
                auth.cancel()
        if auth not in done:
            raise RequestTimeout(self.v.name, "user_stream", "user data subscription not confirmed")
        exc = auth.exception()
        if isinstance(exc, ccxt.BaseError):
            raise self.v._translate(exc)[0]
        if exc is not None:
            raise RequestTimeout(self.v.name, "user_stream", f"user data subscription failed: {exc!r}")

    # -- events ---------------------------------------------------------------------------------

    def _first(self, fill: Fill) -> bool:
        """True the first time this trade is seen (either path); remembers it."""
        key = (fill.instrument, fill.trade_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        self._passed_qty[fill.coid] = self._passed_qty.get(fill.coid, 0.0) + fill.qty
        return True

    def _parse(self, ex, msg: dict) -> list[UserEvent]:
        v = self.v
        now = time.time_ns()
        if msg is _GARBLED:
            raise MalformedResponse(v.name, "malformed", "an unreadable user data event")
        if msg.get("e") == "listenKeyExpired":
            raise RequestTimeout(v.name, "user_stream", "listen key expired")
        if msg.get("e") == "ACCOUNT_UPDATE":
            data = msg.get("a")
            if isinstance(data, dict) and data.get("m") == "FUNDING_FEE":
                self._funding_now = True
            return []
        if msg.get("e") == "outboundAccountPosition":
            out: list[UserEvent] = []
            parsing.require_fields(v.name, "account update", msg, BALANCE_EVENT_FIELDS)
            rows = msg["B"]
            updated = parsing.time_ms(v.name, "account update time", msg["u"])
            for row in rows:
                asset = row.get("a") if isinstance(row, dict) else None
                if not isinstance(asset, str) or not asset:
                    raise MalformedResponse(
                        v.name, "malformed", f"account update row without an asset: {row!r}"
                    )
                free = parsing.number(v.name, f"{asset} free", row.get("f"))
                locked = parsing.number(v.name, f"{asset} locked", row.get("l"))
                out.append(BalanceUpdate(v.name, now, Balance(asset, free, locked), updated))
            return out
        raw = msg.get("o") if msg.get("e") == "ORDER_TRADE_UPDATE" else msg
        if not isinstance(raw, dict):
            raise MalformedResponse(v.name, "malformed", "order update without an order")
        shape = EVENT_SHAPES.get(str(msg.get("e")))
        if shape is not None:
            parsing.require_fields(v.name, f"{msg.get('e')} order", raw, shape)
            if raw.get("x") == "TRADE":
                parsing.require_fields(v.name, f"{msg.get('e')} trade", raw, TRADE_EVENT_FIELDS)
        if msg.get("e") == "executionReport":
            original = raw.get("C")  # a cancel's: the order's own client id ("c" is the request's)
            if not isinstance(original, str) or (raw.get("x") == "CANCELED" and not original):
                raise MalformedResponse(
                    v.name, "malformed", f"executionReport {raw.get('x')}: C is {original!r}"
                )
        try:
            order = ex.parse_ws_order(raw)
            trade = ex.parse_ws_trade(raw) if raw.get("x") == "TRADE" else None
        except (ccxt.BaseError, KeyError, TypeError, ValueError) as exc:
            raise MalformedResponse(v.name, "malformed", f"unreadable order update: {exc!r}") from None
        symbol, venue_coid = order.get("symbol"), order.get("clientOrderId")
        if not isinstance(symbol, str) or symbol not in ex.markets or not venue_coid:
            # an update of no market, or of an order without its client id, cannot be told
            # apart from one of ours: never dropped, the REST backstop reads our orders
            raise MalformedResponse(v.name, "malformed", f"order update of {symbol!r} / {venue_coid!r}")
        instrument = v._by_symbol.get(symbol)
        coid = v.our_coid(venue_coid)
        if instrument is None or not coid:
            return []  # another market's order: not ours
        out = []
        last = v._last.get(coid)
        if trade is not None and trade.get("fee") and last is not None and last.fee_asset:
            fee = trade["fee"]
            if fee.get("currency") == last.fee_asset:  # the order's total so far, not this trade's
                order = dict(order, fee={"cost": float(fee["cost"]) + last.fee, "currency": last.fee_asset})
        view = v._adopt(v._orders.get(coid, (None, None))[1], order, instrument, coid)
        if trade is not None:
            fill = parsing.fill(v.name, trade, instrument, view.coid)
            if self._first(fill):
                out.append(fill)
        out.append(OrderUpdate(v.name, now, view))
        if view.status.terminal:
            self._passed_qty.pop(view.coid, None)
        return out

    async def _backstop(self) -> list[UserEvent]:
        """Every order in flight asked for by client order id; the trades of those the venue
        counts more filled than we passed on (see module docstring)."""
        v = self.v
        ex = v._ex_or_fail()
        out: list[UserEvent] = []
        for coid in sorted(v._live):
            known = v._orders.get(coid)
            if known is None:
                v._live.discard(coid)
                continue
            instrument = known[0]
            try:
                view = await v.fetch_order(coid, instrument)
            except OrderNotFound:
                v._live.discard(coid)  # never reached the venue (or refused): the engine verifies
                continue
            passed = self._passed_qty.get(coid, 0.0)
            if view.filled_qty > passed + 1e-9 * max(view.filled_qty, 1.0):
                trades = await v._call(
                    R.OP_FILLS,
                    "fills",
                    R.QUERY,
                    ex.fetch_my_trades,
                    v._symbol(instrument),
                    None,
                    None,
                    {"orderId": view.venue_order_id},
                )
                mine = [t for t in trades if str(t.get("order")) == view.venue_order_id]
                for t in sorted(mine, key=lambda t: int(t["id"]) if str(t.get("id")).isdigit() else 0):
                    fill = parsing.fill(v.name, t, instrument, coid)
                    if self._first(fill):
                        self.backstop_fills += 1
                        out.append(fill)
            out.append(OrderUpdate(v.name, time.time_ns(), view))
            if view.status.terminal:
                self._passed_qty.pop(coid, None)
        return out
