"""The smallest market the decision kernels trade, for running them outside the engine: the
warm-up at start, the kernel benchmarks and the decision tests build their books, state and
signal here.

Venue 1 lists instrument 1 and venue 2 lists instrument 2, both BTC (asset 1) against USDT
(asset 2); the signal buys on venue 1 and sells on venue 2.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import schema
from .book import BookState
from .gate import DecisionState


def snapshot(
    book: BookState,
    venue: int,
    instrument: int,
    bids: Iterable[tuple[float, float]],
    asks: Iterable[tuple[float, float]],
    ts_ns: int,
) -> None:
    """Apply a whole snapshot of book (venue, instrument): both sides cleared, `bids` and `asks`
    [(price, qty)] set, the snapshot ended; every record stamped `ts_ns`."""
    rows = (
        [(1, 0, 0.0, 0.0), (1, 1, 0.0, 0.0)]
        + [(0, 0, p, q) for p, q in bids]
        + [(0, 1, p, q) for p, q in asks]
        + [(2, 0, 0.0, 0.0)]
    )
    recs = schema.empty(schema.Kind.BOOK_LEVEL, len(rows))
    recs["venue"], recs["instrument"], recs["ts_ns"] = venue, instrument, ts_ns
    for k, (a, s, p, q) in enumerate(rows):
        recs["action"][k], recs["sub"][k], recs["price"][k], recs["qty"][k] = a, s, p, q
    book.apply(recs)


def decision_state(
    *,
    usdt: float,
    btc: float,
    fee_bps: float,
    slip_bps: float,
    venue_exposure: float,
    min_notional: float,
    budget: float,
    lots: tuple[float, float] = (0.001, 0.001),
    strategies: int = 1,
    min_edge_bps: float,
    max_book_age_ns: int,
    max_order_notional: float,
    band_bps: float,
    exposure_limit: float,
) -> DecisionState:
    """Both venues at `fee_bps` and `slip_bps`, both instruments on a 0.1 tick with `lots`;
    strategy 0 with `budget`; `usdt` to buy with on venue 1 and `btc` to sell on venue 2."""
    ds = DecisionState(2, 2, 2, strategies)
    for v in (1, 2):
        ds.set_venue(v, fee_bps=fee_bps, slip_bps=slip_bps, exposure_limit=venue_exposure)
    for i, lot in zip((1, 2), lots, strict=True):
        ds.set_instrument(i, tick=0.1, lot=lot, min_notional=min_notional, base=1, quote=2)
    ds.set_strategy(0, budget=budget)
    ds.set_policy(
        min_edge_bps=min_edge_bps,
        max_book_age_ns=max_book_age_ns,
        max_order_notional=max_order_notional,
        band_bps=band_bps,
        exposure_limit=exposure_limit,
    )
    ds.balance[1, 2], ds.balance[2, 1] = usdt, btc
    return ds


def signal(now_ns: int) -> dict[str, int | float]:
    """The signal's fields: buy instrument 1 on venue 1, sell instrument 2 on venue 2, made 1 us
    before `now_ns`, 1 ms to live, 30 bps of edge, no quantity hint."""
    return dict(
        venue=1,
        instrument=1,
        sell_venue=2,
        sell_instrument=2,
        created_ns=now_ns - 1000,
        ttl_us=1000,
        edge_bps=30.0,
        qty_hint=0.0,
    )
