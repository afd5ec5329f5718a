"""A generic table-driven state machine.

A Table maps `(state, event)` to a Transition `(next_state, actions)`; actions are names the
owner of the machine carries out (e.g. "back_off", "verify_orders"). A Machine holds one
current state, applies events through its table and records every change with its cause and
time, so the run's report can list the state timeline. A pair missing from the table raises
InvalidTransition: nothing is ever decided by a default.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import InvalidTransition

#: the state enum of one kind of machine (EngineState, VenueState, OrderState, HedgeState)
StateT = TypeVar("StateT", bound=enum.Enum)
#: one row of a table: (state, event, next state, actions)
Row = tuple[StateT, enum.Enum, StateT, tuple[str, ...]]


@dataclass(frozen=True)
class Transition(Generic[StateT]):
    next: StateT
    actions: tuple[str, ...] = ()


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
        tr = self.table.lookup(self.state, event)
        if tr.next != self.state:
            change = Change(t_ns, self.table.name, self.key, self.state.name, tr.next.name, event.name, cause)
            if self.keep_history:
                self.history.append(change)
            self.state = tr.next
            self.since_ns = t_ns
            if self.on_change is not None:
                self.on_change(change)
        return tr.actions

    def can(self, event: enum.Enum) -> bool:
        return self.table.allows(self.state, event)

    @property
    def terminal(self) -> bool:
        return self.state in self.table.terminal
