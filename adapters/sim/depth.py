"""Participants' depth held outside the matching engine while none of our orders rests.

A SimVenue whose book holds only the other participants' depth (owner MARKET) does not need
the matching engine to answer anything: each generated step replaces the depth, and each
participant's market order walks it from the best level. `StagedDepth` keeps that depth as
it arrives and plays participants' trades on it with the same prints and the same resulting
depth as `MatchingEngine` (see `trade`). When one of our orders arrives, the venue moves the
depth into the engine (`to_dicts`) and matching goes on there.

A step's depth arrives as a *row*: the tuple (bids, asks, books, step) where `bids` and
`asks` are the levels as published, ((price, qty), ...) best first, and `books` is the
generator's (bid_ticks, bid_lots, ask_ticks, ask_lots) arrays [n_steps, levels] (market.py
`book_arrays`: bids descending, asks ascending, lots > 0) whose row `step` holds the same levels
in integers. `StagedDepth(row)` keeps the row itself and unpacks a side only when a participant
first trades on it (most steps see none). Nothing handed in is changed.
"""

from __future__ import annotations

from basis_core.schema import Side


class _Levels:
    """One side, best first. Levels before `start` are gone (trades took them); the level at
    `start` holds `lots[start]`, published as `head` when a trade took part of it (else as
    `view[start]`)."""

    __slots__ = ("head", "lots", "start", "ticks", "view")

    def __init__(self, ticks: list, lots: list, view: tuple):
        self.ticks, self.lots, self.view = ticks, lots, view
        self.start = 0
        self.head: tuple[float, float] | None = None  # (price, qty) of a partly taken level

    def top(self, n: int) -> tuple:
        s, view = self.start, self.view
        if self.head is not None:
            return (self.head,) + view[s + 1 : s + n]
        return view if s == 0 and len(view) <= n else view[s : s + n]

    def as_dict(self) -> dict[int, int]:
        s = self.start
        return dict(zip(self.ticks[s:], self.lots[s:]))


class StagedDepth:
    """Both sides of the participants' depth (see module docstring). A side made from a row
    is unpacked into `_Levels` only when a trade first takes from it."""

    __slots__ = ("row", "sides")

    def __init__(self, row: tuple | None, bids: _Levels | None = None, asks: _Levels | None = None):
        self.row, self.sides = row, [bids, asks]

    def _side(self, i: int) -> _Levels:
        """Side `i` (0 bids, 1 asks), unpacked from the row if it is not yet."""
        lv = self.sides[i]
        if lv is None:
            row = self.row
            assert row is not None  # a side is left out only while the row holds it
            books, step = row[2], row[3]
            lv = self.sides[i] = _Levels(books[2 * i][step].tolist(), books[2 * i + 1][step].tolist(), row[i])
        return lv

    @classmethod
    def from_dicts(cls, bids: dict[int, int], asks: dict[int, int], price, qty) -> StagedDepth:
        """Depth from {ticks: lots} per side (levels with no lots are left out); `price` and
        `qty` convert ticks and lots to the published floats (MatchingEngine.price / .qty)."""
        sides = []
        for levels, descending in ((bids, True), (asks, False)):
            ticks = sorted((t for t, n in levels.items() if n > 0), reverse=descending)
            lots = [levels[t] for t in ticks]
            sides.append(_Levels(ticks, lots, tuple((price(t), qty(n)) for t, n in zip(ticks, lots))))
        return cls(None, *sides)

    def to_dicts(self) -> tuple[dict[int, int], dict[int, int]]:
        """{ticks: lots} per side: (bids, asks)."""
        return self._side(0).as_dict(), self._side(1).as_dict()

    def top(self, n: int) -> tuple[tuple, tuple]:
        """The best `n` levels per side as ((price, qty), ...): (bids, asks)."""
        out = []
        for i, lv in enumerate(self.sides):
            if lv is not None:
                out.append(lv.top(n))
            else:
                assert self.row is not None  # a side is left out only while the row holds it
                view = self.row[i]
                out.append(view if len(view) <= n else view[:n])
        return out[0], out[1]

    def trade(self, side: Side, lots: int, limit: int | None, qty) -> list[tuple[float, int]]:
        """A participant's order of `side` for `lots` (IOC at `limit` ticks, or market) against
        the opposite side, best level first; returns its prints as (price, lots), one per level
        taken, and leaves the depth it did not take. `qty` converts lots to the published
        quantity of a level left partly taken. The same prints and remaining depth as the
        matching engine gives a participant's order against MARKET-only depth."""
        lv = self._side(1 if side == Side.BUY else 0)
        ticks, have, view = lv.ticks, lv.lots, lv.view
        i, n = lv.start, len(ticks)
        prints = []
        buy = side == Side.BUY
        while lots > 0 and i < n:
            t = ticks[i]
            if limit is not None and (t > limit if buy else t < limit):
                break
            h = have[i]
            px = view[i][0]
            if lots >= h:
                prints.append((px, h))
                lots -= h
                i += 1
                lv.head = None
            else:
                have[i] = h - lots
                lv.head = (px, qty(h - lots))
                prints.append((px, lots))
                lots = 0
        lv.start = i
        return prints


def row_dicts(row: tuple, remember_qty=None) -> tuple[dict[int, int], dict[int, int]]:
    """{ticks: lots} per side of a row: (bids, asks). `remember_qty(lots, qty)`, if given,
    receives each side's lots and their published quantities."""
    (bt, bl, at, al), step = row[2], row[3]
    bl, al = bl[step].tolist(), al[step].tolist()
    if remember_qty is not None:
        remember_qty(bl, [q for _, q in row[0]])
        remember_qty(al, [q for _, q in row[1]])
    return dict(zip(bt[step].tolist(), bl)), dict(zip(at[step].tolist(), al))


def rows(books: tuple, views: tuple, start: int, stop: int) -> list[tuple]:
    """The rows of steps [start, stop) of one listing: `books` as in the module docstring,
    `views` the (bid prices, bid quantities, ask prices, ask quantities) float arrays of the
    same shape, as published."""
    bp, bq, ap, aq = (a[start:stop].tolist() for a in views)
    return [
        (tuple(zip(p, q)), tuple(zip(a, b)), books, s)
        for s, p, q, a, b in zip(range(start, stop), bp, bq, ap, aq)
    ]
