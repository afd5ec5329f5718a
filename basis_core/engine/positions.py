"""Hedged positions: one per opportunity, with its HEDGE state machine.

A position is the set of orders of one opportunity: the entry legs (a buy and a sell of the
same base asset, on two venues or on spot and perp) and any unwind orders. Its net base
quantity is the signed sum of what those orders filled; it is hedged when that is (near) zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..schema import Side
from ..state.fsm import Machine
from ..state.tables import HEDGE, HedgeState
from .orders import ManagedOrder


@dataclass
class Leg:
    venue: str
    instrument: str
    side: Side
    signal_px: float  # the touch when the signal was taken (slippage is measured from it)
    coid: int = 0


@dataclass
class HedgedPosition:
    opp_id: int
    strategy: str
    buy: Leg
    sell: Leg
    qty: float
    expected_edge_bps: float
    created_ns: int
    machine: Machine[HedgeState] = field(kw_only=True)
    first_fill_ns: int = 0
    unwind_coids: list[int] = field(default_factory=list)
    unwind_attempts: int = 0
    unwind_failed: bool = False
    last_unwind_ns: int = 0
    hedge_attempts: int = 0
    hedge_blocked: bool = False
    unwind_started_ns: int = 0
    asymmetric_episodes: int = 0
    degraded: bool = False
    hedge_price: float = 0.0  # the hedge leg's bound, fixed when the opportunity was sized
    hedge_slip: float = 0.0
    # implementation shortfall (results/shortfall.py): each leg's book mid when the opportunity
    # was decided, and when its position last changed state (its end); engine state, read from
    # the engine's books, so a replay rebuilds the same figures. 0.0 = no book then.
    mid_buy: float = 0.0
    mid_sell: float = 0.0
    end_mid_buy: float = 0.0
    end_mid_sell: float = 0.0
    #: `sliced` execution: the parent opportunity this position is a slice of (0: not a slice;
    #: the parent's first slice has its own id), and on that first slice the parent's whole
    #: planned quantity (0.0: `qty`)
    parent: int = 0
    planned_qty: float = 0.0
    #: `maker_taker` execution: the primary (the buy leg) is a post-only quote whose fills are
    #: hedged as they come (engine/maker.py), late ones included
    maker: bool = False
    #: ... and the quote rests on the sell leg (`maker_side`): the sell is the post-only primary,
    #: the buys on the buy leg's venue its hedges
    maker_sell: bool = False
    #: fee restores (engine/fees.py) that took one of this position's client order ids: not
    #: part of its net (they buy back base that earlier positions' fees left short)
    restore_coids: list[int] = field(default_factory=list)
    fee_carried: float = 0.0  # of its base-asset fees, what went into the fee drift (reconciled)

    @property
    def state(self) -> HedgeState:
        return self.machine.state

    def orders(self, book: dict[int, ManagedOrder]) -> list[ManagedOrder]:
        coids = [self.buy.coid, self.sell.coid, *self.unwind_coids]
        return [book[c] for c in coids if c in book]

    def net_qty(self, book: dict[int, ManagedOrder]) -> float:
        """Signed base quantity this position holds (long > 0)."""
        return sum(o.signed_filled for o in self.orders(book))

    def leg_fills(self, book: dict[int, ManagedOrder]) -> tuple[float, float]:
        """Quantity bought and sold by this position's orders (hedge completions included)."""
        bought = sold = 0.0
        for o in self.orders(book):
            if o.side == Side.BUY:
                bought += o.filled
            else:
                sold += o.filled
        return bought, sold

    def fill_ratio(self, book: dict[int, ManagedOrder]) -> float:
        bq, sq = self.leg_fills(book)
        hi = max(bq, sq)
        return 1.0 if hi <= 0 else min(bq, sq) / hi


@dataclass
class SliceParent:
    """A `sliced` opportunity while it still sends slices: each slice is a HedgedPosition of its
    own (its own id and orders, `parent` = this id, the id of its first slice). Dropped once it
    ends, so the engine holds only the parents still working."""

    opp_id: int
    strategy: str
    buy: str  # instruments
    sell: str
    planned_qty: float  # what the opportunity was sized to as one taker pair
    edge_bps: float
    slices: list[int] = field(default_factory=list)  # the slices' opportunity ids, in order

    def matched(self, positions: dict[int, HedgedPosition], book: dict[int, ManagedOrder]) -> float:
        """Quantity its slices bought and sold both (what an unwind took back is not in it)."""
        total = 0.0
        for sid in self.slices:
            done = {Side.BUY: 0.0, Side.SELL: 0.0}
            for o in positions[sid].orders(book):
                if o.purpose != "unwind":
                    done[o.side] += o.filled
            total += min(done.values())
        return total


@dataclass
class MakerParent(SliceParent):
    """A `maker_taker` opportunity while it still quotes: each quote (one post-only primary and
    the hedges of its fills) is a HedgedPosition of its own, as a slice is; a reprice is the
    next quote, sent once the last one's primary is terminal and its fills hedged."""

    started_ns: int = 0  # its first quote: the opportunity quotes for maker_ttl_ms from here
    rejects: int = 0  # post-only rejects in a row
    ending: str = ""  # why it ends once the quote being cancelled is done ("": a reprice)
    quote_side: Side = Side.BUY  # the leg its quotes rest on (`maker_side`), fixed at its start


def new_position(
    opp_id: int, strategy: str, buy: Leg, sell: Leg, qty: float, edge_bps: float, now_ns: int, on_change=None
) -> HedgedPosition:
    machine = Machine(HEDGE, HedgeState.PENDING, key=str(opp_id), on_change=on_change, since_ns=now_ns)
    return HedgedPosition(opp_id, strategy, buy, sell, qty, edge_bps, now_ns, machine=machine)
