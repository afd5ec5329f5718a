"""`Ring`: one end (producer or consumer) of a single-producer single-consumer ring of 64-byte
records in named shared memory, usable from Python and, through its arrays, from numba code.

    producer process                               consumer process
    Ring.create("md", 4096, PRODUCER)              Ring.attach("md", CONSUMER)
      push_batch(records) -> n written               pop_batch(out) -> n read
      (0 = full)                                     (0 = empty)
                          /dev/shm/basis-md

Either end may create the segment; the creator unlinks it on `close()` (see `segment`). The
Python methods call the compiled kernels of `basis_core.rings.kernels`, so Python and numba
code share one implementation of the publication order: acquire load of the other end's
cursor, release store of one's own (details in that module). Compiled code passes
`ring.header, ring.slots, ring.local` to the kernels directly.

A consumer knows whether its producer is alive: the producer stores its pid in the header and a
CLOCK_MONOTONIC heartbeat on every `push_batch` / `push_wait` call (and on `heartbeat()`;
compiled producers beat with `kernels.heartbeat`). `pop_wait` raises
ProducerDead when that pid is gone (or a zombie) or, if `heartbeat_timeout_s` is set, when the
heartbeat is older than that; records published before the death are still delivered first.
The pid check needs both ends in one PID namespace and can be fooled by pid reuse; the
heartbeat check has neither limit, at the price of the producer beating while idle.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..errors import ProducerDead, RingError
from ..schema import RECORD_SIZE
from . import kernels
from .layout import (
    CACHED,
    FLAG_PRODUCER_CLOSED,
    HEAD,
    HEADER_BYTES,
    HEADER_WORDS,
    LOCAL_WORDS,
    MAGIC,
    MAX_CAPACITY,
    MIN_CAPACITY,
    OWN,
    RECORD_WORDS,
    TAIL,
    VERSION,
    W_CAPACITY,
    W_CONSUMER_PID,
    W_CREATED_NS,
    W_CREATOR_PID,
    W_FLAGS,
    W_MAGIC,
    W_PRODUCER_PID,
    W_SLOT_BYTES,
    W_VERSION,
    segment_bytes,
)
from .segment import Segment
from .wait import BusySpin

PRODUCER = "producer"
CONSUMER = "consumer"
ENDED = -1  # pop_wait: the producer closed its end and every record has been read

_CHECK_EVERY_S = 0.05  # how often a waiting end looks at the other end's pid and heartbeat


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (a killed child its parent has not
    reaped yet still has a pid, but it will never publish again)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def as_words(records: np.ndarray) -> np.ndarray:
    """View 64-byte records (any schema dtype, uint64 [n, 8] or uint8 [n, 64]) as uint64 [n, 8]."""
    if not isinstance(records, np.ndarray):
        raise RingError(f"records must be a numpy array, got {type(records).__name__}")
    if not records.flags.c_contiguous:
        raise RingError("records must be C-contiguous")
    if records.dtype == np.uint64 and records.ndim == 2 and records.shape[1] == RECORD_WORDS:
        words = records
    elif records.dtype.itemsize == RECORD_SIZE and records.ndim == 1:
        words = (
            records.view(np.uint64).reshape(-1, RECORD_WORDS) if records.size else np.empty((0, 8), np.uint64)
        )
    elif records.dtype == np.uint8 and records.ndim == 2 and records.shape[1] == RECORD_SIZE:
        words = records.view(np.uint64)
    else:
        raise RingError(
            f"records must be 64-byte records, uint64 [n, 8] or uint8 [n, 64]; "
            f"got dtype {records.dtype} shape {records.shape}"
        )
    return words


class Ring:
    """One end of a ring. Build with `Ring.create` or `Ring.attach`; close with `close()` (or use
    it as a context manager). Not thread-safe: one end is driven by one thread."""

    def __init__(self, seg: Segment, role: str, heartbeat_timeout_s: float | None):
        if role not in (PRODUCER, CONSUMER):
            raise RingError(f"role must be {PRODUCER!r} or {CONSUMER!r}, got {role!r}")
        if heartbeat_timeout_s is not None and not heartbeat_timeout_s > 0:
            raise RingError(f"heartbeat_timeout_s must be > 0 or None, got {heartbeat_timeout_s!r}")
        self._seg = seg
        self._closed = False
        self.name = seg.name
        self.role = role
        self.is_producer = role == PRODUCER
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.header = np.frombuffer(seg.buf, dtype=np.int64, count=HEADER_WORDS)
        cap = int(self.header[W_CAPACITY])
        self.capacity = cap
        self.slots = np.frombuffer(
            seg.buf, dtype=np.uint64, count=cap * RECORD_WORDS, offset=HEADER_BYTES
        ).reshape(cap, RECORD_WORDS)
        self.local = np.zeros(LOCAL_WORDS, dtype=np.int64)
        head, tail = kernels.cursors(self.header)
        if self.is_producer:
            self.local[OWN], self.local[CACHED] = head, tail
            kernels.store_word(self.header, W_FLAGS, int(self.header[W_FLAGS]) & ~FLAG_PRODUCER_CLOSED)
            kernels.heartbeat(self.header)
            kernels.store_word(self.header, W_PRODUCER_PID, os.getpid())
        else:
            self.local[OWN], self.local[CACHED] = tail, head
            kernels.store_word(self.header, W_CONSUMER_PID, os.getpid())

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, capacity: int, role: str, heartbeat_timeout_s: float | None = None) -> Ring:
        """Create the segment `basis-<name>` with `capacity` slots (a power of two) and open
        `role`'s end of it. This end owns the segment: `close()` unlinks it."""
        if role not in (PRODUCER, CONSUMER):
            raise RingError(f"role must be {PRODUCER!r} or {CONSUMER!r}, got {role!r}")
        if (
            not isinstance(capacity, int)
            or not MIN_CAPACITY <= capacity <= MAX_CAPACITY
            or capacity & (capacity - 1)
        ):
            raise RingError(
                f"capacity must be a power of two in {MIN_CAPACITY}..{MAX_CAPACITY}, got {capacity!r}"
            )
        seg = Segment.create(name, segment_bytes(capacity))
        header = np.frombuffer(seg.buf, dtype=np.int64, count=HEADER_WORDS)
        header[W_VERSION] = VERSION
        header[W_CAPACITY] = capacity
        header[W_SLOT_BYTES] = RECORD_SIZE
        header[W_CREATOR_PID] = os.getpid()
        header[W_CREATED_NS] = time.time_ns()
        kernels.store_word(header, W_MAGIC, MAGIC)  # release: geometry first, then the magic
        del header
        try:
            return cls(seg, role, heartbeat_timeout_s)
        except BaseException:
            seg.close()
            raise

    @classmethod
    def attach(cls, name: str, role: str, heartbeat_timeout_s: float | None = None) -> Ring:
        """Open `role`'s end of the existing ring `basis-<name>`. Raises RingError when there is
        no such segment, when it is not a basis ring of this version, or when `role` is producer
        and a live producer is already attached."""
        seg = Segment.attach(name)
        try:
            cls._validate(seg)
            if role == PRODUCER:
                header = np.frombuffer(seg.buf, dtype=np.int64, count=HEADER_WORDS)
                pid = int(kernels.load_word(header, W_PRODUCER_PID))
                closed = int(kernels.load_word(header, W_FLAGS)) & FLAG_PRODUCER_CLOSED
                del header
                if pid and pid != os.getpid() and not closed and pid_alive(pid):
                    raise RingError(
                        f"ring {seg.name!r} already has a live producer (pid {pid}); "
                        f"a ring takes one producer"
                    )
            return cls(seg, role, heartbeat_timeout_s)
        except BaseException:
            seg.close()
            raise

    @staticmethod
    def _validate(seg: Segment) -> None:
        size = len(seg.buf)
        if size < HEADER_BYTES:
            raise RingError(f"segment {seg.name!r} is {size} bytes: too small to be a basis ring")
        header = np.frombuffer(seg.buf, dtype=np.int64, count=HEADER_WORDS)
        try:
            magic = int(kernels.load_word(header, W_MAGIC))
            if magic != MAGIC:
                raise RingError(
                    f"segment {seg.name!r} is not a basis ring (magic {magic:#x}, "
                    f"want {MAGIC:#x}), or its creator has not finished creating it"
                )
            version, cap, slot = int(header[W_VERSION]), int(header[W_CAPACITY]), int(header[W_SLOT_BYTES])
        finally:
            del header
        if version != VERSION:
            raise RingError(f"ring {seg.name!r} has layout version {version}; this build reads {VERSION}")
        if slot != RECORD_SIZE or cap < MIN_CAPACITY or cap & (cap - 1) or size < segment_bytes(cap):
            raise RingError(
                f"ring {seg.name!r} has a bad geometry: capacity {cap}, slot {slot} bytes, "
                f"segment {size} bytes"
            )

    # -- data -----------------------------------------------------------------------------

    def push_batch(self, records: np.ndarray) -> int:
        """Producer: copy as many of `records` as fit, publish them with one release store, and
        return how many were written (0 = full). Ordering: see `kernels.push_batch`."""
        self._require(PRODUCER)
        words = as_words(records)
        return int(kernels.push_batch(self.header, self.slots, self.local, words, 0, words.shape[0]))

    def pop_batch(self, out: np.ndarray) -> int:
        """Consumer: copy up to `len(out)` ready records into the front of `out`, release their
        slots with one release store, and return how many were read (0 = empty). Ordering: see
        `kernels.pop_batch`."""
        self._require(CONSUMER)
        words = as_words(out)
        if not words.flags.writeable:
            raise RingError("out must be writable")
        return int(kernels.pop_batch(self.header, self.slots, self.local, words, 0, words.shape[0]))

    def push_wait(self, records: np.ndarray, wait=None, timeout_s: float | None = None) -> int:
        """Producer: push all of `records`, waiting with `wait` (default BusySpin) while full.
        Returns how many were written: all of them, or fewer when `timeout_s` passed or the
        consumer process is gone. Ordering: each step is `kernels.push_batch` (acquire load of
        TAIL before reusing slots, release store of HEAD after filling them)."""
        self._require(PRODUCER)
        words = as_words(records)
        wait = wait or BusySpin()
        total, n = 0, words.shape[0]
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_check = time.monotonic() + _CHECK_EVERY_S
        attempt = 0
        while total < n:
            k = int(kernels.push_batch(self.header, self.slots, self.local, words, total, n - total))
            if k:
                total += k
                attempt = 0
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_check:
                next_check = now + _CHECK_EVERY_S
                cpid = int(kernels.load_word(self.header, W_CONSUMER_PID))
                if cpid and not pid_alive(cpid):
                    break
            attempt += 1
            wait.idle(self, attempt)
        return total

    def pop_wait(self, out: np.ndarray, wait=None, timeout_s: float | None = None) -> int:
        """Consumer: wait with `wait` (default BusySpin) until records are ready and pop up to
        `len(out)` of them. Returns the count read (> 0), 0 when `timeout_s` passed, or ENDED
        when the producer closed its end and everything was read. Raises ProducerDead when the
        producer died (see `check_producer`); records it published before are read first.
        Ordering: each poll is `kernels.pop_batch` (acquire load of HEAD before reading slots,
        release store of TAIL after); waits poll the cursor with atomic loads only."""
        self._require(CONSUMER)
        words = as_words(out)
        wait = wait or BusySpin()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_check = 0.0
        attempt = 0
        while True:
            k = int(kernels.pop_batch(self.header, self.slots, self.local, words, 0, words.shape[0]))
            if k:
                return k
            if self.producer_closed:
                k = int(kernels.pop_batch(self.header, self.slots, self.local, words, 0, words.shape[0]))
                return k if k else ENDED
            now = time.monotonic()
            if now >= next_check:
                next_check = now + _CHECK_EVERY_S
                self.check_producer()
            if deadline is not None and now >= deadline:
                return 0
            attempt += 1
            wait.idle(self, attempt)

    # -- liveness -------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Producer: refresh the heartbeat without publishing (call it while idle when the
        consumer uses a heartbeat timeout)."""
        self._require(PRODUCER)
        kernels.heartbeat(self.header)

    def producer_status(self) -> str:
        """ "" when the producer looks alive (or none has attached yet), else why it is not."""
        pid = int(kernels.load_word(self.header, W_PRODUCER_PID))
        if pid == 0:
            return ""
        if not pid_alive(pid):
            return f"producer pid {pid} is gone"
        if self.heartbeat_timeout_s is not None:
            age = int(kernels.heartbeat_age_ns(self.header))
            if age > self.heartbeat_timeout_s * 1e9:
                return f"producer pid {pid} has not beaten for {age / 1e9:.3f} s (timeout {self.heartbeat_timeout_s} s)"
        return ""

    def check_producer(self) -> None:
        """Raise ProducerDead when the producer is gone or its heartbeat is stale."""
        why = self.producer_status()
        if why:
            head, tail = kernels.cursors(self.header)
            raise ProducerDead(f"ring {self.name!r}: {why} (published {head}, consumed {tail})")

    # -- state ----------------------------------------------------------------------------

    @property
    def published(self) -> int:
        return int(kernels.load_word(self.header, HEAD))

    @property
    def consumed(self) -> int:
        return int(kernels.load_word(self.header, TAIL))

    @property
    def producer_closed(self) -> bool:
        """True once the producer closed its end (records may still be waiting to be read)."""
        return bool(int(kernels.load_word(self.header, W_FLAGS)) & FLAG_PRODUCER_CLOSED)

    @property
    def producer_pid(self) -> int:
        return int(kernels.load_word(self.header, W_PRODUCER_PID))

    @property
    def owner(self) -> bool:
        """True when this end created the segment and will unlink it on close."""
        return not self._closed and self._seg.owner

    def _require(self, role: str) -> None:
        if self._closed:
            raise RingError(f"ring {self.name!r} is closed")
        if self.role != role:
            raise RingError(f"ring {self.name!r}: this end is the {self.role}, not the {role}")

    def close(self) -> None:
        """Close this end. A producer marks the ring closed (consumers then see ENDED once they
        have read everything); the creator unlinks the segment. Idempotent.

        The views of the shared memory go before it is unmapped: `header` becomes a private copy
        (the cursors and flags as they were at close) and `slots` an empty array; a closed end
        must not be handed to the kernels again."""
        if self._closed:
            return
        if self.is_producer:
            kernels.store_word(self.header, W_FLAGS, int(self.header[W_FLAGS]) | FLAG_PRODUCER_CLOSED)
        self._closed = True
        self.header = self.header.copy()
        self.slots = np.empty((0, RECORD_WORDS), dtype=np.uint64)
        self._seg.close()

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"published={self.published} consumed={self.consumed}"
        return f"Ring({self.name!r}, {self.role}, capacity={self.capacity}, {state})"
