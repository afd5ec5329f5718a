"""The order book's data structure: orders, and per side FIFO queues per price.

Prices are integer ticks and quantities integer lots. `BookSide` keeps, per price, the queue
of resting orders in arrival order, the prices sorted ascending, the lots resting per price
(everyone's, and MARKET's alone) and how many real owners' orders rest. Matching itself —
priority, fills, fees — is `matching.MatchingEngine`'s.
"""

from __future__ import annotations

import bisect
from collections import deque

from basis_core.schema import RejectReason
from basis_core.venue import OrderStatus

MARKET = ""  # owner of generated depth and of other participants' orders


class Order:
    """One order as the book holds it: `lots` ordered, `filled` of them traded, `px` in ticks
    (0 for a MARKET order without protection price)."""

    __slots__ = (
        "coid",
        "created_ns",
        "fees",
        "filled",
        "lots",
        "oid",
        "owner",
        "px",
        "quote_filled",
        "reason",
        "side",
        "status",
        "type",
        "updated_ns",
    )

    def __init__(self, oid, owner, coid, side, otype, px, lots, ts):
        self.oid, self.owner, self.coid, self.side, self.type = oid, owner, coid, side, otype
        self.px, self.lots, self.filled, self.quote_filled = px, lots, 0, 0
        self.status, self.reason, self.fees = OrderStatus.OPEN, RejectReason.NONE, {}
        self.created_ns = self.updated_ns = ts


class BookSide:
    """One side of the book: FIFO queues per price, prices kept sorted ascending."""

    __slots__ = ("is_bid", "levels", "live", "market", "prices", "total")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.live = 0  # resting orders of real owners
        self.levels: dict[int, deque] = {}
        self.prices: list[int] = []
        self.total: dict[int, int] = {}  # lots resting per price (everyone)
        self.market: dict[int, int] = {}  # lots resting per price owned by MARKET

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def add(self, order: Order) -> None:
        q = self.levels.get(order.px)
        if q is None:
            q = self.levels[order.px] = deque()
            bisect.insort(self.prices, order.px)
            self.total[order.px] = 0
        q.append(order)
        if order.owner != MARKET:
            self.live += 1
        rest = order.lots - order.filled
        self.total[order.px] += rest
        if order.owner == MARKET:
            self.market[order.px] = self.market.get(order.px, 0) + rest

    def reduce(self, order: Order, lots: int) -> None:
        """Account for `lots` leaving the level (filled or canceled)."""
        px = order.px
        self.total[px] -= lots
        if order.owner == MARKET:
            self.market[px] -= lots
            if not self.market[px]:
                del self.market[px]

    def drop_if_empty(self, px: int) -> None:
        q = self.levels.get(px)
        if q is not None and not q:
            del self.levels[px]
            del self.total[px]
            self.prices.pop(bisect.bisect_left(self.prices, px))

    def remove(self, order: Order) -> None:
        q = self.levels[order.px]
        q.remove(order)
        if order.owner != MARKET:
            self.live -= 1
        self.reduce(order, order.lots - order.filled)
        self.drop_if_empty(order.px)

    def top(self, n: int) -> list[tuple[int, int]]:
        if n <= 0:
            return []
        prices = self.prices[: -n - 1 : -1] if self.is_bid else self.prices[:n]
        total = self.total
        return [(px, total[px]) for px in prices]


__all__ = ["MARKET", "BookSide", "Order"]
