"""Shared-memory ring benchmarks, named by topology, each beside a multiprocessing.Queue baseline
measured in the same run.

OneToOneThroughput — one producer process, one consumer process, 64-byte records:

    producer (cpu0)                                   consumer (cpu1, pyperf worker)
    ┌──────────────┐   ring: 4096 slots, /dev/shm    ┌──────────────┐
    │ fill records │ ───────────────────────────────▶│ verify, count │
    └──────────────┘   (baseline: mp.Queue, one put   └──────────────┘
                        of B records as bytes)

  OneToOneThroughput[ring,batch=B]   B = 1, 16, 256: the producer writes records in place and
                                     publishes every B; the consumer claims up to B, checks each
                                     (seq contiguous, check field untorn) and releases. Both
                                     loops run in compiled code.
  OneToOneThroughput[ring-py,batch=B]  B = 16, 256: the same ring driven from Python on both
                                     ends: fill + Ring.push_wait in the producer, Ring.pop_wait
                                     + verify in the consumer, Yield wait strategy.
  OneToOneThroughput[queue,batch=B]  the same stream through mp.Queue: one put/get of a bytes
                                     object of B records, checked the same way.
  pyperf value: seconds per record (msgs/s = 1 / value). Before a value is returned, the
  consumer has checked that exactly `loops` records arrived, contiguous and untorn.

PingPongLatency — two rings, one per direction:

    pinger (cpu1, pyperf worker)          ponger (cpu0)
    ┌────────┐  ring A (ping), 64 slots  ┌────────┐
    │ t0     │ ────────────────────────▶ │ echo   │
    │ t1     │ ◀──────────────────────── │        │
    └────────┘  ring B (pong), 64 slots  └────────┘

  PingPongLatency[ring].p50 / .p99   the pinger sends one record, spins (PAUSE; sched_yield
                                     after 1000 polls) until its echo is back, checks it, and records (t1 - t0) / 2 with
                                     CLOCK_MONOTONIC read in compiled code; the ponger spins on
                                     A and copies each record to B.
  PingPongLatency[queue].p50 / .p99  the same over two mp.Queue objects, timed in Python
                                     (time.perf_counter_ns).
  pyperf value: the 50th / 99th percentile of one-way latency, taken as half the round trip,
  over a block of `loops` round trips (so the pyperf median is a median of block percentiles).
  The clock read is inside the interval (~20-50 ns per round trip here).

Run: `basis bench rings [--fast]` (writes pyperf JSON and prints a table), or directly:
    .venv/bin/python perf/bench_rings.py -o rings.json [--fast]
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import time

import numba
import numpy as np
import pyperf

from basis_core.results.stats import percentile
from basis_core.rings import CONSUMER, PRODUCER, Ring, Yield, seqcheck
from basis_core.rings.atomics import cpu_relax, load_acquire, monotonic_ns, store_release
from basis_core.rings.layout import CACHED, HEAD, OWN, RECORD_WORDS, TAIL
from basis_core.rings.wait import LIVENESS_SPINS, idle_poll

BATCHES = (1, 16, 256)
PY_BATCHES = (16, 256)
RING_SLOTS = 4096
PING_SLOTS = 64
ECHO_IDLE = 200_000  # idle polls before the ponger looks whether the pinger closed ring A
SPAWN = mp.get_context("spawn")


# -- pinning ------------------------------------------------------------------------------


def _cpus() -> tuple[int | None, int | None]:
    """(worker cpu, child cpu): 1 and 0 when both are available, else unpinned."""
    have = os.sched_getaffinity(0)
    return (1, 0) if {0, 1} <= have else (None, None)


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _parent_alive() -> bool:
    return os.getppid() != 1


# -- compiled ping-pong -------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _echo(ha, sa, la, hb, sb, lb, max_spins):
    """Ponger: copy every record of ring A to ring B; return the count after max_spins idle
    polls. Cursors live in locals; ordering as in the kernels (acquire load of the other end's
    cursor before touching slots, release store of one's own after)."""
    ma, mb = sa.shape[0] - 1, sb.shape[0] - 1
    a_tail, a_head = la[OWN], la[CACHED]
    b_head, b_tail = lb[OWN], lb[CACHED]
    echoed = 0
    idle = 0
    while idle < max_spins:
        if a_head == a_tail:
            a_head = load_acquire(ha, HEAD)
            if a_head == a_tail:
                idle += 1
                idle_poll(idle)
                continue
        while b_head - b_tail > mb:
            b_tail = load_acquire(hb, TAIL)
            cpu_relax()
        src, dst = a_tail & ma, b_head & mb
        for w in range(RECORD_WORDS):
            sb[dst, w] = sa[src, w]
        b_head += 1
        store_release(hb, HEAD, b_head)
        a_tail += 1
        store_release(ha, TAIL, a_tail)
        echoed += 1
        idle = 0
    la[OWN], la[CACHED] = a_tail, a_head
    lb[OWN], lb[CACHED] = b_head, b_tail
    return echoed


@numba.njit(cache=True, nogil=True)
def _ping(ha, sa, la, hb, sb, lb, first_seq, lat, max_spins):
    """Pinger: len(lat) round trips of records first_seq...; lat[i] = round trip i in ns.
    Returns the round trips completed: fewer when an echo did not come back within max_spins
    polls, or a negative -(i + 1) when echo i came back with the wrong seq or torn."""
    ma, mb = sa.shape[0] - 1, sb.shape[0] - 1
    a_head, a_tail = la[OWN], la[CACHED]
    b_tail, b_head = lb[OWN], lb[CACHED]
    buf = np.empty((1, RECORD_WORDS), np.uint64)
    done = 0
    for i in range(lat.shape[0]):
        seqcheck.fill(buf, first_seq + i)
        t0 = monotonic_ns()
        while a_head - a_tail > ma:
            a_tail = load_acquire(ha, TAIL)
            cpu_relax()
        s = a_head & ma
        for w in range(RECORD_WORDS):
            sa[s, w] = buf[0, w]
        a_head += 1
        store_release(ha, HEAD, a_head)
        spins = 0
        while b_head == b_tail:
            b_head = load_acquire(hb, HEAD)
            spins += 1
            if spins > max_spins:
                break
            idle_poll(spins)
        if b_head == b_tail:
            break
        t1 = monotonic_ns()
        r = b_tail & mb
        for w in range(RECORD_WORDS):
            buf[0, w] = sb[r, w]
        b_tail += 1
        store_release(hb, TAIL, b_tail)
        if seqcheck.verify(buf, first_seq + i)[0] != -1:
            done = -(i + 1)
            break
        lat[i] = t1 - t0
        done = i + 1
    la[OWN], la[CACHED] = a_head, a_tail
    lb[OWN], lb[CACHED] = b_tail, b_head
    return done


# -- child process bodies -----------------------------------------------------------------


def _commands(conn):
    """A producer peer's work: says it is ready, then yields each (first, n, batch) command it is
    sent until the None that stops it."""
    conn.send("ready")
    while (cmd := conn.recv()) is not None:
        yield cmd


def ring_producer(name: str, conn, cpu) -> None:
    _pin(cpu)
    ring = Ring.attach(name, PRODUCER)
    seqcheck.produce(ring.header, ring.slots, ring.local, 0, 0, 1, 1)  # load the compiled code
    for first, n, batch in _commands(conn):
        done = 0
        while done < n and _parent_alive():
            done += int(
                seqcheck.produce(
                    ring.header, ring.slots, ring.local, first + done, n - done, batch, LIVENESS_SPINS
                )
            )
    ring.close()


def ring_py_producer(name: str, conn, cpu) -> None:
    _pin(cpu)
    ring = Ring.attach(name, PRODUCER)
    for first, n, batch in _commands(conn):
        src = np.zeros((batch, RECORD_WORDS), np.uint64)
        for start in range(0, n, batch):
            k = min(batch, n - start)
            seqcheck.fill(src[:k], first + start)
            if ring.push_wait(src[:k], wait=Yield(), timeout_s=60) != k:
                raise RuntimeError("ring-py producer: consumer stopped reading")
    ring.close()


def queue_producer(q, conn, cpu) -> None:
    _pin(cpu)
    seqcheck.fill(np.zeros((1, RECORD_WORDS), np.uint64), 0)
    for first, n, batch in _commands(conn):
        words = np.zeros((batch, RECORD_WORDS), np.uint64)
        for start in range(0, n, batch):
            k = min(batch, n - start)
            seqcheck.fill(words[:k], first + start)
            q.put(words[:k].tobytes())


def ring_ponger(ping: str, pong: str, conn, cpu) -> None:
    _pin(cpu)
    a = Ring.attach(ping, CONSUMER)
    b = Ring.attach(pong, PRODUCER)
    _echo(a.header, a.slots, a.local, b.header, b.slots, b.local, 1)
    conn.send("ready")
    while _parent_alive() and not a.producer_closed and a.producer_status() == "":
        _echo(a.header, a.slots, a.local, b.header, b.slots, b.local, ECHO_IDLE)
    b.close()
    a.close()


def queue_ponger(q_ping, q_pong, conn, cpu) -> None:
    _pin(cpu)
    conn.send("ready")
    while True:
        item = q_ping.get()
        if item is None:
            break
        q_pong.put(item)


# -- worker-side peers (one per pyperf worker process) ------------------------------------


class _Peer:
    """The child process and channels a benchmark talks to; stopped at worker exit."""

    def __init__(self, target, args, closers=()):
        """Start `target(*args, conn, cpu)` and wait until it says it is ready, so that process
        start-up and compiled-code loading never fall inside a timed run."""
        wcpu, ccpu = _cpus()
        _pin(wcpu)
        self.conn, child_conn = SPAWN.Pipe()
        self.child = SPAWN.Process(target=target, args=(*args, child_conn, ccpu), daemon=True)
        self.child.start()
        self.closers = list(closers)
        atexit.register(self.stop)
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError(f"benchmark peer {target.__name__} did not start")

    def stop(self) -> None:
        for close in self.closers:
            close()
        self.child.join(10)
        if self.child.is_alive():
            self.child.kill()
            self.child.join()


_peers: dict[str, dict] = {}


def _name(kind: str) -> str:
    return f"bench-{kind}-{os.getpid()}"


def _producer(key: str, target, chan, arg, *closers) -> dict:
    """Start this worker's producer peer `target(arg, conn, cpu)` for throughput benchmark `key`:
    it writes the records of each (first, n, batch) command into `chan`; at exit it is sent None,
    then `closers` run."""
    peer = _Peer(target, (arg,))
    peer.closers += [lambda: peer.conn.send(None), *closers]
    st = _peers[key] = {"chan": chan, "conn": peer.conn, "next": 0}
    return st


def _order(st: dict, loops: int, batch: int) -> int:
    """Ask the producer for the next `loops` records, `batch` at a time; returns the first seq."""
    first = st["next"]
    st["conn"].send((first, loops, batch))
    return first


def _delivered(st: dict, label: str, done: int, loops: int) -> None:
    """After a timed run: all `loops` records read, so the next run starts after them."""
    if done != loops:
        raise AssertionError(f"{label} delivered {done} of {loops} records")
    st["next"] += loops


def _bad_record(label: str, seq: int, why: int) -> AssertionError:
    return AssertionError(f"{label} record {seq}: {'wrong seq' if why == 1 else 'torn'}")


def ring_throughput(loops: int, batch: int) -> float:
    st = _peers.get("ring")
    if st is None:
        ring = Ring.create(_name("1to1"), RING_SLOTS, CONSUMER)
        seqcheck.consume(ring.header, ring.slots, ring.local, 0, 0, 1, 1)
        st = _producer("ring", ring_producer, ring, ring.name, ring.close)
    ring = st["chan"]
    first = _order(st, loops, batch)
    t0 = time.perf_counter()
    done = 0
    while done < loops:
        k, bad, why = seqcheck.consume(
            ring.header, ring.slots, ring.local, first + done, loops - done, batch, LIVENESS_SPINS
        )
        done += int(k)
        if bad != -1:
            raise _bad_record("ring", bad, why)
        if k == 0:
            ring.check_producer()
    elapsed = time.perf_counter() - t0
    if ring.published != first + loops:
        raise AssertionError(f"ring published {ring.published - first} of {loops} records")
    _delivered(st, "ring", done, loops)
    return elapsed


def ring_py_throughput(loops: int, batch: int) -> float:
    st = _peers.get("ring-py")
    if st is None:
        ring = Ring.create(_name("1to1py"), RING_SLOTS, CONSUMER)
        seqcheck.verify(np.zeros((0, RECORD_WORDS), np.uint64), 0)
        st = _producer("ring-py", ring_py_producer, ring, ring.name, ring.close)
    ring = st["chan"]
    out = np.zeros((batch, RECORD_WORDS), np.uint64)
    wait = Yield()
    first = _order(st, loops, batch)
    t0 = time.perf_counter()
    done = 0
    while done < loops:
        k = ring.pop_wait(out[: min(batch, loops - done)], wait=wait, timeout_s=60)
        if k <= 0:
            raise AssertionError(f"ring-py: pop_wait returned {k} after {done} of {loops} records")
        bad, why = seqcheck.verify(out[:k], first + done)
        if bad != -1:
            raise _bad_record("ring-py", first + done + bad, why)
        done += k
    elapsed = time.perf_counter() - t0
    _delivered(st, "ring-py", done, loops)
    return elapsed


def queue_throughput(loops: int, batch: int) -> float:
    st = _peers.get("queue")
    if st is None:
        q = SPAWN.Queue()
        seqcheck.verify(np.zeros((0, RECORD_WORDS), np.uint64), 0)
        st = _producer("queue", queue_producer, q, q)
    q = st["chan"]
    first = _order(st, loops, batch)
    t0 = time.perf_counter()
    done = 0
    while done < loops:
        words = np.frombuffer(q.get(timeout=60), dtype=np.uint64).reshape(-1, RECORD_WORDS)
        bad, why = seqcheck.verify(words, first + done)
        if bad != -1:
            raise _bad_record("queue", first + done + bad, why)
        done += words.shape[0]
    elapsed = time.perf_counter() - t0
    _delivered(st, "queue", done, loops)
    return elapsed


def ring_pingpong(loops: int, pct: float) -> float:
    st = _peers.get("pingpong")
    if st is None:
        a = Ring.create(_name("ping"), PING_SLOTS, PRODUCER)
        b = Ring.create(_name("pong"), PING_SLOTS, CONSUMER)
        _Peer(ring_ponger, (a.name, b.name), [a.close, b.close])
        _ping(a.header, a.slots, a.local, b.header, b.slots, b.local, 0, np.zeros(0, np.int64), 1)
        st = _peers["pingpong"] = {"a": a, "b": b, "next": 0}
    a, b, first = st["a"], st["b"], st["next"]
    lat = np.zeros(loops, np.int64)
    done = int(_ping(a.header, a.slots, a.local, b.header, b.slots, b.local, first, lat, LIVENESS_SPINS))
    if done < 0:
        raise AssertionError(f"ring ping-pong: echo of record {first - done - 1} came back wrong")
    if done != loops:
        b.check_producer()
        raise AssertionError(f"ring ping-pong: {done} of {loops} round trips came back")
    st["next"] = first + loops
    return percentile(lat, pct) / 2 * 1e-9 * loops


def queue_pingpong(loops: int, pct: float) -> float:
    st = _peers.get("qpingpong")
    if st is None:
        q1, q2 = SPAWN.Queue(), SPAWN.Queue()
        seqcheck.verify(np.zeros((0, RECORD_WORDS), np.uint64), 0)
        _Peer(queue_ponger, (q1, q2), [lambda: q1.put(None)])
        st = _peers["qpingpong"] = {"q1": q1, "q2": q2, "next": 0}
    q1, q2, first = st["q1"], st["q2"], st["next"]
    buf = np.zeros((1, RECORD_WORDS), np.uint64)
    lat = np.zeros(loops, np.int64)
    clock = time.perf_counter_ns
    for i in range(loops):
        seqcheck.fill(buf, first + i)
        rec = buf.tobytes()
        t0 = clock()
        q1.put(rec)
        back = q2.get(timeout=60)
        lat[i] = clock() - t0
        if seqcheck.verify(np.frombuffer(back, dtype=np.uint64).reshape(1, RECORD_WORDS), first + i)[0] != -1:
            raise AssertionError(f"queue ping-pong: echo of record {first + i} came back wrong")
    st["next"] = first + loops
    return percentile(lat, pct) / 2 * 1e-9 * loops


def main() -> None:
    runner = pyperf.Runner(processes=4, values=3)
    wcpu, ccpu = _cpus()
    runner.metadata["ring_cpus"] = (
        f"consumer/pinger cpu {wcpu}, producer/ponger cpu {ccpu}" if wcpu is not None else "unpinned"
    )
    for batch in BATCHES:
        runner.bench_time_func(f"OneToOneThroughput[ring,batch={batch}]", ring_throughput, batch)
        if batch in PY_BATCHES:
            runner.bench_time_func(f"OneToOneThroughput[ring-py,batch={batch}]", ring_py_throughput, batch)
        runner.bench_time_func(f"OneToOneThroughput[queue,batch={batch}]", queue_throughput, batch)
    for pct in (50, 99):
        runner.bench_time_func(f"PingPongLatency[ring].p{pct}", ring_pingpong, pct)
        runner.bench_time_func(f"PingPongLatency[queue].p{pct}", queue_pingpong, pct)


if __name__ == "__main__":
    main()
