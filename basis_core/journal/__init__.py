"""The journal: append-only, memory-mapped, segmented files of 64-byte schema records.

Everything that enters the engine is appended here first; replaying a journal reproduces the
engine's decisions. Layout: a directory of segment files `000000000000.journal`,
`000000000001.journal`, ... (segment.py), each a 64-byte header line then its record slots (8 MiB
worth in the first segment, doubling up to `segment_records`); a `LOCK` file held by the one writer. Each stored record carries the CRC-32 of
its bytes 0..59 in its `check` word; a never-written slot is all zeros, which is never a valid
record (the CRC-32 of 60 zero bytes is 0x04128F08), so "zero or CRC mismatch" marks the end.

    JournalWriter  append batches, roll segments, fsync policy, crash recovery (writer.py)
    JournalReader  verified iteration by batch or record, from a position, follow mode (reader.py)
    truncate       operator repair after JournalCorrupt: drop a damaged record and all after it

segment.py holds the segment file format, kernels.py the compiled CRC-32, batch copy and slot scan.
"""

from .reader import JournalReader
from .writer import JournalWriter, Recovery, truncate

__all__ = ["JournalReader", "JournalWriter", "Recovery", "truncate"]
