"""Compiled kernels of the journal: CRC-32 of a record, the ordered batch copy, the slot scan.

Every kernel works on a segment as a flat little-endian uint32 array (`words`): the header line
is words 0..15 and slot `s` is words `16 * (s + 1)` .. `16 * (s + 1) + 15`; word 15 of a slot is
the record's `check`. The CRC is the zlib CRC-32 (reflected polynomial 0xEDB88320) of bytes 0..59,
the same value `basis_core.schema.seal` computes, here sliced by 4 over the 15 payload words.

A slot is *valid* when its check word equals the CRC of its bytes 0..59. A never-written slot
is all zeros and is never valid, because the CRC-32 of 60 zero bytes is 0x04128F08, not 0.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from numba import types

from ..rings.atomics import compiled_intrinsic

if sys.byteorder != "little":  # the word view below assumes the schema's little-endian layout
    raise ImportError("basis_core.journal needs a little-endian host (x86-64, ARM64)")

WORDS = 16  # uint32 words per 64-byte record
CHECK_WORD = 15  # index of the check word inside a record


def _tables() -> np.ndarray:
    t = np.zeros((4, 256), dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        t[0, i] = c
    for k in range(1, 4):
        for i in range(256):
            prev = int(t[k - 1, i])
            t[k, i] = (prev >> 8) ^ int(t[0, prev & 0xFF])
    return t


_T = _tables()


@compiled_intrinsic
def _release_fence(typingctx):
    """An LLVM `fence release`: no store after it may be moved before a store ahead of it.

    A compiler barrier on x86-64 (TSO keeps the order in hardware); `dmb ish` on ARM64."""

    def codegen(context, builder, sig, args):
        builder.fence("release")
        return context.get_dummy_value()

    return types.void(), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _crc60(words, base):
    t = _T
    c = np.uint32(0xFFFFFFFF)
    for k in range(CHECK_WORD):
        c ^= words[base + k]
        c = t[3, c & 0xFF] ^ t[2, (c >> 8) & 0xFF] ^ t[1, (c >> 16) & 0xFF] ^ t[0, c >> 24]
    return c ^ np.uint32(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def crc_records(words, out):
    """out[i] = CRC-32 of bytes 0..59 of record i of `words` (a flat uint32 array of records)."""
    for i in range(out.shape[0]):
        out[i] = _crc60(words, i * WORDS)


@numba.njit(cache=True, nogil=True)
def write_records(dst, slot, src, n):
    """Copy `n` records from `src` (flat uint32) into segment `dst` at `slot`, sealed, in order.

    Pass 1 copies bytes 0..59 of every record, a release fence follows, then pass 2 computes each
    CRC from the bytes now in the segment and stores the check words in slot order. So at any
    instant (and after a kill -9 at any instruction) the valid slots of the segment are a prefix:
    a slot's check word is never visible before its own payload or before an earlier slot's check.
    The target slots must be zero (fresh segment or a zeroed torn tail). Returns nothing."""
    chunk = 1024  # keeps pass 2 reading from cache
    done = 0
    while done < n:
        m = min(chunk, n - done)
        for i in range(m):
            d = (slot + done + i + 1) * WORDS
            s = (done + i) * WORDS
            for k in range(CHECK_WORD):
                dst[d + k] = src[s + k]
        _release_fence()
        for i in range(m):
            d = (slot + done + i + 1) * WORDS
            dst[d + CHECK_WORD] = _crc60(dst, d)
        _release_fence()
        done += m


@numba.njit(cache=True, nogil=True)
def _nonzero(words, base):
    for k in range(WORDS):
        if words[base + k] != 0:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def scan_slots(words, start, capacity):
    """Scan slots `start`..`capacity` of a segment (slots before `start` are trusted as valid).

    Returns (valid, corrupt, dirty_end):
      valid      the first slot >= start that is not valid (== capacity when all are valid);
      corrupt    the first slot after `valid` that holds a valid record (-1 if none): data after a
                 gap, which a crash of a correct writer cannot produce;
      dirty_end  one past the last non-zero slot at or after `valid` (== valid when the rest of
                 the segment is all zeros): the torn tail a recovering writer must zero."""
    valid = capacity
    for s in range(start, capacity):
        b = (s + 1) * WORDS
        if words[b + CHECK_WORD] != _crc60(words, b):
            valid = s
            break
    corrupt = -1
    dirty_end = valid
    for s in range(valid, capacity):
        b = (s + 1) * WORDS
        if _nonzero(words, b):
            dirty_end = s + 1
            if corrupt < 0 and words[b + CHECK_WORD] == _crc60(words, b):
                corrupt = s
    return valid, corrupt, dirty_end


@numba.njit(cache=True, nogil=True)
def valid_prefix(words, start, stop):
    """The first slot in `start`..`stop` that is not valid (== stop when all are)."""
    for s in range(start, stop):
        b = (s + 1) * WORDS
        if words[b + CHECK_WORD] != _crc60(words, b):
            return s
    return stop
