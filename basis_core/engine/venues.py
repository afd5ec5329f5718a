"""Venue health: one VENUE state machine per venue, and the failure-mode responses.

Adapter errors reach it as VENUE_STATUS records (the io path's table,
`basis_core.venue_errors.ON_ERROR`), which the engine turns into venue events; the state
decides whether new orders may go there (`can_dispatch`), and the throttle state slows the
routing rate while hedges keep priority.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..state.fsm import Machine
from ..state.tables import NO_DISPATCH, OUTAGE, VENUE, VenueEvent, VenueState


@dataclass
class VenueHealth:
    name: str
    machine: Machine[VenueState]
    healthy_since_ns: int = 0
    throttled_until_ns: int = 0
    paused: bool = False  # by the operator (`basis ctl pause-venue`): no new order goes there

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
        return v.state not in NO_DISPATCH and now_ns >= v.throttled_until_ns and not v.paused

    def usable(self, name: str) -> bool:
        return self.venues[name].state not in NO_DISPATCH

    def answered_before_outage(self, name: str, sent_ns: int) -> bool:
        """An answer to a request sent at `sent_ns`, before `name` went QUARANTINED or DOWN: it
        says how the venue was then, so it is not taken as the end of the maintenance or outage."""
        v = self.venues[name]
        return v.state in OUTAGE and sent_ns < v.machine.since_ns

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
