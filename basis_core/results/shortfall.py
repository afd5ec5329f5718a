"""Implementation shortfall per opportunity: what executing cost against the mids at decision.

An opportunity plans to buy Q on its buy instrument and sell Q on its sell instrument. Its paper
trade fills both at the mids of their books when it was decided (m0_buy, m0_sell). What the run
actually did is every fill booked to the opportunity (for a `sliced` one, to any of its slices):
entries, hedges, hedge completions and unwinds. Per leg L, with side s_L (+1 buy, -1 sell), each
fill i signed q_i (+ bought, - sold) at price p_i with fee f_i (USDT at the fill's mark):

    execution_L = sum_i q_i * (p_i - m0_L)              paid above the buy mid / sold below the sell mid
    unfilled_L  = s_L * Q - sum_i q_i                   signed quantity the leg is still missing
    opportunity_L = unfilled_L * (m_end_L - m0_L)       what the missing quantity moved against us
    fees_L      = sum_i f_i

    shortfall = sum_L (execution_L + opportunity_L + fees_L)          USDT
    shortfall_bps = shortfall / (Q * (m0_buy + m0_sell)) * 1e4        over the paper notional

m_end_L is the leg's book mid when the opportunity's position last changed state (its end; for a
sliced opportunity, its last slice's). The opportunity term is signed: a move in our favour
makes it negative (Perold's definition), and it is zero once both legs are fully filled. A fill
belongs to the leg of its instrument; a fill on a third instrument (an unwind rerouted to another
venue) belongs to the leg it flattens (a sell to the buy leg, a buy to the sell leg). Prices are
in the instrument's quote, which is USDT for every instrument basis trades. VWAP per leg is over
the fills in the leg's own direction. Positive figures are costs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """One opportunity as decided: Q per leg and the legs' mids then and at its end."""

    opportunity_id: int
    strategy: str
    qty: float
    buy_instrument: str
    sell_instrument: str
    mid_buy: float
    mid_sell: float
    end_mid_buy: float
    end_mid_sell: float
    slices: int = 1


@dataclass(frozen=True)
class Fill:
    """One fill booked to an opportunity (side "buy" or "sell")."""

    instrument: str
    side: str
    qty: float
    price: float
    fee_usdt: float


@dataclass(frozen=True)
class Shortfall:
    opportunity_id: int
    strategy: str
    slices: int
    qty: float
    mid_buy: float
    mid_sell: float
    bought: float  # filled on the buy leg in its direction
    sold: float
    vwap_buy: float  # 0.0 when nothing filled
    vwap_sell: float
    execution_usdt: float
    fees_usdt: float
    unfilled_usdt: float
    shortfall_usdt: float
    paper_notional_usdt: float

    @property
    def shortfall_bps(self) -> float:
        return self.shortfall_usdt / self.paper_notional_usdt * 1e4 if self.paper_notional_usdt > 0 else 0.0

    def as_row(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["shortfall_bps"] = self.shortfall_bps
        return out


def shortfall(plan: Plan, fills: Iterable[Fill]) -> Shortfall:
    """The shortfall of one opportunity (module docstring)."""
    # per leg: signed net, execution cost, fees, qty and notional in the leg's own direction
    net = {1: 0.0, -1: 0.0}
    execution = fees = 0.0
    dir_qty = {1: 0.0, -1: 0.0}
    dir_notional = {1: 0.0, -1: 0.0}
    for f in fills:
        sign = 1 if f.side == "buy" else -1
        if f.instrument == plan.buy_instrument:
            leg = 1
        elif f.instrument == plan.sell_instrument:
            leg = -1
        else:
            leg = -sign  # a rerouted unwind: it flattens the leg of the other direction
        m0 = plan.mid_buy if leg == 1 else plan.mid_sell
        net[leg] += sign * f.qty
        execution += sign * f.qty * (f.price - m0)
        fees += f.fee_usdt
        if sign == leg:
            dir_qty[leg] += f.qty
            dir_notional[leg] += f.qty * f.price
    unfilled = (plan.qty - net[1]) * (plan.end_mid_buy - plan.mid_buy) + (-plan.qty - net[-1]) * (
        plan.end_mid_sell - plan.mid_sell
    )
    return Shortfall(
        opportunity_id=plan.opportunity_id,
        strategy=plan.strategy,
        slices=plan.slices,
        qty=plan.qty,
        mid_buy=plan.mid_buy,
        mid_sell=plan.mid_sell,
        bought=dir_qty[1],
        sold=dir_qty[-1],
        vwap_buy=dir_notional[1] / dir_qty[1] if dir_qty[1] > 0 else 0.0,
        vwap_sell=dir_notional[-1] / dir_qty[-1] if dir_qty[-1] > 0 else 0.0,
        execution_usdt=execution,
        fees_usdt=fees,
        unfilled_usdt=unfilled,
        shortfall_usdt=execution + unfilled + fees,
        paper_notional_usdt=plan.qty * (plan.mid_buy + plan.mid_sell),
    )


def totals(rows: Iterable[Shortfall]) -> dict:
    """report.json's `implementation_shortfall`: the run's sums, and bps over the paper notional."""
    rows = list(rows)
    paper = sum(r.paper_notional_usdt for r in rows)
    total = sum(r.shortfall_usdt for r in rows)
    return {
        "opportunities": len(rows),
        "shortfall_usdt": total,
        "shortfall_bps": total / paper * 1e4 if paper > 0 else 0.0,
        "execution_usdt": sum(r.execution_usdt for r in rows),
        "fees_usdt": sum(r.fees_usdt for r in rows),
        "unfilled_usdt": sum(r.unfilled_usdt for r in rows),
        "paper_notional_usdt": paper,
    }


#: totals() keys that report.json's schema checks: each a finite number (a count for opportunities)
TOTAL_KEYS = (
    "opportunities",
    "shortfall_usdt",
    "shortfall_bps",
    "execution_usdt",
    "fees_usdt",
    "unfilled_usdt",
    "paper_notional_usdt",
)
