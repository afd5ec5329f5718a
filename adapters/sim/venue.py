"""SimVenue: the `basis_core.venue.Venue` interface over a simulated `Exchange`.

Timing (all through asyncio, so a `VirtualTimeLoop` makes it instant and deterministic):

* a request travels `request_ms` (+ seeded jitter) to the venue, is processed there at that
  instant (the exchange is synchronous), and the answer travels `response_ms` back;
* our order updates and fills reach `user_events()` `fill_ms` after they happen; book changes
  and public trades reach `market_data()` `market_ms` after they happen;
* balances lag: `balances()` answers the balances as they were `balance_lag_ms` ago, and each
  balance change reaches the stream `balance_lag_ms` after it happens;
* a request that times out raises RequestTimeout after `timeout_ms` (the client's timeout).

The delays are the config's `[venues.NAME.latency]` (`Latency`, in ms); `_s` turns one into the
seconds the clock sleeps.

Faults come from a `FaultSchedule` (see faults.py) and show through these same methods.
The venue's other participants (depth, trades, marks, funding rates) are driven from outside —
by `market.MarketDriver` — through `apply_book`, `participant_trade` and `update_funding`;
whatever they do to our resting orders is settled and reported like any fill.

Every event the venue emits (and every request outcome) is appended to `log` (an `EventLog`),
which is what the determinism tests hash: every item goes into its running sha256, and with
`log_keep` only the newest items stay in memory, so a long run's log does not grow with it. Our
account on the exchange is `owner` ("basis" by default).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import random
import zlib
from collections.abc import AsyncIterator

from basis_core.config import LatencyConfig
from basis_core.errors import (
    BasisError,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueUnavailable,
)
from basis_core.schema import Liquidity, OrderEventType, OrderType, RejectReason, Side, VenueReport
from basis_core.venue import (
    Balance,
    BalanceUpdate,
    BookUpdate,
    Fill,
    FillsPage,
    FundingPayment,
    FundingUpdate,
    InstrumentInfo,
    MarketEvent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Position,
    TradePrint,
    TransferInfo,
    UserEvent,
    Venue,
    VenueOrder,
    VenueStatus,
)

from .clock import Clock
from .depth import StagedDepth, row_dicts
from .exchange import Exchange
from .faults import FaultSchedule
from .matching import MARKET, NOTHING, OrderView, Result
from .transfers import TransferNetwork

_END = object()


_new = object.__new__


def _make(cls, **fields):
    """An instance of the frozen dataclass `cls` (no __post_init__, no slots) without its
    generated __init__ (which sets each field through object.__setattr__): equal to
    cls(**fields) field for field. For the events the market drives every step."""
    obj = _new(cls)
    obj.__dict__.update(fields)
    return obj


for _cls in (BookUpdate, TradePrint):
    assert not hasattr(_cls, "__post_init__") and not hasattr(_cls, "__slots__"), _cls


Latency = LatencyConfig  # delays of one venue, in ms: the config's [venues.NAME.latency]
DEFAULT_LATENCY = Latency()


def _s(ms: float) -> float:
    """A delay in ms (the config's unit) in s (the clock's)."""
    return ms / 1e3


class EventLog:
    """A venue's event log: every item hashed (sha256 over each item's repr, in order), the
    newest `keep` to 2 x `keep` items held in memory (all of them when `keep` is None)."""

    def __init__(self, keep: int | None = None):
        self.keep = keep
        self.items: list[tuple] = []
        self.count = 0  # items ever appended
        self._hash = hashlib.sha256()  # over the items no longer held

    def append(self, item: tuple) -> None:
        self.items.append(item)
        self.count += 1
        if self.keep is not None and len(self.items) > 2 * self.keep:
            old = len(self.items) - self.keep
            for x in self.items[:old]:
                self._hash.update(repr(x).encode())
            del self.items[:old]

    def digest(self) -> str:
        """sha256 of every item appended, held or not."""
        h = self._hash.copy()
        for x in self.items:
            h.update(repr(x).encode())
        return h.hexdigest()

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class SimVenue(Venue):
    """A simulated venue (see module docstring)."""

    def __init__(
        self,
        name: str,
        exchange: Exchange,
        instruments: dict[str, InstrumentInfo],
        clock: Clock,
        *,
        latency: Latency = DEFAULT_LATENCY,
        faults: FaultSchedule | None = None,
        network: TransferNetwork | None = None,
        seed: int = 0,
        owner: str = "basis",
        book_depth: int = 10,
        funding_interval_s: float = 8 * 3600.0,
        log_keep: int | None = None,
    ):
        self.name, self.exchange, self.clock, self.latency = name, exchange, clock, latency
        self._instruments = dict(instruments)
        self.faults = faults or FaultSchedule()
        self.network = network
        self.owner = owner
        self.book_depth = book_depth
        self.funding_interval_s = funding_interval_s
        self._rng = random.Random(zlib.crc32(f"{seed}/{name}".encode()))
        self._fills: list[Fill] = []
        self._user_subs: list[asyncio.Queue] = []
        self._md_subs: list[tuple[asyncio.Queue, set | None]] = []
        self._staged: dict[str, StagedDepth] = {}  # see depth.py
        self._update_id = 0
        self._balance_hist: list[tuple[int, dict[str, Balance]]] = []
        self._funding: dict[str, FundingUpdate] = {}
        self._muted_until_ns = 0
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.log = EventLog(log_keep)
        if network is not None:
            network.attach(self)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._snapshot_balances()
        loop = asyncio.get_running_loop()
        now = self.clock.now_ns()
        for f in self.faults.faults:  # announce maintenance / 429 windows on the market stream
            if f.kind in ("maintenance", "rate_limit") and f.venue in ("*", self.name):
                begin = self.faults.start_ns + int(f.start_s * 1e9)
                report = VenueReport.MAINTENANCE if f.kind == "maintenance" else VenueReport.RATE_LIMITED
                if begin >= now:
                    loop.call_later((begin - now) / 1e9, self._announce_status, report, f)
                    if f.end_s != float("inf"):
                        loop.call_later(
                            (begin - now) / 1e9 + f.duration_s, self._announce_status, VenueReport.OK, f
                        )
        for name, info in self._instruments.items():
            if info.kind == "perp":
                self._tasks.append(asyncio.get_running_loop().create_task(self._funding_loop(name)))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for q in self._user_subs:
            q.put_nowait(_END)
        for q, _ in self._md_subs:
            q.put_nowait(_END)

    def instruments(self) -> dict[str, InstrumentInfo]:
        return dict(self._instruments)

    # -- requests -------------------------------------------------------------------------

    async def _request(self, endpoint: str, work, instrument: str | None = None, event: str = "request"):
        """Send a request: faults, latency, processing at arrival, answer. `work()` runs at the
        venue and returns the answer; `event` names the request for event-triggered faults."""
        lat = self.latency
        now = self.clock.now_ns()
        if self.faults.window("maintenance", self.name, now):
            await self.clock.sleep(_s(lat.request_ms) + _s(lat.response_ms))
            self._log("answer", endpoint, "maintenance")
            raise VenueUnavailable(self.name, "maintenance", endpoint)
        limited = self.faults.window("rate_limit", self.name, now)
        if limited:
            await self.clock.sleep(_s(lat.request_ms) + _s(lat.response_ms))
            self._log("answer", endpoint, "rate_limited")
            raise RateLimited(self.name, "429", endpoint, retry_after_s=limited.retry_after_s)
        fault = self.faults.on_event(event, self.name, now, instrument, kinds=("timeout",))
        start = self.clock.now_ns()
        await self.clock.sleep(_s(lat.request_ms) + self._rng.random() * _s(lat.jitter_ms))
        if fault is not None:
            took_effect = self.faults.reached(fault)
            if took_effect:
                try:
                    work()  # it happened at the venue; the answer is what gets lost
                except BasisError:
                    pass
            await self.clock.sleep(_s(lat.timeout_ms) - (self.clock.now_ns() - start) / 1e9)
            self._log("answer", endpoint, "timeout", "reached" if took_effect else "lost")
            raise RequestTimeout(self.name, "timeout", f"{endpoint} after {_s(lat.timeout_ms)}s")
        answer = work()
        await self.clock.sleep(_s(lat.response_ms))
        return answer

    async def submit(self, order: OrderRequest) -> VenueOrder:
        info = self._info(order.instrument)
        state: dict = {}

        def work():
            now = self.clock.now_ns()
            self._sync(info.name)
            fault = self.faults.on_event("submit", self.name, now, info.name, kinds=("reject", "ack_lost"))
            force = (
                RejectReason[fault.reason.upper()] if fault is not None and fault.kind == "reject" else None
            )
            state["lost"] = fault is not None and fault.kind == "ack_lost"
            if force is None and order.reduce_only and not self._reduces(info, order):
                force = RejectReason.VENUE_REJECT
            result = self.exchange.submit(
                self.owner,
                info.name,
                order.coid,
                order.side,
                order.type,
                order.qty,
                order.price,
                now,
                force=force,
            )
            self._after(info.name, result, drop_ack=state["lost"])
            return result

        sent = self.clock.now_ns()
        result = await self._request("submit", work, info.name, event="submit")
        if state.get("lost"):
            await self.clock.sleep(_s(self.latency.timeout_ms) - (self.clock.now_ns() - sent) / 1e9)
            self._log("answer", "submit", order.coid, "ack_lost")
            raise RequestTimeout(self.name, "timeout", f"submit {order.coid}: no answer")
        view = result.order
        self._log("answer", "submit", order.coid, view.status.value, view.reason.name)
        if view.status is OrderStatus.REJECTED:
            raise OrderRejected(
                self.name, view.reason.name.lower(), f"order {order.coid}", reason=view.reason.name.lower()
            )
        return self._order(info.name, view)

    async def cancel(self, coid: str, instrument: str | None = None) -> VenueOrder:
        def work():
            now = self.clock.now_ns()
            name, view = self.exchange.find(self.owner, coid, instrument)
            self._sync(name)
            fault = self.faults.on_event(
                "cancel", self.name, now, name, kinds=("cancel_fill_race", "fill_after_cancel_ack")
            )
            held = []
            if fault is not None and not view.status.terminal:
                rest = view.qty_lots - view.filled_lots
                lots = rest if fault.kind == "cancel_fill_race" else max(1, rest // 2)
                trade = self._cross(name, view, lots, now)
                held = self._after(name, trade, hold=fault.kind == "fill_after_cancel_ack")
            result = self.exchange.cancel(self.owner, name, coid, now)
            self._after(name, result)
            for delay, event in held:  # fill reports that lose the race with the cancel ack
                self._push_user(event, delay + _s(self.latency.response_ms) + _s(self.latency.fill_ms))
            return name, result

        name, result = await self._request("cancel", work, instrument, event="cancel")
        self._log("answer", "cancel", coid, result.order.status.value)
        return self._order(name, result.order)

    async def fetch_order(self, coid: str, instrument: str | None = None) -> VenueOrder:
        name, view = await self._request(
            "fetch_order", lambda: self.exchange.find(self.owner, coid, instrument), instrument
        )
        return self._order(name, view)

    async def open_orders(self, instrument: str | None = None) -> list[VenueOrder]:
        def work():
            names = [instrument] if instrument else list(self._instruments)
            return [self._order(n, v) for n in names for v in self.exchange.engine(n).resting(self.owner)]

        return await self._request("open_orders", work, instrument)

    async def fills(self, cursor: str | None = None, limit: int = 1000) -> FillsPage:
        def work():
            start = int(cursor) if cursor else 0
            page = self._fills[start : start + limit]
            return FillsPage(tuple(page), str(start + len(page)), start + len(page) < len(self._fills))

        return await self._request("fills", work)

    async def balances(self) -> dict[str, Balance]:
        return await self._request("balances", self._lagged_balances)

    async def positions(self) -> dict[str, Position]:
        def work():
            out = {}
            for name, info in self._instruments.items():
                if info.kind != "perp":
                    continue
                pos = self.exchange.position(self.owner, name)
                eng = self.exchange.engine(name)
                entry = pos.cost / abs(pos.lots) * eng.spec.tick if pos.lots else 0.0
                mark = self.exchange.marks.get(name, entry)
                qty = eng.qty(abs(pos.lots)) * (1 if pos.lots >= 0 else -1)
                out[name] = Position(
                    name,
                    qty,
                    entry,
                    mark,
                    (mark - entry) * qty,
                    pos.funding_atoms / 10**eng.spec.quote_decimals,
                )
            return out

        return await self._request("positions", work)

    async def transfer(self, asset: str, amount: float, to_venue: str) -> TransferInfo:
        if self.network is None:
            raise VenueUnavailable(self.name, "no_network", "this venue has no transfer network")
        return await self._request(
            "transfer", lambda: self.network.send(self, asset, amount, to_venue), event="transfer"
        )

    async def transfers(self) -> list[TransferInfo]:
        return await self._request(
            "transfers", lambda: self.network.history(self.name) if self.network else []
        )

    async def status(self) -> VenueStatus:
        await self.clock.sleep(_s(self.latency.request_ms) + _s(self.latency.response_ms))
        return self.current_status()

    def _announce_status(self, report: VenueReport, fault) -> None:
        until = self._until_ns(fault) if report != VenueReport.OK else 0
        self._push_market(VenueStatus(self.name, report, until, fault.kind if until else ""))

    def current_status(self) -> VenueStatus:
        now = self.clock.now_ns()
        for kind, report in (
            ("maintenance", VenueReport.MAINTENANCE),
            ("rate_limit", VenueReport.RATE_LIMITED),
        ):
            f = self.faults.window(kind, self.name, now)
            if f is not None:
                return VenueStatus(self.name, report, self._until_ns(f), kind)
        return VenueStatus(self.name, VenueReport.OK)

    def _until_ns(self, fault) -> int:
        """When a fault's window ends, as a VenueStatus says it; 0 (none announced) for a window
        without an end."""
        return self.faults.start_ns + int(fault.end_s * 1e9) if math.isfinite(fault.end_s) else 0

    # -- streams --------------------------------------------------------------------------

    def market_data(self, instruments: list[str] | None = None) -> AsyncIterator[MarketEvent]:
        q: asyncio.Queue = asyncio.Queue()
        return self._subscription(q, self._md_subs, (q, set(instruments) if instruments else None))

    def user_events(self) -> AsyncIterator[UserEvent]:
        q: asyncio.Queue = asyncio.Queue()
        return self._subscription(q, self._user_subs, q)

    async def _subscription(self, q: asyncio.Queue, subs: list, entry) -> AsyncIterator:
        """What arrives on q until the venue closes; `entry` is in `subs` (where the venue
        finds q) from the first item asked for until the stream ends or is closed."""
        subs.append(entry)
        if self._closed:
            q.put_nowait(_END)
        try:
            while (item := await q.get()) is not _END:
                yield item
        finally:
            subs.remove(entry)

    # -- driven by the market and the transfer network --------------------------------------

    def apply_book(
        self,
        instrument: str,
        bids: dict[int, int],
        asks: dict[int, int],
        replace: bool = True,
        view: tuple[tuple, tuple] | None = None,
    ) -> None:
        """Set other participants' depth (ticks → lots) on both sides: with `replace`, levels
        not given are emptied; otherwise only the given levels change (lots 0 empties one).

        While none of our orders rests on the instrument, a replacing update is only staged
        (published, and applied to the matching engine when something needs the engine), so an
        idle venue costs little per update. Shrinking levels go first, so new levels only
        trade against our orders, never against the participants' own stale ones. `view` is
        the same depth as ((price, qty), ...) per side, best first, if the caller has it."""
        eng = self.exchange.engine(instrument)
        if replace and eng.live_orders() == 0:
            staged = self._staged[instrument] = StagedDepth.from_dicts(bids, asks, eng.price, eng.qty)
            self._publish_book(instrument, staged, view)
            return
        self._sync(instrument)
        self._apply(instrument, bids, asks, replace)
        self._publish_book(instrument)

    def apply_depth(self, instrument: str, row: tuple) -> None:
        """`apply_book` with `replace`, from a row of depth (depth.py: the published levels and
        the generator's arrays): the market driver's path. The row is kept, not copied."""
        eng = self.exchange.engine(instrument)
        if eng.live_orders():
            self._sync(instrument)
            bids, asks = row_dicts(row, eng.remember_qty)  # the engine's snapshot reuses the row's floats
            self._apply(instrument, bids, asks, True)
            self._publish_book(instrument)
            return
        self._staged[instrument] = StagedDepth(row)
        self._publish_book(instrument, view=row)

    def _apply(self, instrument: str, bids: dict[int, int], asks: dict[int, int], replace: bool) -> None:
        now = self.clock.now_ns()
        eng = self.exchange.engine(instrument)
        if not replace:
            bids, asks = {**eng.market_levels(Side.BUY), **bids}, {**eng.market_levels(Side.SELL), **asks}

        def crossing(side: Side, px: int, lots: int) -> None:
            result = self.exchange.set_level(instrument, side, px, lots, now)
            if result is not NOTHING:
                self._after(instrument, result, publish=False)

        eng.replace_market(bids, asks, now, crossing)

    def _sync(self, instrument: str) -> None:
        """Bring the matching engine up to the staged depth, if any."""
        staged = self._staged.pop(instrument, None)
        if staged is not None:
            bids, asks = staged.to_dicts()
            self._apply(instrument, bids, asks, True)

    def book(
        self, instrument: str, depth: int = 10
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The venue's book right now (participants and our orders), best first: (bids, asks).
        A simulation-side view with no latency; clients use `market_data()`."""
        self._sync(instrument)
        return self.exchange.engine(instrument).book(depth)

    def participant_trade(
        self, instrument: str, side: Side, lots: int, limit: int | None = None
    ) -> Result | None:
        """Another participant sends an aggressive order of `lots` (IOC at `limit` ticks, or market)."""
        eng = self.exchange.engine(instrument)
        staged = self._staged.get(instrument)
        if staged is not None and not eng.live_orders():
            self._trade_staged(instrument, eng, staged, side, lots, limit)
            return None
        self._sync(instrument)
        result = self.exchange.participant_trade(instrument, side, lots, self.clock.now_ns(), limit)
        self._after(instrument, result)
        return result

    def _trade_staged(
        self, instrument: str, eng, staged: StagedDepth, side: Side, lots: int, limit: int | None
    ) -> None:
        """A participant's trade against staged depth: the same prints and depth change as the
        engine would produce, without building the book."""
        now = self.clock.now_ns()
        qty = eng.qty_of
        for price, take in staged.trade(side, lots, limit, qty):
            self._push_market(
                _make(
                    TradePrint,
                    venue=self.name,
                    instrument=instrument,
                    ts_ns=now,
                    price=price,
                    qty=qty(take),
                    side=side,
                    trade_id=str(eng.next_trade_id()),
                )
            )
        self._publish_book(instrument, staged)

    def update_funding(self, instrument: str, mark: float, index: float, rate: float) -> None:
        """New mark/index/rate for a perp; the rate applies at the next funding time."""
        now = self.clock.now_ns()
        interval = int(self.funding_interval_s * 1e9)
        next_ns = (now // interval + 1) * interval
        self.exchange.set_mark(instrument, mark)
        update = FundingUpdate(self.name, instrument, now, mark, index, rate, next_ns)
        self._funding[instrument] = update
        self._push_market(update)

    def mute_market(self, until_ns: int) -> None:
        """Publish no book updates until `until_ns` (a price gap)."""
        self._muted_until_ns = max(self._muted_until_ns, until_ns)

    def credit(self, asset: str, atoms: int) -> None:
        """An incoming transfer lands."""
        self.exchange.accounts.deposit(self.owner, asset, atoms)
        self._balances_changed([asset])

    def debit(self, asset: str, atoms: int) -> None:
        """An outgoing transfer leaves (InsufficientFunds if not free)."""
        self.exchange.accounts.withdraw(self.owner, asset, atoms)
        self._balances_changed([asset])

    # -- internals ------------------------------------------------------------------------

    def _info(self, instrument: str) -> InstrumentInfo:
        info = self._instruments.get(instrument)
        if info is None:
            raise OrderRejected(
                self.name, "bad_input", f"unknown instrument {instrument!r}", reason="bad_input"
            )
        return info

    def _reduces(self, info: InstrumentInfo, order: OrderRequest) -> bool:
        """A reduce-only order must shrink a perp position by no more than its size."""
        if info.kind != "perp":
            return False
        eng = self.exchange.engine(info.name)
        pos = self.exchange.position(self.owner, info.name).lots
        lots = eng.to_lots(order.qty) or 0
        closing = pos < 0 if order.side == Side.BUY else pos > 0
        return closing and lots <= abs(pos)

    def _cross(self, instrument: str, view: OrderView, lots: int, now: int) -> Result:
        """Another participant takes `lots` of our resting order at its price (priority aside)."""
        side = Side.SELL if view.side == Side.BUY else Side.BUY
        ahead = self.exchange.engine(instrument).queue_ahead(self.owner, view.coid)
        return self.exchange.participant_trade(instrument, side, ahead + lots, now, view.price_ticks)

    def _after(
        self,
        instrument: str,
        result: Result,
        drop_ack: bool = False,
        hold: bool = False,
        publish: bool = True,
    ) -> list:
        """Report what a command did: our fills and order updates, public trades, balances.
        With `hold`, our fill reports are returned (delay, event) instead of scheduled."""
        now = self.clock.now_ns()
        held: list[tuple[float, Fill | OrderUpdate]] = []
        assets: set[str] = set()
        for f in result.fills:
            if f.liquidity == Liquidity.TAKER:
                self._push_market(
                    TradePrint(self.name, instrument, now, f.price, f.qty, f.side, str(f.trade_id))
                )
            if f.owner != self.owner:
                continue
            spec = self.exchange.engine(instrument).spec
            fill = Fill(
                self.name,
                instrument,
                f.coid,
                str(f.trade_id),
                f.side,
                f.price,
                f.qty,
                f.fee_atoms / self.exchange.accounts.scale(f.fee_asset),
                f.fee_asset,
                f.liquidity,
                now,
            )
            self._fills.append(fill)
            assets.update(
                (spec.base, spec.quote, f.fee_asset) if spec.kind == "spot" else (spec.quote, f.fee_asset)
            )
            if hold:
                held.append((0.0, fill))
            else:
                self._push_user(fill, _s(self.latency.fill_ms))
        for ev in result.events:
            if ev.order.owner != self.owner or (drop_ack and ev.type == OrderEventType.ACK):
                continue
            update = OrderUpdate(self.name, now, self._order(instrument, ev.order))
            if hold and ev.type in (OrderEventType.FILL, OrderEventType.PARTIAL_FILL):
                held.append((0.0, update))
            else:
                self._push_user(update, _s(self.latency.fill_ms))
            if ev.type in (OrderEventType.ACK, OrderEventType.CANCELED, OrderEventType.EXPIRED):
                spec = self.exchange.engine(instrument).spec
                assets.update((spec.base, spec.quote) if spec.kind == "spot" else (spec.quote,))
        if assets:
            self._balances_changed(sorted(assets))
        if publish:
            self._publish_book(instrument)
        return held

    def _order(self, instrument: str, v: OrderView) -> VenueOrder:
        fee_asset, fee = "", 0.0
        if v.fee_atoms:
            fee_asset = next(iter(v.fee_atoms))
            fee = v.fee_atoms[fee_asset] / self.exchange.accounts.scale(fee_asset)
        return VenueOrder(
            v.coid,
            instrument,
            v.side,
            v.type,
            v.qty,
            v.price,
            v.status,
            v.filled_qty,
            v.avg_price,
            fee,
            fee_asset,
            str(v.oid),
            v.reason,
            v.created_ns,
            v.updated_ns,
        )

    def _balances_now(self) -> dict[str, Balance]:
        acc = self.exchange.accounts
        return {
            a: Balance(
                a,
                acc.to_float(a, acc.get(self.owner, a).free),
                acc.to_float(a, acc.get(self.owner, a).locked),
            )
            for a in acc.assets(self.owner)
        }

    def _snapshot_balances(self) -> None:
        now = self.clock.now_ns()
        self._balance_hist.append((now, self._balances_now()))
        if len(self._balance_hist) > 4096:
            # keep the newest snapshot old enough for any lag (+60 s margin) and all after it
            cutoff = now - self._lag_ns() - 60 * 10**9
            keep = bisect.bisect_right(self._balance_hist, cutoff, key=lambda snap: snap[0]) - 1
            del self._balance_hist[: max(keep, 0)]

    def _lag_ns(self) -> int:
        extra = self.faults.window("balance_delay", self.name, self.clock.now_ns())
        return int((_s(self.latency.balance_lag_ms) + (extra.delay_s if extra else 0.0)) * 1e9)

    def _lagged_balances(self) -> dict[str, Balance]:
        cutoff = self.clock.now_ns() - self._lag_ns()
        if not self._balance_hist:
            return {}
        # the newest snapshot taken at or before the cutoff (the oldest if none is that old)
        i = bisect.bisect_right(self._balance_hist, cutoff, key=lambda snap: snap[0])
        return dict(self._balance_hist[max(i - 1, 0)][1])

    def _balances_changed(self, assets: list[str]) -> None:
        self._snapshot_balances()
        now = self.clock.now_ns()
        acc = self.exchange.accounts
        for asset in assets:
            self._update_id += 1
            amt = acc.get(self.owner, asset)
            update = BalanceUpdate(
                self.name,
                now,
                Balance(asset, acc.to_float(asset, amt.free), acc.to_float(asset, amt.locked)),
                self._update_id,
            )
            delay = self._lag_ns() / 1e9
            held = self.faults.on_event("balance", self.name, now, kinds=("balance_reorder",))
            if held is not None:
                delay += held.delay_s
            self._push_user(update, delay)

    def _publish_book(
        self, instrument: str, staged: StagedDepth | None = None, view: tuple[tuple, tuple] | None = None
    ) -> None:
        """Publish the top `book_depth` levels per side as a snapshot BookUpdate (like a venue's
        partial-depth stream): from `view` if given, else the staged depth, else the engine."""
        now = self.clock.now_ns()
        if now < self._muted_until_ns:
            return
        n = self.book_depth
        if view is not None:
            bids, asks = view[0][:n], view[1][:n]
        elif staged is not None:
            bids, asks = staged.top(n)
        else:
            bids, asks = (tuple(side) for side in self.exchange.engine(instrument).book(n))
        self._update_id += 1
        self._push_market(
            _make(
                BookUpdate,
                venue=self.name,
                instrument=instrument,
                ts_ns=now,
                bids=bids,
                asks=asks,
                snapshot=True,
                update_id=self._update_id,
            )
        )

    def _push_market(self, event) -> None:
        self.log.append((self.clock.now_ns(), "md", event))
        if not self._md_subs:
            return
        loop = asyncio.get_running_loop()
        for q, wanted in self._md_subs:
            inst = getattr(event, "instrument", None)
            if wanted is None or inst is None or inst in wanted:
                loop.call_later(_s(self.latency.market_ms), q.put_nowait, event)

    def _push_user(self, event, delay: float) -> None:
        self._log("user", round(delay * 1e9), event)
        loop = asyncio.get_running_loop()
        for q in self._user_subs:
            loop.call_later(delay, q.put_nowait, event)

    def push_transfer(self, info: TransferInfo) -> None:
        self._push_user(info, _s(self.latency.fill_ms))

    def _log(self, *item) -> None:
        self.log.append((self.clock.now_ns(),) + item)

    async def _funding_loop(self, instrument: str) -> None:
        interval = int(self.funding_interval_s * 1e9)
        while True:
            now = self.clock.now_ns()
            await self.clock.sleep_until((now // interval + 1) * interval)
            upd = self._funding.get(instrument)
            if upd is None:
                continue
            quote = self._instruments[instrument].quote
            for owner, atoms in self.exchange.apply_funding(instrument, upd.mark_price, upd.rate):
                if owner != self.owner:
                    continue
                pos = self.exchange.position(owner, instrument)
                eng = self.exchange.engine(instrument)
                pay = FundingPayment(
                    self.name,
                    instrument,
                    self.clock.now_ns(),
                    -atoms / 10**eng.spec.quote_decimals,
                    quote,
                    upd.rate,
                    upd.mark_price,
                    eng.qty(abs(pos.lots)) * (1 if pos.lots > 0 else -1),
                )
                self._push_user(pay, _s(self.latency.fill_ms))
                self._balances_changed([quote])


__all__ = ["MARKET", "Latency", "OrderNotFound", "OrderType", "SimVenue"]
