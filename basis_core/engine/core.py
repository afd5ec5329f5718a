"""The engine core: records in, commands out, every decision derived from the records alone.

`EngineCore.step(batch)` takes a batch of schema records (market data, our order events, venue
status, balances, transfers, timers, controls, external signals) and returns the commands it
decided (ORDER_NEW, ORDER_CANCEL, ORDER_QUERY records). It reads no clock: "now" is the ingest
timestamp of the records. Feeding the same records again — a journal replay — gives the same
commands, byte for byte.

Per batch: one compiled call (`kernels.scan.market_step_nb`, through `MarketState.step`) does
all the per-record market work: it applies the market data to the book arrays, updates the
marks and volatility levels of the assets whose books changed, and finds the best touch-to-touch
pair among the changed books (the built-in spread/basis signal candidate). Then the rare records
(order events, venue status ...) drive the state machines one by one; timed checks run (hedge
windows, unwinds, verification of orders in doubt, return-to-normal policy checks); and the
candidate, if any, is re-checked at dispatch time (pair not busy, freshness, venues, risk state,
inventory, capital) and sized by the kernels.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

from .. import schema as S
from ..errors import InvalidTransition
from ..registry import Registry
from ..results.stats import LatencyHistogram, Spool
from ..state.fsm import Change, Machine
from ..state.tables import (
    ENGINE,
    NO_NEW_EXPOSURE,
    EngineEvent,
    EngineState,
    OrderEvent,
    OrderState,
    VenueEvent,
    VenueState,
)
from ..units import MS
from .actions import fire_engine, fire_order, fire_venue, venue_ok
from .allowance import Allowance
from .decide import CompiledDecision, wanted
from .decisions import Decisions
from .fees import FeeDrift
from .hedging import Hedging
from .maker import Maker
from .market import MarketState
from .operator import OPERATOR, Operator
from .orders import ManagedOrder, OrderManager
from .policy import PolicyConfig
from .positions import HedgedPosition, MakerParent, SliceParent
from .venues import VenueBoard

#: BALANCE_UPDATE.sub of the inventory a run starts with (journaled first, so a replay has it)
INITIAL_BALANCE = 1
#: BALANCE_UPDATE.sub of a perp position a venue holds when the run starts (aux = instrument id,
#: free = signed qty, locked = the venue's entry price), journaled with the starting balances
INITIAL_POSITION = 2
#: what `step` returns for a batch that decided nothing (one shared, zero-length array)
NO_COMMANDS = S.aligned_empty(0)
#: the newest items the core holds of each stream a run only appends to (state transitions,
#: residual exposure changes, anomalies; results/stats.py Spool): a run's report side streams
#: every item to its run directory as it comes (engine/report.py), the core keeps these many
TRANSITIONS_KEPT = 10_000
RESIDUALS_KEPT = 10_000
ANOMALIES_KEPT = 1_000


def _template(kind: S.Kind) -> np.ndarray:
    """A zeroed command record of `kind`, held as GENERIC so that copies carry every byte (a
    copy through a dtype with gaps leaves the gaps undefined, and decisions must be bytes)."""
    rec = S.empty(kind)
    rec["source"] = S.Source.ENGINE
    return rec.view(S.GENERIC)


#: an order's purpose (ManagedOrder.purpose) -> its schema.Purpose code
_PURPOSE = {p.name.lower(): int(p) for p in S.Purpose}
#: an ORDER_NEW record as one pack: seq, ts_ns, kind, source, venue, sub (side), instrument,
#: aux (order type | purpose << 8), coid, price, qty, depends_on, max_slip_bps, check (0)
_ORDER_NEW = struct.Struct("<QqBBBBHHQddQfI")
assert _ORDER_NEW.size == S.RECORD_SIZE


def order_new_record(
    ts_ns: int,
    venue: int,
    instrument: int,
    side: int,
    aux: int,
    coid: int,
    price: float | None,
    qty: float,
    depends_on: int,
    max_slip_bps: float,
) -> np.ndarray:
    """One ORDER_NEW command record (GENERIC, every byte set: seq and check 0, source ENGINE),
    packed at once instead of field by field (`price` None: NaN, as numpy stores it)."""
    raw = _ORDER_NEW.pack(
        0,
        ts_ns,
        S.Kind.ORDER_NEW,
        S.Source.ENGINE,
        venue,
        side,
        instrument,
        aux,
        coid,
        float("nan") if price is None else price,
        qty,
        depends_on,
        max_slip_bps,
        0,
    )
    return np.frombuffer(raw, dtype=S.GENERIC)


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
    leverage: float  # perps: margin = notional / leverage (the config's, always > 0)


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
    decision_ns: LatencyHistogram = field(default_factory=LatencyHistogram)  # bounded: buckets, not samples
    #: the newest ANOMALIES_KEPT; `anomalies.count` of the run, every one in the run directory
    anomalies: Spool[str] = field(default_factory=lambda: Spool(ANOMALIES_KEPT))
    #: fills whose fee a venue charged in another asset than its fee asset, which had run out
    fee_asset_fallbacks: dict[str, int] = field(default_factory=dict)

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


class EngineCore(Hedging, Decisions, Maker, FeeDrift, Operator):
    """Record-driven decisions (see module docstring)."""

    def __init__(
        self,
        registry: Registry,
        rules: dict[str, InstrumentRules],
        policy: PolicyConfig,
        balances: dict[tuple[str, str], float],
        start_ns: int,
        depth: int = 10,
        fixed_marks: dict[str, float] | None = None,
        builtin_signals: bool = True,
    ):
        self.reg = registry
        self.policy = policy
        self.configured_policy = policy
        self.rules = rules
        self.rules_by_id = {registry.instrument(n): r for n, r in rules.items()}
        self.counters = Counters()
        #: engine and venue changes: the newest TRANSITIONS_KEPT (positions keep their own)
        self.transitions: Spool[Change] = Spool(TRANSITIONS_KEPT)
        self.now = start_ns
        record = self.transitions.append
        self.engine = Machine(ENGINE, EngineState.NORMAL, key="engine", on_change=record, since_ns=start_ns)
        self.board = VenueBoard(
            list(registry.venues.by_id[1:]), start_ns, int(policy.healthy_window_ms * MS), record
        )
        self.orders = OrderManager(on_change=None)
        self.orders.venue_ids = {n: registry.venue(n) for n in registry.venues.by_id[1:]}
        self.orders.instrument_ids = {n: registry.instrument(n) for n in rules}
        self.positions: dict[int, HedgedPosition] = {}
        self.open_positions: dict[int, HedgedPosition] = {}  # not yet RECONCILED
        self.position_counts: dict[str, int] = {}  # positions per HEDGE state name, kept as they change
        self.market = MarketState(registry, rules, depth, policy, start_ns, fixed_marks)
        self.market.warm_up()
        #: the compiled gate and sizing (engine/decide.py); None: the Python reference path
        self.decider: CompiledDecision | None = None
        self.inventory = dict(balances)  # (venue, asset) -> free, from our own fills
        self.venue_balance: dict[tuple[str, str], tuple[float, int]] = {}  # as the venue last said
        self.in_transit: dict[tuple[str, str], float] = {}  # (to venue, asset) -> amount
        self._transfer_states: dict[int, S.TransferState] = {}
        self.next_opp = 1
        self.out: list[np.ndarray] = []
        self._tpl_cancel, self._tpl_query = _template(S.Kind.ORDER_CANCEL), _template(S.Kind.ORDER_QUERY)
        self._tpl_control = _template(S.Kind.CONTROL)
        self.halted_reason = ""
        #: operator commands as decided: (ts, command, "accepted ..." or "refused: why")
        self.operator_log: list[tuple[int, str, str]] = []
        self.reconcile_clean_since = 0
        self.reconcile_requested = False
        self.last_entry_ns = 0
        self.stop_new = False  # set at the end of a run: no new opportunities
        self.builtin_signals = builtin_signals
        self._digest = hashlib.blake2b(digest_size=16)
        self.residual_history: Spool[tuple[int, float]] = Spool(RESIDUALS_KEPT)
        self.slicing: dict[int, SliceParent] = {}  # `sliced` execution: parents still working
        self.slice_ends: dict[str, int] = {}
        self.making: dict[int, MakerParent] = {}  # `maker_taker` execution: opportunities still quoting
        self.maker_ends: dict[str, int] = {}
        self.fee_tokens = frozenset(fixed_marks or ())  # assets charged as fees only (BNB ...)
        self.fee_token_of: dict[str, str] = {}  # venue -> the fee asset it has charged
        self.fee_exhausted: set[str] = set()  # venues charging another asset since theirs ran out
        self.allowance: Allowance | None = None  # a clustered run's shared limits (engine/allowance.py)
        self._init_fee_drift()  # base kept as fees and bought back (engine/fees.py)
        if wanted():  # last: it reads the state above
            self.decider = CompiledDecision(self, fixed_marks or {})
            self.decider.warm_up(self)

    # -- the step ---------------------------------------------------------------------------

    def step(self, batch: np.ndarray) -> np.ndarray:
        gen = batch.view(S.GENERIC)
        n = len(gen)
        if n == 0:
            return NO_COMMANDS
        self.counters.events += n
        # one compiled call: the batch's time, books, marks, volatility, and the best pair
        # among the changed books; the other records come back by index
        self.now, rare = self.market.step(gen, self.now, self.builtin_signals)
        for i in rare.tolist():
            self._rare(gen[i : i + 1])
        self._timed_checks()
        if self.builtin_signals and self.engine.state not in NO_NEW_EXPOSURE and not self.stop_new:
            self._scan_signals()
        return self._flush() if self.out else NO_COMMANDS

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

    def _position_changed(self, change: Change) -> None:
        """A position's machine changed state: keep `position_counts` (no scan of every position)."""
        counts = self.position_counts
        counts[change.src] -= 1
        if not counts[change.src]:
            del counts[change.src]
        counts[change.dst] = counts.get(change.dst, 0) + 1
        pos = self.positions.get(int(change.key))
        if pos is not None:
            self._note_end_mids(pos)
        if self.decider is not None:  # the capital of open positions, as the compiled gate sees it
            self.decider.positions.dirty = True

    # -- rare records -------------------------------------------------------------------------

    def _rare(self, rec: np.ndarray) -> None:
        kind = int(rec["kind"][0])
        if kind == S.Kind.ORDER_EVENT:
            self._order_event(rec.view(S.ORDER_EVENT)[0])
        elif kind == S.Kind.VENUE_STATUS:
            self._venue_status(rec.view(S.VENUE_STATUS)[0])
        elif kind == S.Kind.BALANCE_UPDATE:
            b = rec.view(S.BALANCE_UPDATE)[0]
            if int(b["sub"]) == INITIAL_POSITION:  # (aux: an instrument) the perp held at start
                r = self.rules[self.reg.instruments.name(int(b["aux"]))]
                pkey = (r.venue, f"{r.base}-PERP")
                self.inventory[pkey] = self.inventory.get(pkey, 0.0) + float(b["free"])
                return
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
            if self.board.answered_before_outage(venue, self.now - int(r["latency_ns"])):
                return  # a late answer to a request sent before the maintenance or outage
            if v.state == VenueState.QUARANTINED:
                fire_venue(self, venue, VenueEvent.MAINTENANCE_OVER, "venue answers again")
            elif v.state == VenueState.DOWN:
                fire_venue(self, venue, VenueEvent.RECONNECTED, "venue answers again")
            else:
                venue_ok(self, venue)
            if self.engine.state == EngineState.DEGRADED and not self.board.any_throttled():
                fire_engine(self, EngineEvent.THROTTLE_CLEARED, f"{venue} healthy")
            return
        event = _VENUE_EVENT[report]
        hold_ns = int(r["retry_after_ms"]) * MS
        fire_venue(self, venue, event, f"{venue}: {report.name.lower()}", hold_ns)
        if report == S.VenueReport.RATE_LIMITED:
            fire_engine(self, EngineEvent.RATE_LIMITED, f"{venue} rate limited")

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
            fire_engine(self, EngineEvent.RECONCILE_REQUESTED, f"order {order.coid}: {exc}")
        if order.state == OrderState.FILLED and not was_filled:
            self.counters.orders_filled += 1
        venue = order.venue
        if self.board[venue].state == VenueState.SUSPECT and not any(
            o.state == OrderState.UNKNOWN for o in self.orders.working(venue)
        ):
            fire_venue(self, venue, VenueEvent.VERIFIED, "orders verified by client order id")
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
            self._book_inventory(order, px, qty, fee, int(r["aux"]))
            self._fee_charged(order, fee, fee_asset)
            if order.purpose == "restore":
                self._restore_filled(order, qty, fee, fee_asset)
            event = OrderEvent.FILL if order.filled >= order.qty - 1e-12 else OrderEvent.PARTIAL_FILL
            fire_order(self, order, event, "fill")
        else:
            cum = float(r["last_qty"])
            if cum > order.filled_reported:
                self.orders.reported(order, cum)
            event = _ORDER_EVENT[etype]
            if event == OrderEvent.REJECT:
                order.reject_reason = S.RejectReason(int(r["reason"])).name.lower()
            if (
                event == OrderEvent.NOT_FOUND
                and order.state == OrderState.SUBMITTED
                and (self.now - order.sent_ns >= self.policy.lost_after_ms * MS)
            ):
                # sent long ago and the venue still does not know it: the request was lost
                fire_order(self, order, OrderEvent.LOST, "no answer and not at the venue")
            if (
                event == OrderEvent.NOT_FOUND
                and order.state == OrderState.UNKNOWN
                and (self.now - order.machine.since_ns >= self.policy.lost_after_ms * MS)
            ):
                event = OrderEvent.LOST
            if event == OrderEvent.TIMEOUT:
                fire_order(self, order, event, "request timed out")  # verify_order
                return
            if (
                etype == S.OrderEventType.ACK
                and cum > 0
                and order.state in (OrderState.SUBMITTED, OrderState.ACKED, OrderState.UNKNOWN)
            ):
                event = OrderEvent.PARTIAL_FILL
            fire_order(self, order, event, etype.name.lower())

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

    def _fee_charged(self, order: ManagedOrder, fee: float, asset: str) -> None:
        """A fee in the base asset is base the order did not get (exposure, like the fill); a
        venue that charged its fee asset and now charges another has run out of it: an event,
        counted per fill, and by policy no more entries on that venue until it charges it again."""
        if not fee or not asset:
            return
        r = self.rules[order.instrument]
        if r.kind == "spot" and asset == r.base:
            order.base_fee += fee
        venue = order.venue
        if asset in self.fee_tokens:
            self.fee_token_of[venue] = asset
            if venue in self.fee_exhausted:
                self.fee_exhausted.discard(venue)
                self.counters.anomalies.append(f"{venue}: fees charged in {asset} again")
            return
        token = self.fee_token_of.get(venue)
        if token is None:
            return
        fallbacks = self.counters.fee_asset_fallbacks
        fallbacks[venue] = fallbacks.get(venue, 0) + 1
        if venue not in self.fee_exhausted:
            self.fee_exhausted.add(venue)
            then = "no new entries there" if self.policy.on_fee_asset_exhausted == "stop" else "trading on"
            self.counters.anomalies.append(
                f"{venue}: fee asset {token} exhausted, fees now in {asset}; {then}"
            )

    def _transfer(self, t) -> None:
        state = S.TransferState(int(t["sub"]))
        key = (self.reg.venues.name(int(t["to_venue"])), self.reg.assets.name(int(t["aux"])))
        amount = float(t["amount"])
        tid = int(t["transfer_id"])
        pending = self.in_transit.setdefault(key, 0.0)
        seen = self._transfer_states
        prev = seen.get(tid)
        if state in (S.TransferState.REQUESTED, S.TransferState.SENT, S.TransferState.CONFIRMING):
            if prev is None:
                self.in_transit[key] = pending + amount
                src = (self.reg.venues.name(int(t["venue"])), key[1])
                self.inventory[src] = self.inventory.get(src, 0.0) - amount
            seen[tid] = state
        elif state in (S.TransferState.CONFIRMED, S.TransferState.FAILED) and prev not in (
            S.TransferState.CONFIRMED,
            S.TransferState.FAILED,
        ):
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
        if cmd in S.OPERATOR_COMMANDS:
            self.operator_log.append((self.now, cmd.name.lower(), self._operator(cmd, c)))
        elif cmd == S.ControlCommand.RECOVERED:
            # state rebuilt from the journal: nothing new until the venues agree with it
            fire_engine(self, EngineEvent.RECONCILE_REQUESTED, "engine restarted from its journal")
            for o in self.orders.working():
                # every order in flight is verified by client order id; one whose request may never
                # have left (it died with the old engine) is unknown until then
                if o.state in (OrderState.SUBMITTED, OrderState.PENDING_CANCEL):
                    fire_order(
                        self, o, OrderEvent.TIMEOUT, "engine restarted before an answer"
                    )  # verify_order
                else:
                    self._query(o)
        elif cmd == S.ControlCommand.CLUSTER_GRANT:  # what the io side reserved of a shared limit
            if self.allowance is None:
                self.allowance = Allowance()
            self.allowance.take_grant(self.reg, c)
        elif cmd == S.ControlCommand.SHUTDOWN:
            self.stop_new = True  # the run is ending: let working orders settle, open nothing new
        elif cmd == S.ControlCommand.RECONCILE:
            mismatches, clean = int(c["aux"]), int(c["operator"]) == 1
            self.reconcile_requested = False
            if mismatches:
                self.reconcile_clean_since = 0
                fire_engine(self, EngineEvent.RECONCILE_MISMATCH, f"{mismatches} reconciliation mismatch(es)")
            elif clean and not self.reconcile_clean_since:
                self.reconcile_clean_since = self.now
            elif not clean:
                self.reconcile_clean_since = 0  # still settling (lag window, orders in doubt): ask again

    def _operator(self, cmd: S.ControlCommand, c) -> str:
        """An operator's command (operator.py); what the engine did with it, or why not."""
        return OPERATOR[cmd](self, c)

    # -- commands ----------------------------------------------------------------------------------

    def _new_order(
        self,
        opp_id: int,
        leg: int,
        venue: str,
        instrument: str,
        side: S.Side,
        otype: S.OrderType,
        qty: float,
        price: float,
        slip_bps: float,
        depends_on: int,
        purpose: S.Purpose,
    ) -> ManagedOrder:
        order = self.orders.create(
            opp_id,
            leg,
            venue,
            instrument,
            side,
            otype,
            qty,
            price,
            slip_bps,
            self.now,
            depends_on=depends_on,
            purpose=purpose.name.lower(),
        )
        fire_order(self, order, OrderEvent.SUBMIT, purpose.name.lower())  # send
        self.counters.orders_submitted += 1
        return order

    def _send(self, order: ManagedOrder) -> None:
        """The ORDER_NEW record of `order` (the ORDER table's `send`)."""
        now = order.sent_ns = self.now
        self.out.append(
            order_new_record(
                now,
                self.reg.venue(order.venue),
                self.reg.instrument(order.instrument),
                int(order.side),
                int(order.otype) | (_PURPOSE[order.purpose] << 8),
                order.coid,
                order.price,
                order.qty,
                order.depends_on,
                order.max_slip_bps,
            )
        )

    def _cancel(self, order: ManagedOrder) -> None:
        if order.state == OrderState.PENDING_CANCEL or order.terminal:
            return
        fire_order(self, order, OrderEvent.CANCEL_REQUEST, "cancel")  # send_cancel, or verify_order

    def _send_cancel(self, order: ManagedOrder) -> None:
        """The ORDER_CANCEL record of `order` (the ORDER table's `send_cancel`)."""
        rec = self._tpl_cancel.copy().view(S.ORDER_CANCEL)  # copied as GENERIC: padding bytes included
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
        rec = self._tpl_query.copy().view(S.ORDER_QUERY)  # copied as GENERIC: padding bytes included
        rec["ts_ns"] = self.now
        rec["venue"], rec["instrument"] = self.reg.venue(order.venue), self.reg.instrument(order.instrument)
        rec["coid"] = order.coid
        self.out.append(rec.view(S.GENERIC))

    # -- report ---------------------------------------------------------------------------------

    def transitions_as_dicts(self) -> list[dict]:
        """The engine and venue changes the core still holds (the newest TRANSITIONS_KEPT) and
        every position's, by time. The whole run's: engine/report.py `all_transitions`."""
        return [transition_dict(c) for c in merged_changes(self.transitions, self.positions.values())]

    @property
    def transitions_total(self) -> int:
        """Every state change of the run: the engine's and venues' and the positions'."""
        return self.transitions.count + sum(len(p.machine.history) for p in self.positions.values())


def merged_changes(changes, positions) -> list[Change]:
    """`changes` (in time order) and the histories of `positions`, by time; a stable order, so
    the same changes give the same list."""
    out = list(changes)
    for pos in positions:
        out += pos.machine.history
    out.sort(key=lambda c: c.t_ns)
    return out


def transition_dict(c: Change) -> dict:
    """A change as report.json's state_transitions lists it."""
    return {
        "t": c.t_ns,
        "machine": c.machine if not c.key or c.machine == "engine" else f"{c.machine}:{c.key}",
        "from": c.src,
        "to": c.dst,
        "cause": c.cause,
    }
