"""Catching the ledger up with a venue's fills.

`sync_fills` pages through `Venue.fills(cursor)` and books every fill of an order basis placed
(`coid_from_wire` reads its client order id) into the Ledger; other fills on the account are
counted, never booked. The ledger ignores a fill it has already booked (same venue, client order
id and fill id), so the cursor may start anywhere before the last booked fill (None after a
crash) and nothing is counted twice; fills arriving both by stream and by this query are booked
once.

Fill ids: with `ordinal=False` the ledger's fill id is the venue's trade id. The journal's
ORDER_EVENT record has no room for a trade id, only `fill_no`; a ledger rebuilt from the journal
therefore books fill `n` of an order as "#n". With `ordinal=True` this sync does the same: it
numbers each order's fills 1, 2, ... in the venue's order (oldest first), which needs the
venue's fills from the beginning of the run on the first call (cursor None), and then keeps
the counts in the FillSync state between calls.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from basis_core.venue import Venue, coid_from_wire

from ..accounting.convert import ledger_fill
from ..accounting.ledger import Ledger

MAX_PAGES = 10_000


def ordinal_id(n: int) -> str:
    """The ledger fill id of the n-th fill (1-based) of an order, as journal replay books it."""
    return f"#{n}"


@dataclass
class FillSync:
    """Progress of one venue's fill sync; keep it between calls."""

    cursor: str | None = None
    ordinal: bool = False
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    booked: int = 0
    repeated: int = 0
    foreign: int = 0  # fills of orders basis did not place, never booked


async def sync_fills(
    venue: Venue, ledger: Ledger, state: FillSync, *, limit: int = 1000, strategy_of=None, signal_px_of=None
) -> int:
    """Book every fill of `venue` after `state.cursor` into `ledger`; returns how many were new.
    `strategy_of(fill)` and `signal_px_of(fill)` (optional) give the strategy name and the
    signal's price of the fill's leg."""
    rules = venue.instruments()
    new = 0
    for _ in range(MAX_PAGES):
        page = await venue.fills(state.cursor, limit)
        for f in page.fills:
            if coid_from_wire(f.coid) is None:
                # not ours (placed by hand or by another run on the account): its effect on the
                # balances is the venue's, and a balance mismatch if it happened during the run;
                # one from before the run is in the starting balances already
                state.foreign += 1
                continue
            fill_id = None
            if state.ordinal:
                state.counts[f.coid] += 1
                fill_id = ordinal_id(state.counts[f.coid])
            lf = ledger_fill(
                f,
                rules[f.instrument],
                strategy=strategy_of(f) if strategy_of else "",
                signal_px=signal_px_of(f) if signal_px_of else 0.0,
                fill_id=fill_id,
            )
            if ledger.book_fill(lf):
                new += 1
            else:
                state.repeated += 1
        state.cursor = page.cursor if page.cursor is not None else state.cursor
        if not page.more or not page.fills:
            break
    state.booked += new
    return new
