"""The journal reader: iterates the records of a journal directory, in position order.

    r = JournalReader("runs/x/journal")
    for pos, batch in r.batches(start=0):   # GENERIC arrays (copies), pos = position of batch[0]
        ...
    for rec in r.records():                 # one np.void (GENERIC) per record
        ...

Every record read is checked against its CRC. Where the data ends is decided per segment:

  - every segment except the last must hold `capacity` valid records (the writer only moves on
    when a segment is full), otherwise JournalCorrupt;
  - the last segment ends at its first slot that is not a valid record. Everything after it
    must be a torn tail: zeros, or bytes of records whose check word never made it. If a valid
    record appears after that slot, records are missing in the middle: JournalCorrupt naming
    the segment and the byte offset of the damaged slot, before any record past it is yielded.

So after a kill -9 of the writer the reader yields exactly the records whose write completed,
and nothing after them. A header that is not a journal header (magic, version, record size,
header CRC, file size) is a JournalError.

Reading while a writer appends is safe: each call reads up to the end it finds at that moment
(a slot becomes valid only after its payload is in place). `follow` keeps polling for more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import JournalCorrupt, JournalError
from ..schema import GENERIC, RECORD_SIZE
from .kernels import scan_slots, valid_prefix
from .segment import Segment, check_chain, segment_name

DEFAULT_BATCH = 65536
_HINT = "; journal.truncate(directory, position) drops it and everything after it"


def _offset(slot: int) -> int:
    return (slot + 1) * RECORD_SIZE


def _verified_end(seg: Segment, last: bool) -> int:
    """Number of valid records in `seg`, applying the rules of the module doc."""
    start = 0
    while True:
        valid, corrupt, _ = scan_slots(seg.words, start, seg.capacity)
        if corrupt < 0:
            break
        if last:
            # a live writer may have sealed slot `valid` while we scanned past it: look again
            again = valid_prefix(seg.words, valid, seg.capacity)
            if again > valid:
                start = again
                continue
        raise JournalCorrupt(
            f"{seg.path}: slot {valid} (byte offset {_offset(valid)}, position "
            f"{seg.first_pos + valid}) is not a valid record but slot {corrupt} (byte offset "
            f"{_offset(corrupt)}) is: records are missing{_HINT}"
        )
    if not last and valid < seg.capacity:
        raise JournalCorrupt(
            f"{seg.path}: slot {valid} (byte offset {_offset(valid)}, position "
            f"{seg.first_pos + valid}) is not a valid record, but a later segment exists "
            f"(a segment is only left when full){_HINT}"
        )
    return int(valid)


class JournalReader:
    """Reads the journal in `directory`. Cheap to create; each iteration re-lists the segments."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise JournalError(f"{self.directory}: no such journal directory")

    def _chain(self):
        chain = check_chain(self.directory)
        if not chain:
            raise JournalError(f"{self.directory}: no journal segments ({segment_name(0)} ...)")
        return chain

    def batches(self, start: int = 0, max_records: int = DEFAULT_BATCH) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (position, records) from position `start` to the end, in order; `records` is a
        GENERIC array (a copy) of at most `max_records`. Raises JournalCorrupt on damage before
        yielding anything from the damaged segment."""
        if max_records < 1:
            raise JournalError(f"max_records must be >= 1, got {max_records}")
        chain = self._chain()
        first = chain[0][1].first_pos
        if start < first:
            raise JournalError(
                f"{self.directory}: position {start} is before the first segment (starts at {first})"
            )
        for i, (path, header) in enumerate(chain):
            if header.first_pos + header.capacity <= start:
                continue
            seg = Segment(path, expect_index=header.index)
            try:
                end = _verified_end(seg, last=i == len(chain) - 1)
                s = start - seg.first_pos if start > seg.first_pos else 0
                while s < end:
                    m = min(max_records, end - s)
                    yield seg.first_pos + s, seg.slots[s : s + m].copy()
                    s += m
            finally:
                seg.close()

    def records(self, start: int = 0) -> Iterator[np.void]:
        """Yield records one by one (GENERIC np.void) from position `start`."""
        for _, batch in self.batches(start):
            yield from batch

    __iter__ = records

    def read(self, start: int = 0, count: int | None = None) -> np.ndarray:
        """All records from `start` (at most `count`) as one GENERIC array."""
        parts = []
        left = count
        for _, batch in self.batches(start):
            if left is not None:
                batch = batch[:left]
                left -= len(batch)
            parts.append(batch)
            if left == 0:
                break
        if not parts:
            return np.zeros(0, dtype=GENERIC)
        return np.concatenate(parts)

    def end(self) -> int:
        """Position after the last whole record (= number of records when the journal starts at 0).
        Checks the segment chain and the last segment only."""
        chain = self._chain()
        path, header = chain[-1]
        seg = Segment(path, expect_index=header.index)
        try:
            return seg.first_pos + _verified_end(seg, last=True)
        finally:
            seg.close()

    def follow(
        self,
        start: int = 0,
        poll_s: float = 0.001,
        stop: Callable[[], bool] | None = None,
        max_records: int = DEFAULT_BATCH,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Like `batches`, but at the end wait for more records (polling every `poll_s`) until
        `stop()` returns True. Records are checked as they become valid; a later segment appearing
        while the current one is not full raises JournalCorrupt. `start` may not lie beyond the
        current end (JournalError)."""
        end = self.end()
        if start > end:
            raise JournalError(
                f"{self.directory}: cannot follow from position {start}, the journal ends at {end}"
            )
        pos = start
        for pos_, batch in self.batches(start, max_records):
            yield pos_, batch
            pos = pos_ + len(batch)
        chain = self._chain()
        index = next((h.index for _, h in reversed(chain) if h.first_pos <= pos), chain[0][1].index)
        seg = Segment(self.directory / segment_name(index), expect_index=index)
        try:
            while stop is None or not stop():
                s = pos - seg.first_pos
                end = valid_prefix(seg.words, s, seg.capacity)
                if end > s:
                    while s < end:
                        m = min(max_records, end - s)
                        yield seg.first_pos + s, seg.slots[s : s + m].copy()
                        s += m
                    pos = seg.first_pos + end
                    continue
                nxt = self.directory / segment_name(seg.index + 1)
                if nxt.exists():
                    if s < seg.capacity and valid_prefix(seg.words, s, seg.capacity) == s:
                        raise JournalCorrupt(
                            f"{seg.path}: slot {s} (byte offset {_offset(s)}) is not a valid "
                            f"record, but a later segment exists"
                        )
                    if s == seg.capacity:
                        new = Segment(nxt, expect_index=seg.index + 1)
                        seg.close()
                        seg = new
                    continue
                time.sleep(poll_s)
        finally:
            seg.close()
