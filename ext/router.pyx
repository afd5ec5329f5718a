# cython: language_level=3
"""The outgoing-command router of the io process: priorities, throttles, sequencing, retries.

Per venue, commands wait in one FIFO queue per priority. `pop_ready` hands out the next
command whose endpoint its venue's `Throttle` can serve now, scanning priorities from the
highest (CANCEL, then HEDGE, then QUERY, then ENTRY). Priority is strict: while the head of a
higher queue is held back by the throttle, nothing of lower priority leaves, so a new entry
never spends budget a waiting hedge needs. Each command that leaves is stamped with the next
number of its venue's `basis_ext.sequencer.Sequencer`: the numbers follow dispatch order, so
the same inputs and clock readings give the same numbers.

`RetryPolicy` decides what to do after a failed attempt, per operation: only safe operations
(queries, and cancels, which are idempotent by client order id) are retried blindly; a submit
whose outcome is unknown (timeout, connection lost, unreadable answer, 5xx) must first be looked
up by its client order id (VERIFY); a submit refused by a rate limit was not executed and may be
retried after the wait the venue asked for.
"""
from libc.stdint cimport int64_t
from collections import deque

from basis_ext.sequencer import Sequencer

# priorities (lower value leaves first)
CANCEL = 0
HEDGE = 1
QUERY = 2
ENTRY = 3
PRIORITY_NAMES = ("CANCEL", "HEDGE", "QUERY", "ENTRY")

cdef enum:
    N_PRIO = 4

# operations
OP_SUBMIT = 0
OP_CANCEL = 1
OP_FETCH_ORDER = 2
OP_OPEN_ORDERS = 3
OP_FILLS = 4
OP_BALANCES = 5
OP_BOOK = 6
OP_MARKETS = 7
OP_NAMES = ("submit", "cancel", "fetch_order", "open_orders", "fills", "balances", "book", "markets")

# faults, as classified by an adapter's error table
FAULT_TIMEOUT = 0       # no answer: the request may have taken effect
FAULT_NETWORK = 1       # connection dropped mid-request: same uncertainty as a timeout
FAULT_RATE_LIMITED = 2  # 429/418/-1003: refused before execution
FAULT_UNAVAILABLE = 3   # maintenance / 5xx: the venue may or may not have executed it
FAULT_MALFORMED = 4     # an answer we cannot read
FAULT_REJECTED = 5      # the venue refused the request (filters, funds, post-only ...)
FAULT_NOT_FOUND = 6     # the venue does not know the order
FAULT_AUTH = 7          # bad key or signature: retrying cannot help
FAULT_NAMES = ("timeout", "network", "rate_limited", "unavailable", "malformed", "rejected",
               "not_found", "auth")

# decisions
GIVE_UP = 0
RETRY = 1               # resend the same request after `backoff_ns`
VERIFY = 2              # look the order up by client order id first; resend only if absent
ACTION_NAMES = ("give_up", "retry", "verify")


cdef class Command:
    """One command handed out by the router, stamped with its venue sequence number."""
    cdef readonly unsigned long long seq
    cdef readonly int venue
    cdef readonly int priority
    cdef readonly int endpoint
    cdef readonly object item
    cdef readonly int64_t queued_ns

    def __repr__(self):
        return (f"Command(seq={self.seq}, venue={self.venue}, priority={PRIORITY_NAMES[self.priority]}, "
                f"endpoint={self.endpoint}, item={self.item!r})")


