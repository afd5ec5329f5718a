import itertools

import pytest

from basis_core.errors import InvalidTransition
from basis_core.state import ENGINE, HEDGE, ORDER, VENUE, Machine
from basis_core.state.tables import (
    NO_DISPATCH,
    NO_NEW_EXPOSURE,
    EngineEvent,
    EngineState,
    HedgeEvent,
    HedgeState,
    OrderEvent,
    OrderState,
    VenueEvent,
    VenueState,
)

TABLES = [ENGINE, VENUE, ORDER, HEDGE]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_every_pair_not_in_the_table_raises_invalid_transition(table):
    missing = 0
    for state, event in itertools.product(table.states, table.events):
        if table.allows(state, event):
            assert table.lookup(state, event).next in table.states
            continue
        missing += 1
        with pytest.raises(InvalidTransition) as err:
            table.lookup(state, event)
        assert err.value.state == state.name and err.value.event == event.name
    assert missing > 0 or table is VENUE  # every table leaves something undecidable on purpose


@pytest.mark.parametrize(
    "table, start",
    [
        (ENGINE, EngineState.NORMAL),
        (VENUE, VenueState.UP),
        (ORDER, OrderState.NEW),
        (HEDGE, HedgeState.PENDING),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_every_state_is_reachable_from_the_start(table, start):
    assert table.reachable(start) == set(table.states)


def test_terminal_order_states_never_reopen():
    for state in ORDER.terminal:
        for event in OrderEvent:
            if ORDER.allows(state, event):
                assert ORDER.lookup(state, event).next == state


def test_engine_returns_to_normal_only_through_reconciling_policy_checks():
    into_normal = [
        (s, e)
        for (s, e) in ENGINE.pairs()
        if ENGINE.lookup(s, e).next == EngineState.NORMAL and s != EngineState.NORMAL
    ]
    assert set(into_normal) == {
        (EngineState.RECONCILING, EngineEvent.POLICY_CHECKS_PASSED),
        (EngineState.DEGRADED, EngineEvent.THROTTLE_CLEARED),
    }


def test_venue_leaves_suspect_only_after_verification():
    exits = {
        e for (s, e) in VENUE.pairs() if s == VenueState.SUSPECT and VENUE.lookup(s, e).next == VenueState.UP
    }
    assert exits == {VenueEvent.VERIFIED}
    assert {VenueState.SUSPECT, VenueState.QUARANTINED, VenueState.DOWN} == NO_DISPATCH


def test_breach_protective_unwind_reconcile_normal_flow_records_causes():
    seen = []
    m = Machine(ENGINE, EngineState.NORMAL, key="engine", on_change=seen.append)
    m.fire(EngineEvent.SYMMETRY_BREACH, 1, "fill ratio 0.4 < 0.9")
    assert m.state in NO_NEW_EXPOSURE
    m.fire(EngineEvent.UNWIND_STARTED, 2, "unwind opp 7")
    m.fire(EngineEvent.UNWIND_DONE, 3, "flat")
    with pytest.raises(InvalidTransition):
        m.fire(EngineEvent.UNWIND_DONE, 4)  # nothing left to unwind in RECONCILING
    assert m.fire(EngineEvent.POLICY_CHECKS_PASSED, 5, "reconciled") == ()  # NORMAL itself resumes
    assert [(c.src, c.dst, c.cause) for c in seen] == [
        ("NORMAL", "PROTECTIVE", "fill ratio 0.4 < 0.9"),
        ("PROTECTIVE", "UNWINDING", "unwind opp 7"),
        ("UNWINDING", "RECONCILING", "flat"),
        ("RECONCILING", "NORMAL", "reconciled"),
    ]


def test_order_timeout_then_lookup_adopts_instead_of_duplicating():
    m = Machine(ORDER, OrderState.NEW)
    m.fire(OrderEvent.SUBMIT, 1)
    assert "verify_order" in m.fire(OrderEvent.TIMEOUT, 2)
    assert m.state == OrderState.UNKNOWN
    m.fire(OrderEvent.PARTIAL_FILL, 3)
    assert m.state == OrderState.PARTIALLY_FILLED  # adopted
    assert m.fire(OrderEvent.CANCEL_REQUEST, 4) == ("send_cancel",)
    m.fire(OrderEvent.FILL, 5)  # the cancel lost the race
    assert m.state == OrderState.FILLED
    assert m.terminal and m.fire(OrderEvent.CANCELED, 6) == ()
    assert m.fire(OrderEvent.FILL, 7) == () and m.state == OrderState.FILLED  # booked before, late


def test_hedge_asymmetry_path():
    m = Machine(HEDGE, HedgeState.PENDING)
    for ev in (
        HedgeEvent.DISPATCHED,
        HedgeEvent.LEG_FILLED,
        HedgeEvent.BREACH,
        HedgeEvent.ISOLATE,
        HedgeEvent.UNWIND,
        HedgeEvent.FLAT,
        HedgeEvent.RECONCILED,
    ):
        m.fire(ev, 0)
    assert m.state == HedgeState.RECONCILED and m.terminal
    with pytest.raises(InvalidTransition):
        m.fire(HedgeEvent.DISPATCHED, 0)


def test_tables_refuse_duplicate_rows():
    from basis_core.state.fsm import Table

    with pytest.raises(ValueError):
        Table(
            "t",
            OrderState,
            OrderEvent,
            [
                (OrderState.NEW, OrderEvent.SUBMIT, OrderState.SUBMITTED, ()),
                (OrderState.NEW, OrderEvent.SUBMIT, OrderState.ACKED, ()),
            ],
        )


def test_an_order_machine_reports_its_changes_without_keeping_them():
    """One machine per order: a long run must not hold every change of every order."""
    from basis_core.engine.orders import OrderManager
    from basis_core.schema import OrderType, Side

    seen = []
    book = OrderManager(on_change=seen.append)
    order = book.create(1, 0, "alpha", "BTCUSDT", Side.BUY, OrderType.IOC, 1.0, 100.0, 5.0, 10)
    order.machine.fire(OrderEvent.SUBMIT, 11)
    order.machine.fire(OrderEvent.ACK, 12)
    assert [c.dst for c in seen] == ["SUBMITTED", "ACKED"] and order.machine.history == []
    assert order.state == OrderState.ACKED and order.machine.since_ns == 12


# -- the actions a table names are what the engine does ------------------------------------------


def _vocabularies():
    from basis_core.engine import actions
    from basis_core.state.tables import ENGINE_ACTIONS, HEDGE_ACTIONS, ORDER_ACTIONS, VENUE_ACTIONS

    return [
        (ENGINE, ENGINE_ACTIONS, actions.ENGINE),
        (VENUE, VENUE_ACTIONS, actions.VENUE),
        (ORDER, ORDER_ACTIONS, actions.ORDER),
        (HEDGE, HEDGE_ACTIONS, actions.HEDGE),
    ]


@pytest.mark.parametrize("i", range(4), ids=["engine", "venue", "order", "hedge"])
def test_every_action_a_table_names_is_declared_and_performed(i):
    """A row may name only an action of its table's vocabulary; the vocabulary is exactly what
    some row names (no dead name) and exactly what the engine's dispatch table performs."""
    table, vocabulary, performers = _vocabularies()[i]
    named = {a for pair in table.pairs() for a in table.lookup(*pair).actions}
    assert named == vocabulary
    assert set(performers) == vocabulary


def test_the_engine_fires_its_machines_only_through_the_dispatch():
    """A machine fired anywhere else would drop the actions its row names."""
    import pathlib
    import re

    import basis_core.engine as pkg

    fired = re.compile(r"\.engine\.fire\(|\bboard\.fire\(|\bboard\.on_ok\(|\bmachine\.fire\(")
    where = [
        f"{path.name}:{n}"
        for path in pathlib.Path(pkg.__file__).parent.glob("*.py")
        if path.name not in ("actions.py", "venues.py")  # venues.py: the board fires, actions.py performs
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if fired.search(line)
    ]
    assert where == []
