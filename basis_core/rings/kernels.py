"""Compiled ring operations: batch claim/publish for the producer, batch claim/release for the
consumer, copying push/pop, and a bounded spin wait. Callable from numba code and from Python.

Every kernel takes the ring's arrays (see `basis_core.rings.layout`):

    header  int64[HEADER_WORDS]   shared: geometry, pids, cursors, heartbeat
    slots   uint64[capacity, 8]   shared: the 64-byte records
    local   int64[LOCAL_WORDS]    private to one end (one process): its own cursor and its
                                  cached copy of the other end's cursor

Cursors are record counts that only grow (never wrap in practice: 2**63 records); the slot of
sequence number `c` is `c & (capacity - 1)`. The producer owns HEAD (records published), the
consumer owns TAIL (records consumed); `0 <= HEAD - TAIL <= capacity` always.

Publication order (why a consumer never reads a slot before its bytes are written, on x86-64
and ARM64 alike): the producer writes slot bytes, then stores HEAD with *release* ordering; the
consumer loads HEAD with *acquire* ordering before it reads any slot below it. The reverse edge
is symmetric: the consumer finishes reading slots, then stores TAIL with release; the producer
loads TAIL with acquire before it overwrites a slot that TAIL has freed. Each end reads the
other's cursor from shared memory only when its cached copy says "full" / "empty".

Cost from compiled code: numba passes arrays as reference-counted structs, so each call of a
kernel inside a loop costs about four atomic reference-count updates (~40 ns here), whether or
not it is inlined. Per batch that is noise; a loop that publishes one record at a time should
keep the cursors in locals and use the `atomics` intrinsics directly, in the same order, as
`seqcheck.produce` / `seqcheck.consume` do.

"Full" and "empty" are return values (a count of 0), never exceptions. Argument checks (shape,
dtype, roles) live in the Python `Ring` wrapper; these loops trust their inputs.
"""

from __future__ import annotations

import numba

from .atomics import cpu_relax, load_acquire, load_relaxed, monotonic_ns, store_relaxed, store_release
from .layout import CACHED, HEAD, HEARTBEAT, OWN, RECORD_WORDS, TAIL


@numba.njit(cache=True, nogil=True, inline="always")
def heartbeat(header):
    """Producer: store the current CLOCK_MONOTONIC ns in the heartbeat word (relaxed atomic)."""
    store_relaxed(header, HEARTBEAT, monotonic_ns())


@numba.njit(cache=True, nogil=True, inline="always")
def write_claim(header, slots, local, n):
    """Producer: how many of the next `n` slots may be written (0 = ring full). No side effect
    on the ring. The claimed slots are `(local[OWN] + i) & mask` for i in 0..k-1; fill them with
    plain stores, then call `write_publish`.

    Ordering: when the cached TAIL says there is not room for `n`, TAIL is reloaded with an
    acquire load, so the consumer's reads of the slots it freed happen before our writes."""
    cap = slots.shape[0]
    head = local[OWN]
    free = cap - (head - local[CACHED])
    if free < n:
        local[CACHED] = load_acquire(header, TAIL)
        free = cap - (head - local[CACHED])
    return n if n < free else free


@numba.njit(cache=True, nogil=True, inline="always")
def write_publish(header, local, k):
    """Producer: make the `k` claimed slots visible to the consumer. Does not touch the
    heartbeat (a clock read costs ~35 ns here, twice a one-record publish): a compiled producer
    calls `heartbeat` at its own cadence, at least twice per consumer heartbeat timeout.

    Ordering: HEAD is stored with release ordering after the slot writes, so a consumer whose
    acquire load sees the new HEAD also sees every byte of those slots."""
    if k <= 0:
        return
    head = local[OWN] + k
    local[OWN] = head
    store_release(header, HEAD, head)


@numba.njit(cache=True, nogil=True, inline="always")
def read_claim(header, slots, local, n):
    """Consumer: how many records (up to `n`) are ready to read (0 = ring empty). They sit at
    slots `(local[OWN] + i) & mask`; read them in place, then call `read_release`.

    Ordering: when the cached HEAD shows fewer than `n` records, HEAD is reloaded with an acquire
    load, pairing with the producer's release store: the slot bytes below it are complete."""
    tail = local[OWN]
    avail = local[CACHED] - tail
    if avail < n:
        local[CACHED] = load_acquire(header, HEAD)
        avail = local[CACHED] - tail
    return n if n < avail else avail


