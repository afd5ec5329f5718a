"""The pieces of an accepted decision made cheaper, each held equal to what it replaced: the
ORDER_NEW record packed in one call (engine/core.py `order_new_record`) against the record built
field by field; the Python book check (BookState.usable) against its kernel (usable_nb); the
state tables' compiled arrays (state/fsm.py `Compiled`) against their rows, an undecided pair
still an InvalidTransition."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_core import schema as S
from basis_core.engine.core import order_new_record
from basis_core.errors import InvalidTransition
from basis_core.kernels.book import BookState, usable_nb
from basis_core.state import tables
from basis_core.state.fsm import UNDECIDED, Machine, Table

u8 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
f64 = st.floats(allow_nan=True, allow_infinity=True)
f32ish = st.one_of(st.floats(min_value=-3.4e38, max_value=3.4e38), st.just(float("nan")))


def _reference(ts, venue, instrument, side, aux, coid, price, qty, depends_on, slip) -> np.ndarray:
    """The record as the engine built it before: a copy of a zeroed ORDER_NEW template (source
    ENGINE), each field set through numpy."""
    tpl = S.empty(S.Kind.ORDER_NEW)
    tpl["source"] = S.Source.ENGINE
    rec = tpl.view(S.GENERIC).copy().view(S.ORDER_NEW)
    rec["ts_ns"] = ts
    rec["venue"], rec["instrument"] = venue, instrument
    rec["sub"], rec["aux"] = side, aux
    rec["coid"], rec["price"], rec["qty"] = coid, price, qty
    rec["depends_on"], rec["max_slip_bps"] = depends_on, slip
    return rec.view(S.GENERIC)


@settings(max_examples=300, deadline=None)
@given(
    ts=i64,
    venue=st.integers(0, 255),
    instrument=st.integers(0, 2**16 - 1),
    side=st.sampled_from([int(s) for s in S.Side]),
    otype=st.sampled_from([int(t) for t in S.OrderType]),
    purpose=st.sampled_from([int(p) for p in S.Purpose]),
    coid=u8,
    price=st.one_of(st.none(), f64),
    qty=f64,
    depends_on=u8,
    slip=f32ish,
)
def test_the_packed_order_record_is_the_record_built_field_by_field(
    ts, venue, instrument, side, otype, purpose, coid, price, qty, depends_on, slip
):
    args = (ts, venue, instrument, side, otype | (purpose << 8), coid, price, qty, depends_on, slip)
    got = order_new_record(*args)
    assert got.dtype == S.GENERIC and got.shape == (1,)
    assert got.tobytes() == _reference(*args).tobytes()
    rec = got.view(S.ORDER_NEW)[0]
    assert rec["kind"] == S.Kind.ORDER_NEW and rec["source"] == S.Source.ENGINE and rec["check"] == 0


@settings(max_examples=400, deadline=None)
@given(
    status=st.integers(0, 255),
    ts=i64,
    bids=st.integers(-2, 3),
    asks=st.integers(-2, 3),
    now=i64,
    max_age=i64,
)
def test_the_python_book_check_is_the_kernel(status, ts, bids, asks, now, max_age):
    """Ages wrap at 64 bits in both (a book time far from `now` on the other side of zero)."""
    b = BookState(2, 2)
    b.status[1, 1], b.ts[1, 1], b.cnt[1, 1] = status, ts, (bids, asks)
    expected = bool(usable_nb(b.cnt, b.ts, b.status, 1, 1, now, max_age))
    assert b.usable(1, 1, now, max_age) is expected


TABLES = [tables.ENGINE, tables.VENUE, tables.ORDER, tables.HEDGE]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_a_compiled_table_decides_each_pair_as_its_rows(table):
    c = table.compiled
    assert c.next_state.shape == (len(table.states), len(table.events)) and not c.next_state.flags.writeable
    assert c.action_sets[0] == ()
    decided = 0
    for s, state in enumerate(table.states):
        for e, event in enumerate(table.events):
            if table.allows(state, event):
                decided += 1
                assert table.decode(s, e) == table.lookup(state, event)
                assert table.state_list[int(c.next_state[s, e])] is table.lookup(state, event).next
            else:
                assert c.next_state[s, e] == UNDECIDED
                with pytest.raises(
                    InvalidTransition, match=f"{state.name}.*{event.name}|{event.name}.*{state.name}"
                ):
                    table.decode(s, e)
    assert decided == len(table.pairs())


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_a_machine_fires_each_pair_as_the_table_says(table):
    """Every decided pair moves a machine to the row's state with the row's actions and records
    the change by name; an undecided pair raises and changes nothing."""
    for state in table.states:
        for event in table.events:
            changes: list = []
            m = Machine(table, state, key="k", on_change=changes.append)
            if not table.allows(state, event):
                with pytest.raises(InvalidTransition):
                    m.fire(event, 5, "why")
                assert m.state is state and not m.history and not changes
                continue
            tr = table.lookup(state, event)
            assert m.fire(event, 5, "why") == tr.actions
            assert m.state is tr.next
            if tr.next is state:
                assert not changes and m.since_ns == 0
            else:
                (ch,) = changes
                assert (ch.t_ns, ch.machine, ch.key, ch.src, ch.dst, ch.event, ch.cause) == (
                    5,
                    table.name,
                    "k",
                    state.name,
                    tr.next.name,
                    event.name,
                    "why",
                )
                assert m.history == [ch] and m.since_ns == 5


def test_a_machine_of_a_table_copied_by_pickle_still_fires_by_its_rows():
    """A copy's row index was built for another table object: its rows are looked up again."""
    table = Table("t", tables.HedgeState, tables.HedgeEvent, tables._HEDGE_ROWS)
    copy = pickle.loads(pickle.dumps(Machine(table, tables.HedgeState.PENDING)))
    assert copy.table is not table
    copy.fire(tables.HedgeEvent.DISPATCHED, 1)
    assert copy.state is table.lookup(tables.HedgeState.PENDING, tables.HedgeEvent.DISPATCHED).next
    undecided = next(e for e in tables.HedgeEvent if not table.allows(copy.state, e))
    with pytest.raises(InvalidTransition):
        copy.fire(undecided, 2)
