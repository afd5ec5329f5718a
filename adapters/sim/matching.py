"""A deterministic matching engine for one instrument over a limit order book.

Pure and synchronous: no clock (callers pass `ts_ns`), no asyncio, no accounts. It is shared by
the simulated venue and by the HTTP exchange emulator.

Units. Inside, prices are integer ticks and quantities integer lots, so matching is exact. The
money a fill moves is given in integer *atoms* of each asset (10**-decimals units):
`base_atoms` = lots * lot_atoms, `quote_atoms` = ticks * lots * notional_unit. A spec whose
tick*lot is not a whole number of quote atoms is refused (ConfigError), so notional is exact.

Orders. LIMIT rests its remainder; IOC and MARKET expire theirs; POST_ONLY is rejected
(POST_ONLY_WOULD_CROSS) if it would take liquidity. Price-time priority: best price first, then
arrival order. A MARKET order may carry a protection price (it never trades beyond it).
Self-trade prevention for real owners is "expire maker": the resting order of the same owner is
expired and matching continues. The owner `MARKET` ("") stands for everyone else: the depth the
market generator sets and the participants who trade against it; it has no account and no STP.

Filters (typed rejects, `RejectReason`): qty not a multiple of lot, below one lot or above
max_qty → LOT_SIZE; price not a multiple of tick, not finite or <= 0 → BAD_INPUT; price*qty
below min_notional → MIN_NOTIONAL (MARKET orders are checked at the best opposite price).

Fees. Each fill carries its owner's fee in atoms and the asset charged: `FeeSchedule.asset` is
"quote" (always the quote asset), "received" (what the owner receives: base for a buyer, quote
for a seller; naming the base asset means the same) or another asset valued at `asset_price` quote per unit; when `can_pay` says the
owner lacks that asset (counting the fees the same match already charged it), the fee falls back
to the received asset. Fees round down to an atom;
a negative maker fee is a rebate.

Queues. Our resting order joins the back of its level: the volume ahead of it is the level's
quantity at entry, trades take the queue from the front, so it fills only once that volume is
gone, and growth of MARKET's depth joins behind it. When MARKET's depth at a level shrinks, the
engine's queue model (queue.py; `queue`, None = `back`) says where the cancelled lots leave from:
the back of the queue, or anywhere in it with equal probability per lot (`pro_rata`, seeded).

Client order ids are unique per owner for the engine's lifetime: submitting a known id again
returns the existing order with `duplicate=True` and changes nothing.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from basis_core.errors import ConfigError, OrderNotFound
from basis_core.schema import Liquidity, OrderEventType, OrderType, RejectReason, Side
from basis_core.venue import OrderStatus

from .book import MARKET, BookSide, Order
from .queue import ProRata

_CACHE = 1 << 16


def step_decimals(x: float) -> int:
    """Digits after the point of a finite tick or lot size (0.01 -> 2)."""
    exponent = Decimal(repr(x)).normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # 'n', 'N' or 'F': NaN or infinity has no digits
        raise ValueError(f"not a finite step: {x!r}")
    return max(0, -exponent)


def grid_steps(value: float, step: float) -> int | None:
    """`value` as a whole number of `step`s (a price in ticks, a quantity in lots), or None when
    it is not a finite number > 0 or lies off the grid (beyond a 1e-9 relative tolerance)."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        return None
    ratio = value / step
    if not math.isfinite(ratio):  # a huge value over a small step
        return None
    n = round(ratio)
    return n if n > 0 and abs(n * step - value) <= 1e-9 * max(1.0, value) else None


