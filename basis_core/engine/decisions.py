"""Signals inside the engine core: the built-in spread/basis scanner, external signals, and
the dispatch-time re-check, gate and sizing that turn one into orders or a counted reason.

A mixin of EngineCore (basis_core/engine/core.py): it reads and writes the core's state, which
engine/parts.py declares.
"""

from __future__ import annotations

import time

from .. import schema as S
from ..state.tables import NO_NEW_EXPOSURE, EngineState, HedgeEvent, HedgeState
from ..units import MS
from .actions import fire_hedge
from .market import Sized
from .orders import ManagedOrder
from .parts import EngineParts
from .positions import HedgedPosition, Leg, SliceParent, new_position

#: what the sizing kernel says when a clustered engine's cap left too little for an entry
_SHORT = frozenset(
    {
        S.RejectReason.MIN_NOTIONAL,
        S.RejectReason.LOT_SIZE,
        S.RejectReason.CAPITAL,
        S.RejectReason.NO_INVENTORY,
    }
)


class Decisions(EngineParts):
    # -- signals -----------------------------------------------------------------------------------

    def _scan_signals(self) -> None:
        """Built-in cross-venue spread / basis signals on the books changed since the last scan.

        The compiled market step of this batch already found the best pair (greatest edge net of
        both taker fees, not below min_edge_bps, first in pair order on a tie); this takes it."""
        best = self.market.take_candidate()
        p = self.policy
        if self.engine.state == EngineState.DEGRADED:
            min_gap = int(50 * MS / p.degraded_rate_factor)
            if self.now - self.last_entry_ns < min_gap:
                return
        if best is not None:
            self._builtin_signal(*best)

    def _builtin_signal(self, edge: float, buy_name: str, sell_name: str) -> None:
        """A built-in signal on a pair: counted and decided now, unless the pair is busy."""
        if self._pair_busy(buy_name, sell_name):
            return
        self.counters.signals_seen += 1
        kind = "basis" if "perp" in (self.rules[buy_name].kind, self.rules[sell_name].kind) else "spread"
        self._decide(kind, buy_name, sell_name, self.now, int(self.policy.signal_ttl_ms * 1000), edge, 0.0)

    def _send_hedge(self, pos: HedgedPosition, qty: float) -> ManagedOrder:
        sl = self.rules[pos.sell.instrument]
        hedge = self._new_order(
            pos.opp_id,
            1,
            sl.venue,
            pos.sell.instrument,
            S.Side.SELL,
            S.OrderType.IOC,
            qty,
            pos.hedge_price,
            pos.hedge_slip,
            pos.buy.coid,
            S.Purpose.HEDGE,
        )
        pos.sell.coid = hedge.coid
        return hedge

    def _pair_busy(self, buy_name: str, sell_name: str) -> bool:
        for parent in (*self.slicing.values(), *self.making.values()):  # held between slices / quotes
            if {parent.buy, parent.sell} & {buy_name, sell_name}:
                return True
        for pos in self.open_positions.values():
            if pos.state not in (HedgeState.RECONCILED, HedgeState.CLOSED, HedgeState.COMPLETE) and (
                {pos.buy.instrument, pos.sell.instrument} & {buy_name, sell_name}
            ):
                return True
        return False

    def _external_signal(self, s) -> None:
        self.counters.signals_seen += 1
        if self.stop_new:
            self.counters.reject(S.RejectReason.RISK_STATE)
            return
        try:
            buy_name = self.reg.instruments.name(int(s["instrument"]))
            sell_name = self.reg.instruments.name(int(s["sell_instrument"]))
        except Exception:
            self.counters.reject(S.RejectReason.BAD_INPUT)
            return
        if buy_name not in self.rules or sell_name not in self.rules or buy_name == sell_name:
            self.counters.reject(S.RejectReason.BAD_INPUT)
            return
        if self.engine.state in NO_NEW_EXPOSURE:
            self.counters.reject(S.RejectReason.RISK_STATE)
            return
        if self._pair_busy(buy_name, sell_name):
            self.counters.reject(S.RejectReason.RISK_STATE)
            return
        self._decide(
            "external",
            buy_name,
            sell_name,
            int(s["created_ns"]),
            int(s["ttl_us"]),
            float(s["edge_bps"]),
            float(s["qty_hint"]),
        )

    def _decide(
        self,
        strategy: str,
        buy_name: str,
        sell_name: str,
        created_ns: int,
        ttl_us: int,
        edge_bps: float,
        qty_hint: float,
    ) -> None:
        """Dispatch-time re-check, gate and sizing of one signal; orders or a counted reason."""
        t0 = time.perf_counter_ns()
        if self.policy.taker_residual_cap and self.policy.execution == "taker":
            cap = self._taker_qty_cap(buy_name, sell_name)
            if cap <= 0:  # (a qty hint of 0 would mean no cap at all)
                self.counters.reject(S.RejectReason.EXPOSURE_LIMIT)
                self.counters.decision_ns.add(time.perf_counter_ns() - t0)
                return
            qty_hint = min(qty_hint, cap) if qty_hint > 0 else cap
        sized, reason = self._gate_size(buy_name, sell_name, created_ns, ttl_us, qty_hint)
        if reason != S.RejectReason.NONE or sized is None:
            self.counters.reject(reason)
            self.counters.decision_ns.add(time.perf_counter_ns() - t0)
            return
        if self.policy.execution == "sliced":
            if not self._start_sliced(strategy, buy_name, sell_name, edge_bps, sized[0]):
                self.counters.decision_ns.add(time.perf_counter_ns() - t0)
                return
        elif self.policy.execution == "maker_taker":
            if not self._start_maker(strategy, buy_name, sell_name, edge_bps, sized[0]):
                self.counters.decision_ns.add(time.perf_counter_ns() - t0)
                return
        else:
            self._open(strategy, buy_name, sell_name, edge_bps, sized)
        self.last_entry_ns = self.now
        self.counters.decision_ns.add(time.perf_counter_ns() - t0)

    def _open(
        self, strategy: str, buy_name: str, sell_name: str, edge_bps: float, sized: Sized, parent: int = 0
    ) -> HedgedPosition:
        """A position for one sized pair of IOC legs, its orders sent (the hedge leg with the
        primary, or after it with primary_then_hedge)."""
        qty, buy_px, sell_px, buy_slip, sell_slip, touch_buy, touch_sell = sized
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        opp = self.next_opp
        self.next_opp += 1
        pos = new_position(
            opp,
            strategy,
            Leg(bl.venue, buy_name, S.Side.BUY, touch_buy),
            Leg(sl.venue, sell_name, S.Side.SELL, touch_sell),
            qty,
            edge_bps,
            self.now,
            on_change=self._position_changed,
        )
        pos.parent = parent
        self.positions[opp] = pos
        if self.allowance is not None:  # it backs what it uses of the shared limits until hedged
            self.allowance.back_position(self, opp, buy_name, sell_name, qty)
        self.position_counts[pos.state.name] = self.position_counts.get(pos.state.name, 0) + 1
        self.open_positions[opp] = pos
        primary = self._new_order(
            opp, 0, bl.venue, buy_name, S.Side.BUY, S.OrderType.IOC, qty, buy_px, buy_slip, 0, S.Purpose.ENTRY
        )
        pos.buy.coid = primary.coid
        pos.hedge_price, pos.hedge_slip = sell_px, sell_slip
        if self.policy.dispatch == "simultaneous":
            self._send_hedge(pos, qty)
        # primary_then_hedge: the hedge leaves when the primary is done, for what it filled
        what = f"slice {len(self.slicing[parent].slices) + 1} of {parent}: " if parent else ""
        fire_hedge(self, pos, HedgeEvent.DISPATCHED, f"{what}{strategy} {buy_name}->{sell_name} {qty:g}")
        # PENDING -> LEG_WORKING noted the legs' mids now as its end mids (_note_end_mids, 0.0
        # for a book not usable): they are its mids at entry too, read once
        pos.mid_buy, pos.mid_sell = pos.end_mid_buy, pos.end_mid_sell
        return pos

    # -- sliced execution ----------------------------------------------------------------------

    def _start_sliced(
        self, strategy: str, buy_name: str, sell_name: str, edge_bps: float, qty: float
    ) -> bool:
        """A `sliced` opportunity sized to `qty` as one taker pair: its first slice now, the rest
        from `_advance_slices`. False (the reason counted) when not even one slice can be sent."""
        parent = SliceParent(self.next_opp, strategy, buy_name, sell_name, qty, edge_bps)
        self.slicing[parent.opp_id] = parent
        reason = self._next_slice(parent)
        if reason != S.RejectReason.NONE:
            del self.slicing[parent.opp_id]
            self.counters.reject(reason)
            return False
        self.positions[parent.opp_id].planned_qty = qty
        return True

    def _slice_qty_cap(self, buy_name: str, sell_name: str) -> float:
        """The largest slice whose one leg, filled alone, keeps the residual within
        slice_residual_fraction of max_residual_usdt: that fraction over the highest price the
        exposure can be valued at now (the mark, the buy leg's bound, the sell leg's touch)."""
        p = self.policy
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        ref = self.market.mark(bl.base)
        for name, r, side in ((buy_name, bl, 2), (sell_name, sl, 0)):
            top = self.market.top(self.reg.venue(r.venue), self.reg.instrument(name))
            if top is not None:
                ref = max(ref, top[side] * (1 + p.max_slippage_bps / 1e4))
        return p.slice_residual_fraction * p.max_residual_usdt / ref

    def _taker_qty_cap(self, buy_name: str, sell_name: str) -> float:
        """`taker_residual_cap`: the largest taker pair whose one leg, filled alone, keeps what
        is in flight within slice_residual_fraction of max_residual_usdt: that fraction less the
        quantity every unsettled position could still leave unhedged (its size, at its base's
        mark), over the highest price the new exposure can be valued at now; 0.0 when none."""
        p = self.policy
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        ref = self.market.mark(bl.base)
        for name, r, side in ((buy_name, bl, 2), (sell_name, sl, 0)):
            top = self.market.top(self.reg.venue(r.venue), self.reg.instrument(name))
            if top is not None:
                ref = max(ref, top[side] * (1 + p.max_slippage_bps / 1e4))
        if not ref > 0:
            return 0.0
        book = self.orders.orders
        in_flight = 0.0
        for pos in self.open_positions.values():
            if pos.state not in (HedgeState.RECONCILED, HedgeState.CLOSED, HedgeState.COMPLETE):
                exposed = max(pos.qty, abs(pos.net_qty(book)))
                in_flight += exposed * self.market.mark(self.rules[pos.buy.instrument].base)
        return max(0.0, p.slice_residual_fraction * p.max_residual_usdt - in_flight) / ref

    def _next_slice(self, parent: SliceParent) -> S.RejectReason:
        """Gate and size the parent's next slice on the live books (the sizing kernel: depth
        inside the slippage cap, inventory, capital, the min edge), capped to the residual
        limit and to what the parent still misses; send it, or say why not."""
        remaining = parent.planned_qty - parent.matched(self.positions, self.orders.orders)
        reason = self._gate(parent.buy, parent.sell, self.now, 1)
        if reason != S.RejectReason.NONE:
            return reason
        cap = min(remaining, self._slice_qty_cap(parent.buy, parent.sell))
        if cap <= 0:  # (a qty hint of 0 would mean no cap at all)
            return S.RejectReason.EXPOSURE_LIMIT
        sized, reason = self._size(parent.buy, parent.sell, cap)
        if reason != S.RejectReason.NONE or sized is None:
            return reason
        pos = self._open(parent.strategy, parent.buy, parent.sell, parent.edge_bps, sized, parent.opp_id)
        parent.slices.append(pos.opp_id)
        return S.RejectReason.NONE

    def _advance_slices(self) -> None:
        """Each working parent: once its last slice is done (legs matched, or closed after an
        unwind) and slice_interval_ms has passed since it was sent, the next slice; a parent
        ends when it has its quantity, a slice went asymmetric, new exposure is not allowed, it
        has max_slices, or the next slice cannot be sent (gate or sizing)."""
        p = self.policy
        book = self.orders.orders
        for parent in list(self.slicing.values()):
            last = self.positions[parent.slices[-1]]
            if last.state not in (HedgeState.COMPLETE, HedgeState.CLOSED, HedgeState.RECONCILED):
                continue
            if any(not o.terminal for o in last.orders(book)):
                continue
            interval_ms = p.slice_interval_ms
            if self.engine.state == EngineState.DEGRADED:  # no faster than entries while rate limited
                interval_ms = max(interval_ms, 50 / p.degraded_rate_factor)
            if self.now - last.created_ns < interval_ms * MS:
                continue
            if last.asymmetric_episodes:
                why = "a slice went asymmetric"
            elif self.stop_new or self.engine.state in NO_NEW_EXPOSURE:
                why = "no new exposure"
            elif len(parent.slices) >= p.max_slices:
                why = f"{p.max_slices} slices"
            elif parent.matched(self.positions, book) >= parent.planned_qty - 1e-12:
                why = "filled"
            else:
                reason = self._next_slice(parent)
                if reason == S.RejectReason.NONE:
                    continue
                why = reason.name.lower()
            del self.slicing[parent.opp_id]
            self.slice_ends[why] = self.slice_ends.get(why, 0) + 1

    def _mid(self, instrument: str) -> float:
        """The mid of `instrument`'s usable book now, else 0.0 (read only: no decision uses it)."""
        top = self.market.top(self.reg.venue(self.rules[instrument].venue), self.reg.instrument(instrument))
        return 0.0 if top is None else (top[0] + top[2]) / 2.0

    def _note_end_mids(self, pos: HedgedPosition) -> None:
        """A position changed state: its legs' mids now are its end mids (a leg whose book is not
        usable now keeps the mid it had)."""
        pos.end_mid_buy = self._mid(pos.buy.instrument) or pos.end_mid_buy
        pos.end_mid_sell = self._mid(pos.sell.instrument) or pos.end_mid_sell

    def _gate_size(
        self, buy_name: str, sell_name: str, created_ns: int, ttl_us: int, qty_hint: float
    ) -> tuple[Sized | None, S.RejectReason]:
        """The gate, then headroom and sizing: one compiled call (engine/decide.py), or with no
        decider (the reference path) `_gate` then `_size` below, which it equals bit for bit."""
        if self.decider is not None:
            done = self.decider.gate_size(self, buy_name, sell_name, created_ns, ttl_us, qty_hint)
            if done is not None:
                return done
        reason = self._gate(buy_name, sell_name, created_ns, ttl_us)
        if reason != S.RejectReason.NONE:
            return None, reason
        return self._size(buy_name, sell_name, qty_hint)

    def _gate(self, buy_name: str, sell_name: str, created_ns: int, ttl_us: int) -> S.RejectReason:
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        if ttl_us == 0 or self.now - created_ns > ttl_us * 1000:
            return S.RejectReason.STALE
        if self.engine.state in NO_NEW_EXPOSURE:
            return S.RejectReason.RISK_STATE
        for r in (bl, sl):
            if not self.board.can_dispatch(r.venue, self.now):
                return S.RejectReason.VENUE_UNHEALTHY
        if self.policy.on_fee_asset_exhausted == "stop" and {bl.venue, sl.venue} & self.fee_exhausted:
            return S.RejectReason.FEE_ASSET_EXHAUSTED
        for name, r in ((buy_name, bl), (sell_name, sl)):
            if not self.market.usable(self.reg.venue(r.venue), self.reg.instrument(name), self.now):
                return S.RejectReason.BOOK_UNUSABLE
        if self.market.vol_level(bl.base) >= 3:
            return S.RejectReason.RISK_STATE
        # transfers in flight toward a leg's venue block strategies that would need them
        needs = [(bl.venue, bl.quote)] + (
            [(sl.venue, sl.base)] if sl.kind == "spot" else [(sl.venue, sl.quote)]
        )
        for key in needs:
            if self.in_transit.get(key, 0.0) > 0 and self.inventory.get(key, 0.0) <= 0:
                return S.RejectReason.TRANSFER_PENDING
        return S.RejectReason.NONE

    def _size(self, buy_name: str, sell_name: str, qty_hint: float) -> tuple[Sized | None, S.RejectReason]:
        """Inventory, capital and exposure headroom, then the sizing kernel on the live books."""
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        p = self.policy
        level = self.market.vol_level(bl.base)
        slip = p.max_slippage_bps / (2.0 if level >= 1 else 1.0)  # tighten
        mark = self.market.mark(bl.base)
        # a venue locks a buy at its limit price plus the fee: leave that headroom
        quote_avail = self._free_quote(bl.venue, bl.quote) / (1.0 + 2.0 * slip / 1e4)
        if sl.kind == "spot":
            base_avail = self._free_base(sl.venue, sell_name)
        else:  # a perp short needs margin, not coins
            base_avail = self._free_quote(sl.venue, sl.quote) * sl.leverage / max(mark, 1e-9)
        if level >= 2:
            base_avail /= 2.0  # reduce
        if qty_hint > 0:
            base_avail = min(base_avail, qty_hint)
        short = False  # a clustered engine spends only what it holds of the shared limits
        if self.allowance is not None:
            cap = self.allowance.entry_cap(self, buy_name, sell_name)
            if cap <= 0:
                return None, S.RejectReason.CLUSTER_RESERVE
            short, base_avail = cap < base_avail, min(base_avail, cap)
        capital_free = p.strategy_budget_usdt - self._capital_used()
        notional_cap = min(
            p.max_order_notional_usdt,
            p.max_exposure_usdt - self._venue_exposure(bl.venue),
            p.max_exposure_usdt - self._venue_exposure(sl.venue),
        )
        sized, reason = self.market.size_pair(
            buy_name,
            sell_name,
            slip_bps=slip,
            min_edge_bps=p.min_edge_bps,
            base_avail=base_avail,
            quote_avail=quote_avail,
            capital_free=capital_free,
            notional_cap=notional_cap,
        )
        if short and reason in _SHORT:
            reason = S.RejectReason.CLUSTER_RESERVE  # too little held here for an entry that size
        return sized, reason

    def _free_quote(self, venue: str, quote: str) -> float:
        """Our `quote` on `venue` not yet committed to working buys there."""
        return self.inventory.get((venue, quote), 0.0) - self._working_notional(venue)

    def _free_base(self, venue: str, instrument: str) -> float:
        """Our base coins of `instrument` on `venue` not yet committed to working sells of it."""
        return self.inventory.get((venue, self.rules[instrument].base), 0.0) - self._working_qty(
            venue, instrument
        )

    def _working_notional(self, venue: str) -> float:
        return sum(o.qty * (o.price or 0.0) for o in self.orders.working(venue) if o.side == S.Side.BUY)

    def _working_qty(self, venue: str, instrument: str) -> float:
        return sum(
            o.qty - o.filled
            for o in self.orders.working(venue)
            if o.side == S.Side.SELL and o.instrument == instrument
        )

    def _capital_used(self) -> float:
        used = 0.0
        for pos in self.open_positions.values():
            if pos.state not in (HedgeState.RECONCILED, HedgeState.CLOSED, HedgeState.COMPLETE):
                used += pos.qty * self.market.mark(self.rules[pos.buy.instrument].base)
        return used

    def _venue_exposure(self, venue: str) -> float:
        return sum(o.qty * (o.price or 0.0) for o in self.orders.working(venue))
