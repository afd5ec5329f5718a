"""The four state machines (ARCHITECTURE.md, "State machines"), as data.

Each row is `(state, event, next state, actions)`. Actions are what the engine does because of
the transition: each table's vocabulary (`ENGINE_ACTIONS` ...) is declared beside it, and the
engine performs each name through one dispatch table per machine (basis_core/engine/actions.py);
tests/test_state_tables.py checks that every name a row carries is in its vocabulary and has a
performer. What a state means by itself (no new exposure, no dispatch to a venue, orders in
doubt asked about on a timer) is not an action: the state sets below say it, in one place.
Rows that keep the state are written out too: every pair an event can meet is decided here,
and anything else is an InvalidTransition.
"""

from __future__ import annotations

import enum

from .fsm import Row, Table

# -- engine risk state -------------------------------------------------------------------------


class EngineState(enum.Enum):
    NORMAL = "NORMAL"
    DEGRADED = "DEGRADED"
    PROTECTIVE = "PROTECTIVE"
    UNWINDING = "UNWINDING"
    RECONCILING = "RECONCILING"
    HALTED = "HALTED"


class EngineEvent(enum.Enum):
    RATE_LIMITED = "RATE_LIMITED"  # a venue throttled us
    THROTTLE_CLEARED = "THROTTLE_CLEARED"  # no venue throttled for the configured window
    SYMMETRY_BREACH = "SYMMETRY_BREACH"  # a hedged position went asymmetric
    VOL_SPIKE = "VOL_SPIKE"  # volatility above the protective level
    VOL_HALT = "VOL_HALT"  # volatility above the halt level
    UNWIND_STARTED = "UNWIND_STARTED"
    UNWIND_DONE = "UNWIND_DONE"  # every isolated position is flat
    UNWIND_FAILED = "UNWIND_FAILED"  # retries exhausted: a person must look
    EXPOSURE_RESOLVED = "EXPOSURE_RESOLVED"  # protective cause gone without an unwind
    RECONCILE_REQUESTED = "RECONCILE_REQUESTED"
    RECONCILE_MISMATCH = "RECONCILE_MISMATCH"
    POLICY_CHECKS_PASSED = "POLICY_CHECKS_PASSED"  # flat or hedged, reconciled, venues healthy long enough
    OPERATOR_HALT = "OPERATOR_HALT"
    OPERATOR_RESUME = "OPERATOR_RESUME"


_E, _V = EngineState, EngineEvent
_ENGINE_ROWS: list[Row[EngineState]] = [
    (_E.NORMAL, _V.RATE_LIMITED, _E.DEGRADED, ("lower_routing_rate",)),
    (_E.DEGRADED, _V.RATE_LIMITED, _E.DEGRADED, ("lower_routing_rate",)),
    (_E.DEGRADED, _V.THROTTLE_CLEARED, _E.NORMAL, ("restore_routing_rate",)),
    (_E.NORMAL, _V.THROTTLE_CLEARED, _E.NORMAL, ()),
]
for _es in (_E.PROTECTIVE, _E.UNWINDING, _E.RECONCILING, _E.HALTED):
    _ENGINE_ROWS += [
        (_es, _V.RATE_LIMITED, _es, ("lower_routing_rate",)),
        (_es, _V.THROTTLE_CLEARED, _es, ()),
    ]
for _es in (_E.NORMAL, _E.DEGRADED):
    _ENGINE_ROWS += [
        (_es, _V.SYMMETRY_BREACH, _E.PROTECTIVE, ()),
        (_es, _V.VOL_SPIKE, _E.PROTECTIVE, ()),
        (_es, _V.RECONCILE_REQUESTED, _E.RECONCILING, ("reconcile",)),
        (_es, _V.RECONCILE_MISMATCH, _E.RECONCILING, ()),
    ]
