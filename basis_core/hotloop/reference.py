"""The plain-Python engine: the hot loop's decisions written readably, on Python numbers.

It applies records with `kernels.reference.RefBook`, checks the spread and sizes with
`kernels.reference.size_two_leg`, in the same order and with the same floating-point
operations as `hotloop.loop`, so both produce the same orders bit for bit. It is the correctness
reference of the compiled loop (tests, and the end-to-end benchmark before it reports) and the
plain-Python baseline the benchmark measures beside it.

An order is a tuple in ORDER_FIELDS order (the ORDER_NEW fields the loop writes).
"""

from __future__ import annotations

import numpy as np

from .. import schema
from ..kernels import book as kbook
from ..kernels.reference import ORDER_FIELDS as DECISION_ORDER_FIELDS
from ..kernels.reference import RefBook, size_two_leg
from ..kernels.sizing import lot_units
from .params import HotParams

# the decision kernel's order fields but kind: every order the loop writes is an ORDER_NEW
ORDER_FIELDS = tuple(f for f in DECISION_ORDER_FIELDS if f != "kind")

_LEVEL = int(schema.Kind.BOOK_LEVEL)
_TOB = int(schema.Kind.TOP_OF_BOOK)
_AUX_ENTRY = int(schema.OrderType.IOC) | int(schema.Purpose.ENTRY) << 8
_AUX_HEDGE = int(schema.OrderType.IOC) | int(schema.Purpose.HEDGE) << 8


class PyEngine:
    """Feed it records (`on_batch`); it returns the orders each batch produced."""

    def __init__(self, params: HotParams, opp_base: int = 1):
        self.p = params
        self.book = RefBook(params.n_venues, params.n_instruments, params.depth)
        self.next_opp = opp_base
        self.n_orders = 0
        self.decisions = 0
        self.rejects: dict[int, int] = {}
        self.md = 0
        p = params
        self._venue = {p.venue_a: 0, p.venue_b: 1}
        self._lots = (lot_units(p.lot[0]), lot_units(p.lot[1]))
        self._slip32 = tuple(float(np.float32(x)) for x in p.slip_bps)

    def _usable(self, v: int, now_ns: int) -> bool:
        key = (v, self.p.instrument)
        bids, asks = self.book.sides.get(key, ([], []))
        return (
            self.book.status.get(key, kbook.NEED_SNAPSHOT) == 0
            and now_ns - self.book.ts.get(key, 0) <= self.p.max_age_ns
            and bool(bids)
            and bool(asks)
        )

    def decide(self, vb: int, vs: int, now_ns: int):
        """-1 (no decision) or (reason, sizing result) for buying on vb and selling on vs."""
        p = self.p
        if not (self._usable(vb, now_ns) and self._usable(vs, now_ns)):
            return -1
        asks = self.book.sides[(vb, p.instrument)][1]
        bids = self.book.sides[(vs, p.instrument)][0]
        ask, bid = asks[0][0], bids[0][0]
        if not (bid - ask) / ask * 1e4 >= p.trigger_bps:
            return -1
        b, s = self._venue[vb], self._venue[vs]
        return size_two_leg(
            asks,
            bids,
            self._lots[b],
            self._lots[s],
            p.tick[b],
            p.tick[s],
            p.min_notional[b],
            p.min_notional[s],
            p.fee_bps[b],
            p.fee_bps[s],
            p.slip_bps[b],
            p.slip_bps[s],
            ask * (1.0 + p.bound_bps * 1e-4),
            bid * (1.0 - p.bound_bps * 1e-4),
            p.min_edge_bps,
            p.base_avail,
            p.quote_avail,
            p.capital_free,
            p.notional_cap,
        )

    def on_record(self, lv: tuple, tp: tuple) -> list[tuple]:
        """One record, given as its BOOK_LEVEL and TOP_OF_BOOK tuples (`ndarray.tolist()` rows)."""
        p = self.p
        kind, ts_ns, v, i = lv[2], lv[1], lv[4], lv[6]
        self.md += 1
        if kind == _LEVEL:
            self.book.level(v, i, lv[5], lv[12], lv[8], lv[9], ts_ns)
        elif kind == _TOB:
            self.book.top(v, i, tp[8], tp[9], tp[10], tp[11], ts_ns, tp[12])
        else:
            self.book.counters[kbook.EV_IGNORED] += 1
            return []
        if i != p.instrument or v not in self._venue:
            return []
        other = p.venue_b if v == p.venue_a else p.venue_a
        buy_v, sell_v = v, other
        r = self.decide(buy_v, sell_v, ts_ns)
        if r == -1:
            buy_v, sell_v = other, v
            r = self.decide(buy_v, sell_v, ts_ns)
        if r == -1:
            return []
        self.decisions += 1
        reason, res = r
        if reason:
            self.rejects[reason] = self.rejects.get(reason, 0) + 1
            return []
        opp = self.next_opp
        self.next_opp += 1
        c0, c1 = schema.make_coid(opp, 0), schema.make_coid(opp, 1)
        b, s = self._venue[buy_v], self._venue[sell_v]
        n = self.n_orders
        self.n_orders += 2
        return [
            (
                n + 1,
                ts_ns,
                p.source,
                buy_v,
                int(schema.Side.BUY),
                p.instrument,
                _AUX_ENTRY,
                c0,
                res["buy_limit"],
                res["qty"],
                0,
                self._slip32[b],
            ),
            (
                n + 2,
                ts_ns,
                p.source,
                sell_v,
                int(schema.Side.SELL),
                p.instrument,
                _AUX_HEDGE,
                c1,
                res["sell_limit"],
                res["qty"],
                c0,
                self._slip32[s],
            ),
        ]

    def on_batch(self, records: np.ndarray) -> list[tuple]:
        """Apply 64-byte records in order; returns the orders they produced."""
        recs = records.reshape(-1)
        levels = schema.view(recs, schema.Kind.BOOK_LEVEL).tolist()
        tops = schema.view(recs, schema.Kind.TOP_OF_BOOK).tolist()
        orders: list[tuple] = []
        for lv, tp in zip(levels, tops):
            orders += self.on_record(lv, tp)
        return orders


def orders_array(orders: list[tuple]) -> np.ndarray:
    """ORDER_NEW records (unsealed, check = 0) from order tuples."""
    arr = schema.empty(schema.Kind.ORDER_NEW, len(orders))
    for k, name in enumerate(ORDER_FIELDS):
        arr[name] = [o[k] for o in orders]
    return arr


def orders_tuples(records: np.ndarray) -> list[tuple]:
    """Order tuples from ORDER_NEW records (the inverse of `orders_array`)."""
    recs = schema.view(records.reshape(-1), schema.Kind.ORDER_NEW)
    cols = [recs[name].tolist() for name in ORDER_FIELDS]
    return list(zip(*cols))
