"""A deterministic fault schedule for simulated venues and markets.

A `Fault` fires either in a time window (`start_s` .. `start_s + duration_s`, seconds from the
scenario start) or on events (`on` = "submit", "cancel", "request", "balance", "transfer"; the
`nth` matching event inside the window, or every one when nth = 0), at most `count` times
(0 = unlimited), each time with `probability`. Random choices (probability, whether a timed-out
order reached the book) come from a generator seeded by (scenario seed, fault index), so the
same seed fires the same faults at the same events.

Kinds and what a venue client sees:

    timeout                the request times out (RequestTimeout after the client timeout);
                           `reached` = "yes" | "no" | "random": whether it took effect anyway
    rate_limit             every request in the window: RateLimited(retry_after_s)
    maintenance            every request in the window: VenueUnavailable; status() MAINTENANCE
    reject                 a submit is rejected with `reason` (insufficient_funds, min_notional,
                           post_only_would_cross, ...) whatever its merits
    ack_lost               a submit reaches the book but its answer and its stream ack are lost
                           (RequestTimeout; the order is live)
    cancel_fill_race       the order fills just before the cancel arrives: the cancel answers
                           FILLED (nothing to cancel)
    fill_after_cancel_ack  part of the order fills just before the cancel; the cancel answers
                           CANCELED and the fill report reaches the stream after that answer
    balance_delay          balance updates (stream and balances()) lag by an extra `delay_s`
    balance_reorder        one balance update is held back `delay_s`, so later ones overtake it
    transfer_delay         a transfer takes `delay_s` longer
    volatility_spike       market volatility x `magnitude` in the window
    price_gap              at `start_s` every mid on the venue (or "*") jumps `magnitude` bps
                           and no book updates are published for `duration_s`
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

from basis_core.config import FAULT_EVENTS, FAULT_KINDS, WINDOW_FAULTS, FaultConfig

KINDS, WINDOW_KINDS, EVENTS = FAULT_KINDS, WINDOW_FAULTS, FAULT_EVENTS

#: one scheduled fault: the `[[faults]]` table of a scenario (validated by the config loader)
Fault = FaultConfig


@dataclass(frozen=True)
class Fired:
    """A record that a fault fired: when, where, on which event, with what random outcome."""

    t_ns: int
    index: int
    kind: str
    venue: str
    event: str
    detail: str = ""


@dataclass
class _State:
    rng: random.Random
    seen: int = 0
    fired: int = 0


@dataclass
class FaultSchedule:
    """The faults of one run. `start_ns` is the scenario start on the venues' clock."""

    faults: tuple[Fault, ...] = ()
    seed: int = 0
    start_ns: int = 0
    log: list[Fired] = field(default_factory=list)

    def __post_init__(self):
        self._state = [
            _State(random.Random(zlib.crc32(f"{self.seed}/{i}/{f.kind}".encode())))
            for i, f in enumerate(self.faults)
        ]

    def _in_window(self, f: Fault, now_ns: int) -> bool:
        t = (now_ns - self.start_ns) / 1e9
        return f.start_s <= t < f.end_s

    @staticmethod
    def _matches(f: Fault, venue: str, instrument: str | None) -> bool:
        return f.venue in ("*", venue) and (instrument is None or f.instrument in ("*", instrument))

    def window(self, kind: str, venue: str, now_ns: int, instrument: str | None = None) -> Fault | None:
        """The first `kind` window fault covering `now_ns` on `venue` (logged once per window)."""
        for i, f in enumerate(self.faults):
            if f.kind == kind and self._matches(f, venue, instrument) and self._in_window(f, now_ns):
                st = self._state[i]
                if not st.fired:
                    st.fired = 1
                    self.log.append(Fired(now_ns, i, kind, venue, "window"))
                return f
        return None

    def on_event(
        self,
        event: str,
        venue: str,
        now_ns: int,
        instrument: str | None = None,
        kinds: tuple[str, ...] | None = None,
    ) -> Fault | None:
        """The event-triggered fault that fires on this `event` (or None). Counts the event for
        every matching fault, so `nth` refers to events of that kind on that venue."""
        hit = None
        for i, f in enumerate(self.faults):
            if f.kind in WINDOW_KINDS or (kinds is not None and f.kind not in kinds):
                continue
            if f.trigger not in (event, "request") or not self._matches(f, venue, instrument):
                continue
            if not self._in_window(f, now_ns):
                continue
            st = self._state[i]
            st.seen += 1
            if hit is not None or (f.count and st.fired >= f.count):
                continue
            if f.nth and st.seen != f.nth:
                continue
            if f.probability < 1 and st.rng.random() >= f.probability:
                continue
            st.fired += 1
            hit = f
            self.log.append(Fired(now_ns, i, f.kind, venue, event))
        return hit

    def reached(self, fault: Fault) -> bool:
        """For a timeout: did the request take effect? Deterministic per seed."""
        if fault.reached != "random":
            return fault.reached == "yes"
        i = self.faults.index(fault)
        return self._state[i].rng.random() < 0.5

    def gaps(self, venue: str) -> list[Fault]:
        """price_gap faults that apply to `venue`, by start time."""
        return sorted(
            (f for f in self.faults if f.kind == "price_gap" and f.venue in ("*", venue)),
            key=lambda f: f.start_s,
        )
