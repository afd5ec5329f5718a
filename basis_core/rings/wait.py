"""Wait strategies: what a ring end does while the ring is empty (consumer) or full (producer).

A strategy has one method, `idle(ring, attempt)`, called by `Ring.pop_wait` / `Ring.push_wait`
after a poll found nothing to do; `attempt` counts the empty polls of the current wait (1, 2,
...). It returns when it is worth polling again. It never decides that the wait is over:
liveness checks and timeouts stay with the caller, so every strategy gives up on a dead
producer equally fast.

    BusySpin      spins in compiled code on the other end's cursor (with PAUSE by default)
                  for up to `spin_us`; lowest latency, burns a whole core
    Yield         os.sched_yield() between polls; gives the core away when another runnable
                  thread wants it, otherwise behaves like a spin
    BackoffSleep  sleeps min_us, doubling up to max_us; cheapest on CPU, latency up to max_us

`STRATEGIES` maps the names of `[rings] wait` in the config (spin / yield / sleep) to them.

Compiled loops that wait on a ring cursor (`seqcheck`, the ring benches)
call `idle_poll(polls)` after each empty poll: PAUSE for the first SPIN_BEFORE_YIELD polls, then
sched_yield on every poll (on a host with more runnable threads than cores, a pure spin would
burn the time slice the other end needs). They count the polls and return to Python after their
own `max_spins`, so the caller can check liveness.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numba

from . import kernels
from .atomics import cpu_relax, sched_yield

# polls per microsecond of a compiled spin, a rough figure for this class of x86 host; only
# sizes the spin slice between liveness checks, so being off by 2x changes nothing else
_SPINS_PER_US = 30

SPIN_BEFORE_YIELD = 1000  # polls with PAUSE before a compiled wait falls back to sched_yield per poll
#: polls a benchmark's compiled wait makes before it returns to Python to check liveness (its max_spins)
LIVENESS_SPINS = 2_000_000


@numba.njit(cache=True, nogil=True, inline="always")
def idle_poll(polls):
    """The compiled wait, once the `polls`-th poll in a row found nothing: PAUSE while
    polls <= SPIN_BEFORE_YIELD, sched_yield after."""
    if polls > SPIN_BEFORE_YIELD:
        sched_yield()
    else:
        cpu_relax()


@dataclass(frozen=True)
class BusySpin:
    spin_us: float = 200.0
    pause: bool = True

    def idle(self, ring, attempt: int) -> None:
        spins = max(1, int(self.spin_us * _SPINS_PER_US))
        if ring.is_producer:
            kernels.spin_writable(ring.header, ring.slots, ring.local, spins, self.pause)
        else:
            kernels.spin_readable(ring.header, ring.slots, ring.local, spins, self.pause)


@dataclass(frozen=True)
class Yield:
    def idle(self, ring, attempt: int) -> None:
        os.sched_yield()


@dataclass(frozen=True)
class BackoffSleep:
    min_us: float = 10.0
    max_us: float = 1000.0

    def __post_init__(self):
        if not 0 < self.min_us <= self.max_us:
            raise ValueError(f"BackoffSleep needs 0 < min_us <= max_us, got {self.min_us}, {self.max_us}")

    def idle(self, ring, attempt: int) -> None:
        us = min(self.max_us, self.min_us * (1 << min(attempt - 1, 30)))
        time.sleep(us / 1e6)


STRATEGIES = {"spin": BusySpin, "yield": Yield, "sleep": BackoffSleep}
