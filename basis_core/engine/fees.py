"""Base-asset fee drift and its restore: the base a venue kept as fees once its fee asset ran out.

A venue whose fee asset (BNB ...) ran out charges the received asset: a buy of 0.1 BTC brings
0.1 BTC less the fee. Each position counts that fee as exposure (`ManagedOrder.base_fee`), but
one fill's fee is below the residual tolerance, so the position closes "flat" and the base it
never got stays missing: a long run drifts short by the sum of those fees. When a position is
reconciled, the part of its net that its base-asset fees explain is carried into
`fee_drift[asset]` (base owed back, > 0 when short). With `[policy] on_fee_asset_exhausted =
"restore"` (the default) the engine buys it back on the venue that kept it once it is at least a
lot and the venue's min notional: one IOC at a time per base asset, `max_slippage_bps` through
the touch, purpose RESTORE (routed as a hedge). A restore takes one of the legs (client order
ids) of the newest reconciled position that carried drift, which the position's own net leaves
out; the ledger books its fill to that opportunity, so a restore adds at most RESTORE_SHARE of
that position's smaller leg (its hedge stays complete for the position layer). A restore that
fills nothing is tried again after `unwind_window_ms`. The orders are decisions like any other
(journaled, replayed); `fee_restores` in report.json lists them.

The drift is short base of the whole book, so it is kept per base asset: the restore goes to the
listing that charged the newest carried fee, or, when that venue cannot take it or its quote
cannot pay for it (a run that bought base there has spent its quote), to another spot listing
of the same base that can (as an unwind reroutes).

A mixin of EngineCore (basis_core/engine/core.py), like hedging.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import schema as S
from ..results.stats import Spool
from ..units import MS
from .orders import ManagedOrder
from .parts import EngineParts
from .positions import HedgedPosition

#: the newest restore orders the core holds for the report (the count is the run's)
RESTORES_KEPT = 1_000
#: the most a restore may add to the position whose client order id it takes, as a share of that
#: position's smaller leg: the ledger books the restore's fill to that opportunity, and the
#: position layer holds an opportunity whose bought and sold differ by more than 5 % (its
#: min_symmetry, 0.95) for an incomplete hedge (a mismatch the engine cannot resolve)
RESTORE_SHARE = 0.02


@dataclass
class FeeRestore:
    """One restore order as the report lists it."""

    coid: int
    venue: str
    instrument: str
    qty: float  # asked for (whole lots)
    drift: float  # the drift it was sized from
    decided_ns: int
    reason: str


class FeeDrift(EngineParts):
    fee_drift: dict[str, float]  # base asset -> owed back (fees kept by venues, less restores)
    fee_restored: dict[str, float]  # base asset -> bought back by restores (net of their own fees)
    fee_restore_home: dict[str, str]  # base asset -> the listing that charged the newest carried fee
    fee_restore_owner: dict[str, tuple[int, float]]  # base -> (position lending its id, room left)
    fee_restore_working: dict[str, int]  # base asset -> its restore order in flight
    fee_restore_failed_ns: dict[str, int]  # base asset -> when its last restore filled nothing
    fee_restores: Spool[FeeRestore]
    fee_restore_floor: dict[str, tuple[float, float]]  # base asset -> smallest (lot, min notional)

    def _init_fee_drift(self) -> None:
        self.fee_drift = {}
        self.fee_restored = {}
        self.fee_restore_home = {}
        self.fee_restore_owner = {}
        self.fee_restore_working = {}
        self.fee_restore_failed_ns = {}
        self.fee_restores = Spool(RESTORES_KEPT)
        self.fee_restore_floor = {}

    def _carry_fee_drift(self, pos: HedgedPosition) -> None:
        """`pos` is reconciled: the short its base-asset fees left (at most those fees, at most
        its net short) is drift of their base asset."""
        book = self.orders.orders
        orders = [o for o in pos.orders(book) if o.base_fee > 0]
        if not orders:
            return
        # a position reopened by a late fill is reconciled again: its fees are carried once
        left = min(max(-pos.net_qty(book), 0.0), sum(o.base_fee for o in orders)) - pos.fee_carried
        pos.fee_carried += max(left, 0.0)
        room = RESTORE_SHARE * min(pos.leg_fills(book)) - sum(
            book[c].qty for c in pos.restore_coids if c in book
        )
        for o in orders:
            base = self.rules[o.instrument].base
            take = min(o.base_fee, left)
            if take > 0:
                self.fee_drift[base] = self.fee_drift.get(base, 0.0) + take
                left -= take
            self.fee_restore_home[base] = o.instrument
            if room > 0:
                self.fee_restore_owner[base] = (pos.opp_id, room)

    def _restore_filled(self, order: ManagedOrder, qty: float, fee: float, fee_asset: str) -> None:
        """A fill of a restore order: what it brought (less a fee in the base) is drift paid back."""
        base = self.rules[order.instrument].base
        got = qty - (fee if fee_asset == base else 0.0)
        self.fee_drift[base] = self.fee_drift.get(base, 0.0) - got
        self.fee_restored[base] = self.fee_restored.get(base, 0.0) + got

    def _restore_fee_drift(self) -> None:
        """Buy back each base asset's drift once a listing can take it (a lot, its min notional)."""
        p = self.policy
        for base, drift in self.fee_drift.items():
            coid = self.fee_restore_working.get(base)
            if coid is not None:
                working = self.orders.get(coid)
                if working is not None and not working.terminal:
                    continue
                del self.fee_restore_working[base]
                if working is not None and working.filled <= 0:
                    self.fee_restore_failed_ns[base] = self.now
                    why = working.reject_reason or "no fill"
                    self.counters.anomalies.append(
                        f"{working.venue}: fee restore {coid} filled nothing ({why})"
                    )
            if p.on_fee_asset_exhausted != "restore" or drift <= 0 or base not in self.fee_restore_owner:
                continue
            opp_id, room = self.fee_restore_owner[base]
            want = min(drift, room)  # what the position lending its id can take
            lot, notional = self._restore_floor(base)
            if want < lot or want * self.market.mark(base) < notional:
                continue  # too little for any listing yet (most steps: decided without a book)
            failed = self.fee_restore_failed_ns.get(base)
            if failed is not None and self.now - failed < p.unwind_window_ms * MS:
                continue
            home = self.fee_restore_home[base]
            pos = self.positions.get(opp_id)
            leg = 2 + len(pos.unwind_coids) + len(pos.restore_coids) if pos is not None else S.MAX_LEG + 1
            if pos is None or leg > S.MAX_LEG:
                continue  # the next position carried here lends its id
            found = self._restore_listing(home, want)
            if found is None:
                continue  # no listing can take it now, or its owner has too little room left
            inst, qty, price = found
            self.fee_restore_owner[base] = (opp_id, room - qty)
            r = self.rules[inst]
            slip = p.max_slippage_bps
            order = self._new_order(
                opp_id,
                leg,
                r.venue,
                inst,
                S.Side.BUY,
                S.OrderType.IOC,
                qty,
                price,
                slip,
                0,
                S.Purpose.RESTORE,
            )
            pos.restore_coids.append(order.coid)
            self.fee_restore_working[base] = order.coid
            where = "" if inst == home else f", rerouted from {self.rules[home].venue}"
            reason = (
                f"fee drift {drift:.8f} {base} (fees charged in {base} on {self.rules[home].venue}{where})"
            )
            self.fee_restores.append(FeeRestore(order.coid, r.venue, inst, qty, drift, self.now, reason))

    def _restore_floor(self, base: str) -> tuple[float, float]:
        """The smallest lot and min notional of the spot listings of `base`."""
        floor = self.fee_restore_floor.get(base)
        if floor is None:
            spot = [r for r in self.rules.values() if r.base == base and r.kind == "spot"]
            floor = min((r.lot for r in spot), default=0.0), min((r.min_notional for r in spot), default=0.0)
            self.fee_restore_floor[base] = floor
        return floor

    def _restore_listing(self, home: str, drift: float) -> tuple[str, float, float] | None:
        """Where to buy `drift` of `home`'s base: `home` first, then the other spot listings of
        that base in the config's order; the first that takes orders, has a book, can take the
        quantity in whole lots above its min notional and whose quote pays for it."""
        base = self.rules[home].base
        slip = self.policy.max_slippage_bps
        names = [home] + [
            n for n, r in self.rules.items() if n != home and r.base == base and r.kind == "spot"
        ]
        for name in names:
            r = self.rules[name]
            qty = round(float(np.floor(drift / r.lot + 1e-9)) * r.lot, 12)
            if qty <= 0 or not self.board.can_dispatch(r.venue, self.now):
                continue
            top = self.market.top(self.reg.venue(r.venue), self.reg.instrument(name))
            if top is None or qty * top[2] < r.min_notional:
                continue
            price = float(np.ceil(top[2] * (1 + slip / 1e4) / r.tick - 1e-9) * r.tick)
            if self._free_quote(r.venue, r.quote) >= qty * price * (1 + r.taker_fee_bps / 1e4):
                return name, qty, price
        return None

    def fee_drift_usdt(self) -> float:
        """The drift still owed back, in USDT at the marks (part of the residual)."""
        return sum(abs(d) * self.market.mark(a) for a, d in self.fee_drift.items() if d)
