# cython: language_level=3
"""Deterministic sequence numbers for outgoing commands, per venue.

The router stamps every command it sends with the next number of that venue's sequence, so
a replay of the same inputs produces the same numbers, and a gap in a venue's acknowledgements
is visible. Restored from a journal with `restore`.
"""
from libc.stdint cimport uint64_t


cdef class Sequencer:
    """One monotonically increasing u64 counter per venue id (0..255)."""

    cdef uint64_t _next[256]

    def __cinit__(self):
        cdef int i
        for i in range(256):
            self._next[i] = 1

    cpdef uint64_t next(self, int venue) except? 0:
        """Return the next sequence number for `venue` and advance it."""
        if venue < 0 or venue > 255:
            raise ValueError(f"venue id {venue} out of range 0..255")
        cdef uint64_t value = self._next[venue]
        self._next[venue] = value + 1
        return value

    cpdef uint64_t peek(self, int venue) except? 0:
        """The number `next(venue)` would return, without advancing."""
        if venue < 0 or venue > 255:
            raise ValueError(f"venue id {venue} out of range 0..255")
        return self._next[venue]

    def restore(self, int venue, uint64_t last_used):
        """After replay: continue after `last_used` (never moves backwards)."""
        if venue < 0 or venue > 255:
            raise ValueError(f"venue id {venue} out of range 0..255")
        if last_used + 1 > self._next[venue]:
            self._next[venue] = last_used + 1
