"""One journal segment file: its name, its header line, creating it, mapping it.

A segment is `<index:012d>.journal` inside the journal directory: one 64-byte header line, then
`capacity` 64-byte record slots (`segment_capacity`: small for the first segments of a journal,
growing to the configured size). The file is created at full size (`posix_fallocate`, so blocks
are reserved and a full disk is a JournalError at roll time, never a SIGBUS in the middle of
an append) and unwritten slots read as zeros.

    header offset  size  field
    0              8     magic        b"BASISJNL"
    8              4     version      u32 (1)
    12             4     record_size  u32 (64)
    16             8     index        u64, equal to the number in the file name
    24             8     first_pos    u64, journal position of slot 0
    32             8     capacity     u64, number of record slots
    40             8     created_ns   i64
    48             12    reserved     zeros
    60             4     check        u32, CRC-32 of header bytes 0..59

A segment appears under its final name only once its header is written (written under a
`.tmp` name, then renamed), so after a crash a segment either exists with a whole header or
does not exist at all.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import JournalCorrupt, JournalError
from ..schema import GENERIC, RECORD_SIZE
from .kernels import WORDS

MAGIC = b"BASISJNL"
VERSION = 1
SUFFIX = ".journal"
_HEADER = struct.Struct("<8sIIQQQq12x")
_NAME = re.compile(r"^(\d{12})\.journal$")


def segment_name(index: int) -> str:
    """The file name of segment `index`; names sort in index order."""
    return f"{index:012d}{SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(index, path) of every segment file in `directory`, in index order. Other files are ignored."""
    found = []
    for entry in os.scandir(directory):
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), Path(entry.path)))
    found.sort()
    return found


def file_size(capacity: int) -> int:
    return RECORD_SIZE * (capacity + 1)


#: slots of a journal's first segment when the configured size is larger; each next segment
#: doubles it up to `segment_records`, so a short run reserves 8 MiB, not a whole segment
FIRST_SEGMENT_RECORDS = 1 << 17


def segment_capacity(index: int, segment_records: int) -> int:
    """Slots of segment `index` of a journal configured with `segment_records`: the sizes grow
    with the journal (FIRST_SEGMENT_RECORDS, twice that, ...) and stop at `segment_records`."""
    return min(segment_records, FIRST_SEGMENT_RECORDS << min(index, 32))


def pack_header(index: int, first_pos: int, capacity: int) -> bytes:
    body = _HEADER.pack(MAGIC, VERSION, RECORD_SIZE, index, first_pos, capacity, time.time_ns())
    return body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class Header:
    index: int
    first_pos: int
    capacity: int
    created_ns: int


def unpack_header(raw: bytes, path: Path) -> Header:
    """Parse and check a header line; any mismatch is a JournalError naming the file."""
    if len(raw) < RECORD_SIZE:
        raise JournalError(f"{path}: too short for a journal segment header ({len(raw)} bytes)")
    magic, version, rsize, index, first_pos, capacity, created = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise JournalError(f"{path}: not a journal segment (magic {magic!r}, expected {MAGIC!r})")
    (check,) = struct.unpack_from("<I", raw, 60)
    if check != zlib.crc32(raw[:60]):
        raise JournalError(f"{path}: segment header fails its CRC")
    if version != VERSION:
        raise JournalError(f"{path}: journal format version {version}, this build reads {VERSION}")
    if rsize != RECORD_SIZE:
        raise JournalError(f"{path}: record size {rsize}, expected {RECORD_SIZE}")
    if capacity < 1:
        raise JournalError(f"{path}: capacity {capacity} in header")
    return Header(index, first_pos, capacity, created)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_segment(directory: Path, index: int, first_pos: int, capacity: int, durable: bool) -> Path:
    """Create segment `index` at full size with its header; `durable` fsyncs file and directory."""
    final = directory / segment_name(index)
    tmp = directory / (segment_name(index) + ".tmp")
    if final.exists():
        raise JournalError(f"{final}: segment already exists")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, file_size(capacity))
            else:  # no block reservation on this OS: a full disk shows up later, as SIGBUS
                os.ftruncate(fd, file_size(capacity))
        except OSError as exc:
            raise JournalError(f"{tmp}: cannot reserve {file_size(capacity)} bytes: {exc.strerror}") from None
        os.pwrite(fd, pack_header(index, first_pos, capacity), 0)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, final)
    if durable:
        fsync_dir(directory)
    return final


