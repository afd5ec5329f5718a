"""An operator's commands inside the engine core: halt, resume, flatten, cancel-all, pause and
resume a venue, set a limit.

They arrive as CONTROL records (`basis ctl`, through the io side's control socket, engine/
control.py), journaled before the engine sees them like every input, so a replay of a run
steered by hand decides what the run decided. Each handler returns what the engine did
("accepted ...") or why it did nothing ("refused: ..."); a refusal changes no state. The io
side checks the same things before it sends a command, to answer at once; the engine checks
them again on its own state, which is the one that counts.

A mixin of EngineCore (basis_core/engine/core.py): it reads and writes the core's state, which
engine/parts.py declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .. import schema as S
from ..config import LIMIT_FIELDS, limit_key, policy_limit
from ..state.tables import EngineEvent, EngineState, HedgeEvent, HedgeState
from .actions import fire_engine, fire_hedge
from .parts import EngineParts

#: positions that flatten isolates: legs still working or not matched
_UNHEDGED = frozenset({HedgeState.LEG_WORKING, HedgeState.HEDGING, HedgeState.ASYMMETRIC})
#: positions being unwound already (a new round starts if the last one failed)
_UNWOUND = frozenset({HedgeState.ISOLATED, HedgeState.UNWINDING})
#: a limit a person may set only this far: every limit but min_edge_bps only down, min_edge_bps
#: only up (to at most this many bps); the configured value is the other bound
MAX_MIN_EDGE_BPS = 10_000.0


def limit_bounds(key: str, configured: object) -> tuple[float, float, bool]:
    """(low, high, whether low itself is excluded) of [limits] `key`, in [limits] units, when
    the configured policy (a PolicyConfig) is `configured`: a person may tighten a limit, and
    loosen it again up to the config, never beyond."""
    field, per_unit = policy_limit(key, 1.0)
    value = getattr(configured, field) / per_unit
    if key == "min_edge_bps":
        return value, MAX_MIN_EDGE_BPS, False
    return 0.0, value, True


def check_limit(key: str, value: float, configured: object) -> str:
    """Why [limits] `key` cannot be set to `value` ([limits] units) under the configured policy
    `configured`; "" when it can."""
    if key not in LIMIT_FIELDS:
        return f"unknown limit {key!r} (one of {', '.join(LIMIT_FIELDS)})"
    if not math.isfinite(value):
        return f"{key} = {value!r} is not a finite number"
    low, high, open_low = limit_bounds(key, configured)
    if value > high or value < low or (open_low and value == low):
        return (
            f"{key} = {value:g} is outside the bounds the config allows "
            f"{'(' if open_low else '['}{low:g}, {high:g}]: a limit may be tightened, never loosened"
        )
    return ""


class Operator(EngineParts):
    def _op_halt(self, c) -> str:
        """No new exposure; working entries cancelled. Hedges and unwinds go on."""
        if self.engine.state == EngineState.HALTED:
            return "accepted: already halted"
        n = sum(1 for o in self.orders.working() if o.purpose == "entry")
        fire_engine(self, EngineEvent.OPERATOR_HALT, "operator halt")  # cancels them (cancel_entries)
        return f"accepted: halted, {n} working entr{'y' if n == 1 else 'ies'} cancelled"

    def _op_resume(self, c) -> str:
        """HALTED -> RECONCILING: back to NORMAL only through a clean reconciliation pass with
        every position flat or hedged and every venue healthy for the window."""
        if self.engine.state != EngineState.HALTED:
            return f"refused: the engine is {self.engine.state.name}, not HALTED: nothing to resume"
        busy = sorted(p.opp_id for p in self.open_positions.values() if p.state in _UNWOUND | _UNHEDGED)
        if busy:
            return f"refused: opportunit{'y' if len(busy) == 1 else 'ies'} {busy[:5]} not yet flat or hedged"
        if not self.reconcile_clean_since:
            return "refused: the last reconciliation pass was not clean; resume once one is"
        fire_engine(self, EngineEvent.OPERATOR_RESUME, "operator resume")
        return "accepted: RECONCILING; NORMAL after a clean reconciliation pass"

    def _op_flatten(self, c) -> str:
        """Halt, cancel every working entry, and isolate every position that is not hedged so
        that the unwind policy flattens it (aggressive IOCs, retries, funds checked)."""
        fire_engine(self, EngineEvent.OPERATOR_HALT, "operator flatten")  # halted or not: cancel_entries
        isolated = 0
        for pos in list(self.open_positions.values()):
            if pos.state in _UNHEDGED:
                if pos.state != HedgeState.ASYMMETRIC:
                    fire_hedge(self, pos, HedgeEvent.BREACH, "operator flatten")
                fire_hedge(self, pos, HedgeEvent.ISOLATE, "operator flatten")  # cancel_working_legs
                isolated += 1
            elif pos.state in _UNWOUND and pos.unwind_failed:
                pos.unwind_attempts, pos.unwind_failed = 0, False  # a new round of unwinds
                isolated += 1
        return f"accepted: halted, {isolated} position(s) to unwind"

    def _op_cancel_all(self, c) -> str:
        n = self._cancel_working(lambda o: True)
        return f"accepted: {n} working order(s) cancelled"

    def _op_pause_venue(self, c) -> str:
        venue = self._venue_of(c)
        if not venue:
            return f"refused: no venue with id {int(c['venue'])}"
        v = self.board[venue]
        if v.paused:
            return f"accepted: {venue} already paused"
        v.paused = True
        return f"accepted: nothing new goes to {venue}"

    def _op_resume_venue(self, c) -> str:
        venue = self._venue_of(c)
        if not venue:
            return f"refused: no venue with id {int(c['venue'])}"
        v = self.board[venue]
        if not v.paused:
            return f"refused: {venue} is not paused"
        v.paused = False
        return f"accepted: {venue} takes new orders again ({v.state.name})"

    def _op_set_limit(self, c) -> str:
        index, value = int(c["aux"]), float(c["value"])
        if index >= len(LIMIT_FIELDS):
            return f"refused: no limit with index {index}"
        key = limit_key(index)
        why = check_limit(key, value, self.configured_policy)
        if why:
            return f"refused: {why}"
        field, v = policy_limit(key, value)
        change: dict[str, Any] = {field: v}
        self.policy = replace(self.policy, **change)
        if field == "min_edge_bps":
            self.market.set_min_edge(v)
        return f"accepted: {key} = {value:g}"

    # -- helpers ---------------------------------------------------------------------------------

    def _cancel_working(self, which: Callable) -> int:
        orders = [o for o in self.orders.working() if which(o)]
        for o in orders:
            self._cancel(o)
        return len(orders)

    def _venue_of(self, c) -> str:
        vid = int(c["venue"])
        if not 0 < vid < len(self.reg.venues.by_id):
            return ""
        name = self.reg.venues.name(vid)
        return name if name in self.board.venues else ""


#: ControlCommand -> its handler
OPERATOR: dict[S.ControlCommand, Callable[[Operator, object], str]] = {
    S.ControlCommand.HALT: Operator._op_halt,
    S.ControlCommand.RESUME: Operator._op_resume,
    S.ControlCommand.FLATTEN: Operator._op_flatten,
    S.ControlCommand.CANCEL_ALL: Operator._op_cancel_all,
    S.ControlCommand.PAUSE_VENUE: Operator._op_pause_venue,
    S.ControlCommand.RESUME_VENUE: Operator._op_resume_venue,
    S.ControlCommand.SET_LIMIT: Operator._op_set_limit,
}