@numba.njit(cache=True, nogil=True, inline="always")
def read_release(header, local, k):
    """Consumer: hand `k` read slots back to the producer.

    Ordering: TAIL is stored with release ordering after the slot reads, so the producer's
    acquire load of TAIL cannot let it overwrite a slot that is still being read."""
    if k <= 0:
        return
    tail = local[OWN] + k
    local[OWN] = tail
    store_release(header, TAIL, tail)


@numba.njit(cache=True, nogil=True)
def push_batch(header, slots, local, src, start, n):
    """Producer: copy records `src[start:start+n]` (uint64 rows of 8 words) into the ring,
    publish them with one release store and refresh the heartbeat. Returns how many were
    written: fewer than `n` (maybe 0) when the ring is full. Ordering as in `write_claim` /
    `write_publish`."""
    heartbeat(header)
    k = write_claim(header, slots, local, n)
    mask = slots.shape[0] - 1
    head = local[OWN]
    for i in range(k):
        s = (head + i) & mask
        r = start + i
        for w in range(RECORD_WORDS):
            slots[s, w] = src[r, w]
    write_publish(header, local, k)
    return k


@numba.njit(cache=True, nogil=True)
def pop_batch(header, slots, local, out, start, n):
    """Consumer: copy up to `n` ready records into `out[start:start+n]` and release their slots
    with one release store. Returns how many were read: 0 when the ring is empty. Ordering as in
    `read_claim` / `read_release`."""
    k = read_claim(header, slots, local, n)
    mask = slots.shape[0] - 1
    tail = local[OWN]
    for i in range(k):
        s = (tail + i) & mask
        r = start + i
        for w in range(RECORD_WORDS):
            out[r, w] = slots[s, w]
    read_release(header, local, k)
    return k


@numba.njit(cache=True, nogil=True)
def spin_readable(header, slots, local, max_spins, pause):
    """Consumer: spin until at least one record is ready or `max_spins` polls have passed;
    returns the ready count (0 after the spins ran out). `pause` issues a PAUSE per poll.

    Ordering: each poll is an acquire load of HEAD (see `read_claim`); being atomic, it cannot
    be hoisted out of the loop, so the wait ends as soon as the producer publishes."""
    for _ in range(max_spins):
        k = read_claim(header, slots, local, 1)
        if k > 0:
            return local[CACHED] - local[OWN]
        if pause:
            cpu_relax()
    return 0


@numba.njit(cache=True, nogil=True)
def spin_writable(header, slots, local, max_spins, pause):
    """Producer: spin until at least one slot is free or `max_spins` polls have passed; returns
    the free count (0 after the spins ran out). Ordering as in `write_claim`."""
    cap = slots.shape[0]
    for _ in range(max_spins):
        k = write_claim(header, slots, local, 1)
        if k > 0:
            return cap - (local[OWN] - local[CACHED])
        if pause:
            cpu_relax()
    return 0


@numba.njit(cache=True, nogil=True)
def heartbeat_age_ns(header):
    """Anyone: ns since the producer's last heartbeat (relaxed atomic load; -1 = never beat)."""
    hb = load_relaxed(header, HEARTBEAT)
    if hb == 0:
        return -1
    return monotonic_ns() - hb


@numba.njit(cache=True, nogil=True)
def cursors(header):
    """Anyone: (HEAD, TAIL) as acquire loads: records published and records consumed so far."""
    return load_acquire(header, HEAD), load_acquire(header, TAIL)


@numba.njit(cache=True, nogil=True)
def load_word(header, i):
    """Anyone: header word `i` as an acquire load (pairs with `store_word`)."""
    return load_acquire(header, i)


@numba.njit(cache=True, nogil=True)
def store_word(header, i, value):
    """Anyone: header word `i` = `value` as a release store: every earlier write of this
    process (e.g. the geometry before MAGIC) is visible to whoever sees `value`."""
    store_release(header, i, value)
