"""A generic table-driven state machine.

A Table maps `(state, event)` to a Transition `(next_state, actions)`; actions are names the
owner of the machine carries out (e.g. "back_off", "verify_orders"). A Machine holds one
current state, applies events through its table and records every change with its cause and
time, so the run's report can list the state timeline. A pair missing from the table raises
InvalidTransition: nothing is ever decided by a default.

A Table is also compiled, once, into integer arrays (`Compiled`): states, events and distinct
action tuples numbered in declaration order, `next_state[state, event]` the next state's number
or UNDECIDED. A kernel decides with those; `Table.decode` turns its codes back into the row, an
undecided pair into InvalidTransition as `lookup` does. `Machine.fire` reads a per-table index
keyed by the members' identities that carries each row's names too (no enum hashing, no `.name`
lookups per change).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

import numpy as np

from ..errors import InvalidTransition

#: the state enum of one kind of machine (EngineState, VenueState, OrderState, HedgeState)
StateT = TypeVar("StateT", bound=enum.Enum)
#: one row of a table: (state, event, next state, actions)
Row = tuple[StateT, enum.Enum, StateT, tuple[str, ...]]


@dataclass(frozen=True)
class Transition(Generic[StateT]):
    next: StateT
    actions: tuple[str, ...] = ()


#: next_state's code for a pair the table does not decide
UNDECIDED = -1


class Compiled(NamedTuple):
    """A table as integer arrays: next_state[s, e] (int16, UNDECIDED for a missing pair) and
    actions[s, e] (int16, an index into `action_sets`, 0 = no action), s and e the positions of
    the state and event in their enums."""

    next_state: np.ndarray
    actions: np.ndarray
    action_sets: tuple[tuple[str, ...], ...]


class _Row(NamedTuple):
    """One decided pair as Machine.fire reads it: the row and the names a Change records."""

    next: enum.Enum
    actions: tuple[str, ...]
    src: str
    dst: str
    event: str


class Table(Generic[StateT]):
    """An immutable transition table for one kind of machine."""

    def __init__(
        self,
        name: str,
        states: type[StateT],
        events: type[enum.Enum],
        rows: Iterable[Row[StateT]],
        terminal: Iterable[StateT] = (),
    ):
        self.name = name
        self.states = states
        self.events = events
        self.terminal = frozenset(terminal)
        table: dict[tuple[StateT, enum.Enum], Transition[StateT]] = {}
        for state, event, nxt, actions in rows:
            if not isinstance(state, states) or not isinstance(nxt, states) or not isinstance(event, events):
                raise TypeError(f"{name}: row ({state}, {event}) -> {nxt} mixes foreign enums")
            if (state, event) in table:
                raise ValueError(f"{name}: duplicate row for ({state.name}, {event.name})")
            table[(state, event)] = Transition(nxt, tuple(actions))
        self._table = table
        self._rows = {
            (id(st), id(ev)): _Row(tr.next, tr.actions, st.name, tr.next.name, ev.name)
            for (st, ev), tr in table.items()
        }
        self.state_list: tuple[StateT, ...] = tuple(states)
        self.event_list: tuple[enum.Enum, ...] = tuple(events)
        self.compiled = self._compile()

    def _compile(self) -> Compiled:
        code_s = {id(st): k for k, st in enumerate(self.state_list)}
        code_e = {id(ev): k for k, ev in enumerate(self.event_list)}
        shape = (len(self.state_list), len(self.event_list))
        next_state = np.full(shape, UNDECIDED, dtype=np.int16)
        actions = np.zeros(shape, dtype=np.int16)
        sets: dict[tuple[str, ...], int] = {(): 0}
        for (st, ev), tr in self._table.items():
            s, e = code_s[id(st)], code_e[id(ev)]
            next_state[s, e] = code_s[id(tr.next)]
            actions[s, e] = sets.setdefault(tr.actions, len(sets))
        next_state.flags.writeable = False
        actions.flags.writeable = False
        return Compiled(next_state, actions, tuple(sets))

    def decode(self, state_code: int, event_code: int) -> Transition[StateT]:
        """The row a kernel took, from the compiled codes; InvalidTransition for an undecided pair."""
        c = self.compiled
        nxt = int(c.next_state[state_code, event_code])
        if nxt == UNDECIDED:
            raise InvalidTransition(
                self.name, self.state_list[state_code].name, self.event_list[event_code].name
            )
        return Transition(self.state_list[nxt], c.action_sets[int(c.actions[state_code, event_code])])

    def lookup(self, state: StateT, event: enum.Enum) -> Transition[StateT]:
        try:
            return self._table[(state, event)]
        except KeyError:
            raise InvalidTransition(self.name, state.name, event.name) from None

    def allows(self, state: StateT, event: enum.Enum) -> bool:
        return (state, event) in self._table

    def pairs(self) -> frozenset[tuple[StateT, enum.Enum]]:
        return frozenset(self._table)

    def reachable(self, start: StateT) -> set[StateT]:
        seen, todo = {start}, [start]
        while todo:
            s = todo.pop()
            for (st, _), tr in self._table.items():
                if st == s and tr.next not in seen:
                    seen.add(tr.next)
                    todo.append(tr.next)
        return seen


@dataclass
class Change:
    t_ns: int
    machine: str
    key: str
    src: str
    dst: str
    event: str
    cause: str


@dataclass
class Machine(Generic[StateT]):
    """One live instance of a Table (e.g. the state of venue 'alpha')."""

    table: Table[StateT]
    state: StateT
    key: str = ""
    on_change: Callable[[Change], None] | None = None
    history: list[Change] = field(default_factory=list)
    since_ns: int = 0
    #: False for machines made by the thousand (one per order): their changes go to `on_change`
    #: only, so a long run does not hold every change of every order
    keep_history: bool = True

    def fire(self, event: enum.Enum, t_ns: int, cause: str = "") -> tuple[str, ...]:
        """Apply `event`; returns the actions to carry out. Raises InvalidTransition on a miss."""
        table = self.table
        row = table._rows.get((id(self.state), id(event)))
        if row is None:  # undecided (InvalidTransition), or a table copied from another process
            tr = table.lookup(self.state, event)
            row = _Row(tr.next, tr.actions, self.state.name, tr.next.name, event.name)
        if row.next is not self.state:
            change = Change(t_ns, table.name, self.key, row.src, row.dst, row.event, cause)
            if self.keep_history:
                self.history.append(change)
            self.state = row.next  # type: ignore[assignment]
            self.since_ns = t_ns
            if self.on_change is not None:
                self.on_change(change)
        return row.actions

    def can(self, event: enum.Enum) -> bool:
        return self.table.allows(self.state, event)

    @property
    def terminal(self) -> bool:
        return self.state in self.table.terminal