@dataclass(frozen=True)
class Spec:
    """Trading rules of one instrument. Decimals are those of the assets' atoms."""

    symbol: str
    base: str
    quote: str
    tick: float
    lot: float
    min_notional: float = 0.0
    max_qty: float = math.inf
    base_decimals: int = 8
    quote_decimals: int = 8
    kind: str = "spot"

    def __post_init__(self):
        where = f"instrument {self.symbol}"
        for name in ("tick", "lot"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{where}.{name}", f"must be finite and > 0, got {v!r}")
        lot_atoms = self.lot * 10**self.base_decimals
        if abs(lot_atoms - round(lot_atoms)) > 1e-6 or round(lot_atoms) < 1:
            raise ConfigError(
                f"{where}.lot", f"{self.lot} is not a whole number of base atoms (1e-{self.base_decimals})"
            )
        unit = self.tick * self.lot * 10**self.quote_decimals
        if abs(unit - round(unit)) > 1e-6 or round(unit) < 1:
            raise ConfigError(
                f"{where}.tick",
                f"tick*lot = {self.tick * self.lot:g} is not a whole number of quote atoms (1e-{self.quote_decimals})",
            )

    @property
    def lot_atoms(self) -> int:
        return round(self.lot * 10**self.base_decimals)

    @property
    def notional_unit(self) -> int:
        """Quote atoms per (1 tick x 1 lot)."""
        return round(self.tick * self.lot * 10**self.quote_decimals)


@dataclass(frozen=True)
class FeeSchedule:
    maker_bps: float = 0.0
    taker_bps: float = 0.0
    asset: str = "quote"  # "quote" | "received" | an asset name
    asset_price: float = 1.0  # quote per unit of a named fee asset
    asset_decimals: int = 8

    def rate(self, liquidity: Liquidity) -> int:
        """Fee rate in units of 1e-8 (1 bps = 10_000)."""
        return round((self.maker_bps if liquidity == Liquidity.MAKER else self.taker_bps) * 10_000)


@dataclass(frozen=True)
class OrderView:
    """A snapshot of one order."""

    owner: str
    coid: str
    oid: int
    side: Side
    type: OrderType
    price: float | None
    qty: float
    filled_qty: float
    avg_price: float
    status: OrderStatus
    reason: RejectReason
    fee_atoms: dict
    created_ns: int
    updated_ns: int
    price_ticks: int = 0
    qty_lots: int = 0
    filled_lots: int = 0


@dataclass(frozen=True)
class MatchFill:
    """One side of one trade inside the exchange (each trade yields a maker fill and a taker fill),
    for any owner (the market's `MARKET` included), in exact atoms. Not the venue interface's
    `basis_core.venue.Fill`: that is what a venue reports to one account, which the simulated venue
    and the emulator build from the owner's `MatchFill`."""

    trade_id: int
    owner: str
    coid: str
    side: Side
    liquidity: Liquidity
    price: float
    qty: float
    price_ticks: int
    lots: int
    base_atoms: int
    quote_atoms: int
    fee_atoms: int
    fee_asset: str
    ts_ns: int


@dataclass(frozen=True)
class MatchEvent:
    """A change of one order inside the exchange (any owner). Not the venue interface's
    `basis_core.venue.OrderUpdate`, which a venue pushes to the order's owner, nor the order state
    machine's `basis_core.state.tables.OrderEvent`."""

    type: OrderEventType
    order: OrderView
    ts_ns: int


@dataclass(frozen=True)
class Result:
    """What one command did: the order it concerned, every fill (both sides of each trade,
    public trades included via `fills` pairs) and every order event, in the order they happened."""

    order: OrderView | None
    fills: list[MatchFill] = field(default_factory=list)
    events: list[MatchEvent] = field(default_factory=list)
    duplicate: bool = False


NOTHING = Result(None, [], [])


class MatchingEngine:
    """The book and matching for one instrument. See the module docstring for the contract."""

    def __init__(
        self,
        spec: Spec,
        fees: FeeSchedule = FeeSchedule(),
        venue: str = "sim",
        can_pay: Callable[[str, str, int], bool] | None = None,
        queue: ProRata | None = None,
    ):
        self.spec, self.fees, self.venue, self.can_pay = spec, fees, venue, can_pay
        #: where MARKET's cancelled lots leave a level that holds real orders (None: the back)
        self.queue = queue
        self.bids, self.asks = BookSide(True), BookSide(False)
        self._orders: dict[tuple[str, str], Order] = {}
        self._next_oid = 1
        self._next_trade = 1
        self._px_dec = step_decimals(spec.tick)
        self._qty_dec = step_decimals(spec.lot)
        self._max_lots = math.inf if math.isinf(spec.max_qty) else int(spec.max_qty / spec.lot + 1e-9)
        self._min_notional_units = spec.min_notional / (spec.tick * spec.lot)
        self._px_cache: dict[int, float] = {}
        self._qty_cache: dict[int, float] = {}
        #: fee-asset atoms charged to (owner, asset) by the fills of the match under way: the
        #: venue settles them only after the match, so `can_pay` is asked for them all together
        self._promised: dict[tuple[str, str], int] = {}

    # -- conversions ----------------------------------------------------------------------

    def price(self, ticks: int) -> float:
        return round(ticks * self.spec.tick, self._px_dec)

    def qty(self, lots: int) -> float:
        return round(lots * self.spec.lot, self._qty_dec)

    def qty_of(self, lots: int) -> float:
        """`qty(lots)` through the cache `_book_side` uses (the same value)."""
        q = self._qty_cache.get(lots)
        if q is None:
            if len(self._qty_cache) > _CACHE:
                self._qty_cache.clear()
            q = self._qty_cache[lots] = self.qty(lots)
        return q

    def remember_qty(self, lots: list[int], qty: list[float]) -> None:
        """Seed the conversion cache with `qty[i]` == `self.qty(lots[i])` (the caller's own,
        e.g. vectorized, conversions of the same values)."""
        if len(self._qty_cache) > _CACHE:
            self._qty_cache.clear()
        self._qty_cache.update(zip(lots, qty))

    def _book_side(self, levels: list[tuple[int, int]]) -> list[tuple[float, float]]:
        """(ticks, lots) levels as (price, qty), through caches of both conversions (the depth
        repeats its prices and sizes; a cache is dropped when it reaches `_CACHE` entries)."""
        pc, qc = self._px_cache, self._qty_cache
        if len(pc) > _CACHE or len(qc) > _CACHE:
            pc.clear()
            qc.clear()
        out = []
        for p, q in levels:
            fp = pc.get(p)
            if fp is None:
                fp = pc[p] = self.price(p)
            fq = qc.get(q)
            if fq is None:
                fq = qc[q] = self.qty(q)
            out.append((fp, fq))
        return out

    def to_ticks(self, price: float) -> int | None:
        """Integer ticks of `price`, or None when it is not finite, <= 0 or off the tick grid."""
        return grid_steps(price, self.spec.tick)

    def to_lots(self, qty: float) -> int | None:
        """Integer lots of `qty`, or None when it is not finite, <= 0 or off the lot grid."""
        return grid_steps(qty, self.spec.lot)

    # -- queries --------------------------------------------------------------------------

    def best_bid(self) -> float | None:
        b = self.bids.best()
        return None if b is None else self.price(b)

    def best_ask(self) -> float | None:
        a = self.asks.best()
        return None if a is None else self.price(a)

    def book(self, depth: int = 10) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Top `depth` levels per side as (price, qty), best first: (bids, asks)."""
        return self._book_side(self.bids.top(depth)), self._book_side(self.asks.top(depth))

    def book_lots(self, depth: int = 10) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Like `book` in integer (ticks, lots)."""
        return self.bids.top(depth), self.asks.top(depth)

    def live_orders(self) -> int:
        """How many orders of real owners rest on the book (0: the book is MARKET's alone)."""
        return self.bids.live + self.asks.live

    def next_trade_id(self) -> int:
        """Reserve a trade id (for trades printed without touching the book)."""
        self._next_trade += 1
        return self._next_trade - 1

    def query(self, owner: str, coid: str) -> OrderView:
        """The order `coid` of `owner`; OrderNotFound if the engine never accepted nor rejected it."""
        order = self._orders.get((owner, coid))
        if order is None:
            raise OrderNotFound(self.venue, "unknown_order", f"{self.spec.symbol} {coid}")
        return self._view(order)

    def resting(self, owner: str | None = None) -> list[OrderView]:
        """Live (open or partially filled) orders of `owner` (None: all real owners), by oid.
        Those are the real owners' orders resting in the book: found there, not among every
        order the engine ever took."""
        if not (self.bids.live or self.asks.live):
            return []
        live = [
            o
            for side in (self.bids, self.asks)
            for level in side.levels.values()
            for o in level
            if o.owner != MARKET
            and o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
            and (owner is None or o.owner == owner)
        ]
        return [self._view(o) for o in sorted(live, key=lambda o: o.oid)]

    # -- commands -------------------------------------------------------------------------

    def submit(
        self,
        owner: str,
        coid: str,
        side: Side,
        otype: OrderType,
        qty: float,
        price: float | None = None,
        ts_ns: int = 0,
        admit: Callable[[Side, OrderType, int, int | None], RejectReason] | None = None,
    ) -> Result:
        """Accept, reject or match one order. Rejections are orders in state REJECTED.

        `admit(side, type, lots, price_ticks)` runs after the filters pass and before matching
        (the account layer reserves funds there); any reason other than NONE rejects."""
        if owner != MARKET:
            known = self._orders.get((owner, coid))
            if known is not None:
                return Result(self._view(known), duplicate=True)
        lots = self.to_lots(qty)
        px = None if price is None else self.to_ticks(price)
        order = Order(self._next_oid, owner, coid, Side(side), OrderType(otype), px or 0, lots or 0, ts_ns)
        self._next_oid += 1
        reason = self._check(order, lots, price, px)
        if reason is RejectReason.NONE and admit is not None:
            assert lots is not None  # _check refused a quantity off the lot grid
            reason = admit(order.side, order.type, lots, px)
        if reason is not RejectReason.NONE:
            return self._reject(order, reason, ts_ns)
        return self._execute(order, ts_ns)

    def submit_lots(
        self, owner: str, coid: str, side: Side, otype: OrderType, lots: int, px: int | None, ts_ns: int = 0
    ) -> Result:
        """`submit` in integer units (no grid checks needed); used by the market generator.
        MARKET's orders skip the round trip through floats (the same checks on the integers)."""
        if owner != MARKET:
            return self.submit(
                owner, coid, side, otype, self.qty(lots), None if px is None else self.price(px), ts_ns
            )
        good_lots = lots if lots > 0 else None
        good_px = None if px is None or px <= 0 else px
        order = Order(
            self._next_oid, owner, coid, Side(side), OrderType(otype), good_px or 0, good_lots or 0, ts_ns
        )
        self._next_oid += 1
        reason = self._check(order, good_lots, px, good_px)
        if reason is not RejectReason.NONE:
            return self._reject(order, reason, ts_ns)
        return self._execute(order, ts_ns)

    def cancel(self, owner: str, coid: str, ts_ns: int = 0) -> Result:
        """Cancel a live order (event CANCELED); a terminal one is returned unchanged with a
        CANCEL_REJECT event. OrderNotFound if the id is unknown."""
        order = self._orders.get((owner, coid))
        if order is None:
            raise OrderNotFound(self.venue, "unknown_order", f"{self.spec.symbol} {coid}")
        if order.status.terminal:
            return Result(
                self._view(order), events=[MatchEvent(OrderEventType.CANCEL_REJECT, self._view(order), ts_ns)]
            )
        self._side(order.side).remove(order)
        order.status, order.updated_ns = OrderStatus.CANCELED, ts_ns
        view = self._view(order)
        return Result(view, events=[MatchEvent(OrderEventType.CANCELED, view, ts_ns)])

    def set_level(self, side: Side, px: int, lots: int, ts_ns: int = 0) -> Result:
        """Set MARKET's resting quantity at price `px` (ticks) on `side` to `lots`. Growth joins
        the back of the queue and trades first against anything it crosses; shrinkage removes
        MARKET's orders from the back of the queue. Real owners' orders are never touched.
        Returns `NOTHING` (a shared empty Result: do not mutate) when no order changed state."""
        book = self.bids if side == Side.BUY else self.asks
        have = book.market.get(px, 0)
        if lots > have:
            opp = self.asks if side == Side.BUY else self.bids
            best = opp.best()
            if best is not None and (best <= px if side == Side.BUY else best >= px):
                order = Order(self._next_oid, MARKET, "", Side(side), OrderType.LIMIT, px, lots - have, ts_ns)
                self._next_oid += 1
                return self._execute(order, ts_ns)
            self._grow(book, Side(side), px, lots, have, ts_ns)
        elif lots < have:
            self._shrink(book, px, have - lots)
        return NOTHING

    def replace_market(self, bids: dict[int, int], asks: dict[int, int], ts_ns: int, crossing) -> None:
        """Set MARKET's depth to `bids` / `asks` ({ticks: lots}; levels not named are emptied)
        with the `set_level` calls a level-by-level replacement makes, in its order: every level
        above its new size shrinks (both sides), then on bids (ascending) and on asks (descending)
        every level above its size before the shrinking is set. A call that could trade (its
        growth crosses, or the level changed since) goes to `crossing(side, px, lots)`, which
        must do it with `set_level` and settle what it did; every other call is done here."""
        plan = []
        for side, book, levels in ((Side.BUY, self.bids, bids), (Side.SELL, self.asks, asks)):
            market, queues, total = book.market, book.levels, book.total
            before = dict(market)
            for px, have in before.items():
                want = levels.get(px, 0)
                if want >= have:
                    continue
                q = queues[px]
                last = q[-1]
                if self.queue is not None and total[px] != have:  # real orders in the queue
                    self._shrink(book, px, have - want)
                elif last.owner == MARKET and (
                    last.lots - last.filled > have - want if want else len(q) == 1
                ):
                    if want:  # the back order absorbs the cut and stays
                        last.lots -= have - want
                        total[px] -= have - want
                        market[px] = want
                    else:  # the level is that one order: it goes
                        del queues[px], total[px], market[px]
                        book.prices.pop(bisect_left(book.prices, px))
                else:
                    self._shrink(book, px, have - want)
            plan.append((side, book, levels, before))
        for side, book, levels, before in plan:
            opp = self.asks if side == Side.BUY else self.bids
            market, queues, total, buy = book.market, book.levels, book.total, side == Side.BUY
            for px in sorted(levels, reverse=not buy):
                lots, was = levels[px], before.get(px, 0)
                if lots <= was:
                    continue
                best = opp.prices[0 if buy else -1] if opp.prices else None
                if market.get(px, 0) != was or (best is not None and (best <= px if buy else best >= px)):
                    crossing(side, px, lots)
                    continue
                back = queues.get(px)
                if back and back[-1].owner == MARKET:  # _grow's common case, inline
                    back[-1].lots += lots - was
                    total[px] += lots - was
                    market[px] = lots
                else:
                    self._grow(book, side, px, lots, was, ts_ns)

    def _grow(self, book: BookSide, side: Side, px: int, lots: int, have: int, ts_ns: int) -> None:
        """MARKET's lots at `px` go from `have` to `lots` without crossing (`side` a Side)."""
        q = book.levels.get(px)
        if q and q[-1].owner == MARKET:  # same as queueing a new order right behind it
            q[-1].lots += lots - have
            book.total[px] += lots - have
            book.market[px] = lots
        else:
            book.add(Order(self._next_oid, MARKET, "", side, OrderType.LIMIT, px, lots - have, ts_ns))
            self._next_oid += 1

    def _shrink(self, book: BookSide, px: int, cut: int) -> None:
        """`cut` of MARKET's lots at `px` leave: from the back of the queue, or as the queue
        model splits them when real orders rest there."""
        if self.queue is not None and book.total[px] != book.market.get(px, 0):
            self._shrink_split(book, px, cut, self.queue)
            return
        q = book.levels[px]
        i = len(q) - 1
        while cut and i >= 0:
            order = q[i]
            if order.owner == MARKET:
                rest = order.lots - order.filled
                take = rest if rest < cut else cut
                cut -= take
                if take == rest:
                    del q[i]
                else:
                    order.lots -= take
                book.reduce(order, take)
            i -= 1
        book.drop_if_empty(px)

    @staticmethod
    def _shrink_split(book: BookSide, px: int, cut: int, queue: ProRata) -> None:
        """`cut` of MARKET's lots at `px` leave the segments of MARKET's lots between real
        orders (front to back) as `queue` splits them; inside a segment, from its back."""
        q = book.levels[px]
        segments: list[list[Order]] = [[]]
        sizes = [0]
        for order in q:
            if order.owner == MARKET:
                segments[-1].append(order)
                sizes[-1] += order.lots - order.filled
            else:
                segments.append([])
                sizes.append(0)
        gone = set()
        for segment, take_here in zip(segments, queue.split(sizes, cut)):
            for order in reversed(segment):
                if not take_here:
                    break
                rest = order.lots - order.filled
                take = rest if rest < take_here else take_here
                take_here -= take
                if take == rest:
                    gone.add(id(order))
                else:
                    order.lots -= take
                book.reduce(order, take)
        if gone:
            book.levels[px] = type(q)(o for o in q if id(o) not in gone)
        book.drop_if_empty(px)

    def sweep(
        self, side: Side, lots: int, limit: int | None = None, exclude: str | None = None
    ) -> tuple[int, int]:
        """What an order of `side` for `lots` would take now: (lots, sum of ticks*lots).
        Orders of owner `exclude` are skipped (self-trade prevention would expire them)."""
        opp = self.asks if side == Side.BUY else self.bids
        seq = iter(opp.prices) if side == Side.BUY else reversed(opp.prices)
        got = cost = 0
        for px in seq:
            if got >= lots or (limit is not None and not self._crosses(side, limit, px)):
                break
            avail = opp.total[px]
            if exclude is not None and exclude != MARKET and avail != opp.market.get(px, 0):
                avail -= sum(o.lots - o.filled for o in opp.levels[px] if o.owner == exclude)
            take = min(lots - got, avail)
            got += take
            cost += take * px
        return got, cost

    def queue_ahead(self, owner: str, coid: str) -> int:
        """Lots that trade before the live order `coid`: better prices, then earlier arrivals."""
        order = self._orders.get((owner, coid))
        if order is None or order.status.terminal:
            raise OrderNotFound(self.venue, "unknown_order", f"{self.spec.symbol} {coid} is not live")
        book = self._side(order.side)
        ahead = sum(book.total[p] for p in book.prices if (p > order.px if book.is_bid else p < order.px))
        for o in book.levels[order.px]:
            if o is order:
                break
            ahead += o.lots - o.filled
        return ahead

    def market_levels(self, side: Side) -> dict[int, int]:
        """MARKET's resting lots by price on `side` (a copy)."""
        return dict(self._side(side).market)

    # -- internals ------------------------------------------------------------------------

    def _side(self, side: Side) -> BookSide:
        return self.bids if side == Side.BUY else self.asks

    def _check(self, order: Order, lots, price, px) -> RejectReason:
        if lots is None or lots > self._max_lots:
            return RejectReason.LOT_SIZE
        if price is None:
            if order.type != OrderType.MARKET:
                return RejectReason.BAD_INPUT
        elif px is None:
            return RejectReason.BAD_INPUT
        if order.owner == MARKET:
            return RejectReason.NONE
        opp = self._side(Side.SELL if order.side == Side.BUY else Side.BUY).best()
        ref = px if order.type != OrderType.MARKET else opp
        if ref is not None and ref * lots < self._min_notional_units - 1e-9:
            return RejectReason.MIN_NOTIONAL
        if order.type == OrderType.POST_ONLY and opp is not None and self._crosses(order.side, px, opp):
            return RejectReason.POST_ONLY_WOULD_CROSS
        return RejectReason.NONE

    @staticmethod
    def _crosses(side: Side, px: int | None, opp: int) -> bool:
        if px is None or px == 0:
            return True
        return opp <= px if side == Side.BUY else opp >= px

    def _reject(self, order: Order, reason: RejectReason, ts_ns: int) -> Result:
        order.status, order.reason = OrderStatus.REJECTED, reason
        if order.owner != MARKET:
            self._orders[(order.owner, order.coid)] = order
        view = self._view(order)
        return Result(view, events=[MatchEvent(OrderEventType.REJECT, view, ts_ns)])

    def _execute(self, order: Order, ts_ns: int) -> Result:
        self._promised.clear()
        if order.owner != MARKET:
            self._orders[(order.owner, order.coid)] = order
        fills: list[MatchFill] = []
        events: list[MatchEvent] = []
        if order.owner != MARKET:
            events.append(MatchEvent(OrderEventType.ACK, self._view(order), ts_ns))
        opp = self._side(Side.SELL if order.side == Side.BUY else Side.BUY)
        limit = order.px if order.px else None
        while order.filled < order.lots:
            best = opp.best()
            if best is None or (limit is not None and not self._crosses(order.side, limit, best)):
                break
            queue = opp.levels[best]
            maker = queue[0]
            if maker.owner == order.owner and order.owner != MARKET:
                queue.popleft()
                opp.live -= 1
                opp.reduce(maker, maker.lots - maker.filled)
                opp.drop_if_empty(best)
                maker.status, maker.updated_ns = OrderStatus.EXPIRED, ts_ns
                events.append(MatchEvent(OrderEventType.EXPIRED, self._view(maker), ts_ns))
                continue
            lots = min(order.lots - order.filled, maker.lots - maker.filled)
            trade_id = self._next_trade
            self._next_trade += 1
            fills.append(self._fill(trade_id, maker, Liquidity.MAKER, best, lots, ts_ns))
            fills.append(self._fill(trade_id, order, Liquidity.TAKER, best, lots, ts_ns))
            opp.reduce(maker, lots)
            if maker.filled == maker.lots:
                queue.popleft()
                if maker.owner != MARKET:
                    opp.live -= 1
                opp.drop_if_empty(best)
            for filled in (maker, order):
                if filled.owner != MARKET:
                    done = filled.status == OrderStatus.FILLED
                    kind = OrderEventType.FILL if done else OrderEventType.PARTIAL_FILL
                    events.append(MatchEvent(kind, self._view(filled), ts_ns))
        if order.filled < order.lots:
            if order.type in (OrderType.LIMIT, OrderType.POST_ONLY):
                self._side(order.side).add(order)
            else:
                order.status, order.updated_ns = OrderStatus.EXPIRED, ts_ns
                if order.owner != MARKET:
                    events.append(MatchEvent(OrderEventType.EXPIRED, self._view(order), ts_ns))
        return Result(self._view(order), fills, events)

    def _fill(self, trade_id: int, order: Order, liq: Liquidity, px: int, lots: int, ts_ns: int) -> MatchFill:
        spec = self.spec
        base_atoms = lots * spec.lot_atoms
        quote_atoms = px * lots * spec.notional_unit
        order.filled += lots
        order.quote_filled += px * lots
        order.updated_ns = ts_ns
        order.status = OrderStatus.FILLED if order.filled == order.lots else OrderStatus.PARTIALLY_FILLED
        fee, asset = self._fee(order, liq, base_atoms, quote_atoms)
        if order.owner != MARKET and fee:
            order.fees[asset] = order.fees.get(asset, 0) + fee
        return MatchFill(
            trade_id,
            order.owner,
            order.coid,
            order.side,
            liq,
            self.price(px),
            self.qty(lots),
            px,
            lots,
            base_atoms,
            quote_atoms,
            fee,
            asset,
            ts_ns,
        )

    def _fee(self, order: Order, liq: Liquidity, base_atoms: int, quote_atoms: int) -> tuple[int, str]:
        spec, sched = self.spec, self.fees
        rate = sched.rate(liq)
        received = spec.base if order.side == Side.BUY and spec.kind == "spot" else spec.quote
        if order.owner == MARKET:
            return 0, received

        def portion(atoms: int) -> int:
            return atoms * rate // 100_000_000 if rate >= 0 else -((atoms * -rate) // 100_000_000)

        mode = sched.asset
        if mode not in ("quote", "received", spec.base, spec.quote):
            quote_fee = portion(quote_atoms)
            fee = math.floor(
                Fraction(abs(quote_fee) * 10**sched.asset_decimals)
                / (Fraction(repr(sched.asset_price)) * 10**spec.quote_decimals)
            )
            fee = fee if quote_fee >= 0 else -fee
            promised = self._promised.get((order.owner, mode), 0)
            if rate < 0 or self.can_pay is None or self.can_pay(order.owner, mode, promised + fee):
                if fee > 0:
                    self._promised[(order.owner, mode)] = promised + fee
                return fee, mode
            mode = "received"
        if mode == "quote" or mode == spec.quote:
            return portion(quote_atoms), spec.quote
        return (
            (portion(base_atoms), spec.base) if received == spec.base else (portion(quote_atoms), spec.quote)
        )

    def _view(self, o: Order) -> OrderView:
        avg = (
            self.price(0)
            if not o.filled
            else round(o.quote_filled / o.filled * self.spec.tick, self._px_dec + 4)
        )
        return OrderView(
            o.owner,
            o.coid,
            o.oid,
            o.side,
            o.type,
            self.price(o.px) if o.px else None,
            self.qty(o.lots),
            self.qty(o.filled),
            avg,
            o.status,
            o.reason,
            dict(o.fees),
            o.created_ns,
            o.updated_ns,
            o.px,
            o.lots,
            o.filled,
        )
