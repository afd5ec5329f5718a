"""The journal writer: appends batches of 64-byte records to memory-mapped segment files.

    w = JournalWriter("runs/x/journal", JournalConfig(fsync="segment"))
    first = w.append(records)      # any 64-byte record array; returns the position of records[0]
    w.close()

Positions: the journal numbers its slots itself, from 0, contiguous across segments. The
records' own `seq` fields are not touched (the engine journals records of several producers,
each with its own sequence); a journal written by one producer that numbers from 0 has
position == seq. Each record is stored with its `check` word set to the CRC-32 of its bytes
0..59 (whatever the caller's array held there is replaced); the caller's array is not modified.

Size: segments grow with the journal (`segment.segment_capacity`: 8 MiB first, doubling up to
`segment_records`), and the pages of written records are released from the writer's memory every
RELEASE_EVERY records (they stay in the page cache and reach the file), so neither a short run's
reservation nor a long run's resident set scales with the configured segment size.

Write order (what makes a torn write detectable): within each batch the payload bytes of every
record are copied first, then the check words are written in slot order (kernels.write_records).
So the CRC-valid slots of a segment always form a prefix, whatever instruction a kill -9 hits.
A batch is not atomic: after a crash, any prefix of the batch being written may be in the journal.

Opening an existing journal recovers it: segment headers are checked for a contiguous chain,
the last segment is scanned, a torn tail (non-zero slots after the last valid record, none of
them valid) is zeroed, and appending resumes right after the last whole record. A valid record
after an invalid slot is not a torn tail but damage: JournalCorrupt, and nothing is changed
(`truncate(directory, position)` is the explicit, data-dropping repair). Only the last segment
is scanned on open; `JournalReader` verifies every record it reads.

One writer per directory: the writer holds an exclusive flock on `<dir>/LOCK` (released by the
kernel if the process dies), a second writer gets JournalError. A writer object is meant for one
thread.

fsync policy (JournalConfig.fsync):
  "every_n"  after an append leaves >= fsync_every records unsynced, msync(MS_SYNC) the pages
             written since the last sync (granularity: whole batches); also on roll and close;
             new segments are fsynced with their directory entry.
  "segment"  msync a segment when it is full (before the next one is created) and on close;
             new segments are fsynced with their directory entry.
  "never"    no msync, no fsync; the kernel writes dirty pages back when it chooses.
A process crash (kill -9, segfault) loses nothing under any policy: the records are in the
kernel's page cache as soon as `append` returns and reach the file whether or not the process
lives. The policy decides what survives power loss or a kernel crash: up to fsync_every records
(plus the current batch) with "every_n", up to a whole segment with "segment", anything not yet
written back (typically up to ~30 s) with "never". After such a loss the tail is recovered like
a torn write, or, if the page cache wrote pages out of order, reported as JournalCorrupt.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import JournalConfig
from ..errors import JournalCorrupt, JournalError
from ..schema import RECORD_SIZE
from .kernels import WORDS, scan_slots, write_records
from .segment import Segment, check_chain, create_segment, fsync_dir, remove_leftovers, segment_capacity

LOCK_NAME = "LOCK"
#: records appended between two releases of the written pages from the writer's memory
RELEASE_EVERY = 1 << 14
_RAW = np.dtype((np.void, RECORD_SIZE))


@dataclass(frozen=True)
class Recovery:
    """What opening the journal found in its last segment."""

    segment: str
    valid: int  # whole records found in the last segment
    zeroed: int  # torn-tail slots that were zeroed (0 after a clean close)


def _as_words(records: np.ndarray) -> np.ndarray:
    """A flat uint32 view (or contiguous copy) of 64-byte records: any schema dtype, or rows of
    an unsigned-integer array whose last axis is 64 bytes (uint8 x 64, uint64 x 8 ...)."""
    arr = np.asarray(records)
    if arr.dtype.itemsize == RECORD_SIZE and arr.dtype.fields is not None:
        if arr.flags.c_contiguous:
            return arr.reshape(-1).view(np.uint32)
        # as raw 64-byte items: a numpy copy of a structured array would not copy padding bytes
        return np.ascontiguousarray(arr.reshape(-1).view(_RAW)).view(np.uint32)
    if arr.dtype.kind == "u" and arr.ndim >= 1 and arr.shape[-1] * arr.dtype.itemsize == RECORD_SIZE:
        return np.ascontiguousarray(arr).reshape(-1).view(np.uint32)
    raise JournalError(f"append needs 64-byte records, got an array of {arr.dtype} with shape {arr.shape}")


def _lock(directory: Path) -> int:
    """Take the directory's writer lock; returns the descriptor that holds it."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(f"{directory}: journal is open by another writer") from None
    return fd


