"""Orders per second through throttle + priority queues + sequencing, Cython vs pure Python.

Topology (no HTTP, one thread, injected clock):

    push(order) ──▶ [CANCEL|HEDGE|QUERY|ENTRY queues] ──pop_ready(now)──▶ Throttle (3 linked pools)
                                                                      └──▶ Sequencer.next(venue)

Each measured order is one `push` and one `pop_ready` on venue 1, with a mix of 10 % cancels,
20 % hedges and 70 % entries, and pools large enough never to hold an order back (the cost of
the bookkeeping, not of waiting). Before timing, both implementations run the same mixed
workload with tight pools and a stepping clock and must hand out identical (seq, item) streams.

    .venv/bin/python perf/bench_router.py -o perf/results/router.json      (pyperf options apply)
    .venv/bin/python perf/bench_router.py --fast
"""

from __future__ import annotations

import math
from collections import deque

import pyperf

from basis_ext import router as R
from basis_ext.sequencer import Sequencer
from basis_ext.throttle import Throttle

BATCH = 10_000
PRIORITIES = [R.CANCEL] * 1 + [R.HEDGE] * 2 + [R.ENTRY] * 7


class PyThrottle:
    """The baseline: the same linked token buckets in plain Python."""

    def __init__(self):
        self.cap, self.rate, self.level, self.last, self.eps, self.names = [], [], [], [], [], []

    def add_pool(self, name, limit, window_s, burst=0.25, now_ns=0):
        self.cap.append(burst * limit)
        self.rate.append((1 - burst) * limit / (window_s * 1e9))
        self.level.append(burst * limit)
        self.last.append(now_ns)
        self.names.append(name)
        return len(self.cap) - 1

    def add_endpoint(self, name, links):
        self.eps.append([(self.names.index(k), w) for k, w in links.items()])
        return len(self.eps) - 1

    def try_acquire(self, ep, now):
        links = self.eps[ep]
        wait = 0
        for p, w in links:
            dt = now - self.last[p]
            if dt > 0:
                self.level[p] = min(self.cap[p], self.level[p] + dt * self.rate[p])
                self.last[p] = now
            need = w - self.level[p]
            if need > 0:
                wait = max(wait, max(1, math.ceil(need / self.rate[p])))
        if wait:
            return wait
        for p, w in links:
            self.level[p] -= w
        return 0


class PyRouter:
    def __init__(self):
        self.queues, self.throttles, self.next = {}, {}, {}

    def add_venue(self, venue, throttle):
        self.queues[venue] = [deque() for _ in range(4)]
        self.throttles[venue] = throttle
        self.next[venue] = 1

    def push(self, venue, priority, endpoint, item, now_ns=0):
        self.queues[venue][priority].append((endpoint, item))

    def pop_ready(self, venue, now_ns):
        thr = self.throttles[venue]
        for q in self.queues[venue]:
            if q:
                if thr.try_acquire(q[0][0], now_ns):
                    return None
                endpoint, item = q.popleft()
                seq = self.next[venue]
                self.next[venue] = seq + 1
                return seq, item
        return None


def setup(kind: str, tight: bool):
    thr = Throttle() if kind == "cython" else PyThrottle()
    scale = 10 if tight else 1e9
    thr.add_pool("weight_1m", 60 * scale, 60.0, 0.25, 0)
    thr.add_pool("orders_10s", 10 * scale, 10.0, 0.25, 0)
    thr.add_pool("orders_1d", 1000 * scale, 86_400.0, 0.25, 0)
    order = thr.add_endpoint("order", {"weight_1m": 1, "orders_10s": 1, "orders_1d": 1})
    cancel = thr.add_endpoint("cancel", {"weight_1m": 1})
    router = R.Router(Sequencer()) if kind == "cython" else PyRouter()
    router.add_venue(1, thr)
    return router, order, cancel


def stream(kind: str, n: int = 2000) -> list:
    """(seq, item) handed out for a mixed workload under tight pools and a stepping clock."""
    router, order, cancel = setup(kind, tight=True)
    out, now = [], 0
    for i in range(n):
        prio = PRIORITIES[i % 10]
        router.push(1, prio, cancel if prio == R.CANCEL else order, i, now)
        if i % 7 == 6:
            now += 150_000_000
            while (cmd := router.pop_ready(1, now)) is not None:
                out.append((cmd.seq, cmd.item) if kind == "cython" else cmd)
    return out


def timed(kind: str):
    def run(loops: int) -> float:
        router, order, cancel = setup(kind, tight=False)
        eps = [cancel if p == R.CANCEL else order for p in PRIORITIES]
        push, pop = router.push, router.pop_ready
        t0 = pyperf.perf_counter()
        now = 0
        for _ in range(loops):
            for i in range(BATCH):
                j = i % 10
                push(1, PRIORITIES[j], eps[j], i, now)
                pop(1, now)
                now += 1000
        return pyperf.perf_counter() - t0

    return run


def main() -> None:
    cy, py = stream("cython"), stream("python")
    assert cy == py and len(cy) > 100, "Cython and Python routers disagree"
    runner = pyperf.Runner()
    runner.metadata["description"] = "one push + one pop_ready per order, 3 linked pools, sequencing"
    runner.bench_time_func("router_cython_per_order", timed("cython"), inner_loops=BATCH)
    runner.bench_time_func("router_python_per_order", timed("python"), inner_loops=BATCH)


if __name__ == "__main__":
    main()
