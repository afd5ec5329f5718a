"""State machines declared as tables: `(state, event) -> (next state, actions)`.

Every pair that is not in a table raises InvalidTransition; tests walk every missing pair.
fsm.py holds the generic machine, tables.py the four tables (ENGINE, VENUE, ORDER, HEDGE).
"""

from .fsm import Machine, Table, Transition
from .tables import (
    ENGINE,
    HEDGE,
    ORDER,
    VENUE,
    EngineEvent,
    EngineState,
    HedgeEvent,
    HedgeState,
    OrderEvent,
    OrderState,
    VenueEvent,
    VenueState,
)

__all__ = [
    "ENGINE",
    "HEDGE",
    "ORDER",
    "VENUE",
    "EngineEvent",
    "EngineState",
    "HedgeEvent",
    "HedgeState",
    "Machine",
    "OrderEvent",
    "OrderState",
    "Table",
    "Transition",
    "VenueEvent",
    "VenueState",
]
