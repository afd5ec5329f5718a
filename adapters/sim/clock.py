"""Clocks for simulated venues: real time, or virtual time that jumps when nothing is ready.

`VirtualTimeLoop` is an asyncio event loop whose `time()` is a virtual counter in integer
nanoseconds. When the loop has nothing ready to run it does not wait: it advances the counter to
the next scheduled timer. Every `asyncio.sleep`, `call_later`, `wait_for` timeout therefore
takes no wall time, and — since asyncio runs ready callbacks in FIFO order and timers in deadline
order — a program driven only by this loop is deterministic: same inputs, same event order.

Real I/O still works on this loop (sockets are polled without blocking), but timeouts on real
I/O would fire instantly in virtual time; use it for simulations, not for real venues.

    clock = VirtualClock(start_ns=1_700_000_000_000_000_000)
    result = clock.run(main())          # runs main() on a fresh VirtualTimeLoop
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time


class _JumpingSelector(selectors.BaseSelector):
    """Wraps a real selector: polls it, and where it would block advances virtual time instead."""

    def __init__(self, loop: VirtualTimeLoop, real: selectors.BaseSelector):
        self._loop, self._real = loop, real

    def register(self, fileobj, events, data=None):
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._real.modify(fileobj, events, data)

    def get_map(self):
        return self._real.get_map()

    def close(self):
        self._real.close()

    def select(self, timeout=None):
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:
            # nothing scheduled: only another thread (call_soon_threadsafe) can wake us
            return self._real.select(0.05)
        if timeout > 0:
            self._loop._advance(max(1, math.ceil(timeout * 1e9)))
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop running on virtual time (see module docstring)."""

    def __init__(self):
        real = selectors.DefaultSelector()
        self._vtime_ns = 0
        super().__init__(_JumpingSelector(self, real))
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._vtime_ns / 1e9

    def time_ns(self) -> int:
        return self._vtime_ns

    def _advance(self, ns: int) -> None:
        self._vtime_ns += ns


class Clock:
    """Time for venues: `now_ns()` is epoch-like nanoseconds; sleeping is `asyncio.sleep`."""

    def now_ns(self) -> int:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, ts_ns: int) -> None:
        await self.sleep((ts_ns - self.now_ns()) / 1e9)


class RealClock(Clock):
    def now_ns(self) -> int:
        return time.time_ns()


class VirtualClock(Clock):
    """Virtual time: `start_ns` plus the running VirtualTimeLoop's counter.

    Outside a running loop it reads the loop it last ran (or `start_ns` before any)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000):
        self.start_ns = start_ns
        self.loop: VirtualTimeLoop | None = None

    def now_ns(self) -> int:
        loop = self.loop
        if loop is None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                return self.start_ns
            if not isinstance(running, VirtualTimeLoop):
                raise RuntimeError("VirtualClock used on a loop that is not a VirtualTimeLoop")
            self.loop = loop = running
        return self.start_ns + loop.time_ns()

    def new_loop(self) -> VirtualTimeLoop:
        self.loop = VirtualTimeLoop()
        return self.loop

    def run(self, coro):
        """Run `coro` to completion on a fresh VirtualTimeLoop bound to this clock."""
        with asyncio.Runner(loop_factory=self.new_loop) as runner:
            return runner.run(coro)
