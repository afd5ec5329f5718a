"""Order layer: our orders against the venue's, found by client order id.

Rules:

* an order the venue has open and we do not know (the ack was lost, the process died between
  send and record) is **adopted**: we take the venue's view and never send it again. Only ids
  that basis made (`coid_from_wire` is not None) are adopted; an order placed by hand is a
  mismatch ("foreign"), left alone;
* an order we think is working that is not in the venue's open list is resolved by a
  **targeted query** (`fetch_order` by client order id) before anything is concluded. The
  answer is taken as a correction (it filled or was cancelled while we were not looking);
  OrderNotFound after the grace window declares it **lost**; inside the window (the submit may
  still be in flight) or on a timeout / rate limit / outage it stays unresolved for the next round;
* where both know the order, the venue's status and fill progress are the truth. Catching up
  (we were behind) is a correction; a contradiction (we count more filled than the venue, or
  the venue shows open an order we hold terminal, or side/qty differ) is a Mismatch.
* the venue's answer is compared with our book **as it was when the venue was asked**: our view
  moves on while a request is out (a fill or an ack arrives, a new order is sent), and the
  venue's older answer says nothing about what happened after it. An order whose state changed
  while the venue was asked is not updated from that answer (the next round compares again), and
  an order we sent meanwhile is never adopted as if it were unknown.

`diff_orders` is the pure comparison; `reconcile_orders` is the async round against a Venue;
`apply` folds a round's outcome into our order book. With an `OrderIndex` a round looks at the
orders that were working at the venue's last round, those added to the book since and those the
venue lists open, instead of every order of the run: the same comparison, at a cost that does
not grow with the run (an order the book holds terminal never works again, except by the
venue's word, which the open list carries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import islice

from basis_core.venue import OrderStatus, Venue, VenueOrder, coid_from_wire

from ..errors import OrderNotFound, VenueError
from .mismatch import Layer, Mismatch

#: an order submitted less than this long ago may not have reached the venue yet
DEFAULT_GRACE_NS = 5_000_000_000
QTY_TOL = 1e-9


@dataclass
class KnownOrder:
    """Our record of one order. `status` None = sent, no acknowledgement seen yet."""

    coid: str
    venue: str
    instrument: str
    side: object
    qty: float
    price: float | None
    status: OrderStatus | None = None
    filled_qty: float = 0.0
    avg_price: float = 0.0
    submitted_ns: int = 0
    origin: str = "ours"  # "ours" | "adopted"
    lost: bool = False

    @property
    def working(self) -> bool:
        return not self.lost and (self.status is None or not self.status.terminal)

    @classmethod
    def adopted(cls, venue: str, vo: VenueOrder) -> KnownOrder:
        return cls(
            vo.coid,
            venue,
            vo.instrument,
            vo.side,
            vo.qty,
            vo.price,
            vo.status,
            vo.filled_qty,
            vo.avg_price,
            vo.created_ns,
            origin="adopted",
        )


@dataclass
class OrderDiff:
    """What comparing our working orders with the venue's open list found."""

    adopt: list[VenueOrder] = field(default_factory=list)
    to_query: list[str] = field(default_factory=list)
    updates: list[VenueOrder] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)


@dataclass
class OrderRound(OrderDiff):
    """One reconciliation round of one venue's orders."""

    lost: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    #: our (status, filled qty) of each order looked at, as it was when the venue was asked
    asked: dict[str, tuple[OrderStatus | None, float]] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """True when every order is accounted for (nothing left to query next round)."""
        return not self.unresolved


def _key(venue: str, coid: str) -> str:
    return f"{venue}:{coid}"


def compare(venue: str, ours: KnownOrder, vo: VenueOrder, ts_ns: int) -> tuple[bool, list[Mismatch]]:
    """Compare one order both sides know. Returns (venue view differs from ours, mismatches)."""
    out = []
    key = _key(venue, ours.coid)
    if ours.side != vo.side or abs(ours.qty - vo.qty) > QTY_TOL or ours.instrument != vo.instrument:
        out.append(
            Mismatch(
                Layer.ORDER,
                key,
                [ours.instrument, str(ours.side), ours.qty],
                [vo.instrument, str(vo.side), vo.qty],
                "order terms differ",
                ts_ns,
            )
        )
    if ours.filled_qty > vo.filled_qty + QTY_TOL:
        out.append(
            Mismatch(
                Layer.ORDER, key, ours.filled_qty, vo.filled_qty, "we count more filled than the venue", ts_ns
            )
        )
    if ours.status is not None and ours.status.terminal and not vo.status.terminal:
        out.append(
            Mismatch(
                Layer.ORDER,
                key,
                ours.status.value,
                vo.status.value,
                "terminal here, working at the venue",
                ts_ns,
            )
        )
    if ours.status is not None and ours.status.terminal and vo.status.terminal and ours.status != vo.status:
        out.append(
            Mismatch(Layer.ORDER, key, ours.status.value, vo.status.value, "different terminal status", ts_ns)
        )
    changed = ours.status != vo.status or abs(ours.filled_qty - vo.filled_qty) > QTY_TOL
    return changed, out