_ENGINE_ROWS += [
    (_E.PROTECTIVE, _V.SYMMETRY_BREACH, _E.PROTECTIVE, ()),
    (_E.PROTECTIVE, _V.VOL_SPIKE, _E.PROTECTIVE, ()),
    (_E.PROTECTIVE, _V.UNWIND_STARTED, _E.UNWINDING, ()),
    (_E.PROTECTIVE, _V.EXPOSURE_RESOLVED, _E.RECONCILING, ("reconcile",)),
    (_E.PROTECTIVE, _V.RECONCILE_REQUESTED, _E.PROTECTIVE, ("reconcile",)),
    (_E.PROTECTIVE, _V.RECONCILE_MISMATCH, _E.PROTECTIVE, ()),
    (_E.UNWINDING, _V.SYMMETRY_BREACH, _E.UNWINDING, ()),
    (_E.UNWINDING, _V.VOL_SPIKE, _E.UNWINDING, ()),
    (_E.UNWINDING, _V.UNWIND_STARTED, _E.UNWINDING, ()),
    (_E.UNWINDING, _V.UNWIND_DONE, _E.RECONCILING, ("reconcile",)),
    (_E.UNWINDING, _V.UNWIND_FAILED, _E.HALTED, ()),
    (_E.UNWINDING, _V.RECONCILE_REQUESTED, _E.UNWINDING, ("reconcile",)),
    (_E.UNWINDING, _V.RECONCILE_MISMATCH, _E.UNWINDING, ()),
    (_E.RECONCILING, _V.SYMMETRY_BREACH, _E.PROTECTIVE, ()),
    (_E.RECONCILING, _V.VOL_SPIKE, _E.PROTECTIVE, ()),
    (_E.RECONCILING, _V.RECONCILE_REQUESTED, _E.RECONCILING, ("reconcile",)),
    (_E.RECONCILING, _V.RECONCILE_MISMATCH, _E.RECONCILING, ()),
    (_E.RECONCILING, _V.POLICY_CHECKS_PASSED, _E.NORMAL, ()),
    (_E.RECONCILING, _V.EXPOSURE_RESOLVED, _E.RECONCILING, ()),
    (_E.HALTED, _V.SYMMETRY_BREACH, _E.HALTED, ()),
    (_E.HALTED, _V.VOL_SPIKE, _E.HALTED, ()),
    (_E.HALTED, _V.VOL_HALT, _E.HALTED, ()),
    (_E.HALTED, _V.RECONCILE_REQUESTED, _E.HALTED, ("reconcile",)),
    (_E.HALTED, _V.RECONCILE_MISMATCH, _E.HALTED, ()),
    (_E.HALTED, _V.OPERATOR_HALT, _E.HALTED, ("cancel_entries",)),
    (_E.HALTED, _V.OPERATOR_RESUME, _E.RECONCILING, ("reconcile",)),
    (_E.HALTED, _V.UNWIND_STARTED, _E.HALTED, ()),
    (_E.HALTED, _V.UNWIND_DONE, _E.HALTED, ()),
    (_E.HALTED, _V.UNWIND_FAILED, _E.HALTED, ()),
]
for _es in (_E.NORMAL, _E.DEGRADED, _E.PROTECTIVE, _E.UNWINDING, _E.RECONCILING):
    _ENGINE_ROWS += [
        (_es, _V.OPERATOR_HALT, _E.HALTED, ("cancel_entries",)),
        (_es, _V.VOL_HALT, _E.HALTED, ("cancel_entries",)),
    ]
# an unwind that failed while the engine was not UNWINDING (none of its orders could be sent, or
# the position reopened after the engine left UNWINDING): halted, working entries left alone
for _es in (_E.NORMAL, _E.DEGRADED, _E.PROTECTIVE, _E.RECONCILING):
    _ENGINE_ROWS.append((_es, _V.UNWIND_FAILED, _E.HALTED, ()))

ENGINE = Table("engine", EngineState, EngineEvent, _ENGINE_ROWS)

#: what the ENGINE table's rows ask the engine to do:
#: lower_routing_rate / restore_routing_rate — ask the io side for the degraded / full rate;
#: reconcile — ask for a reconciliation pass now; cancel_entries — cancel every working entry.
#: Entering PROTECTIVE, UNWINDING, RECONCILING or HALTED freezes new exposure by the state itself
#: (NO_NEW_EXPOSURE); RECONCILING asks for passes until one is clean; a breaching position is
#: isolated and unwound by its own HEDGE machine; alerts follow the state changes (engine/alerts.py).
ENGINE_ACTIONS = frozenset({"lower_routing_rate", "restore_routing_rate", "reconcile", "cancel_entries"})

#: engine states in which no new exposure may be opened
NO_NEW_EXPOSURE = frozenset({_E.PROTECTIVE, _E.UNWINDING, _E.RECONCILING, _E.HALTED})


# -- venue state -------------------------------------------------------------------------------


class VenueState(enum.Enum):
    UP = "UP"
    THROTTLED = "THROTTLED"
    SUSPECT = "SUSPECT"
    QUARANTINED = "QUARANTINED"
    DOWN = "DOWN"


