"""Numbered, checksummed record streams: the load that ring tests and benchmarks push through.

Record number `q` (the schema's `seq`, word 0) has words 1..6 and the low half of word 7 derived
from `q` by a 64-bit mixer, and its `check` field (bytes 60..63, the high half of word 7) holds
a 32-bit fold of the xor of everything before it. A reader can so tell, per record:

    seq != expected      lost, duplicated or reordered records (or a stale slot from a lap ago)
    check mismatch       a torn record: its words come from two different writes

`produce` and `consume` are whole loops in compiled code that write into / read from the ring
slots in place (batch claim, fill, publish / claim, verify, release), so a benchmark measures
the ring and not the Python call overhead. A wait is the compiled wait of `wait.idle_poll`
(PAUSE, then sched_yield). They return early when a wait runs past `max_spins` polls, so the
Python caller can check liveness and call again.
"""

from __future__ import annotations

import numba
import numpy as np

from .atomics import load_acquire, store_release
from .kernels import heartbeat
from .layout import CACHED, HEAD, OWN, TAIL
from .wait import idle_poll

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(x):
    z = x * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _write_record(words, r, seq):
    q = np.uint64(seq)
    acc = q
    words[r, 0] = q
    for w in range(1, 7):
        v = _mix(q + np.uint64(w))
        words[r, w] = v
        acc ^= v
    low = _mix(q) & _LOW32
    acc ^= low
    check = (acc ^ (acc >> np.uint64(32))) & _LOW32
    words[r, 7] = (check << np.uint64(32)) | low


@numba.njit(cache=True, nogil=True, inline="always")
def _record_ok(words, r, seq):
    """0 = good, 1 = wrong seq, 2 = torn (check mismatch)."""
    if words[r, 0] != np.uint64(seq):
        return 1
    acc = words[r, 0]
    for w in range(1, 7):
        acc ^= words[r, w]
    w7 = words[r, 7]
    acc ^= w7 & _LOW32
    if (acc ^ (acc >> np.uint64(32))) & _LOW32 != w7 >> np.uint64(32):
        return 2
    return 0


@numba.njit(cache=True, nogil=True)
def fill(words, first_seq):
    """Fill every row of `words` (uint64 [n, 8]) with records first_seq, first_seq + 1, ..."""
    for r in range(words.shape[0]):
        _write_record(words, r, first_seq + r)


@numba.njit(cache=True, nogil=True)
def verify(words, first_seq):
    """Check rows of `words` hold records first_seq, first_seq + 1, ... untorn. Returns
    (index of the first bad row or -1, 0 / 1 wrong seq / 2 torn)."""
    for r in range(words.shape[0]):
        why = _record_ok(words, r, first_seq + r)
        if why:
            return r, why
    return -1, 0


@numba.njit(cache=True, nogil=True)
def produce(header, slots, local, first_seq, n, batch, max_spins):
    """Producer loop: write records first_seq .. first_seq + n - 1 straight into the ring slots,
    publishing every `batch` records (fewer when the ring has less room). Returns how many were
    published; less than `n` when one wait for room exceeded `max_spins` polls. Beats the
    heartbeat once per call.

    The claim / publish steps of `kernels.write_claim` / `kernels.write_publish` are written out
    here with the cursors in registers: a call to a kernel that takes arrays costs numba four
    atomic reference-count updates (~40 ns here), which a one-record publish cannot afford.
    Ordering is the same: acquire load of TAIL before reusing slots, slot stores, then a
    release store of HEAD."""
    heartbeat(header)
    cap = slots.shape[0]
    mask = cap - 1
    head = local[OWN]
    tail = local[CACHED]
    done = 0
    spins = 0
    while done < n:
        want = batch if batch < n - done else n - done
        free = cap - (head - tail)
        if free < want:
            tail = load_acquire(header, TAIL)
            free = cap - (head - tail)
        k = want if want < free else free
        if k == 0:
            spins += 1
            if spins > max_spins:
                break
            idle_poll(spins)
            continue
        spins = 0
        for i in range(k):
            _write_record(slots, (head + i) & mask, first_seq + done + i)
        head += k
        store_release(header, HEAD, head)
        done += k
    local[OWN] = head
    local[CACHED] = tail
    return done


@numba.njit(cache=True, nogil=True)
def consume(header, slots, local, first_seq, n, batch, max_spins):
    """Consumer loop: read up to `n` records in place, up to `batch` per claim, checking each is
    record first_seq + i and untorn. Returns (records read, seq of the first bad record or -1,
    0 / 1 wrong seq / 2 torn). Stops early at a bad record or when one wait for data exceeds
    `max_spins` polls.

    The claim / release steps of `kernels.read_claim` / `kernels.read_release` are written out
    with the cursors in registers (see `produce`). Ordering is the same: acquire load of HEAD
    before reading slots below it, then a release store of TAIL after reading them."""
    mask = slots.shape[0] - 1
    tail = local[OWN]
    head = local[CACHED]
    done = 0
    spins = 0
    bad, why = -1, 0
    while done < n:
        want = batch if batch < n - done else n - done
        avail = head - tail
        if avail < want:
            head = load_acquire(header, HEAD)
            avail = head - tail
        k = want if want < avail else avail
        if k == 0:
            spins += 1
            if spins > max_spins:
                break
            idle_poll(spins)
            continue
        spins = 0
        for i in range(k):
            why = _record_ok(slots, (tail + i) & mask, first_seq + done + i)
            if why:
                bad = first_seq + done + i
                k = i
                break
        tail += k
        store_release(header, TAIL, tail)
        done += k
        if bad != -1:
            break
    local[OWN] = tail
    local[CACHED] = head
    return done, bad, why
