"""What the engine does for each action a state table names (basis_core/state/tables.py).

A machine's `fire` returns the actions of the row it took; the engine fires its machines through
the functions here, which perform every returned name through one dispatch table per machine.
So the tables drive the behaviour: a name in a row is done because the row names it, and
tests/test_state_tables.py checks that each table's vocabulary (`ENGINE_ACTIONS` ...) is exactly
the keys of its dispatch table here.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import schema as S
from ..state.tables import EngineEvent, HedgeEvent, OrderEvent, VenueEvent
from .orders import ManagedOrder
from .parts import EngineParts
from .positions import HedgedPosition

# -- ENGINE ------------------------------------------------------------------------------------


def _lower_routing_rate(core: EngineParts) -> None:
    core._request(S.ControlCommand.RATE_FACTOR, int(core.policy.degraded_rate_factor * 1000))


def _restore_routing_rate(core: EngineParts) -> None:
    core._request(S.ControlCommand.RATE_FACTOR, 1000)


def _cancel_entries(core: EngineParts) -> None:
    for o in core.orders.working():
        if o.purpose == "entry":
            core._cancel(o)


#: ENGINE action -> what the engine does (the keys are tables.ENGINE_ACTIONS)
ENGINE: dict[str, Callable[[EngineParts], None]] = {
    "lower_routing_rate": _lower_routing_rate,
    "restore_routing_rate": _restore_routing_rate,
    "reconcile": lambda core: core._request_reconcile(),
    "cancel_entries": _cancel_entries,
}


def fire_engine(core: EngineParts, event: EngineEvent, cause: str) -> None:
    """Apply `event` to the engine's risk state and do what its row names."""
    for action in core.engine.fire(event, core.now, cause):
        ENGINE[action](core)


# -- VENUE -------------------------------------------------------------------------------------


def _back_off(core: EngineParts, venue: str, hold_ns: int) -> None:
    v = core.board[venue]
    v.throttled_until_ns = max(v.throttled_until_ns, core.now + hold_ns)


def _verify_orders(core: EngineParts, venue: str, hold_ns: int) -> None:
    """Query every order on `venue` that is not terminal; VERIFIED once all are known again."""
    pending = core.orders.working(venue)
    for o in pending:
        core._query(o)
    if not pending:
        fire_venue(core, venue, VenueEvent.VERIFIED, "no order in doubt")


#: VENUE action -> what the engine does, given the venue and the report's Retry-After in ns
#: (the keys are tables.VENUE_ACTIONS)
VENUE: dict[str, Callable[[EngineParts, str, int], None]] = {
    "back_off": _back_off,
    "verify_orders": _verify_orders,
}


def _perform_venue(core: EngineParts, venue: str, actions: tuple[str, ...], hold_ns: int) -> None:
    for action in actions:
        VENUE[action](core, venue, hold_ns)


def fire_venue(core: EngineParts, venue: str, event: VenueEvent, cause: str, hold_ns: int = 0) -> None:
    """Apply `event` to `venue`'s state and do what its row names; `hold_ns`: the Retry-After of
    a RATE_LIMITED report."""
    _perform_venue(core, venue, core.board.fire(venue, event, core.now, cause), hold_ns)


def venue_ok(core: EngineParts, venue: str) -> None:
    """A healthy answer from `venue` (OK, then HEALTHY_WINDOW once the window has passed)."""
    _perform_venue(core, venue, core.board.on_ok(venue, core.now), 0)


# -- HEDGE -------------------------------------------------------------------------------------


def _start_hedge_window(core: EngineParts, pos: HedgedPosition) -> None:
    pos.first_fill_ns = core.now


def _cancel_working_legs(core: EngineParts, pos: HedgedPosition) -> None:
    for o in pos.orders(core.orders.orders):
        if not o.terminal:
            core._cancel(o)


def _reopen(core: EngineParts, pos: HedgedPosition) -> None:
    core.open_positions[pos.opp_id] = pos
    pos.unwind_attempts, pos.unwind_failed = 0, False
    pos.asymmetric_episodes += 1
    core.counters.asymmetric_episodes += 1
    fire_engine(core, EngineEvent.SYMMETRY_BREACH, f"opportunity {pos.opp_id} reopened by a late fill")


#: HEDGE action -> what the engine does for the position (the keys are tables.HEDGE_ACTIONS)
HEDGE: dict[str, Callable[[EngineParts, HedgedPosition], None]] = {
    "start_hedge_window": _start_hedge_window,
    "cancel_working_legs": _cancel_working_legs,
    "reopen": _reopen,
}


def fire_hedge(core: EngineParts, pos: HedgedPosition, event: HedgeEvent, cause: str) -> None:
    """Apply `event` to `pos`'s state and do what its row names."""
    for action in pos.machine.fire(event, core.now, cause):
        HEDGE[action](core, pos)


# -- ORDER -------------------------------------------------------------------------------------

#: ORDER action -> what the engine does for the order (the keys are tables.ORDER_ACTIONS)
ORDER: dict[str, Callable[[EngineParts, ManagedOrder], None]] = {
    "send": lambda core, order: core._send(order),
    "send_cancel": lambda core, order: core._send_cancel(order),
    "verify_order": lambda core, order: core._query(order),
}


def fire_order(core: EngineParts, order: ManagedOrder, event: OrderEvent, cause: str) -> None:
    """Apply `event` to `order`'s state and do what its row names."""
    for action in order.machine.fire(event, core.now, cause):
        ORDER[action](core, order)