class VenueEvent(enum.Enum):
    OK = "OK"  # a healthy answer
    RATE_LIMITED = "RATE_LIMITED"
    TIMEOUT = "TIMEOUT"
    VERIFIED = "VERIFIED"  # every order we sent there is known to both sides again
    MAINTENANCE = "MAINTENANCE"
    MAINTENANCE_OVER = "MAINTENANCE_OVER"
    DISCONNECTED = "DISCONNECTED"
    RECONNECTED = "RECONNECTED"
    HEALTHY_WINDOW = "HEALTHY_WINDOW"  # healthy for the configured time


_S, _W = VenueState, VenueEvent
_VENUE_ROWS: list[Row[VenueState]] = [
    (_S.UP, _W.OK, _S.UP, ()),
    (_S.UP, _W.HEALTHY_WINDOW, _S.UP, ()),
    (_S.UP, _W.VERIFIED, _S.UP, ()),
    (_S.UP, _W.MAINTENANCE_OVER, _S.UP, ()),
    (_S.UP, _W.RECONNECTED, _S.UP, ()),
    (_S.UP, _W.RATE_LIMITED, _S.THROTTLED, ("back_off",)),
    (_S.THROTTLED, _W.OK, _S.THROTTLED, ()),
    (_S.THROTTLED, _W.RATE_LIMITED, _S.THROTTLED, ("back_off",)),
    (_S.THROTTLED, _W.HEALTHY_WINDOW, _S.UP, ()),
    (_S.THROTTLED, _W.VERIFIED, _S.THROTTLED, ()),
    (_S.THROTTLED, _W.MAINTENANCE_OVER, _S.THROTTLED, ()),
    (_S.THROTTLED, _W.RECONNECTED, _S.THROTTLED, ()),
    (_S.SUSPECT, _W.OK, _S.SUSPECT, ()),
    (_S.SUSPECT, _W.RATE_LIMITED, _S.SUSPECT, ("back_off",)),
    (_S.SUSPECT, _W.TIMEOUT, _S.SUSPECT, ("verify_orders",)),
    (_S.SUSPECT, _W.HEALTHY_WINDOW, _S.SUSPECT, ()),
    (_S.SUSPECT, _W.VERIFIED, _S.UP, ()),
    (_S.SUSPECT, _W.MAINTENANCE_OVER, _S.SUSPECT, ()),
    (_S.SUSPECT, _W.RECONNECTED, _S.SUSPECT, ()),
    (_S.QUARANTINED, _W.MAINTENANCE_OVER, _S.SUSPECT, ("verify_orders",)),
    (_S.DOWN, _W.RECONNECTED, _S.SUSPECT, ("verify_orders",)),
]
for _vs in (_S.UP, _S.THROTTLED):
    _VENUE_ROWS += [
        (_vs, _W.TIMEOUT, _S.SUSPECT, ("verify_orders",)),
        (_vs, _W.MAINTENANCE, _S.QUARANTINED, ()),
        (_vs, _W.DISCONNECTED, _S.DOWN, ()),
    ]
_VENUE_ROWS += [
    (_S.SUSPECT, _W.MAINTENANCE, _S.QUARANTINED, ()),
    (_S.SUSPECT, _W.DISCONNECTED, _S.DOWN, ()),
    (_S.QUARANTINED, _W.DISCONNECTED, _S.DOWN, ()),
    (_S.DOWN, _W.MAINTENANCE, _S.QUARANTINED, ()),
]
for _ve in (
    _W.OK,
    _W.TIMEOUT,
    _W.VERIFIED,
    _W.MAINTENANCE,
    _W.HEALTHY_WINDOW,
    _W.RECONNECTED,
):
    _VENUE_ROWS.append((_S.QUARANTINED, _ve, _S.QUARANTINED, ()))
for _ve in (
    _W.OK,
    _W.TIMEOUT,
    _W.VERIFIED,
    _W.MAINTENANCE_OVER,
    _W.HEALTHY_WINDOW,
    _W.DISCONNECTED,
):
    _VENUE_ROWS.append((_S.DOWN, _ve, _S.DOWN, ()))
# a Retry-After holds new orders to the venue whatever its state
_VENUE_ROWS += [(_vs, _W.RATE_LIMITED, _vs, ("back_off",)) for _vs in (_S.QUARANTINED, _S.DOWN)]

