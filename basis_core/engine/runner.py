"""One run: venues + io + engine core + journal + ledger + reconciliation + results.

The loop: records that the io side produced since the last wake are taken as one batch, a
TIMER record is added, the batch is appended to the journal *before* the engine sees it, the
engine decides, its commands are journaled too (as the run's decision log) and handed to the
io side. Side actions the engine asks for (lower routing rate, a reconciliation pass) run on
the io side; a pass's outcome comes back to the engine as a CONTROL record, like any input.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from basis_core.venue import Charge, Fill, InstrumentInfo, OrderStatus, Venue, coid_from_wire

from .. import schema as S
from ..accounting.convert import ledger_fill
from ..accounting.ledger import Ledger
from ..errors import BasisError, MalformedResponse, VenueError
from ..journal import JournalWriter
from ..reconcile.orders import KnownOrder
from ..reconcile.positions import PositionPolicy, PositionReconciler
from ..reconcile.runner import Reconciler
from ..registry import Registry
from ..runlog import NULL_LOG, RunLog
from ..state.tables import EngineState, HedgeState, OrderState
from ..units import MS
from .checkpoint import Checkpointer
from .core import INITIAL_BALANCE, INITIAL_POSITION, EngineCore, InstrumentRules
from .io import VenueIO
from .orders import ManagedOrder
from .policy import PolicyConfig
from .report import StreamFiles
from .supervisor import Supervisor

if TYPE_CHECKING:
    from .resume import Resumed

_KNOWN_STATUS = {
    OrderState.NEW: None,
    OrderState.SUBMITTED: None,
    OrderState.UNKNOWN: None,
    OrderState.ACKED: OrderStatus.OPEN,
    OrderState.PENDING_CANCEL: OrderStatus.OPEN,
    OrderState.FILLED: OrderStatus.FILLED,
    OrderState.CANCELED: OrderStatus.CANCELED,
    OrderState.EXPIRED: OrderStatus.EXPIRED,
    OrderState.REJECTED: OrderStatus.REJECTED,
}

# what `Runner.settled` waits out: positions still being hedged or unwound, and the engine's
# protective / unwinding / reconciling states
_UNSETTLED_HEDGE = frozenset(
    {
        HedgeState.LEG_WORKING,
        HedgeState.HEDGING,
        HedgeState.ASYMMETRIC,
        HedgeState.ISOLATED,
        HedgeState.UNWINDING,
    }
)
_UNSETTLED_ENGINE = frozenset({EngineState.PROTECTIVE, EngineState.UNWINDING, EngineState.RECONCILING})


@dataclass
class RunStats:
    wall_s: float = 0.0
    batches: int = 0
    reconcile_passes: int = 0
    reconcile_mismatches: dict[str, int] = field(default_factory=dict)
    progress_lines: int = 0


class Runner:
    """Drives one run on the current event loop (virtual or real time)."""

    # the parts of the run, made by `start` (a runner is used once it has started)
    core: EngineCore
    io: VenueIO
    ledger: Ledger
    reconciler: Reconciler
    _initial_balances: dict[tuple[str, str], float]
    #: perp positions the venues held at the start, taken over: (venue, instrument) -> (qty, entry)
    _initial_positions: dict[tuple[str, str], tuple[float, float]]

    def __init__(
        self,
        *,
        venues: dict[str, Venue],
        registry: Registry,
        rules: dict[str, InstrumentRules],
        policy: PolicyConfig,
        now_ns: Callable[[], int],
        journal: JournalWriter | None,
        progress: Callable[[str], None] | None = None,
        progress_every_s: float = 2.0,
        tick_ms: float = 10.0,
        fixed_marks: dict[str, float] | None = None,
        signals: np.ndarray | None = None,
        builtin_signals: bool = True,
        checkpoints: Checkpointer | None = None,
    ):
        self.signals = signals
        self.checkpoints = checkpoints
        self.builtin_signals = builtin_signals
        self.fixed_marks = dict(fixed_marks or {})
        self.venues = venues
        self.reg = registry
        self.rules = rules
        self.policy = policy
        self.now_ns = now_ns
        self.journal = journal
        self.progress = progress
        self.progress_every_ns = int(progress_every_s * 1e9)
        self.tick_ns = int(tick_ms * MS)
        self.inbox: deque[np.ndarray] = deque()
        self.wake = asyncio.Event()
        #: every background task of the run; the first to fail stops the run with its error
        self.supervisor = Supervisor(on_failure=self.wake.set)
        self.stats = RunStats()
        self.known: dict[str, KnownOrder] = {}
        self.infos: dict[str, InstrumentInfo] = {}
        self._reconciling: asyncio.Task | None = None
        self._seq = 0
        self.decisions = 0
        self.deposited = False
        self.unbooked_fills: list[str] = []
        self.streams: StreamFiles | None = None  # made by `start` when the run has a directory
        self.opportunities_booked = 0  # the ledger knows every opportunity id up to this one
        self.next_reconcile_ns = 0
        self.next_progress_ns = 0
        #: called after every engine step, on the io side (alerts.py): they must not block
        self.watchers: list[Callable[[], None]] = []
        #: called with each operator CONTROL record as it is sent in (clustered.py: a cluster halt)
        self.control_hooks: list[Callable[[np.ndarray], None]] = []
        # what `_mirror_orders` looks at besides the working orders (no scan of every order)
        self._was_working: set[int] = set()  # orders working at the last mirror
        self._order_news: set[int] = set()  # orders named by order events since the last mirror
        #: the run's structured log (log.jsonl); the io side and reconciliation write to it too
        self.log: RunLog = NULL_LOG
        #: why the run was asked to end before its duration (a signal's name, `request_stop`)
        self.stop_requested = ""
        self._cut_short = False  # `run_for` returns at once (until `finish` starts settling)
        self._finishing = False  # `finish` has begun: a stop request no longer cuts `run_for` short
        #: set before `start` to take up an unfinished run (resume.py)
        self.resumed: Resumed | None = None
        #: a new run takes over the perp positions its venues hold (live venues outlive a run;
        #: a simulated world starts flat, and is not asked)
        self.adopt_positions = False

    # -- wiring ----------------------------------------------------------------------------------

    def _sink(self, rec: np.ndarray) -> None:
        self.inbox.append(rec)
        self.wake.set()

    def send_control(self, rec: np.ndarray) -> None:
        """An operator's CONTROL record (control.py) into the engine, journaled first like
        every input."""
        for hook in self.control_hooks:
            hook(rec)
        self._sink(rec)

    def _mark(self, asset: str, ts_ns: int) -> float:
        return self.core.market.mark(asset)

    def _on_fill(self, fill: Fill) -> None:
        info = self.infos.get(fill.instrument)
        num = coid_from_wire(fill.coid)
        if info is None or num is None:
            return
        opp = self.core.positions.get(S.opportunity_of(num))
        strategy = opp.strategy if opp else ""
        signal_px = 0.0
        if opp is not None:
            signal_px = opp.buy.signal_px if fill.side == S.Side.BUY else opp.sell.signal_px
        try:
            self.ledger.book_fill(ledger_fill(fill, info, strategy=strategy, signal_px=signal_px))
        except BasisError as exc:
            # a mark is missing at this instant; the reconciliation pass books the fill later
            self.unbooked_fills.append(f"{fill.venue}:{fill.coid}:{fill.trade_id}: {exc}")

    def _on_charge(self, ch: Charge) -> None:
        """A venue's cost outside any fill (a reverted transaction's gas) into the ledger, as a
        fee of the opportunity its order belongs to."""
        num = coid_from_wire(ch.coid) if ch.coid else None
        opp = S.opportunity_of(num) if num is not None else 0
        try:
            self.ledger.book_fee(
                ch.venue, ch.asset, ch.amount, ch.ts_ns, f"charge:{ch.ref}", opportunity_id=opp
            )
        except BasisError as exc:
            self.unbooked_fills.append(f"{ch.venue}:{ch.coid}:{ch.ref}: {exc}")

    def _on_funding(self, pay) -> None:
        try:
            self.ledger.book_funding(
                pay.venue, pay.asset, pay.amount, pay.ts_ns, f"funding:{pay.instrument}:{pay.ts_ns}"
            )
        except BasisError:
            pass  # no mark yet: the balance layer raises the difference if it persists

    async def start(self) -> None:
        for v in self.venues.values():
            await v.start()
            self.infos.update(v.instruments())
        start = self.now_ns()
        balances: dict[tuple[str, str], float] = {}
        for name, v in self.venues.items():
            for asset, bal in (await v.balances()).items():
                balances[(name, asset)] = bal.free + bal.locked
                self.reg.assets.add(asset)
        held: dict[tuple[str, str], tuple[float, float]] = {}
        if self.adopt_positions and self.resumed is None:
            held = await self._venue_positions()
        if self.resumed is not None:  # a warm restart (resume.py): the journal's state goes on
            self.core = self.resumed.core
            balances = {}  # the run's starting balances are in its journal already
        else:
            self.core = EngineCore(
                self.reg,
                self.rules,
                self.policy,
                {},
                start,
                fixed_marks=self.fixed_marks,
                builtin_signals=self.builtin_signals,
            )
        # the core's append-only streams (transitions ...) go to the run directory as they come
        run_dir = (
            self.journal.directory.parent if self.journal is not None else getattr(self, "run_dir", None)
        )
        self.streams = StreamFiles(run_dir, self.core) if run_dir is not None else None
        # the starting inventory enters the engine as records, like everything else (replayable)
        for (venue, asset), amount in sorted(balances.items()):
            rec = S.empty(S.Kind.BALANCE_UPDATE)
            rec["ts_ns"], rec["source"], rec["sub"] = start, S.Source.RUNNER, INITIAL_BALANCE
            rec["venue"], rec["aux"], rec["free"] = self.reg.venue(venue), self.reg.asset(asset), amount
            self._sink(rec.view(S.GENERIC))
        # and the perp positions the venues hold: the run's opening positions, not trades
        for (venue, instrument), (qty, entry) in sorted(held.items()):
            rec = S.empty(S.Kind.BALANCE_UPDATE)
            rec["ts_ns"], rec["source"], rec["sub"] = start, S.Source.RUNNER, INITIAL_POSITION
            rec["venue"], rec["aux"] = self.reg.venue(venue), self.reg.instrument(instrument)
            rec["free"], rec["locked"] = qty, entry
            self._sink(rec.view(S.GENERIC))
        self.ledger = Ledger(self._mark)
        self._initial_balances = balances
        self._initial_positions = held
        self.book_opening_positions(start)
        instrument_of = {self.reg.instrument(n): n for n in self.rules}
        self.io = VenueIO(
            self.venues,
            self.reg,
            self.now_ns,
            self._sink,
            instrument_of,
            resend_window_s=self.policy.lost_after_ms / 2000.0,
            supervisor=self.supervisor,
        )
        self.io.fill_hook = self._on_fill
        self.io.charge_hook = self._on_charge
        self.io.log = self.log
        window_ns = int((self.policy.hedge_window_ms + self.policy.unwind_window_ms) * MS)
        positions = PositionReconciler(
            PositionPolicy(
                hedge_window_ns=window_ns,
                max_residual_usdt=self.policy.max_residual_usdt,
                lag_ns=int(self.policy.balance_lag_ms * MS),  # fills in flight, as for balances
            ),
            fee_assets=frozenset(self.fixed_marks),
        )
        self.reconciler = Reconciler(
            list(self.venues.values()),
            self.ledger,
            self.known,
            balance_lag_ns=int(self.policy.balance_lag_ms * MS),
            position=positions,
            # venues settle in whole atoms, our ledger in floats
            balance_rel_tol=1e-8,
        )
        if self.resumed is not None:  # the ledger and our orders' view, before any stream
            await self.resumed.catch_up(self)
        self.io.start(on_funding=self._on_funding)
        if self.signals is not None and len(self.signals):
            self.io.tasks.append(self.supervisor.spawn(self._play_signals(start, self.signals), "signals"))

    async def _play_signals(self, start_ns: int, signals: np.ndarray) -> None:
        """External signals enter at their time, stamped like any input, journaled first."""
        sig = signals.view(S.SIGNAL)
        for i in range(len(sig)):
            at = start_ns + int(sig["created_ns"][i])
            wait = (at - self.now_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            rec = S.empty(S.Kind.SIGNAL)
            rec[:] = sig[i : i + 1].view(S.GENERIC).view(S.SIGNAL)
            rec["ts_ns"], rec["created_ns"] = self.now_ns(), at
            buy = self.rules[self.reg.instruments.name(int(rec["instrument"][0]))]
            sell = self.rules[self.reg.instruments.name(int(rec["sell_instrument"][0]))]
            rec["venue"], rec["sell_venue"] = self.reg.venue(buy.venue), self.reg.venue(sell.venue)
            self._sink(rec.view(S.GENERIC))

    async def _venue_positions(self) -> dict[tuple[str, str], tuple[float, float]]:
        """The perp positions the venues hold now, on the instruments this run trades:
        (venue, instrument) -> (signed qty, the venue's entry price)."""
        out: dict[tuple[str, str], tuple[float, float]] = {}
        for name, v in self.venues.items():
            if not any(r.venue == name and r.kind == "perp" for r in self.rules.values()):
                continue
            for instrument, pos in (await v.positions()).items():
                if instrument in self.rules and pos.qty:
                    if not (
                        math.isfinite(pos.qty) and math.isfinite(pos.entry_price) and pos.entry_price > 0
                    ):
                        raise MalformedResponse(
                            name,
                            "malformed",
                            f"position {instrument}: {pos.qty!r} at entry {pos.entry_price!r}",
                        )
                    out[(name, instrument)] = (float(pos.qty), float(pos.entry_price))
                    self.log.event(
                        "start",
                        "position_adopted",
                        "warning",
                        venue=name,
                        instrument=instrument,
                        qty=float(pos.qty),
                        entry_price=float(pos.entry_price),
                        mark_price=float(pos.mark_price),
                    )
                    if self.progress:
                        self.progress(
                            f"adopted: {name} holds {pos.qty:+g} {instrument} (entry {pos.entry_price:g}, "
                            f"mark {pos.mark_price:g}): the run's opening position, not traded by it"
                        )
        return out

    def book_opening_positions(self, ts_ns: int) -> None:
        """Book the perp positions taken over at the start. They need no mark (only the venue's
        entry price), so they are booked before anything else reaches the ledger: a fill of the
        same instrument can arrive before every asset has a mark, and must land on top of the
        position it changes, not before it."""
        for (venue, instrument), (qty, entry) in sorted(self._initial_positions.items()):
            if (venue, instrument) not in self.ledger.opening_positions:
                self.ledger.open_position(venue, instrument, self.rules[instrument].base, qty, entry, ts_ns)

    def deposit_initial(self) -> None:
        """Book the starting balances in the ledger once marks exist (and the perp positions
        taken over, when they were not booked at the start: a warm restart)."""
        ts = self.now_ns()
        for (venue, asset), amount in self._initial_balances.items():
            if amount > 0:
                self.ledger.deposit(venue, asset, amount, ts)
        self.book_opening_positions(ts)

    # -- the loop --------------------------------------------------------------------------------

    async def run_for(self, duration_s: float) -> None:
        t_end = self.now_ns() + int(duration_s * 1e9)
        wall0 = time.perf_counter()
        if not self.next_progress_ns:
            self.next_progress_ns = self.now_ns() + self.progress_every_ns
        while True:
            now = self.now_ns()
            if now >= t_end or self._cut_short:
                break
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.tick_ns / 1e9)
            except TimeoutError:
                pass
            self.wake.clear()
            self.supervisor.raise_failure()  # a task of the run failed: the run stops with its error
            self.pump()
            for watch in self.watchers:
                watch()
            if not self.deposited and self._marks_ready():
                self.deposit_initial()
                self.deposited = True
            if self.deposited and self.now_ns() >= self.next_reconcile_ns:
                # the four layers run continuously, not only when something looked wrong
                self.next_reconcile_ns = self.now_ns() + int(self.policy.reconcile_interval_ms * MS)
                self._start_reconcile()
            if self.progress and self.now_ns() >= self.next_progress_ns:
                self.next_progress_ns += self.progress_every_ns
                self.progress(self.progress_line())
                self.stats.progress_lines += 1
        self.stats.wall_s += time.perf_counter() - wall0

    def _marks_ready(self) -> bool:
        try:
            for r in self.rules.values():
                if not self.core.market.mark(r.base) > 0:
                    return False
            return True
        except BasisError:
            return False

    def pump(self) -> None:
        """One engine step over everything the io side produced since the last one."""
        parts = list(self.inbox)
        self.inbox.clear()
        parts.append(S.timer_record(self.now_ns()))
        batch = np.concatenate(parts).view(S.GENERIC)
        self._seq += 1
        if self.journal is not None:
            self.journal.append(batch)
        self.note_order_news(batch)
        cmds = self.core.step(batch)
        self.stats.batches += 1
        if self.journal is not None:
            if len(cmds):
                self.journal.append(cmds)
            if self.checkpoints is not None:
                self.checkpoints.after_batch(self.core, self.journal.position, cmds if len(cmds) else batch)
        if len(cmds):
            self.route(cmds)

    def route(self, cmds: np.ndarray) -> None:
        """Commands to the io side: orders to the router, requests carried out here."""
        self.io.dispatch(cmds)
        self.book_opportunities()
        self._mirror_orders()
        ctl = cmds[cmds["kind"] == S.Kind.CONTROL].view(S.CONTROL)
        for i in range(len(ctl)):
            cmd = int(ctl["sub"][i])
            if cmd == S.ControlCommand.RATE_FACTOR:
                self.io.set_rate_factor(int(ctl["aux"][i]) / 1000.0)
            elif cmd == S.ControlCommand.RECONCILE:
                self._start_reconcile()

    def book_opportunities(self) -> None:
        """Open every opportunity the engine has started in the ledger, filled or not: one whose
        legs never fill is booked all the same (no fills, its expected edge) and reported."""
        core = self.core
        for opp_id in range(self.opportunities_booked + 1, core.next_opp):
            pos = core.positions.get(opp_id)
            if pos is None:
                continue
            edge = pos.expected_edge_bps / 1e4 * pos.qty * pos.buy.signal_px
            self.ledger.open_opportunity(
                opp_id, pos.strategy, edge if math.isfinite(edge) else 0.0, pos.created_ns
            )
        self.opportunities_booked = max(self.opportunities_booked, core.next_opp - 1)

    def note_order_news(self, batch: np.ndarray) -> None:
        """Remember the orders a batch about to be stepped has news of (their next mirror)."""
        news = batch[batch["kind"] == S.Kind.ORDER_EVENT]
        if len(news):
            self._order_news.update(news.view(S.ORDER_EVENT)["coid"].tolist())

    def _orders_to_mirror(self) -> list[ManagedOrder]:
        """The orders whose mirror may be stale: the working ones (new ones first seen here),
        those that stopped working since the last mirror, and those order events named (a late
        fill or venue status of a finished order). An order changes only in those ways, so the
        finished ones already mirrored are not looked at again: a run's later steps cost the
        same as its first."""
        book = self.core.orders
        todo = book.working()
        working = {o.coid for o in todo}
        for coid in sorted((self._was_working | self._order_news) - working):
            o = book.get(coid)
            if o is not None:
                todo.append(o)
        self._was_working = working
        self._order_news.clear()
        return todo

    def _mirror_orders(self) -> None:
        """The reconciliation's view of our orders follows the engine's order book."""
        for o in self._orders_to_mirror():
            known = self.known.get(o.wire)
            if known is None:
                known = self.known[o.wire] = KnownOrder(
                    o.wire, o.venue, o.instrument, o.side, o.qty, o.price, submitted_ns=o.created_ns
                )
            if known.lost and o.state == OrderState.REJECTED:
                # the venue never had it and the engine has declared it not placed: both agree
                self.reconciler.log.resolve(
                    "order", f"{o.venue}:{o.wire}", self.now_ns(), "declared not placed by the engine"
                )
            if known.origin != "ours" or known.lost:
                continue
            known.status = _KNOWN_STATUS.get(o.state, known.status)
            if o.state == OrderState.PARTIALLY_FILLED or (
                o.state == OrderState.PENDING_CANCEL and o.filled > 0
            ):
                known.status = OrderStatus.PARTIALLY_FILLED
            known.filled_qty = o.filled
            known.avg_price = o.avg_price

    def _start_reconcile(self) -> None:
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = self.supervisor.spawn(self.reconcile_pass(), "reconcile")

    async def reconcile_pass(self) -> int:
        """Run the four layers; tell the engine the outcome as a CONTROL record."""
        self._mirror_orders()
        try:
            p = await self.reconciler.run(self.now_ns())
        except VenueError as exc:
            self.log.event("reconcile", "pass_failed", "warning", error=f"{type(exc).__name__}: {exc}")
            return -1
        self.stats.reconcile_passes += 1
        for m in p.raised:
            layer = getattr(m.layer, "value", str(m.layer))
            self.stats.reconcile_mismatches[layer] = self.stats.reconcile_mismatches.get(layer, 0) + 1
            self.log.event(
                "reconcile", "mismatch", "warning", layer=layer, key=m.key, cause=m.cause, t_ns=self.now_ns()
            )
        # what the order layer found (adopted, lost) goes to the engine as order events
        for venue, rnd in p.orders.items():
            for vo in list(rnd.adopt) + list(rnd.updates):
                self.io.emit_view(venue, vo)
            for wire in rnd.lost:
                num = coid_from_wire(wire)
                order = self.core.orders.get(num) if num else None
                if order is not None:
                    self.io.emit_order_event(venue, order.instrument, order.coid, S.OrderEventType.NOT_FOUND)
        # CONTROL RECONCILE: aux = mismatches raised by this pass, operator = 1 when the pass is clean
        self._sink(
            S.control_record(
                self.now_ns(), S.ControlCommand.RECONCILE, min(len(p.raised), 65535), 1 if p.clean else 0
            )
        )
        return len(p.raised)

    def progress_line(self) -> str:
        c = self.core.counters
        t = (self.now_ns() - self.core.market.start_ns) / 1e9
        return (
            f"t={t:6.1f}s events={c.events:>9,} signals={c.signals_seen:>5} orders={c.orders_submitted:>5} "
            f"filled={c.orders_filled:>5} hedged={c.hedges_completed:>4} asym={c.asymmetric_episodes:>3} "
            f"state={self.core.engine.state.name}"
        )

    async def finish(self, settle_s: float = 2.0) -> None:
        """Stop opening positions, let working orders settle, reconcile once more."""
        self._stop_entries()
        await self.settle(settle_s)
        await self.cancel_leftovers(settle_s)
        await self.final_reconcile()
        self.pump()
        await self.io.stop()

    def request_stop(self, reason: str) -> None:
        """End the run's main phase now (`reason`: the signal): `run_for` returns at its next
        wake and the run finishes as after its duration, with working entries cancelled."""
        first = not self.stop_requested
        self.stop_requested = self.stop_requested or reason
        if not self._finishing:
            self._cut_short = True
        elif first:  # already settling after the duration: only the entries still go
            self._sink(S.control_record(self.now_ns(), S.ControlCommand.HALT, 0, os.getuid()))
        self.wake.set()

    def _stop_entries(self) -> None:
        """The run is ending: SHUTDOWN (open nothing new) into the engine; when it ends on a
        request (a signal), also HALT, as `basis ctl halt` sends it: working entries cancelled,
        hedges and unwinds go on. Journaled like any input, so a replay decides the same."""
        self._cut_short, self._finishing = False, True
        now = self.now_ns()
        self._sink(S.control_record(now, S.ControlCommand.SHUTDOWN))
        if self.stop_requested:
            self._sink(S.control_record(now, S.ControlCommand.HALT, 0, os.getuid()))

    def unsettled(self) -> tuple[int, int]:
        """(positions still being hedged or unwound, working orders), from the engine's state."""
        core = self.core
        positions = sum(1 for p in core.open_positions.values() if p.state in _UNSETTLED_HEDGE)
        return positions, len(core.orders.working())

    async def final_reconcile(self) -> None:
        """The run's last reconciliation pass; after a stop request, the terminal hears how the
        run stopped."""
        raised = await self.reconcile_pass()
        if self.stop_requested and self.progress:
            positions, orders = self.unsettled()
            found = "clean" if raised == 0 else "failed" if raised < 0 else f"{raised} mismatch(es)"
            self.progress(
                f"stopped ({self.stop_requested}): {positions} position(s) and {orders} order(s) left "
                f"unsettled; last reconciliation {found}; writing the results"
            )

    async def cancel_leftovers(self, settle_s: float) -> None:
        """After settling on a stop request: cancel every order still working (CANCEL_ALL, a
        journaled input) and wait up to `settle_s` more for the venues to confirm."""
        if not self.stop_requested or not self.core.orders.working():
            return
        n = len(self.core.orders.working())
        if self.progress:
            self.progress(f"stopping: cancelling {n} working order(s) still open after settling")
        self._sink(S.control_record(self.now_ns(), S.ControlCommand.CANCEL_ALL, 0, os.getuid()))
        deadline = self.now_ns() + int(settle_s * 1e9)
        while self.now_ns() < deadline:
            await self.run_for(0.1)
            if not self.core.orders.working():
                break

    def settled(self) -> bool:
        """No order in flight, no position left to hedge or unwind, and the engine out of its
        protective / unwinding / reconciling states (back to NORMAL after a clean pass)."""
        return (
            not self.core.orders.working()
            and not any(p.state in _UNSETTLED_HEDGE for p in self.core.open_positions.values())
            and self.core.engine.state not in _UNSETTLED_ENGINE
        )

    def deciding(self) -> bool:
        """The engine is up and taking records (always, when it runs in this process)."""
        return True

    async def settle(self, settle_s: float, max_factor: float = 6.0, restart_wait_s: float = 300.0) -> None:
        """Run at least `settle_s`, then on until settled (at most `max_factor` times longer):
        orders in doubt get verified and positions closed before the run ends. Time without a
        deciding engine (one restarting from its journal) does not count: once it is back it
        gets at least `settle_s` more, within `restart_wait_s` in all."""
        await self.run_for(settle_s)
        now = self.now_ns()
        deadline = now + int(settle_s * (max_factor - 1) * 1e9)
        cap = now + int(restart_wait_s * 1e9)
        while self.now_ns() < cap:
            if not self.deciding():
                deadline = max(deadline, self.now_ns() + int(settle_s * 1e9))
            elif self.settled() or self.now_ns() >= deadline:
                break
            await self.run_for(0.25)
