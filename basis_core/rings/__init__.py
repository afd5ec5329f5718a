"""Single-producer single-consumer rings of 64-byte records in named shared memory.

ring.py      Ring: one end of a ring, from Python (push_batch / pop_batch / *_wait)
kernels.py   the compiled batch claim / publish / read / release that Ring and numba use
atomics.py   acquire load, release store, PAUSE, CLOCK_MONOTONIC as numba intrinsics
layout.py    the segment's byte layout
segment.py   named segments: create, attach, unlink, leftovers in /dev/shm
wait.py      wait strategies: BusySpin, Yield, BackoffSleep
seqcheck.py  numbered, checksummed record streams for tests and benchmarks
"""

from .ring import CONSUMER, ENDED, PRODUCER, Ring, as_words, pid_alive
from .segment import PREFIX, leftovers, unlink
from .wait import BackoffSleep, BusySpin, Yield

__all__ = [
    "CONSUMER",
    "ENDED",
    "PREFIX",
    "PRODUCER",
    "BackoffSleep",
    "BusySpin",
    "Ring",
    "Yield",
    "as_words",
    "leftovers",
    "pid_alive",
    "unlink",
]