VENUE = Table("venue", VenueState, VenueEvent, _VENUE_ROWS)

#: what the VENUE table's rows ask the engine to do: back_off — hold new orders to the venue for
#: the report's Retry-After; verify_orders — query every order working there by client order id
#: (VERIFIED once none is in doubt). Leaving UP stops dispatch there by the state itself
#: (NO_DISPATCH; unwinds reroute away from it only with reroute_on_maintenance), VERIFIED resumes
#: it; the routing rate follows the ENGINE table (RATE_LIMITED, THROTTLE_CLEARED).
VENUE_ACTIONS = frozenset({"back_off", "verify_orders"})

#: venue states to which no order may be sent (cancels and verification queries excepted)
NO_DISPATCH = frozenset({_S.SUSPECT, _S.QUARANTINED, _S.DOWN})
#: venue states that only a healthy answer to a request sent after they began ends (maintenance,
#: lost connection): a late answer to an earlier request says how the venue was before
OUTAGE = frozenset({_S.QUARANTINED, _S.DOWN})


# -- order -------------------------------------------------------------------------------------


class OrderState(enum.Enum):
    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    ACKED = "ACKED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    UNKNOWN = "UNKNOWN"  # a request timed out: verify by client order id before anything else
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class OrderEvent(enum.Enum):
    """A trigger of the ORDER machine: what a venue reported (from an ORDER_EVENT record's
    `schema.OrderEventType`, mapped by the engine) and our own steps (SUBMIT, CANCEL_REQUEST,
    LOST)."""

    SUBMIT = "SUBMIT"
    ACK = "ACK"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"
    CANCEL_REQUEST = "CANCEL_REQUEST"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECT = "REJECT"
    TIMEOUT = "TIMEOUT"
    NOT_FOUND = "NOT_FOUND"  # a targeted query by client order id: the venue does not have it (yet)
    LOST = "LOST"  # still not found after the grace period: it never reached the venue


_O, _X = OrderState, OrderEvent
_ORDER_ROWS: list[Row[OrderState]] = [
    (_O.NEW, _X.SUBMIT, _O.SUBMITTED, ("send",)),
    (_O.NEW, _X.REJECT, _O.REJECTED, ()),
    (_O.NEW, _X.CANCEL_REQUEST, _O.CANCELED, ()),
    (_O.SUBMITTED, _X.CANCEL_REQUEST, _O.PENDING_CANCEL, ("send_cancel",)),
    (_O.SUBMITTED, _X.NOT_FOUND, _O.SUBMITTED, ()),  # a query raced the submit; ask again later
    (_O.ACKED, _X.CANCEL_REQUEST, _O.PENDING_CANCEL, ("send_cancel",)),
    (_O.PARTIALLY_FILLED, _X.CANCEL_REQUEST, _O.PENDING_CANCEL, ("send_cancel",)),
    (_O.PENDING_CANCEL, _X.CANCEL_REQUEST, _O.PENDING_CANCEL, ("send_cancel",)),
    (_O.PENDING_CANCEL, _X.ACK, _O.PENDING_CANCEL, ()),
    (_O.PENDING_CANCEL, _X.PARTIAL_FILL, _O.PENDING_CANCEL, ()),
    (_O.PENDING_CANCEL, _X.REJECT, _O.UNKNOWN, ()),  # cancel refused: filled or gone?
    (_O.PENDING_CANCEL, _X.NOT_FOUND, _O.UNKNOWN, ()),
    (_O.UNKNOWN, _X.TIMEOUT, _O.UNKNOWN, ("verify_order",)),
    (_O.UNKNOWN, _X.CANCEL_REQUEST, _O.UNKNOWN, ("verify_order",)),
    (_O.UNKNOWN, _X.NOT_FOUND, _O.UNKNOWN, ()),  # may still be in flight: asked again on the timer
    (_O.UNKNOWN, _X.LOST, _O.REJECTED, ()),  # it never reached the venue
    (_O.UNKNOWN, _X.ACK, _O.ACKED, ()),
    (_O.UNKNOWN, _X.PARTIAL_FILL, _O.PARTIALLY_FILLED, ()),
    (_O.UNKNOWN, _X.REJECT, _O.REJECTED, ()),
]
for _os in (_O.SUBMITTED, _O.ACKED, _O.PARTIALLY_FILLED, _O.PENDING_CANCEL):
    _ORDER_ROWS += [
        (_os, _X.FILL, _O.FILLED, ()),
        (_os, _X.CANCELED, _O.CANCELED, ()),
        (_os, _X.EXPIRED, _O.EXPIRED, ()),
        (_os, _X.TIMEOUT, _O.UNKNOWN, ("verify_order",)),
    ]