def truncate(directory: str | Path, position: int) -> None:
    """Operator repair: drop every record at or after `position` (delete the segments that start
    at or after it, zero the rest of the segment that holds it), so that a journal reported as
    JournalCorrupt can be read and appended to again. Takes the writer lock; synced on return.

    This discards data on purpose; nothing in basis calls it on its own."""
    directory = Path(directory)
    if not directory.is_dir():
        raise JournalError(f"{directory}: no such journal directory")
    lock_fd = _lock(directory)
    try:
        chain = check_chain(directory)
        if (
            not chain
            or not chain[0][1].first_pos <= position <= chain[-1][1].first_pos + chain[-1][1].capacity
        ):
            raise JournalError(f"{directory}: position {position} is not inside the journal")
        for i in range(len(chain) - 1, -1, -1):  # last segment first: a crash midway leaves a chain
            path, header = chain[i]
            start = position - header.first_pos
            if start <= 0 and i > 0:
                os.unlink(path)
                continue
            if start < header.capacity:
                seg = Segment(path, writable=True, expect_index=header.index)
                try:
                    seg.zero(start, header.capacity)
                    seg.sync(start, header.capacity)
                finally:
                    seg.close()
            break
        fsync_dir(directory)
    finally:
        os.close(lock_fd)


class JournalWriter:
    """Appends records to the journal in `directory` (created if missing). See the module doc."""

    def __init__(self, directory: str | Path, config: JournalConfig | None = None):
        self.config = config or JournalConfig()
        if self.config.fsync not in ("every_n", "segment", "never"):
            raise JournalError(f"unknown fsync policy {self.config.fsync!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.directory)
        self._every_n = self.config.fsync == "every_n"
        self._seg: Segment | None = None
        try:
            self._open_tail()
        except BaseException:
            self.close()
            raise

    def _open_tail(self) -> None:
        remove_leftovers(self.directory)
        chain = check_chain(self.directory)
        durable = self.config.fsync != "never"
        if chain:
            path = chain[-1][0]
        else:
            path = create_segment(
                self.directory, 0, 0, segment_capacity(0, self.config.segment_records), durable
            )
        seg = Segment(path, writable=True)
        self._seg = seg
        valid, corrupt, dirty_end = scan_slots(seg.words, 0, seg.capacity)
        if corrupt >= 0:
            raise JournalCorrupt(
                f"{path}: slot {valid} (byte offset {(valid + 1) * RECORD_SIZE}, position "
                f"{seg.first_pos + valid}) is damaged but a valid record follows at slot {corrupt}; "
                f"refusing to append (journal.truncate(directory, position) drops the damaged "
                f"record and everything after it)"
            )
        if dirty_end > valid:
            seg.zero(valid, dirty_end)
            if durable:
                seg.sync(valid, dirty_end)
        self.recovery = Recovery(str(path), int(valid), int(dirty_end - valid))
        self._used = int(valid)
        self._synced = int(valid)
        self._released = 0  # slots before this one are out of the writer's resident memory

    @property
    def segment(self) -> Segment:
        """The open segment appends go to; JournalError once the writer is closed."""
        if self._seg is None:
            raise JournalError(f"{self.directory}: journal writer is closed")
        return self._seg

    @property
    def position(self) -> int:
        """Position the next appended record will get (= number of records in the journal)."""
        return self.segment.first_pos + self._used

    @property
    def segment_index(self) -> int:
        return self.segment.index

    def append(self, records: np.ndarray) -> int:
        """Append a batch of 64-byte records (any schema dtype, or 64-byte unsigned rows); seals
        each stored copy. Rolls to a new segment when the current one is full. Returns the
        position of the first record of the batch."""
        seg = self.segment
        src = _as_words(records)
        n = src.shape[0] // WORDS
        first = seg.first_pos + self._used
        if self._used + n <= seg.capacity:  # the common case: the batch fits the segment
            write_records(seg.words, self._used, src, n)
            self._used += n
        else:
            done = 0
            while done < n:
                if self._used == seg.capacity:
                    seg = self._roll(seg)
                m = min(n - done, seg.capacity - self._used)
                write_records(seg.words, self._used, src[done * WORDS : (done + m) * WORDS], m)
                self._used += m
                done += m
        if self._every_n and self._used - self._synced >= self.config.fsync_every:
            self.flush()
        if self._used - self._released >= RELEASE_EVERY:
            # written records are the file's, not the process's: the resident set stays flat
            seg.release(self._released, self._used)
            self._released = self._used
        return first

    def flush(self) -> None:
        """msync the records written since the last sync, whatever the policy."""
        if self._seg is not None:
            self._seg.sync(self._synced, self._used)
            self._synced = self._used

    def _roll(self, seg: Segment) -> Segment:
        """Close the full segment `seg` (the open one) and open the next; returns the new one."""
        if self.config.fsync != "never":
            self.flush()
        index, first_pos = seg.index + 1, seg.first_pos + seg.capacity
        path = create_segment(
            self.directory,
            index,
            first_pos,
            segment_capacity(index, self.config.segment_records),
            durable=self.config.fsync != "never",
        )
        new = Segment(path, writable=True, expect_index=index)
        self._seg = new
        seg.close()
        self._used = self._synced = self._released = 0
        return new

    def close(self) -> None:
        """Sync (unless fsync="never"), unmap, release the lock. Idempotent."""
        if self._seg is not None:
            if self.config.fsync != "never":
                self.flush()
            self._seg.close()
            self._seg = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
