"""Hedged positions inside the engine core: symmetry, hedge completion, isolation, unwind,
and the timed checks that move positions and the engine's risk state along.

A mixin of EngineCore (basis_core/engine/core.py): it reads and writes the core's state, which
engine/parts.py declares.
"""

from __future__ import annotations

import numpy as np

from .. import schema as S
from ..state.tables import OUTAGE, EngineEvent, EngineState, HedgeEvent, HedgeState, OrderState
from ..units import MS
from .actions import fire_engine, fire_hedge
from .orders import ManagedOrder
from .parts import EngineParts
from .positions import HedgedPosition, Leg


class Hedging(EngineParts):
    # -- hedged positions ------------------------------------------------------------------------

    def _position_update(self, pos: HedgedPosition) -> None:
        book = self.orders.orders
        buy, sell = book.get(pos.buy.coid), book.get(pos.sell.coid)
        bq, sq = pos.leg_fills(book)
        net = pos.net_qty(book)
        mark = self.market.mark(self.rules[pos.buy.instrument].base)
        residual_usdt = abs(net) * mark
        self.counters.max_residual_usdt = max(self.counters.max_residual_usdt, residual_usdt)
        flat = residual_usdt <= self.policy.residual_tolerance_usdt
        legs_done = all(o is not None and o.terminal for o in (buy, sell))
        st = pos.state
        if pos.maker and self._hedge_maker_fills(pos, net, flat):
            return  # a maker_taker quote's fills are hedged as they come (engine/maker.py)
        if st in (HedgeState.CLOSED, HedgeState.RECONCILED, HedgeState.COMPLETE):
            if not flat and legs_done:
                # late news left exposure behind a position we had closed: treat it as a breach
                if st == HedgeState.COMPLETE:
                    fire_hedge(self, pos, HedgeEvent.RECONCILED, "legs were matched when it completed")
                fire_hedge(self, pos, HedgeEvent.LEG_FILLED, f"late fill: residual {residual_usdt:.2f} USDT")
            return
        if sell is None and buy is not None and buy.terminal and st == HedgeState.LEG_WORKING:
            # primary_then_hedge: the primary is done; hedge what it filled, or close
            if buy.filled > 0 and self.board.can_dispatch(self.rules[pos.sell.instrument].venue, self.now):
                self._send_hedge(pos, buy.filled)
                fire_hedge(self, pos, HedgeEvent.LEG_FILLED, f"primary filled {buy.filled:g}; hedge sent")
                return
            if buy.filled <= 0:
                fire_hedge(self, pos, HedgeEvent.NOTHING_FILLED, "primary filled nothing")
                return
            legs_done = True  # the hedge venue cannot take it: the window will decide
        if st in (HedgeState.LEG_WORKING, HedgeState.HEDGING):
            if bq > 0 and sq > 0 and flat and legs_done:
                fire_hedge(self, pos, HedgeEvent.BOTH_FILLED, "legs matched")
                self.counters.hedges_completed += 1
            elif legs_done and bq == 0 and sq == 0:
                fire_hedge(self, pos, HedgeEvent.NOTHING_FILLED, "no leg filled")
            elif bq > 0 or sq > 0:
                if st == HedgeState.LEG_WORKING:
                    fire_hedge(self, pos, HedgeEvent.LEG_FILLED, "first fill")
                self._symmetry(pos, net, residual_usdt, legs_done)
        elif st in (HedgeState.ISOLATED, HedgeState.UNWINDING):
            unwinding = [book[c] for c in pos.unwind_coids if c in book and not book[c].terminal]
            if flat and not unwinding:
                fire_hedge(self, pos, HedgeEvent.FLAT, f"residual {residual_usdt:.2f} USDT")
        elif st == HedgeState.ASYMMETRIC and flat and legs_done:
            fire_hedge(self, pos, HedgeEvent.BOTH_FILLED, "late hedge fill matched the legs")

    def _symmetry(self, pos: HedgedPosition, net: float, residual_usdt: float, legs_done: bool) -> None:
        """Escalation by policy: ok / degrade / breach; inside the window, complete the hedge."""
        ratio = pos.fill_ratio(self.orders.orders)
        age_ms = (self.now - pos.first_fill_ns) / MS
        p = self.policy
        # unhedged exposure is allowed only inside the hedge window; past it, any residual above
        # tolerance (or a fill ratio below the breach threshold) is a breach
        breach = age_ms > p.hedge_window_ms and (
            residual_usdt > p.residual_tolerance_usdt or ratio < p.fill_ratio_breach
        )
        if breach:
            fire_hedge(
                self,
                pos,
                HedgeEvent.BREACH,
                f"fill ratio {ratio:.2f}, residual {residual_usdt:.2f} USDT after {age_ms:.0f} ms",
            )
            pos.asymmetric_episodes += 1
            self.counters.asymmetric_episodes += 1
            fire_engine(self, EngineEvent.SYMMETRY_BREACH, f"opportunity {pos.opp_id} asymmetric")
            fire_hedge(self, pos, HedgeEvent.ISOLATE, "isolate")  # cancel_working_legs
            return
        if ratio < p.fill_ratio_degrade and not pos.degraded:
            pos.degraded = True
            fire_hedge(self, pos, HedgeEvent.DEGRADE, f"fill ratio {ratio:.2f}")
        if legs_done and residual_usdt > p.residual_tolerance_usdt:
            self._complete_hedge(pos, net)

    def _complete_hedge(self, pos: HedgedPosition, net: float) -> None:
        """Inside the hedge window: send the missing quantity on the under-filled leg."""
        book = self.orders.orders
        if any(not book[c].terminal for c in pos.unwind_coids if c in book):
            return
        if pos.hedge_attempts >= self.policy.hedge_max_retries or pos.hedge_blocked:
            return  # the window decides: a breach if the residual is still there when it closes
        last = book.get(pos.unwind_coids[-1]) if pos.unwind_coids else None
        if last is not None and last.reject_reason in (
            "insufficient_funds",
            "min_notional",
            "lot_size",
            "bad_input",
        ):
            pos.hedge_blocked = True  # retrying cannot help
            return
        pos.hedge_attempts += 1
        leg = pos.sell if net > 0 else pos.buy
        side = S.Side.SELL if net > 0 else S.Side.BUY
        if not self.board.can_dispatch(leg.venue, self.now):
            return
        order = self._aggressive(
            pos, leg.venue, leg.instrument, side, abs(net), S.Purpose.HEDGE, self.policy.max_slippage_bps
        )
        if order is not None:
            fire_hedge(self, pos, HedgeEvent.DISPATCHED, "hedge remainder")

    def _aggressive(
        self,
        pos: HedgedPosition,
        venue: str,
        instrument: str,
        side: S.Side,
        qty: float,
        purpose: S.Purpose,
        through_bps: float,
    ) -> ManagedOrder | None:
        """An IOC `through_bps` through the touch for `qty` (rounded down to the lot)."""
        r = self.rules[instrument]
        top = self.market.top(self.reg.venue(venue), self.reg.instrument(instrument))
        if top is None:
            return None
        bid, _, ask, _ = top
        # whole lots, as the double nearest the decimal: n * lot alone can overshoot in floats
        # (4996 * 1e-5 = 0.049960000000000004, more than a venue holding 0.04996 can sell)
        qty = round(float(np.floor(qty / r.lot + 1e-9)) * r.lot, 12)
        if qty <= 0:
            return None
        if side == S.Side.BUY:
            price = np.ceil(ask * (1 + through_bps / 1e4) / r.tick - 1e-9) * r.tick
        else:
            price = np.floor(bid * (1 - through_bps / 1e4) / r.tick + 1e-9) * r.tick
        if price <= 0 or qty * price < r.min_notional:
            return None
        leg_no = 2 + len(pos.unwind_coids) + len(pos.restore_coids)
        if leg_no > S.MAX_LEG:
            return None
        order = self._new_order(
            pos.opp_id,
            leg_no,
            venue,
            instrument,
            side,
            S.OrderType.IOC,
            qty,
            float(price),
            through_bps,
            pos.buy.coid,
            purpose,
        )
        pos.unwind_coids.append(order.coid)
        return order

    # -- timed checks ------------------------------------------------------------------------------

    def _timed_checks(self) -> None:
        p = self.policy
        for pos in list(self.open_positions.values()):
            st = pos.state
            if st in (HedgeState.LEG_WORKING, HedgeState.HEDGING) and pos.first_fill_ns:
                self._position_update(pos)
            elif st == HedgeState.ISOLATED:
                self._unwind(pos)
            elif st == HedgeState.UNWINDING:
                book = self.orders.orders
                if all(book[c].terminal for c in pos.unwind_coids if c in book):
                    self._position_update(pos)
                    if pos.state == HedgeState.UNWINDING:
                        self._unwind(pos)
            elif (
                st in (HedgeState.COMPLETE, HedgeState.CLOSED)
                and self.engine.state != EngineState.UNWINDING
                and all(o.terminal for o in pos.orders(self.orders.orders))
            ):
                fire_hedge(self, pos, HedgeEvent.RECONCILED, "legs terminal, residual within tolerance")
                del self.open_positions[pos.opp_id]
                self._carry_fee_drift(pos)  # a short its base-asset fees left (engine/fees.py)
        self._engine_checks()
        # orders in doubt: ask again on the verify interval; an order with no answer at all for
        # several intervals (a lost acknowledgement) is asked about too
        quiet_ns = int(4 * p.verify_interval_ms * MS)
        for o in self.orders.working():
            if o.state == OrderState.UNKNOWN:
                due = self.now - o.last_query_ns >= p.verify_interval_ms * MS
            elif o.state in (OrderState.SUBMITTED, OrderState.PENDING_CANCEL):
                due = self.now - max(o.machine.since_ns, o.last_query_ns) >= quiet_ns
            else:
                due = False
            if due:
                self._query(o)
        if self.slicing:
            self._advance_slices()
        if self.making:
            self._advance_makers()
        if self.fee_drift:
            self._restore_fee_drift()
        self._record_residual()

    def _unwind(self, pos: HedgedPosition) -> None:
        book = self.orders.orders
        net = pos.net_qty(book)
        mark = self.market.mark(self.rules[pos.buy.instrument].base)
        if abs(net) * mark <= self.policy.residual_tolerance_usdt:
            if all(o.terminal for o in pos.orders(book)):
                if pos.state == HedgeState.ISOLATED:
                    fire_hedge(self, pos, HedgeEvent.FLAT, "nothing to unwind")
                else:
                    fire_hedge(self, pos, HedgeEvent.FLAT, "flat after unwind")
            return
        if any(not o.terminal and self.board[o.venue].state not in OUTAGE for o in pos.orders(book)):
            return  # wait for the cancels / the working unwind to settle
        # an order in doubt on a venue in maintenance (or disconnected) cannot be known before the
        # venue is back: the filled leg is unwound meanwhile; should that order turn out filled, its
        # late fill reopens the position, which is unwound in turn
        gap_ns = int(self.policy.unwind_window_ms / self.policy.unwind_max_retries * MS)
        if pos.unwind_attempts and self.now - pos.last_unwind_ns < gap_ns:
            return  # retries are spaced over the unwind window: a passing refusal gets time to clear
        leg = pos.buy if net > 0 else pos.sell
        side = S.Side.SELL if net > 0 else S.Side.BUY
        if pos.unwind_attempts >= self.policy.unwind_max_retries:
            if not pos.unwind_failed:
                pos.unwind_failed = True
                if pos.state == HedgeState.UNWINDING:
                    fire_hedge(self, pos, HedgeEvent.UNWIND_FAILED, f"{pos.unwind_attempts} attempts")
                fire_engine(self, EngineEvent.UNWIND_FAILED, f"opportunity {pos.opp_id}: unwind failed")
                return
            # failed and halted, still exposed: a new round once an unwind window has passed and
            # a path can succeed (the venue is back, the funds are there)
            through = self.policy.unwind_aggression_bps
            path = self._unwind_path(leg, side, abs(net), through)
            if (
                self.now - pos.last_unwind_ns < self.policy.unwind_window_ms * MS
                or path is None
                or not self._can_fund(*path, side, abs(net), through)
            ):
                return
            pos.unwind_attempts = 0
        through = self.policy.unwind_aggression_bps * (1 + pos.unwind_attempts)
        path = self._unwind_path(leg, side, abs(net), through)
        if path is None:
            return  # no venue can take it now: wait (not an attempt) for one to come back
        venue, instrument = path
        order = self._aggressive(pos, venue, instrument, side, abs(net), S.Purpose.UNWIND, through)
        pos.unwind_attempts += 1
        pos.last_unwind_ns = self.now
        if order is None:
            return  # no usable book or no order id left: counted as a failed attempt
        if self.engine.state == EngineState.PROTECTIVE:
            fire_engine(self, EngineEvent.UNWIND_STARTED, f"unwind opportunity {pos.opp_id}")
        if pos.state == HedgeState.ISOLATED:
            fire_hedge(self, pos, HedgeEvent.UNWIND, f"flatten {abs(net):g} on {venue}")
            self.counters.unwinds += 1
        else:
            fire_hedge(self, pos, HedgeEvent.UNWIND, f"retry {pos.unwind_attempts}")

    def _unwind_path(self, leg: Leg, side: S.Side, qty: float, through_bps: float) -> tuple[str, str] | None:
        """Where to flatten `qty`: the venue of the over-filled leg when it takes orders; another
        listing that can fund the order when that venue cannot (the sold leg's venue may not hold
        the quote to buy back at an aggressive price plus the fee) or, if policy allows, when it
        is in maintenance. A rerouted unwind is never sent where the funds are not: None then."""
        if self.board.can_dispatch(leg.venue, self.now):
            if self._can_fund(leg.venue, leg.instrument, side, qty, through_bps):
                return leg.venue, leg.instrument
            # our view of the funds may lag the venue's: it judges an order on its own listing
            return self._reroute(leg.instrument, side, qty, through_bps) or (leg.venue, leg.instrument)
        if not self.policy.reroute_on_maintenance:
            return None
        return self._reroute(leg.instrument, side, qty, through_bps)

    def _reroute(
        self, instrument: str, side: S.Side, qty: float, through_bps: float
    ) -> tuple[str, str] | None:
        """Another venue's listing of the same asset and kind, healthy, with a usable book and the
        funds for an IOC of `qty` `through_bps` through its touch."""
        base = self.rules[instrument].base
        for name, r in self.rules.items():
            if name == instrument or r.base != base or r.kind != self.rules[instrument].kind:
                continue
            if not self.board.can_dispatch(r.venue, self.now):
                continue
            if self.market.top(self.reg.venue(r.venue), self.reg.instrument(name)) is None:
                continue
            if not self._can_fund(r.venue, name, side, qty, through_bps):
                continue
            return r.venue, name
        return None

    def _can_fund(self, venue: str, instrument: str, side: S.Side, qty: float, through_bps: float) -> bool:
        """Whether our inventory on `venue` covers an IOC of `qty` `through_bps` through the
        touch: the quote for a buy at that bound plus the taker fee, the coins for a sell (a perp
        order is margin, left to the venue)."""
        r = self.rules[instrument]
        if r.kind != "spot":
            return True
        top = self.market.top(self.reg.venue(venue), self.reg.instrument(instrument))
        if top is None:
            return False
        if side == S.Side.BUY:
            cost = qty * top[2] * (1 + through_bps / 1e4) * (1 + r.taker_fee_bps / 1e4)
            return self._free_quote(venue, r.quote) >= cost
        return self._free_base(venue, instrument) >= qty

    def _engine_checks(self) -> None:
        st = self.engine.state
        active = [
            p
            for p in self.open_positions.values()
            if p.state in (HedgeState.ASYMMETRIC, HedgeState.ISOLATED, HedgeState.UNWINDING)
        ]
        if st == EngineState.UNWINDING and not active:
            fire_engine(self, EngineEvent.UNWIND_DONE, "every isolated position is flat")
        elif st == EngineState.PROTECTIVE and not active and self.market.vol_level_max() < 3:
            fire_engine(
                self, EngineEvent.EXPOSURE_RESOLVED, "no isolated position, volatility below protect level"
            )
        elif st == EngineState.RECONCILING:
            if not self.reconcile_clean_since and not self.reconcile_requested:
                self._request_reconcile()
            working_entries = [o for o in self.orders.working() if o.purpose != "entry"]
            if (
                self.reconcile_clean_since
                and not active
                and not working_entries
                and self.board.all_healthy_for(self.now)
                and self.market.vol_level_max() < 3
            ):
                fire_engine(
                    self,
                    EngineEvent.POLICY_CHECKS_PASSED,
                    "flat, reconciliation clean, venues healthy for the window",
                )
        # volatility levels: protect and halt
        level = self.market.vol_level_max()
        if level >= 4 and self.engine.can(EngineEvent.VOL_HALT) and self.engine.state != EngineState.HALTED:
            fire_engine(self, EngineEvent.VOL_HALT, "volatility above halt level")
        elif level == 3 and self.engine.state in (
            EngineState.NORMAL,
            EngineState.DEGRADED,
            EngineState.RECONCILING,
        ):
            fire_engine(self, EngineEvent.VOL_SPIKE, "volatility above protect level")

    def _request_reconcile(self) -> None:
        self.reconcile_clean_since = 0
        self.reconcile_requested = True
        self._request(S.ControlCommand.RECONCILE, 0)

    def _record_residual(self) -> None:
        total = 0.0
        for pos in self.open_positions.values():
            if pos.state not in (HedgeState.RECONCILED,):
                net = pos.net_qty(self.orders.orders)
                if net:
                    total += abs(net) * self.market.mark(self.rules[pos.buy.instrument].base)
        if self.fee_drift:
            total += self.fee_drift_usdt()  # base kept as fees by venues, not yet bought back
        if not self.residual_history or self.residual_history[-1][1] != total:
            self.residual_history.append((self.now, total))
        self.counters.max_residual_usdt = max(self.counters.max_residual_usdt, total)
