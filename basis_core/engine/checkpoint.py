"""Engine checkpoints: the engine's state on disk every N journaled records, so a restart
replays only the journal after the newest one instead of the whole run.

    RUN_DIR/checkpoints/0000000000200412.ckpt    (the journal position it covers)

A checkpoint is written between two batches, after the commands of the last one are journaled:
at position P it holds the EngineCore that has stepped over journal records [0, P) and
whatever the writer adds (the engine process: the last md / exec ring sequence it journaled).
File layout: a 96-byte header, then the payload (a pickle of {"core": ..., "extra": ...}).

    0   8  magic       b"BASISCKP"
    8   2  version     FORMAT_VERSION
   10   2  (zero)
   12   4  last_check  the journal's check word (CRC-32) of record P-1 (0 when P == 0)
   16   8  position    P
   24   8  size        payload bytes
   32  16  decisions   the decision digest (EngineCore.digest) at P, 16 raw bytes
   48  16  code        CODE_FINGERPRINT of the engine that wrote it
   64  32  checksum    blake2b-256 of the header's first 64 bytes and the payload

A checkpoint is a pickle of the engine's objects, so only the code that wrote it can read it
right: one from another version of the engine (a field added, a table compiled differently) may
unpickle into a core that crashes or decides otherwise. FORMAT_VERSION changes with the file
layout (version 1, before the code field, had an 80-byte header); CODE_FINGERPRINT is a hash of
the source of every module whose objects a checkpoint holds (the engine, state, kernels,
accounting, cluster and results packages, schema, registry, config) and of Python's and numpy's
versions. A checkpoint of another format or fingerprint is reported ("written by another
version of the engine") and passed over like a damaged one: the previous one, or the whole
journal, is used.

The decision digest is a running hashlib object, which does not pickle: it is stored as its
value and rebuilt on load by hashing the command records of journal [0, P) (what the engine
hashed, their check words zeroed). It must equal the stored value, so the load also proves the
checkpoint and the journal tell the same story. Written atomically (temp file, fsync, rename,
fsync of the directory); the newest `keep` are kept, older ones removed. The state-machine
tables are named, not copied: a restored machine uses the running engine's table.

Loading tries the newest first; a checkpoint that fails any check (magic, version, size,
checksum, code fingerprint, the journal record before its position missing or different, unpickling, the
rebuilt digest) is reported through `log` with the reason, and the previous one is tried; with
none usable the caller replays the whole journal. A bad checkpoint is never used.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import schema as S
from ..journal import JournalReader
from ..journal.segment import Segment, check_chain, fsync_dir
from ..state import tables
from ..state.fsm import Table
from .core import EngineCore

DIR_NAME = "checkpoints"
SUFFIX = ".ckpt"
MAGIC = b"BASISCKP"
FORMAT_VERSION = 2
_HEADER = struct.Struct("<8sHHIQQ16s16s32s")
_CHECKED = _HEADER.size - 32  # the header bytes the checksum covers (all but itself)
#: the running digest's type (hashlib.blake2b), stood in for in the pickle
_DIGEST_TYPE = type(hashlib.blake2b(digest_size=16))
_DIGEST_ID = "decision-digest"
#: where the code a checkpoint's pickle depends on lives (CODE_FINGERPRINT), under basis_core
_CODE = (
    "engine",
    "state",
    "kernels",
    "accounting",
    "cluster",
    "results",
    "schema.py",
    "registry.py",
    "config.py",
)


def code_fingerprint(root: Path | None = None) -> bytes:
    """16 bytes that differ between two engines whose checkpoints may not read each other: a
    blake2b of FORMAT_VERSION, Python's and numpy's versions and the source (path and bytes) of
    the modules under `root` (basis_core) that _CODE names."""
    root = Path(__file__).resolve().parent.parent if root is None else root
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{FORMAT_VERSION}|{sys.version_info[:2]}|{np.__version__}".encode())
    for name in _CODE:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(b"\0" + f.relative_to(root).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
    return h.digest()


#: this engine's code fingerprint, taken once when the module is imported (so one process
#: writes and reads with one value even if the files change under it)
CODE_FINGERPRINT = code_fingerprint()


class UnusableCheckpoint(Exception):
    """Why one checkpoint file cannot be used (reported, then the previous one is tried)."""


@dataclass
class Restored:
    """The state a checkpoint held: a core that has stepped over journal [0, position)."""

    core: EngineCore
    position: int
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / DIR_NAME


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The run's checkpoint files, newest (highest position) first."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted(d.glob("*" + SUFFIX), key=lambda p: p.name, reverse=True)


class Checkpointer:
    """Writes a checkpoint when at least `every` records were journaled since the last one.

    Call `after_batch(core, position, last)` once a batch and its commands are journaled
    (`position` = the journal's next position, `last` = the records of the last append); `every` = 0
    writes none. A checkpoint that cannot be written is reported through `log` and the run goes
    on (the journal alone still rebuilds the state)."""

    def __init__(
        self, run_dir: Path, every: int, keep: int, start: int = 0, log: Callable[[str], None] = print
    ):
        self.dir = checkpoint_dir(run_dir)
        self.every = every
        self.keep = keep
        self.last = start
        self.written = 0
        self.log = log
        if every:
            self.dir.mkdir(parents=True, exist_ok=True)
            for tmp in self.dir.glob("*.tmp"):  # a write cut short by a crash
                tmp.unlink()

    def after_batch(
        self, core: EngineCore, position: int, last: np.ndarray, extra: dict[str, Any] | None = None
    ) -> Path | None:
        if not self.every or position - self.last < self.every:
            return None
        self.last = position
        last_check = zlib.crc32(last.view(np.uint8)[-S.RECORD_SIZE : -4].tobytes())
        try:
            path = write(self.dir, core, position, last_check, extra or {})
            for old in checkpoint_files(self.dir.parent)[self.keep :]:
                old.unlink()
        except OSError as exc:
            self.log(f"checkpoint at journal position {position} not written: {exc}")
            return None
        self.written += 1
        return path


def write(directory: Path, core: EngineCore, position: int, last_check: int, extra: dict[str, Any]) -> Path:
    """Write one checkpoint atomically; returns its path."""
    payload = _dumps({"core": core, "extra": extra})
    fields = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        0,
        last_check,
        position,
        len(payload),
        bytes.fromhex(core.digest),
        CODE_FINGERPRINT,
        b"",
    )[:_CHECKED]
    header = fields + _checksum(fields, payload)
    path = directory / f"{position:016d}{SUFFIX}"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return path


def load_latest(run_dir: Path, log: Callable[[str], None] = print) -> Restored | None:
    """The newest usable checkpoint of the run, or None (no checkpoint, or none usable: each
    unusable one is reported through `log`)."""
    files = checkpoint_files(run_dir)
    if not files:
        return None
    reader = JournalReader(Path(run_dir) / "journal")
    for path in files:
        try:
            return load(path, reader)
        except UnusableCheckpoint as exc:
            log(f"checkpoint {path} is unusable ({exc}); trying the previous one")
    log(f"no usable checkpoint in {checkpoint_dir(run_dir)}: replaying the whole journal")
    return None


def load(path: Path, reader: JournalReader) -> Restored:
    """Read and check one checkpoint against the journal (UnusableCheckpoint on any failure)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableCheckpoint(f"cannot read it: {exc}") from None
    if len(data) < 10:
        raise UnusableCheckpoint(f"{len(data)} bytes, shorter than its header")
    magic, version = struct.unpack_from("<8sH", data)
    if magic != MAGIC:
        raise UnusableCheckpoint(f"bad magic {magic!r}")
    if version != FORMAT_VERSION:
        raise UnusableCheckpoint(
            f"format version {version}, this engine reads {FORMAT_VERSION}: written by another version of the engine"
        )
    if len(data) < _HEADER.size:
        raise UnusableCheckpoint(f"{len(data)} bytes, shorter than its header")
    _, _, _, last_check, position, size, decisions, code, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if len(payload) != size:
        raise UnusableCheckpoint(f"payload of {len(payload)} bytes, the header says {size} (truncated?)")
    if _checksum(data[:_CHECKED], payload) != checksum:
        raise UnusableCheckpoint("checksum mismatch")
    if code != CODE_FINGERPRINT:
        raise UnusableCheckpoint(
            f"code fingerprint {code.hex()}, this engine's is {CODE_FINGERPRINT.hex()}: "
            "written by another version of the engine"
        )
    digest, check = _replayed_digest(reader, position)
    if check != last_check:
        raise UnusableCheckpoint(
            f"journal record {position - 1}, the last it covers, is missing or not the one it was taken after"
        )
    if digest.digest() != decisions:
        raise UnusableCheckpoint(
            f"the journal's commands before position {position} hash to {digest.hexdigest()}, "
            f"the checkpoint's decisions to {decisions.hex()}"
        )
    try:
        state = _loads(payload, digest)
        core = state["core"]
        extra = state["extra"]
    except Exception as exc:  # a payload that passed its checksum but does not load
        raise UnusableCheckpoint(f"cannot unpickle it: {type(exc).__name__}: {exc}") from None
    if not isinstance(core, EngineCore) or not isinstance(extra, dict):
        raise UnusableCheckpoint(f"holds a {type(core).__name__}, not an EngineCore")
    return Restored(core, position, extra, path)


def decision_digest(reader: JournalReader, position: int):
    """EngineCore's running decision digest rebuilt from journal [0, position): the command
    records the engine journaled, as it hashed them (check word zero)."""
    return _replayed_digest(reader, position)[0]


def _replayed_digest(reader: JournalReader, position: int):
    """decision_digest, and the check word of journal record position - 1 (0 if none).

    Reads the segments' slots as they are, without checking each record's CRC: a damaged or
    missing record before `position` makes the digest or the check word differ from the
    checkpoint's, which is then not used (and the full replay that follows checks every
    record). So the cost is a pass over one byte per record, not a CRC of the whole journal."""
    digest = hashlib.blake2b(digest_size=16)
    check = 0
    for path, header in check_chain(reader.directory):
        if header.first_pos >= position:
            break
        seg = Segment(path, expect_index=header.index)
        try:
            n = min(position - seg.first_pos, seg.capacity)
            source = seg.slots["source"][:n]
            rows = np.flatnonzero(source == S.Source.ENGINE)
            check = int(seg.slots["check"][n - 1])
            if len(rows):
                raw = seg.slots[rows].view(np.uint8).reshape(-1, S.RECORD_SIZE).copy()
                raw[:, 60:] = 0
                digest.update(raw.tobytes())
            del source
        finally:
            seg.close()
    return digest, check


def _checksum(header_fields: bytes, payload: bytes) -> bytes:
    h = hashlib.blake2b(header_fields, digest_size=32)
    h.update(payload)
    return h.digest()


def _shared() -> dict[str, object]:
    """Objects a checkpoint names instead of copying: the state-machine tables every machine
    points to (a restored machine points to this engine's table, as a new one does)."""
    return {f"table:{name}": obj for name, obj in vars(tables).items() if isinstance(obj, Table)}


class _Pickler(pickle.Pickler):
    def __init__(self, file, protocol: int):
        super().__init__(file, protocol)
        self._ids = {id(obj): name for name, obj in _shared().items()}

    def persistent_id(self, obj):
        if type(obj) is _DIGEST_TYPE:
            return _DIGEST_ID
        return self._ids.get(id(obj)) if isinstance(obj, Table) else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, digest):
        super().__init__(io.BytesIO(data))
        self._digest = digest
        self._shared = _shared()

    def persistent_load(self, pid):
        if pid == _DIGEST_ID:
            return self._digest
        if pid not in self._shared:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self._shared[pid]


def _dumps(state: dict) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buf.getvalue()


def _loads(payload: bytes, digest) -> dict:
    return _Unpickler(payload, digest).load()
