"""Average-cost position keeping in USDT.

A CostBasis holds a signed quantity of one thing (an asset, or a perp contract) and its
average entry price in USDT. Adding to the position moves the average; reducing it realizes
`closed qty * (price - average)` (sign-adjusted for shorts); crossing through zero closes the
old position and opens the remainder at the trade price. The identity the ledger relies on:

    cash paid out for the position + qty * mark  ==  realized + unrealized(mark)

where cash paid out is the sum of `-dq * price` over every trade.
"""

from __future__ import annotations

from dataclasses import dataclass

#: quantities smaller than this are treated as flat (float residue of equal opposite trades)
QTY_EPS = 1e-12


@dataclass
class CostBasis:
    qty: float = 0.0
    avg: float = 0.0
    realized: float = 0.0

    def trade(self, dq: float, px: float) -> float:
        """Apply a signed quantity change at USDT price `px`; returns the PnL it realized."""
        if dq == 0.0:
            return 0.0
        q = self.qty
        if q == 0.0 or (q > 0) == (dq > 0):
            total = q + dq
            self.avg = (q * self.avg + dq * px) / total
            self.qty = total
            return 0.0
        closed = min(abs(dq), abs(q))
        pnl = closed * (px - self.avg) * (1.0 if q > 0 else -1.0)
        self.realized += pnl
        rest = q + dq
        if abs(rest) <= QTY_EPS * max(1.0, abs(q), abs(dq)):
            self.qty, self.avg = 0.0, 0.0  # flat: drop the float residue of equal opposite trades
        elif (rest > 0) == (q > 0):
            self.qty = rest
        else:
            self.qty, self.avg = rest, px
        return pnl

    def unrealized(self, mark: float) -> float:
        """Mark-to-market PnL of the open quantity at USDT price `mark`."""
        return self.qty * (mark - self.avg)