for _os in (_O.SUBMITTED, _O.ACKED, _O.PARTIALLY_FILLED):
    _ORDER_ROWS += [(_os, _X.PARTIAL_FILL, _O.PARTIALLY_FILLED, ())]
_ORDER_ROWS += [
    (_O.SUBMITTED, _X.ACK, _O.ACKED, ()),
    (_O.SUBMITTED, _X.REJECT, _O.REJECTED, ()),
    (_O.ACKED, _X.ACK, _O.ACKED, ()),
    # refused after it was seen working: a chain transaction seen pending, then mined reverted
    (_O.ACKED, _X.REJECT, _O.REJECTED, ()),
    (_O.ACKED, _X.NOT_FOUND, _O.UNKNOWN, ()),
    (_O.PARTIALLY_FILLED, _X.ACK, _O.PARTIALLY_FILLED, ()),
    (_O.PARTIALLY_FILLED, _X.NOT_FOUND, _O.UNKNOWN, ()),
    (_O.UNKNOWN, _X.FILL, _O.FILLED, ()),
    (_O.UNKNOWN, _X.CANCELED, _O.CANCELED, ()),
    (_O.UNKNOWN, _X.EXPIRED, _O.EXPIRED, ()),
    # sent long ago and still not at the venue: in doubt, then REJECTED if it stays unfound
    (_O.SUBMITTED, _X.LOST, _O.UNKNOWN, ()),
]
# terminal states: late news is booked (a fill that happened before the cancel is still a fill),
# repeats are ignored, nothing reopens the order
for _os in (_O.FILLED, _O.CANCELED, _O.EXPIRED, _O.REJECTED):
    for _oe in (
        _X.ACK,
        _X.CANCELED,
        _X.EXPIRED,
        _X.CANCEL_REQUEST,
        _X.NOT_FOUND,
        _X.REJECT,
        _X.LOST,
    ):
        _ORDER_ROWS.append((_os, _oe, _os, ()))
    # a fill is a fact even when it arrives late (or for an order declared not placed): it is
    # booked, so exposure counts it, and reconciliation compares it with the venue
    _ORDER_ROWS += [
        (_os, _X.FILL, _os, ()),
        (_os, _X.PARTIAL_FILL, _os, ()),
        (_os, _X.TIMEOUT, _os, ("verify_order",)),  # asked about all the same
    ]

ORDER = Table(
    "order", OrderState, OrderEvent, _ORDER_ROWS, terminal=(_O.FILLED, _O.CANCELED, _O.EXPIRED, _O.REJECTED)
)

#: what the ORDER table's rows ask the engine to do: send — the ORDER_NEW record; send_cancel —
#: the ORDER_CANCEL record; verify_order — an ORDER_QUERY by client order id now. Fills are booked
#: by trade id before the machine hears of them (FILL or PARTIAL_FILL is chosen from the booked
#: quantity), late ones too; an order UNKNOWN is asked about again on the verify interval by the
#: state itself; leaving UNKNOWN (adopted, or REJECTED as never placed) is the state.
ORDER_ACTIONS = frozenset({"send", "send_cancel", "verify_order"})


# -- hedged position ---------------------------------------------------------------------------


class HedgeState(enum.Enum):
    PENDING = "PENDING"
    LEG_WORKING = "LEG_WORKING"
    HEDGING = "HEDGING"
    COMPLETE = "COMPLETE"
    ASYMMETRIC = "ASYMMETRIC"
    ISOLATED = "ISOLATED"
    UNWINDING = "UNWINDING"
    CLOSED = "CLOSED"
    RECONCILED = "RECONCILED"


class HedgeEvent(enum.Enum):
    DISPATCHED = "DISPATCHED"
    LEG_FILLED = "LEG_FILLED"  # some fill on some leg, legs not yet matched
    BOTH_FILLED = "BOTH_FILLED"  # legs matched within tolerance
    NOTHING_FILLED = "NOTHING_FILLED"  # every leg terminal with no fill
    DEGRADE = "DEGRADE"  # symmetry kernel: degrade
    BREACH = "BREACH"  # symmetry kernel: breach (fill ratio or hedge window)
    ISOLATE = "ISOLATE"
    UNWIND = "UNWIND"
    FLAT = "FLAT"  # residual within tolerance after unwind
    UNWIND_FAILED = "UNWIND_FAILED"
    RECONCILED = "RECONCILED"


