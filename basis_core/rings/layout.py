"""Byte layout of a ring segment and of an end's private state.

A segment is a header of three 128-byte lines followed by `capacity` 64-byte slots:

    byte 0     line 0, written once   MAGIC, VERSION, CAPACITY, SLOT_BYTES, CREATOR_PID,
                                      PRODUCER_PID, CONSUMER_PID, FLAGS, CREATED_NS
    byte 128   line 1, producer's     HEAD (records published), HEARTBEAT (CLOCK_MONOTONIC ns)
    byte 256   line 2, consumer's     TAIL (records consumed)
    byte 384   slot 0 .. slot capacity-1, 64 bytes each (basis_core.schema records)

Lines are 128 bytes, not 64, because x86 adjacent-line prefetch pulls cache lines in pairs:
HEAD and TAIL would still contend if they sat in neighbouring 64-byte lines. The header is
read as little-endian int64 words; the index constants below are word indices.

An end's private state (`local`, int64[LOCAL_WORDS], never shared) holds its own cursor (OWN)
and its last-seen copy of the other end's cursor (CACHED).
"""

from __future__ import annotations

from ..schema import RECORD_SIZE

MAGIC = int.from_bytes(b"BASISRNG", "little")
VERSION = 1

LINE_WORDS = 16  # 128 bytes
HEADER_WORDS = 3 * LINE_WORDS
HEADER_BYTES = HEADER_WORDS * 8  # 384
RECORD_WORDS = RECORD_SIZE // 8  # 8 uint64 words per slot

# line 0: geometry and identity
W_MAGIC = 0
W_VERSION = 1
W_CAPACITY = 2
W_SLOT_BYTES = 3
W_CREATOR_PID = 4
W_PRODUCER_PID = 5
W_CONSUMER_PID = 6
W_FLAGS = 7
W_CREATED_NS = 8
# line 1: producer
HEAD = LINE_WORDS
HEARTBEAT = LINE_WORDS + 1
# line 2: consumer
TAIL = 2 * LINE_WORDS

FLAG_PRODUCER_CLOSED = 1  # the producer closed its end: nothing more will be published

# private state of one end
OWN = 0
CACHED = 1
LOCAL_WORDS = 8

MIN_CAPACITY = 2
MAX_CAPACITY = 1 << 30


def segment_bytes(capacity: int) -> int:
    """Size of a segment holding `capacity` slots."""
    return HEADER_BYTES + capacity * RECORD_SIZE