def diff_orders(
    venue: str, ours: dict[str, KnownOrder], venue_open: list[VenueOrder], ts_ns: int
) -> OrderDiff:
    """Compare our orders on `venue` (by coid) with the venue's open orders."""
    d = OrderDiff()
    theirs = {vo.coid: vo for vo in venue_open}
    for coid, vo in theirs.items():
        mine = ours.get(coid)
        if mine is None:
            if coid_from_wire(coid) is None:
                d.mismatches.append(
                    Mismatch(
                        Layer.ORDER,
                        _key(venue, coid),
                        None,
                        vo.status.value,
                        "foreign order at the venue (not placed by basis)",
                        ts_ns,
                    )
                )
            else:
                d.adopt.append(vo)
            continue
        changed, mism = compare(venue, mine, vo, ts_ns)
        d.mismatches += mism
        if changed:
            d.updates.append(vo)
    for coid, mine in ours.items():
        if mine.venue == venue and mine.working and coid not in theirs:
            d.to_query.append(coid)
    return d


class OrderIndex:
    """What one venue's rounds need to know of our book between rounds: the position of each
    order in it (the book only grows, in order) and which of the venue's orders were working at
    the last round."""

    def __init__(self) -> None:
        self.seen = 0  # orders of the book already given a position
        self.position: dict[str, int] = {}
        self.working: set[str] = set()

    def candidates(self, ours: dict[str, KnownOrder]) -> set[str]:
        """Orders working at the last round and those added to the book since (taken before the
        venue is asked: an order added while the request is out is left to the next round)."""
        new = list(islice(reversed(ours), len(ours) - self.seen))[::-1]  # the tail, not a walk to it
        self.position.update(zip(new, range(self.seen, self.seen + len(new)), strict=True))
        self.seen += len(new)
        self.working.update(new)  # (kept for the next round if the venue cannot be asked now)
        return set(self.working)

    def mine(
        self, ours: dict[str, KnownOrder], venue: str, candidates: set[str], open_coids: list[str]
    ) -> dict[str, KnownOrder]:
        """Our orders on `venue` that the round looks at, in book order: the candidates and
        those the venue lists open (of the orders the book held when it was asked)."""
        look = candidates.union(c for c in open_coids if c in self.position)
        found = sorted((self.position[c], c) for c in look if ours[c].venue == venue)
        return {c: ours[c] for _, c in found}


async def reconcile_orders(
    venue: Venue,
    ours: dict[str, KnownOrder],
    ts_ns: int,
    *,
    grace_ns: int = DEFAULT_GRACE_NS,
    index: OrderIndex | None = None,
) -> OrderRound:
    """One round for one venue: list its open orders, compare, query each missing one by coid.
    With `index` (kept by the caller from round to round) only the orders that can matter are
    looked at (module docstring).

    Raises the venue's error if the open-order list itself cannot be fetched (the caller keeps
    the venue SUSPECT and tries again); errors of single targeted queries leave that order
    unresolved instead.
    """
    # copies: the book is updated in place while the request is out (module docstring)
    if index is None:
        mine = {c: replace(o) for c, o in ours.items() if o.venue == venue.name}
        venue_open = await venue.open_orders()
    else:
        candidates = index.candidates(ours)
        frozen = {c: replace(ours[c]) for c in candidates if ours[c].venue == venue.name}
        venue_open = await venue.open_orders()
        # (an order listed open that was not a candidate is one we hold terminal: it does not move)
        mine = {
            c: frozen.get(c) or replace(o)
            for c, o in index.mine(ours, venue.name, candidates, [vo.coid for vo in venue_open]).items()
        }
        index.working = {c for c in mine if ours[c].working}  # (as the book is now)
    d = diff_orders(venue.name, mine, venue_open, ts_ns)
    # one that ended here while the venue was asked is not open there either: nothing to ask
    d.to_query = [c for c in d.to_query if ours[c].working]
    rnd = OrderRound(d.adopt, d.to_query, d.updates, d.mismatches)
    rnd.asked = {c: (o.status, o.filled_qty) for c, o in mine.items()}
    for coid in d.to_query:
        await _query(venue, mine[coid], ts_ns, grace_ns, rnd)
    # an answer our book has already caught up with while it travelled changes nothing
    rnd.updates = [vo for vo in rnd.updates if not _agrees(ours[vo.coid], vo)]
    if index is not None:  # the venue's word (adopted, updated) may make an order work again
        index.working.update(vo.coid for vo in (*rnd.adopt, *rnd.updates))
    return rnd