_H, _G = HedgeState, HedgeEvent
_HEDGE_ROWS: list[Row[HedgeState]] = [
    (_H.PENDING, _G.DISPATCHED, _H.LEG_WORKING, ()),
    (_H.PENDING, _G.NOTHING_FILLED, _H.CLOSED, ()),
    (_H.LEG_WORKING, _G.DISPATCHED, _H.LEG_WORKING, ()),
    (_H.LEG_WORKING, _G.LEG_FILLED, _H.HEDGING, ("start_hedge_window",)),
    (_H.LEG_WORKING, _G.NOTHING_FILLED, _H.CLOSED, ()),
    (_H.HEDGING, _G.LEG_FILLED, _H.HEDGING, ()),
    (_H.HEDGING, _G.DISPATCHED, _H.HEDGING, ()),
    (_H.ASYMMETRIC, _G.ISOLATE, _H.ISOLATED, ("cancel_working_legs",)),
    (_H.ASYMMETRIC, _G.LEG_FILLED, _H.ASYMMETRIC, ()),
    (_H.ASYMMETRIC, _G.BREACH, _H.ASYMMETRIC, ()),
    (_H.ASYMMETRIC, _G.DEGRADE, _H.ASYMMETRIC, ()),
    (_H.ISOLATED, _G.UNWIND, _H.UNWINDING, ()),
    (_H.ISOLATED, _G.FLAT, _H.CLOSED, ()),
    (_H.ISOLATED, _G.LEG_FILLED, _H.ISOLATED, ()),
    (_H.ISOLATED, _G.BREACH, _H.ISOLATED, ()),
    (_H.ISOLATED, _G.DEGRADE, _H.ISOLATED, ()),
    (_H.UNWINDING, _G.LEG_FILLED, _H.UNWINDING, ()),
    (_H.UNWINDING, _G.UNWIND, _H.UNWINDING, ()),
    (_H.UNWINDING, _G.FLAT, _H.CLOSED, ()),
    (_H.UNWINDING, _G.UNWIND_FAILED, _H.ISOLATED, ()),
    (_H.UNWINDING, _G.BREACH, _H.UNWINDING, ()),
    (_H.UNWINDING, _G.DEGRADE, _H.UNWINDING, ()),
    (_H.COMPLETE, _G.LEG_FILLED, _H.COMPLETE, ()),
    (_H.COMPLETE, _G.RECONCILED, _H.RECONCILED, ()),
    # a fill that arrives after the position was closed (an order we had declared never placed,
    # a fill reported after its cancel) reopens it: isolated, then unwound like any breach
    (_H.CLOSED, _G.LEG_FILLED, _H.ISOLATED, ("reopen",)),
    (_H.RECONCILED, _G.LEG_FILLED, _H.ISOLATED, ("reopen",)),
    (_H.CLOSED, _G.RECONCILED, _H.RECONCILED, ()),
]
for _hs in (_H.LEG_WORKING, _H.HEDGING):
    _HEDGE_ROWS += [
        (_hs, _G.BOTH_FILLED, _H.COMPLETE, ()),
        (_hs, _G.DEGRADE, _hs, ()),
        (_hs, _G.BREACH, _H.ASYMMETRIC, ()),
    ]
for _hs in (_H.ASYMMETRIC, _H.ISOLATED, _H.UNWINDING):
    _HEDGE_ROWS.append((_hs, _G.BOTH_FILLED, _H.COMPLETE, ()))

HEDGE = Table("hedge", HedgeState, HedgeEvent, _HEDGE_ROWS, terminal=(_H.RECONCILED,))

#: what the HEDGE table's rows ask the engine to do: start_hedge_window — the window in which the
#: legs must match runs from the first fill; cancel_working_legs — cancel the isolated position's
#: working orders; reopen — a closed position exposed again by a late fill is open again, a new
#: asymmetric episode and a SYMMETRY_BREACH of the engine. DISPATCHED and UNWIND record orders
#: already sent; an ISOLATED position is unwound by the state itself (the timed checks), and a
#: pair stays busy while its position is not COMPLETE, CLOSED or RECONCILED.
HEDGE_ACTIONS = frozenset({"start_hedge_window", "cancel_working_legs", "reopen"})
