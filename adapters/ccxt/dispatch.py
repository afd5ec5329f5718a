"""The asyncio face of the Cython router for one venue: every request waits here for its turn.

`Gate.admit(endpoint, priority)` queues the caller in `basis_ext.router.Router` and returns the
command's sequence number once the venue's `basis_ext.throttle.Throttle` lets it go. One pump
task per gate hands out turns in the router's order: strict priority (cancels, hedges, queries,
entries), FIFO within a priority. A venue's `Retry-After` blocks the whole gate (`penalize`);
`degrade` lowers its refill rates while the engine is DEGRADED. ccxt's own `enableRateLimit` is
off: this is the only limiter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from basis_core.errors import ConfigError, RateLimited
from basis_ext import router as R
from basis_ext.throttle import NEVER, Throttle


def build_throttle(pools: dict, endpoints: dict, now_ns: int, names: tuple[str, ...]) -> Throttle:
    """A Throttle with `pools` {name: (limit, window_s, burst)} and `endpoints` {name: {pool: w}}
    declared in `names` order (so endpoint ids are their index). ConfigError when an endpoint's
    weight can never fit a pool."""
    thr = Throttle()
    for name, (limit, window_s, burst) in pools.items():
        thr.add_pool(name, float(limit), float(window_s), float(burst), now_ns)
    for name in names:
        thr.add_endpoint(name, {k: float(v) for k, v in endpoints[name].items()})
        if thr.wait_ns(thr.endpoint(name), now_ns) == NEVER:
            raise ConfigError(
                f"endpoints.{name}", "weight exceeds a pool's burst capacity: it could never be sent"
            )
    return thr


class Gate:
    """Priority + throttle + sequence numbers for one venue's requests."""

    def __init__(
        self,
        venue_id: int,
        throttle: Throttle,
        router: R.Router | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        name: str = "",
        max_block_s: float = 2.0,
    ):
        self.venue_id, self.name = venue_id, name or str(venue_id)
        self.max_block_ns = int(max_block_s * 1e9)
        self.throttle = throttle
        self.router = router if router is not None else R.Router()
        self.router.add_venue(venue_id, throttle)
        self.clock = clock
        self._wake: asyncio.Event | None = None  # created with each pump task (on its loop)
        self._pump: asyncio.Task | None = None
        self._closing = False
        self.admitted: list[tuple[int, int]] = []  # (seq, priority) of the last admissions
        self._keep = 256

    async def admit(self, endpoint: int, priority: int) -> int:
        """Wait for a turn to send one request through `endpoint`; returns its sequence number.
        While the venue's Retry-After holds the gate for longer than `max_block_s`, refuse at once
        with RateLimited (its `retry_after_s` is what is left): a request that would wait that
        long is stale when it leaves, and the caller must learn that the venue is throttled."""
        left = self.throttle.blocked_until - self.clock()
        if left > self.max_block_ns:
            raise RateLimited(
                self.name, "throttled", "waiting out the venue's Retry-After", retry_after_s=left / 1e9
            )
        if self._closing:
            raise RateLimited(self.name, "closed", "the venue client is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.router.push(self.venue_id, priority, endpoint, fut, self.clock())
        if self._pump is None or self._pump.done():
            self._wake = asyncio.Event()
            self._pump = loop.create_task(self._run(), name=f"gate-{self.venue_id}")
        assert self._wake is not None  # made with the running pump
        self._wake.set()
        return await fut

    def penalize(self, retry_after_s: float) -> None:
        """The venue asked us to wait: nothing leaves before now + `retry_after_s`."""
        self.throttle.block_until(self.clock() + int(retry_after_s * 1e9))
        if self._wake is not None:
            self._wake.set()

    def degrade(self, factor: float) -> None:
        """Lower (factor < 1) or restore (1.0) the routing rate."""
        self.throttle.set_rate_factor(factor, self.clock())

    async def _run(self) -> None:
        venue, router = self.venue_id, self.router
        assert self._wake is not None  # admit() makes it before it starts this pump
        while not self._closing:
            now = self.clock()
            cmd = router.pop_ready(venue, now)
            if cmd is not None:
                fut = _waiter(cmd)
                if not fut.done():
                    fut.set_result(cmd.seq)
                    self.admitted.append((cmd.seq, cmd.priority))
                    if len(self.admitted) > self._keep:
                        del self.admitted[: self._keep // 2]
                continue
            wait = router.wait_ns(venue, now)
            if wait == -2:
                for waiter in map(_waiter, router.drop(venue)):
                    if not waiter.done():
                        waiter.set_exception(
                            ConfigError("endpoints", "a request weight exceeds a pool's capacity")
                        )
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), None if wait == -1 else wait / 1e9)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop the pump and cancel every waiting request. Never hangs: a cancellation that
        asyncio.wait_for swallows (it can, when its waiter completes at the same moment) still
        ends the pump through the closing flag."""
        self._closing = True
        if self._pump is not None:
            if self._wake is not None:
                self._wake.set()
            self._pump.cancel()
            await asyncio.wait({self._pump}, timeout=1.0)
            self._pump = None
        for waiter in map(_waiter, self.router.drop(self.venue_id)):
            if not waiter.done():
                waiter.cancel()


def _waiter(cmd: R.Command) -> asyncio.Future[int]:
    """The future of the `admit` call that queued `cmd` (a gate queues nothing else)."""
    return cast("asyncio.Future[int]", cmd.item)