async def recover_orders(
    venue: Venue,
    ours: dict[str, KnownOrder],
    sent: dict[str, KnownOrder],
    ts_ns: int,
    *,
    grace_ns: int = DEFAULT_GRACE_NS,
) -> OrderRound:
    """Start-up round after a restart, before any new dispatch.

    `ours` is the order book rebuilt from the journal (possibly missing the last orders);
    `sent` are the orders the journal shows as sent to this venue (ORDER_NEW records), whether
    or not an answer was recorded. Every order the venue can name is made known: its open
    orders and the orders behind its fills are adopted when unknown; every sent or working
    order is queried by client order id and updated, or declared lost after the grace window.
    """
    mine = {c: o for c, o in ours.items() if o.venue == venue.name}
    for coid, order in sent.items():
        if order.venue == venue.name and coid not in mine:
            mine[coid] = order
    rnd = OrderRound()
    d = diff_orders(venue.name, mine, await venue.open_orders(), ts_ns)
    rnd.adopt, rnd.to_query, rnd.updates, rnd.mismatches = d.adopt, d.to_query, d.updates, d.mismatches
    for coid in d.to_query:
        await _query(venue, mine[coid], ts_ns, grace_ns, rnd)
    listed = {vo.coid for vo in d.adopt} | set(mine)
    cursor: str | None = None
    behind_fills: dict[str, str] = {}  # foreign coid -> instrument
    while True:
        page = await venue.fills(cursor)
        for f in page.fills:
            if f.coid not in listed:
                behind_fills.setdefault(f.coid, f.instrument)
        cursor = page.cursor if page.cursor is not None else cursor
        if not page.more or not page.fills:
            break
    for coid, instrument in behind_fills.items():
        if coid_from_wire(coid) is None:
            rnd.mismatches.append(
                Mismatch(
                    Layer.ORDER,
                    _key(venue.name, coid),
                    None,
                    "filled",
                    "fills of a foreign order (not placed by basis)",
                    ts_ns,
                )
            )
            continue
        try:
            rnd.adopt.append(await venue.fetch_order(coid, instrument))
        except VenueError:
            rnd.unresolved.append(coid)
    for coid, order in mine.items():
        if coid not in ours:
            ours[coid] = order  # sent per the journal: now part of the book (status from the round)
    return rnd


async def _query(venue: Venue, known: KnownOrder, ts_ns: int, grace_ns: int, rnd: OrderRound) -> None:
    """Targeted query of one order we hold working but the venue does not list as open."""
    coid = known.coid
    try:
        vo = await venue.fetch_order(coid, known.instrument)
    except OrderNotFound:
        if ts_ns - known.submitted_ns >= grace_ns:
            rnd.lost.append(coid)
            rnd.mismatches.append(
                Mismatch(
                    Layer.ORDER,
                    _key(venue.name, coid),
                    known.status.value if known.status else "submitted",
                    None,
                    "not known to the venue after the grace window: lost",
                    ts_ns,
                )
            )
        else:
            rnd.unresolved.append(coid)
        return
    except VenueError:  # timeout, rate limit, outage, malformed answer: ask again next round
        rnd.unresolved.append(coid)
        return
    changed, mism = compare(venue.name, known, vo, ts_ns)
    rnd.mismatches += mism
    if changed:
        rnd.updates.append(vo)


def _agrees(known: KnownOrder, vo: VenueOrder) -> bool:
    return known.status == vo.status and abs(known.filled_qty - vo.filled_qty) <= QTY_TOL


def apply(ours: dict[str, KnownOrder], venue: str, rnd: OrderDiff) -> None:
    """Fold a round into our book: adopt, take the venue's status and fills, mark the lost.
    What changed here while the venue was asked is left to the next round (module docstring)."""
    asked = getattr(rnd, "asked", {})

    def moved(coid: str) -> bool:
        was = asked.get(coid)
        now = ours[coid]
        return was is not None and (was[0] != now.status or abs(was[1] - now.filled_qty) > QTY_TOL)

    for vo in rnd.adopt:
        held = ours.get(vo.coid)
        if held is None or held.venue != venue:  # (one we sent while it was asked is ours already)
            ours[vo.coid] = KnownOrder.adopted(venue, vo)
    for vo in rnd.updates:
        if moved(vo.coid):
            continue
        known = ours[vo.coid]
        ours[vo.coid] = replace(
            known,
            status=vo.status,
            filled_qty=vo.filled_qty,
            avg_price=vo.avg_price if math.isfinite(vo.avg_price) else known.avg_price,
        )
    for coid in getattr(rnd, "lost", ()):
        if not moved(coid):
            ours[coid] = replace(ours[coid], lost=True)
