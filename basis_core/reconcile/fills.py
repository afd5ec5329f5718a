"""Catching the ledger up with a venue's fills.

`sync_fills` pages through `Venue.fills(cursor)` and books every fill into the Ledger. The
ledger ignores a fill it has already booked (same venue, client order id and fill id), so the
cursor may start anywhere before the last booked fill (None after a crash) and nothing is
counted twice; fills arriving both by stream and by this query are booked once.
"""
from __future__ import annotations

from dataclasses import dataclass

from adapters.base import Venue

from ..accounting.convert import ledger_fill
from ..accounting.ledger import Ledger

MAX_PAGES = 10_000


@dataclass
class FillSync:
    booked: int = 0
    repeated: int = 0
    cursor: str | None = None


async def sync_fills(venue: Venue, ledger: Ledger, cursor: str | None = None, *, limit: int = 1000,
                     strategy_of=None, signal_px_of=None) -> FillSync:
    """Book every fill of `venue` after `cursor` into `ledger`. `strategy_of(fill)` and
    `signal_px_of(fill)` (optional) give the strategy name and the signal's price of its leg."""
    rules = venue.instruments()
    out = FillSync(cursor=cursor)
    for _ in range(MAX_PAGES):
        page = await venue.fills(out.cursor, limit)
        for f in page.fills:
            lf = ledger_fill(f, rules[f.instrument], strategy=strategy_of(f) if strategy_of else "",
                             signal_px=signal_px_of(f) if signal_px_of else 0.0)
            if ledger.book_fill(lf):
                out.booked += 1
            else:
                out.repeated += 1
        out.cursor = page.cursor if page.cursor is not None else out.cursor
        if not page.more or not page.fills:
            break
    return out
