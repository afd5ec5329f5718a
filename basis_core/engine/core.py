"""The engine core: records in, commands out, every decision derived from the records alone.

`EngineCore.step(batch)` takes a batch of schema records (market data, our order events, venue
status, balances, transfers, timers, controls, external signals) and returns the commands it
decided (ORDER_NEW, ORDER_CANCEL, ORDER_QUERY records). It reads no clock: "now" is the ingest
timestamp of the records. Feeding the same records again — a journal replay — gives the same
commands, byte for byte.

Per batch: market data goes through the numba book kernel in one call; the rare records (order
events, venue status ...) drive the state machines one by one; then timed checks run (hedge
windows, unwinds, verification of orders in doubt, return-to-normal policy checks); then the
built-in signals are scanned on the books that changed, and each signal is re-checked at
dispatch time (freshness, venues, risk state, inventory, capital) and sized by the kernels.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from .. import schema as S
from ..errors import InvalidTransition
from ..registry import Registry
from ..state.fsm import Change, Machine
from ..state.tables import (
    ENGINE, NO_NEW_EXPOSURE, EngineEvent, EngineState, HedgeEvent, HedgeState, OrderEvent, OrderState, VenueEvent,
    VenueState,
)
from .market import MarketState
from .orders import ManagedOrder, OrderManager
from .policy import PolicyConfig
from .positions import HedgedPosition, Leg, new_position
from .venues import VenueBoard

MS = 1_000_000
#: BALANCE_UPDATE.sub of the inventory a run starts with (journaled first, so a replay has it)
INITIAL_BALANCE = 1


def _template(kind: S.Kind) -> np.ndarray:
    """A zeroed command record of `kind`, held as GENERIC so that copies carry every byte (a
    copy through a dtype with gaps leaves the gaps undefined, and decisions must be bytes)."""
    rec = S.empty(kind)
    rec["source"] = 2
    return rec.view(S.GENERIC)


def sl_leverage(rules) -> float:
    """Leverage used for perp margin headroom (conservative: 2x when the rules do not say)."""
    return rules.leverage if rules.leverage > 0 else 2.0


@dataclass(frozen=True)
class InstrumentRules:
    name: str
    venue: str
    base: str
    quote: str
    kind: str
    tick: float
    lot: float
    min_notional: float
    taker_fee_bps: float
    leverage: float = 2.0


@dataclass
class Counters:
    events: int = 0
    signals_seen: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    orders_submitted: int = 0
    orders_filled: int = 0
    hedges_completed: int = 0
    asymmetric_episodes: int = 0
    unwinds: int = 0
    max_residual_usdt: float = 0.0
    decision_ns: list[int] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def reject(self, reason: S.RejectReason) -> None:
        key = reason.name.lower()
        self.rejected[key] = self.rejected.get(key, 0) + 1


_ORDER_EVENT = {
    S.OrderEventType.ACK: OrderEvent.ACK,
    S.OrderEventType.PARTIAL_FILL: OrderEvent.PARTIAL_FILL,
    S.OrderEventType.FILL: OrderEvent.FILL,
    S.OrderEventType.REJECT: OrderEvent.REJECT,
    S.OrderEventType.CANCELED: OrderEvent.CANCELED,
    S.OrderEventType.EXPIRED: OrderEvent.EXPIRED,
    S.OrderEventType.CANCEL_REJECT: OrderEvent.REJECT,
    S.OrderEventType.TIMEOUT: OrderEvent.TIMEOUT,
    S.OrderEventType.NOT_FOUND: OrderEvent.NOT_FOUND,
}
_VENUE_EVENT = {
    S.VenueReport.RATE_LIMITED: VenueEvent.RATE_LIMITED,
    S.VenueReport.TIMEOUT: VenueEvent.TIMEOUT,
    S.VenueReport.MAINTENANCE: VenueEvent.MAINTENANCE,
    S.VenueReport.DISCONNECTED: VenueEvent.DISCONNECTED,
    S.VenueReport.ERROR: VenueEvent.TIMEOUT,
}


class EngineCore:
    """Record-driven decisions (see module docstring)."""

    def __init__(self, registry: Registry, rules: dict[str, InstrumentRules], policy: PolicyConfig,
                 balances: dict[tuple[str, str], float], start_ns: int, depth: int = 10,
                 fixed_marks: dict[str, float] | None = None, builtin_signals: bool = True):
        self.reg = registry
        self.policy = policy
        self.rules = rules
        self.rules_by_id = {registry.instrument(n): r for n, r in rules.items()}
        self.counters = Counters()
        self.transitions: list[Change] = []
        self.now = start_ns
        record = self.transitions.append
        self.engine = Machine(ENGINE, EngineState.NORMAL, key="engine", on_change=record, since_ns=start_ns)
        self.board = VenueBoard(list(registry.venues.by_id[1:]), start_ns, int(policy.healthy_window_ms * MS), record)
        self.orders = OrderManager(on_change=None)
        self.positions: dict[int, HedgedPosition] = {}
        self.open_positions: dict[int, HedgedPosition] = {}   # not yet RECONCILED
        self.market = MarketState(registry, rules, depth, policy, start_ns, fixed_marks)
        self.market.warm_up()
        self.inventory = dict(balances)            # (venue, asset) -> free, from our own fills
        self.venue_balance: dict[tuple[str, str], tuple[float, int]] = {}  # as the venue last said
        self.in_transit: dict[tuple[str, str], float] = {}  # (to venue, asset) -> amount
        self.next_opp = 1
        self.out: list[np.ndarray] = []
        self._tpl_new, self._tpl_cancel, self._tpl_query = (
            _template(S.Kind.ORDER_NEW), _template(S.Kind.ORDER_CANCEL), _template(S.Kind.ORDER_QUERY))
        self._tpl_control = _template(S.Kind.CONTROL)
        self.halted_reason = ""
        self.reconcile_clean_since = 0
        self.reconcile_requested = False
        self.last_entry_ns = 0
        self.stop_new = False                      # set at the end of a run: no new opportunities
        self.builtin_signals = builtin_signals
        self._digest = hashlib.blake2b(digest_size=16)
        self.residual_history: list[tuple[int, float]] = []
        self.fills: list[tuple[int, ManagedOrder, float, float, float, int]] = []  # (ts, order, px, qty, fee, fee asset)

    # -- the step ---------------------------------------------------------------------------

    def step(self, batch: np.ndarray) -> np.ndarray:
        gen = batch.view(S.GENERIC)
        n = len(gen)
        if n == 0:
            return S.aligned_empty(0)
        self.counters.events += n
        self.now = max(self.now, int(gen["ts_ns"].max()))
        kinds = gen["kind"]
        md = (kinds == S.Kind.BOOK_LEVEL) | (kinds == S.Kind.TOP_OF_BOOK) | (kinds == S.Kind.TRADE) | (kinds == S.Kind.FUNDING)
        if md.any():
            self.market.apply(gen[md], self.now)
        for i in np.flatnonzero(~md):
            self._rare(gen[i:i + 1])
        self._timed_checks()
        if self.builtin_signals and self.engine.state not in NO_NEW_EXPOSURE and not self.stop_new:
            self._scan_signals()
        return self._flush()

    def _flush(self) -> np.ndarray:
        if not self.out:
            return S.aligned_empty(0)
        out = np.concatenate(self.out).view(S.GENERIC)
        self.out.clear()
        cmds = S.aligned_empty(len(out))
        cmds[:] = out
        self._digest.update(cmds.tobytes())
        return cmds

    @property
    def digest(self) -> str:
        """Hash of every command decided so far: two runs that decide the same agree on it."""
        return self._digest.hexdigest()

    # -- rare records -------------------------------------------------------------------------

    def _rare(self, rec: np.ndarray) -> None:
        kind = int(rec["kind"][0])
        if kind == S.Kind.ORDER_EVENT:
            self._order_event(rec.view(S.ORDER_EVENT)[0])
        elif kind == S.Kind.VENUE_STATUS:
            self._venue_status(rec.view(S.VENUE_STATUS)[0])
        elif kind == S.Kind.BALANCE_UPDATE:
            b = rec.view(S.BALANCE_UPDATE)[0]
            key = (self.reg.venues.name(int(b["venue"])), self.reg.assets.name(int(b["aux"])))
            if int(b["sub"]) == INITIAL_BALANCE:
                self.inventory[key] = float(b["free"]) + float(b["locked"])
                return
            prev = self.venue_balance.get(key)
            if prev is None or int(b["update_id"]) >= prev[1]:
                self.venue_balance[key] = (float(b["free"]) + float(b["locked"]), int(b["update_id"]))
        elif kind == S.Kind.TRANSFER_UPDATE:
            self._transfer(rec.view(S.TRANSFER_UPDATE)[0])
        elif kind == S.Kind.CONTROL:
            self._control(rec.view(S.CONTROL)[0])
        elif kind == S.Kind.SIGNAL:
            self._external_signal(rec.view(S.SIGNAL)[0])
        # TIMER records only move `now`

    def _venue_status(self, r) -> None:
        venue = self.reg.venues.name(int(r["venue"]))
        report = S.VenueReport(int(r["sub"]))
        v = self.board[venue]
        if report == S.VenueReport.OK:
            if v.state == VenueState.QUARANTINED:
                self.board.fire(venue, VenueEvent.MAINTENANCE_OVER, self.now, "venue answers again")
                self._verify_venue(venue)
            elif v.state == VenueState.DOWN:
                self.board.fire(venue, VenueEvent.RECONNECTED, self.now, "venue answers again")
                self._verify_venue(venue)
            else:
                self.board.on_ok(venue, self.now)
            if self.engine.state == EngineState.DEGRADED and not self.board.any_throttled():
                self.engine.fire(EngineEvent.THROTTLE_CLEARED, self.now, f"{venue} healthy")
                self._request(S.ControlCommand.RATE_FACTOR, 1000)
            return
        event = _VENUE_EVENT[report]
        actions = self.board.fire(venue, event, self.now, f"{venue}: {report.name.lower()}")
        if report == S.VenueReport.RATE_LIMITED:
            v.throttled_until_ns = max(v.throttled_until_ns, self.now + int(r["retry_after_ms"]) * MS)
            if "lower_routing_rate" in self.engine.fire(EngineEvent.RATE_LIMITED, self.now, f"{venue} rate limited"):
                self._request(S.ControlCommand.RATE_FACTOR, int(self.policy.degraded_rate_factor * 1000))
        if "verify_orders" in actions:
            self._verify_venue(venue)

    def _verify_venue(self, venue: str) -> None:
        """Query every order on `venue` that is not terminal; VERIFIED once all are known again."""
        pending = self.orders.working(venue)
        for o in pending:
            self._query(o)
        if not pending:
            self.board.fire(venue, VenueEvent.VERIFIED, self.now, "no order in doubt")

    def _order_event(self, r) -> None:
        coid = int(r["coid"])
        order = self.orders.get(coid)
        if order is None:
            return  # not ours: the order-layer reconciliation reports it
        was_filled = order.state == OrderState.FILLED
        try:
            self._apply_order_event(order, r)
        except InvalidTransition as exc:
            # a venue report that contradicts what we know: never crash on it, reconcile instead
            self.counters.anomalies.append(f"{order.coid}: {exc}")
            if self.engine.can(EngineEvent.RECONCILE_REQUESTED):
                self.engine.fire(EngineEvent.RECONCILE_REQUESTED, self.now, f"order {order.coid}: {exc}")
            self._request_reconcile()
        if order.state == OrderState.FILLED and not was_filled:
            self.counters.orders_filled += 1
        venue = order.venue
        if self.board[venue].state == VenueState.SUSPECT and not any(
                o.state == OrderState.UNKNOWN for o in self.orders.working(venue)):
            self.board.fire(venue, VenueEvent.VERIFIED, self.now, "orders verified by client order id")
        pos = self.positions.get(order.opportunity)
        if pos is not None:
            self._position_update(pos)

    def _apply_order_event(self, order: ManagedOrder, r) -> None:
        etype = S.OrderEventType(int(r["sub"]))
        if int(r["fill_no"]) >= 1:
            qty, px, fee = float(r["last_qty"]), float(r["last_px"]), float(r["fee"])
            fee_asset = self.reg.assets.name(int(r["aux"])) if int(r["aux"]) else ""
            if not self.orders.book_execution(order, f"#{int(r['fill_no'])}", px, qty, fee, fee_asset):
                return
            self.fills.append((self.now, order, px, qty, fee, int(r["aux"])))
            self._book_inventory(order, px, qty, fee, int(r["aux"]))
            event = OrderEvent.FILL if order.filled >= order.qty - 1e-12 else OrderEvent.PARTIAL_FILL
            order.machine.fire(event, self.now, "fill")
        else:
            cum = float(r["last_qty"])
            if cum > order.filled_reported:
                order.filled_reported = cum
            event = _ORDER_EVENT[etype]
            if event == OrderEvent.REJECT:
                order.reject_reason = S.RejectReason(int(r["reason"])).name.lower()
            if event == OrderEvent.NOT_FOUND and order.state == OrderState.SUBMITTED and (
                    self.now - order.sent_ns >= self.policy.lost_after_ms * MS):
                # sent long ago and the venue still does not know it: the request was lost
                order.machine.fire(OrderEvent.TIMEOUT, self.now, "no answer and not at the venue")
            if event == OrderEvent.NOT_FOUND and order.state == OrderState.UNKNOWN and (
                    self.now - order.machine.since_ns >= self.policy.lost_after_ms * MS):
                event = OrderEvent.LOST
            if event == OrderEvent.TIMEOUT:
                order.machine.fire(event, self.now, "request timed out")
                self._query(order)
                return
            if etype == S.OrderEventType.ACK and cum > 0 and order.state in (OrderState.SUBMITTED, OrderState.ACKED, OrderState.UNKNOWN):
                event = OrderEvent.PARTIAL_FILL
            order.machine.fire(event, self.now, etype.name.lower())

    def _book_inventory(self, order: ManagedOrder, px: float, qty: float, fee: float, fee_asset: int) -> None:
        r = self.rules[order.instrument]
        sign = 1.0 if order.side == S.Side.BUY else -1.0
        base_key = (order.venue, r.base if r.kind == "spot" else f"{r.base}-PERP")
        self.inventory[base_key] = self.inventory.get(base_key, 0.0) + sign * qty
        if r.kind == "spot":
            quote_key = (order.venue, r.quote)
            self.inventory[quote_key] = self.inventory.get(quote_key, 0.0) - sign * qty * px
        if fee and fee_asset:
            fkey = (order.venue, self.reg.assets.name(fee_asset))
            self.inventory[fkey] = self.inventory.get(fkey, 0.0) - fee

    def _transfer(self, t) -> None:
        state = S.TransferState(int(t["sub"]))
        key = (self.reg.venues.name(int(t["to_venue"])), self.reg.assets.name(int(t["aux"])))
        amount = float(t["amount"])
        tid = int(t["transfer_id"])
        pending = self.in_transit.setdefault(key, 0.0)
        seen = getattr(self, "_transfers", {})
        self._transfers = seen
        prev = seen.get(tid)
        if state in (S.TransferState.REQUESTED, S.TransferState.SENT, S.TransferState.CONFIRMING):
            if prev is None:
                self.in_transit[key] = pending + amount
                src = (self.reg.venues.name(int(t["venue"])), key[1])
                self.inventory[src] = self.inventory.get(src, 0.0) - amount
            seen[tid] = state
        elif state in (S.TransferState.CONFIRMED, S.TransferState.FAILED) and prev not in (
                S.TransferState.CONFIRMED, S.TransferState.FAILED):
            if prev is not None:
                self.in_transit[key] = max(0.0, pending - amount)
            if state == S.TransferState.CONFIRMED:
                self.inventory[key] = self.inventory.get(key, 0.0) + amount
            elif prev is not None:
                src = (self.reg.venues.name(int(t["venue"])), key[1])
                self.inventory[src] = self.inventory.get(src, 0.0) + amount
            seen[tid] = state

    def _control(self, c) -> None:
        cmd = S.ControlCommand(int(c["sub"]))
        if cmd == S.ControlCommand.HALT:
            self.engine.fire(EngineEvent.OPERATOR_HALT, self.now, "operator halt")
        elif cmd == S.ControlCommand.RECOVERED:
            # state rebuilt from the journal: nothing new until the venues agree with it
            if self.engine.can(EngineEvent.RECONCILE_REQUESTED):
                self.engine.fire(EngineEvent.RECONCILE_REQUESTED, self.now, "engine restarted from its journal")
            self.reconcile_clean_since = 0
            self._request_reconcile()
            for o in self.orders.working():
                if o.state in (OrderState.SUBMITTED, OrderState.PENDING_CANCEL):
                    # the request may never have left (it died with the old engine): unknown
                    o.machine.fire(OrderEvent.TIMEOUT, self.now, "engine restarted before an answer")
                self._query(o)          # every order in flight is verified by client order id
        elif cmd == S.ControlCommand.SHUTDOWN:
            self.stop_new = True   # the run is ending: let working orders settle, open nothing new
        elif cmd == S.ControlCommand.RESUME:
            self.engine.fire(EngineEvent.OPERATOR_RESUME, self.now, "operator resume")
        elif cmd == S.ControlCommand.RECONCILE:
            mismatches, clean = int(c["aux"]), int(c["operator"]) == 1
            self.reconcile_requested = False
            if mismatches:
                self.reconcile_clean_since = 0
                if self.engine.can(EngineEvent.RECONCILE_MISMATCH):
                    self.engine.fire(EngineEvent.RECONCILE_MISMATCH, self.now, f"{mismatches} reconciliation mismatch(es)")
            elif clean and not self.reconcile_clean_since:
                self.reconcile_clean_since = self.now
            elif not clean:
                self.reconcile_clean_since = 0   # still settling (lag window, orders in doubt): ask again

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
        if (bq > 0 or sq > 0) and not pos.first_fill_ns:
            pos.first_fill_ns = self.now
        if sell is None and buy is not None and buy.terminal and st == HedgeState.LEG_WORKING:
            # primary_then_hedge: the primary is done; hedge what it filled, or close
            if buy.filled > 0 and self.board.can_dispatch(self.rules[pos.sell.instrument].venue, self.now):
                self._send_hedge(pos, buy.filled)
                pos.machine.fire(HedgeEvent.LEG_FILLED, self.now, f"primary filled {buy.filled:g}; hedge sent")
                return
            if buy.filled <= 0:
                pos.machine.fire(HedgeEvent.NOTHING_FILLED, self.now, "primary filled nothing")
                return
            legs_done = True   # the hedge venue cannot take it: the window will decide
        if st in (HedgeState.LEG_WORKING, HedgeState.HEDGING):
            if bq > 0 and sq > 0 and flat and legs_done:
                pos.machine.fire(HedgeEvent.BOTH_FILLED, self.now, "legs matched")
                self.counters.hedges_completed += 1
            elif legs_done and bq == 0 and sq == 0:
                pos.machine.fire(HedgeEvent.NOTHING_FILLED, self.now, "no leg filled")
            elif bq > 0 or sq > 0:
                if st == HedgeState.LEG_WORKING:
                    pos.machine.fire(HedgeEvent.LEG_FILLED, self.now, "first fill")
                self._symmetry(pos, net, residual_usdt, legs_done)
        elif st in (HedgeState.ISOLATED, HedgeState.UNWINDING):
            unwinding = [book[c] for c in pos.unwind_coids if c in book and not book[c].terminal]
            if flat and not unwinding:
                pos.machine.fire(HedgeEvent.FLAT, self.now, f"residual {residual_usdt:.2f} USDT")
        elif st == HedgeState.ASYMMETRIC and flat and legs_done:
            pos.machine.fire(HedgeEvent.BOTH_FILLED, self.now, "late hedge fill matched the legs")

    def _symmetry(self, pos: HedgedPosition, net: float, residual_usdt: float, legs_done: bool) -> None:
        """Escalation by policy: ok / degrade / breach; inside the window, complete the hedge."""
        ratio = pos.fill_ratio(self.orders.orders)
        age_ms = (self.now - pos.first_fill_ns) / MS
        p = self.policy
        # unhedged exposure is allowed only inside the hedge window; past it, any residual above
        # tolerance (or a fill ratio below the breach threshold) is a breach
        breach = age_ms > p.hedge_window_ms and (
            residual_usdt > p.residual_tolerance_usdt or ratio < p.fill_ratio_breach)
        if breach:
            pos.machine.fire(HedgeEvent.BREACH, self.now,
                             f"fill ratio {ratio:.2f}, residual {residual_usdt:.2f} USDT after {age_ms:.0f} ms")
            pos.asymmetric_episodes += 1
            self.counters.asymmetric_episodes += 1
            self.engine.fire(EngineEvent.SYMMETRY_BREACH, self.now, f"opportunity {pos.opp_id} asymmetric")
            pos.machine.fire(HedgeEvent.ISOLATE, self.now, "isolate")
            for o in pos.orders(self.orders.orders):
                if not o.terminal:
                    self._cancel(o)
            return
        if ratio < p.fill_ratio_degrade and not pos.degraded:
            pos.degraded = True
            pos.machine.fire(HedgeEvent.DEGRADE, self.now, f"fill ratio {ratio:.2f}")
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
        if last is not None and last.reject_reason in ("insufficient_funds", "min_notional", "lot_size", "bad_input"):
            pos.hedge_blocked = True  # retrying cannot help
            return
        pos.hedge_attempts += 1
        leg = pos.sell if net > 0 else pos.buy
        side = S.Side.SELL if net > 0 else S.Side.BUY
        if not self.board.can_dispatch(leg.venue, self.now):
            return
        order = self._aggressive(pos, leg.venue, leg.instrument, side, abs(net), S.Purpose.HEDGE,
                                 self.policy.max_slippage_bps)
        if order is not None:
            pos.machine.fire(HedgeEvent.DISPATCHED, self.now, "hedge remainder")

    def _aggressive(self, pos: HedgedPosition, venue: str, instrument: str, side: S.Side, qty: float,
                    purpose: S.Purpose, through_bps: float) -> ManagedOrder | None:
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
        leg_no = 2 + len(pos.unwind_coids)
        if leg_no > 15:
            return None
        order = self._new_order(pos.opp_id, leg_no, venue, instrument, side, S.OrderType.IOC, qty, float(price),
                                through_bps, pos.buy.coid, purpose)
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
            elif st in (HedgeState.COMPLETE, HedgeState.CLOSED) and self.engine.state not in (EngineState.UNWINDING,):
                if all(o.terminal for o in pos.orders(self.orders.orders)):
                    pos.machine.fire(HedgeEvent.RECONCILED, self.now, "legs terminal, residual within tolerance")
                    del self.open_positions[pos.opp_id]
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
        self._record_residual()

    def _unwind(self, pos: HedgedPosition) -> None:
        book = self.orders.orders
        net = pos.net_qty(book)
        mark = self.market.mark(self.rules[pos.buy.instrument].base)
        if abs(net) * mark <= self.policy.residual_tolerance_usdt:
            if all(o.terminal for o in pos.orders(book)):
                if pos.state == HedgeState.ISOLATED:
                    pos.machine.fire(HedgeEvent.FLAT, self.now, "nothing to unwind")
                else:
                    pos.machine.fire(HedgeEvent.FLAT, self.now, "flat after unwind")
            return
        if any(not o.terminal for o in pos.orders(book)):
            return  # wait for the cancels / the working unwind to settle
        gap_ns = int(self.policy.unwind_window_ms / self.policy.unwind_max_retries * MS)
        if pos.unwind_attempts and self.now - pos.last_unwind_ns < gap_ns:
            return  # retries are spaced over the unwind window: a passing refusal gets time to clear
        if pos.unwind_attempts >= self.policy.unwind_max_retries:
            if not pos.unwind_failed:
                pos.unwind_failed = True
                if pos.state == HedgeState.UNWINDING:
                    pos.machine.fire(HedgeEvent.UNWIND_FAILED, self.now, f"{pos.unwind_attempts} attempts")
                if self.engine.can(EngineEvent.UNWIND_FAILED):
                    self.engine.fire(EngineEvent.UNWIND_FAILED, self.now, f"opportunity {pos.opp_id}: unwind failed")
                else:
                    self.engine.fire(EngineEvent.OPERATOR_HALT, self.now, f"opportunity {pos.opp_id}: unwind failed")
            return
        # flatten on the venue of the over-filled leg; another usable venue if policy allows
        leg = pos.buy if net > 0 else pos.sell
        venue, instrument = leg.venue, leg.instrument
        if not self.board.can_dispatch(venue, self.now):
            if not self.policy.reroute_on_maintenance:
                return
            alt = self._reroute(instrument, S.Side.SELL if net > 0 else S.Side.BUY)
            if alt is None:
                return
            venue, instrument = alt
        side = S.Side.SELL if net > 0 else S.Side.BUY
        order = self._aggressive(pos, venue, instrument, side, abs(net), S.Purpose.UNWIND,
                                 self.policy.unwind_aggression_bps * (1 + pos.unwind_attempts))
        pos.unwind_attempts += 1
        pos.last_unwind_ns = self.now
        if order is None:
            return  # no usable book or no order id left: counted as a failed attempt
        if self.engine.state == EngineState.PROTECTIVE:
            self.engine.fire(EngineEvent.UNWIND_STARTED, self.now, f"unwind opportunity {pos.opp_id}")
        if pos.state == HedgeState.ISOLATED:
            pos.machine.fire(HedgeEvent.UNWIND, self.now, f"flatten {abs(net):g} on {venue}")
            self.counters.unwinds += 1
        else:
            pos.machine.fire(HedgeEvent.UNWIND, self.now, f"retry {pos.unwind_attempts}")

    def _reroute(self, instrument: str, side: S.Side) -> tuple[str, str] | None:
        base = self.rules[instrument].base
        for name, r in self.rules.items():
            if r.base == base and r.kind == self.rules[instrument].kind and self.board.can_dispatch(r.venue, self.now):
                if self.market.top(self.reg.venue(r.venue), self.reg.instrument(name)) is not None:
                    return r.venue, name
        return None

    def _engine_checks(self) -> None:
        st = self.engine.state
        active = [p for p in self.open_positions.values() if p.state in (
            HedgeState.ASYMMETRIC, HedgeState.ISOLATED, HedgeState.UNWINDING)]
        if st == EngineState.UNWINDING and not active:
            self.engine.fire(EngineEvent.UNWIND_DONE, self.now, "every isolated position is flat")
            self._request_reconcile()
        elif st == EngineState.PROTECTIVE and not active and self.market.vol_level_max() < 3:
            self.engine.fire(EngineEvent.EXPOSURE_RESOLVED, self.now, "no isolated position, volatility below protect level")
            self._request_reconcile()
        elif st == EngineState.RECONCILING:
            if not self.reconcile_clean_since and not self.reconcile_requested:
                self._request_reconcile()
            working_entries = [o for o in self.orders.working() if o.purpose != "entry"]
            if (self.reconcile_clean_since and not active and not working_entries
                    and self.board.all_healthy_for(self.now) and self.market.vol_level_max() < 3):
                self.engine.fire(EngineEvent.POLICY_CHECKS_PASSED, self.now,
                                 "flat, reconciliation clean, venues healthy for the window")
        # volatility levels: protect and halt
        level = self.market.vol_level_max()
        if level >= 4 and self.engine.can(EngineEvent.VOL_HALT) and self.engine.state != EngineState.HALTED:
            self.engine.fire(EngineEvent.VOL_HALT, self.now, "volatility above halt level")
            for o in self.orders.working():
                if o.purpose == "entry":
                    self._cancel(o)
        elif level == 3 and self.engine.state in (EngineState.NORMAL, EngineState.DEGRADED, EngineState.RECONCILING):
            self.engine.fire(EngineEvent.VOL_SPIKE, self.now, "volatility above protect level")

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
        if not self.residual_history or self.residual_history[-1][1] != total:
            self.residual_history.append((self.now, total))
        self.counters.max_residual_usdt = max(self.counters.max_residual_usdt, total)

    # -- commands ----------------------------------------------------------------------------------

    def _new_order(self, opp_id: int, leg: int, venue: str, instrument: str, side: S.Side, otype: S.OrderType,
                   qty: float, price: float, slip_bps: float, depends_on: int, purpose: S.Purpose) -> ManagedOrder:
        order = self.orders.create(opp_id, leg, venue, instrument, side, otype, qty, price, slip_bps, self.now,
                                   depends_on=depends_on, purpose=purpose.name.lower())
        order.machine.fire(OrderEvent.SUBMIT, self.now, purpose.name.lower())
        order.sent_ns = self.now
        rec = self._tpl_new.copy().view(S.ORDER_NEW)   # copied as GENERIC: padding bytes included
        rec["ts_ns"] = self.now
        rec["venue"], rec["instrument"] = self.reg.venue(venue), self.reg.instrument(instrument)
        rec["sub"], rec["aux"] = int(side), int(otype) | (int(purpose) << 8)
        rec["coid"], rec["price"], rec["qty"] = order.coid, price, qty
        rec["depends_on"], rec["max_slip_bps"] = depends_on, slip_bps
        self.out.append(rec.view(S.GENERIC))
        self.counters.orders_submitted += 1
        return order

    def _cancel(self, order: ManagedOrder) -> None:
        if order.state == OrderState.PENDING_CANCEL or order.terminal:
            return
        actions = order.machine.fire(OrderEvent.CANCEL_REQUEST, self.now, "cancel")
        if "send_cancel" not in actions:
            if "verify_order" in actions:
                self._query(order)
            return
        rec = self._tpl_cancel.copy().view(S.ORDER_CANCEL)   # copied as GENERIC: padding bytes included
        rec["ts_ns"] = self.now
        rec["venue"], rec["instrument"] = self.reg.venue(order.venue), self.reg.instrument(order.instrument)
        rec["coid"], rec["requested_ns"] = order.coid, self.now
        self.out.append(rec.view(S.GENERIC))

    def _request(self, command: S.ControlCommand, aux: int) -> None:
        """Ask the io side for something only it can do (a reconciliation pass, a routing rate)."""
        rec = self._tpl_control.copy().view(S.CONTROL)
        rec["ts_ns"], rec["sub"], rec["aux"] = self.now, int(command), aux
        self.out.append(rec.view(S.GENERIC))

    def _query(self, order: ManagedOrder) -> None:
        order.last_query_ns = self.now
        rec = self._tpl_query.copy().view(S.ORDER_QUERY)   # copied as GENERIC: padding bytes included
        rec["ts_ns"] = self.now
        rec["venue"], rec["instrument"] = self.reg.venue(order.venue), self.reg.instrument(order.instrument)
        rec["coid"] = order.coid
        self.out.append(rec.view(S.GENERIC))

    # -- signals -----------------------------------------------------------------------------------

    def _scan_signals(self) -> None:
        """Built-in cross-venue spread / basis signals on the books that changed in this batch."""
        changed = self.market.take_changed()
        if not changed:
            return
        p = self.policy
        if self.engine.state == EngineState.DEGRADED:
            min_gap = int(50 * MS / p.degraded_rate_factor)
            if self.now - self.last_entry_ns < min_gap:
                return
        best = None
        for buy_name, sell_name in self.market.pairs_touching(changed):
            edge = self.market.quick_edge_bps(buy_name, sell_name)
            if edge is None or edge < p.min_edge_bps:
                continue
            if best is None or edge > best[0]:
                best = (edge, buy_name, sell_name)
        if best is None:
            return
        edge, buy_name, sell_name = best
        if self._pair_busy(buy_name, sell_name):
            return
        self.counters.signals_seen += 1
        kind = "basis" if "perp" in (self.rules[buy_name].kind, self.rules[sell_name].kind) else "spread"
        self._decide(kind, buy_name, sell_name, self.now, int(p.signal_ttl_ms * 1000), edge, 0.0)

    def _send_hedge(self, pos: HedgedPosition, qty: float) -> ManagedOrder:
        sl = self.rules[pos.sell.instrument]
        hedge = self._new_order(pos.opp_id, 1, sl.venue, pos.sell.instrument, S.Side.SELL, S.OrderType.IOC, qty,
                                pos.hedge_price, pos.hedge_slip, pos.buy.coid, S.Purpose.HEDGE)
        pos.sell.coid = hedge.coid
        return hedge

    def _pair_busy(self, buy_name: str, sell_name: str) -> bool:
        for pos in self.open_positions.values():
            if pos.state not in (HedgeState.RECONCILED, HedgeState.CLOSED, HedgeState.COMPLETE) and (
                    {pos.buy.instrument, pos.sell.instrument} & {buy_name, sell_name}):
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
        self._decide("external", buy_name, sell_name, int(s["created_ns"]), int(s["ttl_us"]), float(s["edge_bps"]),
                     float(s["qty_hint"]))

    def _decide(self, strategy: str, buy_name: str, sell_name: str, created_ns: int, ttl_us: int,
                edge_bps: float, qty_hint: float) -> None:
        """Dispatch-time re-check, gate and sizing of one signal; orders or a counted reason."""
        t0 = time.perf_counter_ns()
        reason = self._gate(buy_name, sell_name, created_ns, ttl_us)
        sized = None
        if reason == S.RejectReason.NONE:
            sized, reason = self._size(buy_name, sell_name, qty_hint)
        if reason != S.RejectReason.NONE:
            self.counters.reject(reason)
            self.counters.decision_ns.append(time.perf_counter_ns() - t0)
            return
        qty, buy_px, sell_px, buy_slip, sell_slip, touch_buy, touch_sell = sized
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        opp = self.next_opp
        self.next_opp += 1
        pos = new_position(opp, strategy, Leg(bl.venue, buy_name, S.Side.BUY, touch_buy),
                           Leg(sl.venue, sell_name, S.Side.SELL, touch_sell), qty, edge_bps, self.now)
        self.positions[opp] = pos
        self.open_positions[opp] = pos
        primary = self._new_order(opp, 0, bl.venue, buy_name, S.Side.BUY, S.OrderType.IOC, qty, buy_px, buy_slip,
                                  0, S.Purpose.ENTRY)
        pos.buy.coid = primary.coid
        pos.hedge_price, pos.hedge_slip = sell_px, sell_slip
        if self.policy.dispatch == "simultaneous":
            self._send_hedge(pos, qty)
        # primary_then_hedge: the hedge leaves when the primary is done, for what it filled
        pos.machine.fire(HedgeEvent.DISPATCHED, self.now, f"{strategy} {buy_name}->{sell_name} {qty:g}")
        self.last_entry_ns = self.now
        self.counters.decision_ns.append(time.perf_counter_ns() - t0)

    def _gate(self, buy_name: str, sell_name: str, created_ns: int, ttl_us: int) -> S.RejectReason:
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        if ttl_us == 0 or self.now - created_ns > ttl_us * 1000:
            return S.RejectReason.STALE
        if self.engine.state in NO_NEW_EXPOSURE:
            return S.RejectReason.RISK_STATE
        for r in (bl, sl):
            if not self.board.can_dispatch(r.venue, self.now):
                return S.RejectReason.VENUE_UNHEALTHY
        for name, r in ((buy_name, bl), (sell_name, sl)):
            if not self.market.usable(self.reg.venue(r.venue), self.reg.instrument(name), self.now):
                return S.RejectReason.BOOK_UNUSABLE
        if self.market.vol_level(bl.base) >= 3:
            return S.RejectReason.RISK_STATE
        # transfers in flight toward a leg's venue block strategies that would need them
        needs = [(bl.venue, bl.quote)] + ([(sl.venue, sl.base)] if sl.kind == "spot" else [(sl.venue, sl.quote)])
        for key in needs:
            if self.in_transit.get(key, 0.0) > 0 and self.inventory.get(key, 0.0) <= 0:
                return S.RejectReason.TRANSFER_PENDING
        return S.RejectReason.NONE

    def _size(self, buy_name: str, sell_name: str, qty_hint: float):
        """Inventory, capital and exposure headroom, then the sizing kernel on the live books."""
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        p = self.policy
        level = self.market.vol_level(bl.base)
        slip = p.max_slippage_bps / (2.0 if level >= 1 else 1.0)   # tighten
        mark = self.market.mark(bl.base)
        # a venue locks a buy at its limit price plus the fee: leave that headroom
        quote_avail = (self.inventory.get((bl.venue, bl.quote), 0.0) - self._working_notional(bl.venue)) / (
            1.0 + 2.0 * slip / 1e4)
        if sl.kind == "spot":
            base_avail = self.inventory.get((sl.venue, sl.base), 0.0) - self._working_qty(sl.venue, sell_name)
        else:   # a perp short needs margin, not coins
            margin = self.inventory.get((sl.venue, sl.quote), 0.0) - self._working_notional(sl.venue)
            base_avail = margin * sl_leverage(sl) / max(mark, 1e-9)
        if level >= 2:
            base_avail /= 2.0                                          # reduce
        if qty_hint > 0:
            base_avail = min(base_avail, qty_hint)
        capital_free = p.strategy_budget_usdt - self._capital_used()
        notional_cap = min(p.max_order_notional_usdt, p.max_exposure_usdt - self._venue_exposure(bl.venue),
                           p.max_exposure_usdt - self._venue_exposure(sl.venue))
        return self.market.size_pair(buy_name, sell_name, slip_bps=slip, min_edge_bps=p.min_edge_bps,
                                     base_avail=base_avail, quote_avail=quote_avail, capital_free=capital_free,
                                     notional_cap=notional_cap)

    def _working_notional(self, venue: str) -> float:
        return sum(o.qty * (o.price or 0.0) for o in self.orders.working(venue) if o.side == S.Side.BUY)

    def _working_qty(self, venue: str, instrument: str) -> float:
        return sum(o.qty - o.filled for o in self.orders.working(venue)
                   if o.side == S.Side.SELL and o.instrument == instrument)

    def _capital_used(self) -> float:
        used = 0.0
        for pos in self.open_positions.values():
            if pos.state not in (HedgeState.RECONCILED, HedgeState.CLOSED, HedgeState.COMPLETE):
                used += pos.qty * self.market.mark(self.rules[pos.buy.instrument].base)
        return used

    def _venue_exposure(self, venue: str) -> float:
        return sum(o.qty * (o.price or 0.0) for o in self.orders.working(venue))

    # -- report ---------------------------------------------------------------------------------

    def transitions_as_dicts(self) -> list[dict]:
        changes = list(self.transitions)
        for pos in self.positions.values():
            changes += pos.machine.history
        changes.sort(key=lambda c: c.t_ns)
        return [{"t": c.t_ns, "machine": c.machine if not c.key or c.machine == "engine" else f"{c.machine}:{c.key}",
                 "from": c.src, "to": c.dst, "cause": c.cause} for c in changes]