def remove_leftovers(directory: Path) -> None:
    """Delete `.journal.tmp` files a crash during segment creation may have left behind."""
    for entry in os.scandir(directory):
        if entry.name.endswith(SUFFIX + ".tmp") and _NAME.match(entry.name[:-4]):
            os.unlink(entry.path)


def check_chain(directory: Path) -> list[tuple[Path, Header]]:
    """Headers of all segments of `directory`, checked to form one chain: consecutive
    indexes, each segment starting at the position where the previous one ends."""
    chain: list[tuple[Path, Header]] = []
    for index, path in list_segments(directory):
        with open(path, "rb") as fh:
            header = unpack_header(fh.read(RECORD_SIZE), path)
        if header.index != index:
            raise JournalError(f"{path}: header says segment {header.index}, name says {index}")
        if chain:
            prev = chain[-1][1]
            if index != prev.index + 1:
                raise JournalCorrupt(f"{path}: segment {prev.index + 1} is missing before it")
            if header.first_pos != prev.first_pos + prev.capacity:
                raise JournalCorrupt(
                    f"{path}: starts at position {header.first_pos}, "
                    f"previous segment ends at {prev.first_pos + prev.capacity}"
                )
        chain.append((path, header))
    return chain


class Segment:
    """A mapped segment. `words` is the flat uint32 view the kernels use, `slots` the GENERIC
    record view of the slots (slot s = journal position first_pos + s).

    Views handed out are released by `close`; callers copy what they keep. A closed segment keeps
    its header facts (index, first_pos, capacity) but maps nothing: `words` and `slots` are empty,
    so it must not be handed to the kernels again."""

    def __init__(self, path: Path, writable: bool = False, expect_index: int | None = None):
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot open segment: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            self.header = unpack_header(os.pread(fd, RECORD_SIZE, 0), self.path)
            if expect_index is not None and self.header.index != expect_index:
                raise JournalError(
                    f"{self.path}: header says segment {self.header.index}, name says {expect_index}"
                )
            if size != file_size(self.header.capacity):
                raise JournalError(
                    f"{self.path}: file is {size} bytes, header implies {file_size(self.header.capacity)}"
                )
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            self._map = mmap.mmap(fd, size, access=access)
        finally:
            os.close(fd)
        self.index = self.header.index
        self.first_pos = self.header.first_pos
        self.capacity = self.header.capacity
        self.words = np.frombuffer(self._map, dtype=np.uint32)
        self.slots = self.words[WORDS:].view(GENERIC)

    def sync(self, first_slot: int, stop_slot: int) -> None:
        """msync(MS_SYNC) the pages holding slots first_slot..stop_slot-1."""
        if stop_slot <= first_slot:
            return
        start = (first_slot + 1) * RECORD_SIZE
        stop = (stop_slot + 1) * RECORD_SIZE
        start -= start % mmap.PAGESIZE
        self._map.flush(start, min(stop, len(self._map)) - start)

    def release(self, first_slot: int, stop_slot: int) -> None:
        """Drop the whole pages holding slots first_slot..stop_slot-1 from this process's
        memory (madvise DONTNEED on a shared file mapping): what was written stays in the page
        cache and reaches the file as before, it only stops counting in the process's resident
        set. Read again, the pages come back from the file."""
        start = (first_slot + 1) * RECORD_SIZE
        stop = (stop_slot + 1) * RECORD_SIZE
        start += -start % mmap.PAGESIZE
        stop -= stop % mmap.PAGESIZE
        if stop > start and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def zero(self, first_slot: int, stop_slot: int) -> None:
        """Zero slots first_slot..stop_slot-1."""
        self.words[(first_slot + 1) * WORDS : (stop_slot + 1) * WORDS] = 0

    def close(self) -> None:
        """Unmap the file. Idempotent."""
        if self._map.closed:
            return
        # the numpy views export the map's buffer: they must go before the map can be closed
        self.words = np.empty(0, dtype=np.uint32)
        self.slots = np.empty(0, dtype=GENERIC)
        self._map.close()