cdef class Router:
    """Priority queues and throttles for up to 256 venues, with one shared Sequencer."""

    cdef list _throttles
    cdef list _queues           # per venue: list of N_PRIO deques of Command, or None
    cdef object _sequencer
    cdef object _next_seq       # bound method sequencer.next

    def __cinit__(self, sequencer=None):
        self._throttles = [None] * 256
        self._queues = [None] * 256
        self._sequencer = Sequencer() if sequencer is None else sequencer
        self._next_seq = self._sequencer.next

    @property
    def sequencer(self):
        return self._sequencer

    def add_venue(self, int venue, throttle not None):
        """Route venue id `venue` (0..255) through `throttle` (a basis_ext.throttle.Throttle)."""
        if venue < 0 or venue > 255:
            raise ValueError(f"venue id {venue} out of range 0..255")
        if self._queues[venue] is not None:
            raise ValueError(f"venue id {venue} added twice")
        self._throttles[venue] = throttle
        self._queues[venue] = [deque() for _ in range(N_PRIO)]

    def throttle(self, int venue):
        return self._throttles[self._check(venue)]

    cdef inline int _check(self, int venue) except -1:
        if venue < 0 or venue > 255 or self._queues[venue] is None:
            raise ValueError(f"venue id {venue} is not routed")
        return venue

    cpdef push(self, int venue, int priority, int endpoint, object item, int64_t now_ns=0):
        """Queue `item` for `venue` at `priority`, to be sent through `endpoint`."""
        self._check(venue)
        if priority < 0 or priority >= N_PRIO:
            raise ValueError(f"priority {priority} out of range 0..{N_PRIO - 1}")
        cdef Command cmd = Command.__new__(Command)
        cmd.venue = venue
        cmd.priority = priority
        cmd.endpoint = endpoint
        cmd.item = item
        cmd.queued_ns = now_ns
        (<list>self._queues[venue])[priority].append(cmd)

    cpdef object pop_ready(self, int venue, int64_t now_ns):
        """The next command of `venue` that may leave at `now_ns` (its weight is taken from the
        throttle and it gets its sequence number), or None."""
        self._check(venue)
        cdef list queues = <list>self._queues[venue]
        cdef object thr = self._throttles[venue]
        cdef int p
        cdef Command cmd
        cdef object q
        for p in range(N_PRIO):
            q = queues[p]
            if not q:
                continue
            cmd = <Command>q[0]
            if thr.try_acquire(cmd.endpoint, now_ns) != 0:
                return None             # strict priority: nothing below may overtake it
            q.popleft()
            cmd.seq = self._next_seq(venue)
            return cmd
        return None

    cpdef int64_t wait_ns(self, int venue, int64_t now_ns) except? -3:
        """ns until the head command of `venue` could leave: 0 now, -1 nothing queued,
        -2 never (its weight exceeds a pool's capacity)."""
        self._check(venue)
        cdef list queues = <list>self._queues[venue]
        cdef object thr = self._throttles[venue]
        cdef int p
        cdef int64_t w
        for p in range(N_PRIO):
            q = queues[p]
            if q:
                w = thr.wait_ns((<Command>q[0]).endpoint, now_ns)
                return -2 if w < 0 else w
        return -1

    def pending(self, int venue):
        """Commands waiting for `venue`, per priority (CANCEL, HEDGE, QUERY, ENTRY)."""
        self._check(venue)
        return tuple(len(q) for q in self._queues[venue])

    def drop(self, int venue, int priority=-1):
        """Remove and return the waiting commands of `venue` (one priority, or all when -1),
        e.g. new entries when a venue is quarantined."""
        self._check(venue)
        out = []
        for p in range(N_PRIO):
            if priority in (-1, p):
                q = self._queues[venue][p]
                out.extend(q)
                q.clear()
        return out


cdef class RetryPolicy:
    """What to do after attempt number `attempt` (1-based) of operation `op` failed with `fault`."""

    cdef int _max_attempts[8]
    cdef int64_t _base_ns
    cdef int64_t _cap_ns

    def __cinit__(self, int max_attempts=3, double base_backoff_s=0.05, double max_backoff_s=2.0):
        if max_attempts < 1 or base_backoff_s < 0 or max_backoff_s < base_backoff_s:
            raise ValueError("need max_attempts >= 1 and 0 <= base_backoff_s <= max_backoff_s")
        cdef int i
        for i in range(8):
            self._max_attempts[i] = max_attempts
        self._base_ns = <int64_t>(base_backoff_s * 1e9)
        self._cap_ns = <int64_t>(max_backoff_s * 1e9)

    def set_max_attempts(self, int op, int attempts):
        if op < 0 or op >= 8 or attempts < 1:
            raise ValueError("op out of range or attempts < 1")
        self._max_attempts[op] = attempts

    cpdef int decide(self, int op, int fault, int attempt) except -1:
        """GIVE_UP, RETRY or VERIFY (see the module docstring)."""
        if op < 0 or op >= 8 or fault < 0 or fault > FAULT_AUTH:
            raise ValueError(f"op {op} or fault {fault} out of range")
        if fault == FAULT_REJECTED or fault == FAULT_AUTH:
            return GIVE_UP
        if fault == FAULT_NOT_FOUND:
            return GIVE_UP              # a query's answer, not a failure of the transport
        if op == OP_SUBMIT and fault != FAULT_RATE_LIMITED:
            return VERIFY               # outcome unknown: never resend before a lookup
        if attempt >= self._max_attempts[op]:
            return GIVE_UP
        return RETRY

    cpdef int64_t backoff_ns(self, int attempt, int64_t retry_after_ns=0):
        """Deterministic exponential backoff after `attempt` failures, at least `retry_after_ns`."""
        cdef int64_t b = self._base_ns
        cdef int i
        for i in range(1, attempt):
            b *= 2
            if b >= self._cap_ns:
                b = self._cap_ns
                break
        if b > self._cap_ns:
            b = self._cap_ns
        return b if b > retry_after_ns else retry_after_ns
