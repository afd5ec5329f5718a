"""Venue health: one VENUE state machine per venue, and the failure-mode responses.

Errors from adapters become venue events through one table (`EVENT_OF_ERROR`); the state
decides whether new orders may go there (`can_dispatch`), and the throttle state slows the
routing rate while hedges keep priority.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import (
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueError,
    VenueUnavailable,
)
from ..state.fsm import Machine
from ..state.tables import NO_DISPATCH, VENUE, VenueEvent, VenueState

#: adapter error type → venue event (checked in order: subclasses first)
EVENT_OF_ERROR: tuple[tuple[type[VenueError], VenueEvent | None], ...] = (
    (RequestTimeout, VenueEvent.TIMEOUT),
    (RateLimited, VenueEvent.RATE_LIMITED),
    (VenueUnavailable, VenueEvent.MAINTENANCE),
    (MalformedResponse, VenueEvent.TIMEOUT),  # an unusable answer: the request's effect is unknown
    (OrderRejected, None),  # the venue works; the order was refused
    (OrderNotFound, None),
)


def event_of(exc: VenueError) -> VenueEvent | None:
    for etype, event in EVENT_OF_ERROR:
        if isinstance(exc, etype):
            return event
    return VenueEvent.TIMEOUT  # an unclassified venue error: treat the outcome as unknown


@dataclass
class VenueHealth:
    name: str
    machine: Machine[VenueState]
    healthy_since_ns: int = 0
    throttled_until_ns: int = 0
    quarantine_until_ns: int = 0
    last_error: str = ""
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> VenueState:
        return self.machine.state


class VenueBoard:
    """The health of every venue of the run."""

    def __init__(self, names: list[str], now_ns: int, healthy_window_ns: int, on_change=None):
        self.healthy_window_ns = healthy_window_ns
        self.venues = {
            n: VenueHealth(
                n,
                Machine(VENUE, VenueState.UP, key=n, on_change=on_change, since_ns=now_ns),
                healthy_since_ns=now_ns,
            )
            for n in names
        }

    def __getitem__(self, name: str) -> VenueHealth:
        return self.venues[name]

    def can_dispatch(self, name: str, now_ns: int) -> bool:
        """New orders may go to `name` (cancels and queries are always allowed)."""
        v = self.venues[name]
        return v.state not in NO_DISPATCH and now_ns >= v.throttled_until_ns

    def usable(self, name: str) -> bool:
        return self.venues[name].state not in NO_DISPATCH

    def on_error(self, name: str, exc: VenueError, now_ns: int) -> tuple[str, ...]:
        v = self.venues[name]
        kind = type(exc).__name__
        v.errors[kind] = v.errors.get(kind, 0) + 1
        v.last_error = str(exc)
        event = event_of(exc)
        if event is None:
            return ()
        v.healthy_since_ns = now_ns
        if isinstance(exc, RateLimited):
            wait_ns = int((exc.retry_after_s or 1.0) * 1e9)
            v.throttled_until_ns = max(v.throttled_until_ns, now_ns + wait_ns)
        if isinstance(exc, VenueUnavailable):
            v.quarantine_until_ns = now_ns
        return v.machine.fire(event, now_ns, cause=f"{kind}: {exc}")

    def on_ok(self, name: str, now_ns: int) -> tuple[str, ...]:
        """A healthy answer; after the healthy window a THROTTLED venue returns to UP."""
        v = self.venues[name]
        actions = v.machine.fire(VenueEvent.OK, now_ns, cause="ok")
        if now_ns - v.healthy_since_ns >= self.healthy_window_ns and now_ns >= v.throttled_until_ns:
            actions += v.machine.fire(VenueEvent.HEALTHY_WINDOW, now_ns, cause="healthy window elapsed")
        return actions

    def fire(self, name: str, event: VenueEvent, now_ns: int, cause: str) -> tuple[str, ...]:
        v = self.venues[name]
        if event in (
            VenueEvent.MAINTENANCE,
            VenueEvent.TIMEOUT,
            VenueEvent.RATE_LIMITED,
            VenueEvent.DISCONNECTED,
        ):
            v.healthy_since_ns = now_ns
        return v.machine.fire(event, now_ns, cause)

    def all_healthy_for(self, now_ns: int) -> bool:
        return all(
            v.state == VenueState.UP and now_ns - v.healthy_since_ns >= self.healthy_window_ns
            for v in self.venues.values()
        )

    def any_throttled(self) -> bool:
        return any(v.state == VenueState.THROTTLED for v in self.venues.values())
