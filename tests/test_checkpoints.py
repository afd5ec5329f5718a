"""Engine checkpoints: a restart from the newest usable checkpoint plus the journal after it is
the engine a full replay rebuilds; a damaged checkpoint is reported and never used; only the
configured number are kept; the restart time no longer grows with the journal."""

from __future__ import annotations

import enum
import hashlib
import shutil
import struct
import time
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
from orchestration import run

from basis_core import schema as S
from basis_core.config import from_dict
from basis_core.engine import checkpoint as C
from basis_core.engine.procs import resume
from basis_core.engine.replay import load_run_meta, replay
from basis_core.errors import ConfigError
from basis_core.journal import JournalReader, truncate
from basis_core.scenarios import DEFAULT

EVERY = 4000
KEEP = 3
DIGEST = "76cfd906f0325be0bdded5ece8509a77"


def _default(duration_s: float, every: int, keep: int = KEEP) -> dict:
    """The default scenario (its faults included), with checkpoints every `every` records."""
    data = tomllib.loads(Path(DEFAULT).read_text())
    data["run"]["duration_s"] = duration_s
    data["journal"]["checkpoint_every_records"] = every
    data["journal"]["checkpoint_keep"] = keep
    return data


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The whole default scenario, checkpointed every EVERY records: (run dir, its runner)."""
    out = tmp_path_factory.mktemp("ckpt")
    runner, _, found = run(_default(60.0, EVERY), out)
    assert not found, found
    return out / "run", runner


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst)
    return dst


def fingerprint(obj, seen: dict[int, int] | None = None):
    """A comparable picture of an object graph (an EngineCore): every attribute, container item
    and array byte, shared objects as references; decision timings (decision_ns) left out."""
    seen = {} if seen is None else seen
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, enum.Enum)):
        return repr(obj)
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, hashlib.sha256(obj.tobytes()).hexdigest())
    if isinstance(obj, np.generic):
        return repr(obj.item())
    if isinstance(obj, type(hashlib.blake2b())):
        return ("digest", obj.hexdigest())
    if callable(obj):
        return ("callable", getattr(obj, "__qualname__", repr(type(obj))))
    if id(obj) in seen:
        return ("ref", seen[id(obj)])
    seen[id(obj)] = len(seen)
    if isinstance(obj, dict):
        return ("dict", [(fingerprint(k, seen), fingerprint(v, seen)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [fingerprint(v, seen) for v in obj])
    if isinstance(obj, (set, frozenset)):
        return ("set", sorted(repr(v) for v in obj))
    fields = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
    for name in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, name):
            fields[name] = getattr(obj, name)
    fields.pop("decision_ns", None)
    return (type(obj).__qualname__, [(k, fingerprint(v, seen)) for k, v in sorted(fields.items())])


# -- same engine, same decisions -----------------------------------------------------------------


def test_the_default_scenario_with_checkpoints_decides_as_without(default_run):
    run_dir, runner = default_run
    assert runner.core.digest == DIGEST
    assert runner.checkpoints.written >= 10  # 71 K records, one checkpoint every 4000


def test_replay_from_each_checkpoint_rebuilds_the_state_and_decisions_of_a_full_replay(default_run, tmp_path):
    run_dir, runner = default_run
    full = replay(run_dir)
    assert full.identical and full.digest == DIGEST and full.start == 0
    expected = fingerprint(full.core)
    files = C.checkpoint_files(run_dir)
    assert len(files) == KEEP
    for i, keep in enumerate(files):
        # each checkpoint in turn as the newest (the newer ones removed)
        d = tmp_path / f"from{i}"
        shutil.copytree(run_dir, d)
        for newer in files[:i]:
            (d / C.DIR_NAME / newer.name).unlink()
        part = replay(d, from_checkpoint=True, log=pytest.fail)
        assert part.start == int(keep.stem) > 0
        assert part.start + part.records == full.records
        assert part.identical and part.digest == DIGEST  # the tail decided as journaled
        assert fingerprint(part.core) == expected


def test_a_checkpoint_restores_the_running_decision_digest(default_run):
    """The digest object does not pickle; it is rebuilt from the journal and goes on hashing."""
    run_dir, _ = default_run
    reader = JournalReader(run_dir / "journal")
    newest = C.load(C.checkpoint_files(run_dir)[0], reader)
    assert newest.core.digest == C.decision_digest(reader, newest.position).hexdigest()
    assert newest.core.digest != DIGEST  # decisions came after it
    assert C.decision_digest(reader, reader.end()).hexdigest() == DIGEST


def test_only_the_configured_number_of_checkpoints_is_kept_and_they_are_the_newest(default_run):
    run_dir, runner = default_run
    files = C.checkpoint_files(run_dir)
    positions = [int(p.stem) for p in files]
    assert len(files) == KEEP < runner.checkpoints.written
    assert positions == sorted(positions, reverse=True)
    end = JournalReader(run_dir / "journal").end()
    assert end - positions[0] < EVERY + 4096  # the newest is at most one interval (+ a batch) old
    assert all(a - b >= EVERY for a, b in zip(positions, positions[1:], strict=False))
    assert not list((run_dir / C.DIR_NAME).glob("*.tmp"))


# -- damaged checkpoints are reported and passed over ------------------------------------------------


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _unpicklable(path: Path) -> None:
    """Garbage with a valid checksum: only unpickling can tell."""
    data = path.read_bytes()
    size = C._HEADER.size
    header, payload = bytearray(data[:size]), b"\x80\x05not a pickle" + bytes(len(data) - size - 14)
    h = hashlib.blake2b(bytes(header[: C._CHECKED]), digest_size=32)
    h.update(payload)
    header[C._CHECKED : size] = h.digest()
    path.write_bytes(bytes(header) + payload)


DAMAGE = {
    "payload byte flipped": (lambda p: _flip(p, 500), "checksum mismatch"),
    "truncated": (_truncate, "truncated"),
    "magic": (lambda p: _flip(p, 0), "bad magic"),
    "version": (lambda p: _flip(p, 8), "format version"),
    "position": (lambda p: _flip(p, 17), "checksum mismatch"),
    "decision digest": (lambda p: _flip(p, 40), "checksum mismatch"),
    "unpicklable": (_unpicklable, "cannot unpickle"),
    "empty": (lambda p: p.write_bytes(b""), "shorter than its header"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_is_reported_and_the_previous_one_is_used(default_run, tmp_path, damage):
    run_dir = _copy(default_run[0], tmp_path)
    files = C.checkpoint_files(run_dir)
    spoil, reason = DAMAGE[damage]
    spoil(files[0])
    lines: list[str] = []
    part = replay(run_dir, from_checkpoint=True, log=lines.append)
    assert part.start == int(files[1].stem)
    assert len(lines) == 1 and files[0].name in lines[0] and "unusable" in lines[0]
    import re

    assert re.search(reason, lines[0]), lines[0]
    assert part.identical and part.digest == DIGEST


def test_with_every_checkpoint_damaged_the_whole_journal_is_replayed(default_run, tmp_path):
    run_dir = _copy(default_run[0], tmp_path)
    files = C.checkpoint_files(run_dir)
    _flip(files[0], 300)
    _truncate(files[1])
    _flip(files[2], 0)
    lines: list[str] = []
    part = replay(run_dir, from_checkpoint=True, log=lines.append)
    assert part.start == 0 and part.identical and part.digest == DIGEST
    assert len(lines) == 4 and "replaying the whole journal" in lines[-1]
    assert fingerprint(part.core) == fingerprint(replay(default_run[0]).core)


# -- a checkpoint of another version of the engine is passed over -----------------------------------

_V1_HEADER = struct.Struct("<8sHHIQQ16s32s")  # format 1: no code fingerprint, 80 bytes


def _as_version_1(path: Path, reader: JournalReader) -> None:
    """Rewrite a checkpoint as the engine before the compiled decision path wrote it: format 1
    (80-byte header, checksum over its first 48 bytes) and a core without that engine's
    `decider` and its order manager's `table` (what an older core unpickles to)."""
    restored = C.load(path, reader)
    core = restored.core
    del core.decider
    del core.orders.table
    payload = C._dumps({"core": core, "extra": restored.extra})
    old = C._HEADER.unpack_from(path.read_bytes())
    fields = _V1_HEADER.pack(C.MAGIC, 1, 0, old[3], old[4], len(payload), old[6], b"")[:48]
    h = hashlib.blake2b(fields, digest_size=32)
    h.update(payload)
    path.write_bytes(fields + h.digest() + payload)


def test_a_checkpoint_of_the_previous_format_is_reported_and_passed_over(default_run, tmp_path):
    """A checkpoint written before this engine's layout (no decider, no order table) would
    unpickle into a core that crashes at its first accepted signal: it is never loaded."""
    run_dir = _copy(default_run[0], tmp_path)
    files = C.checkpoint_files(run_dir)
    reader = JournalReader(run_dir / "journal")
    _as_version_1(files[0], reader)
    _as_version_1(files[1], reader)
    lines: list[str] = []
    part = replay(run_dir, from_checkpoint=True, log=lines.append)
    assert part.start == int(files[2].stem)
    assert len(lines) == 2, lines
    for path, line in zip(files, lines, strict=False):
        assert path.name in line and "format version 1, this engine reads 2" in line, line
        assert "written by another version of the engine" in line and "trying the previous one" in line
    assert part.identical and part.digest == DIGEST
    assert fingerprint(part.core) == fingerprint(replay(default_run[0]).core)


def test_a_checkpoint_of_other_code_is_reported_and_passed_over(default_run, tmp_path, monkeypatch):
    """Same format, written by an engine of other source (another code fingerprint)."""
    run_dir = _copy(default_run[0], tmp_path)
    files = C.checkpoint_files(run_dir)
    restored = C.load(files[0], JournalReader(run_dir / "journal"))
    last_check = C._HEADER.unpack_from(files[0].read_bytes())[3]
    files[0].unlink()
    ours = C.CODE_FINGERPRINT
    monkeypatch.setattr(C, "CODE_FINGERPRINT", bytes(16))
    assert C.write(run_dir / C.DIR_NAME, restored.core, restored.position, last_check, {}) == files[0]
    monkeypatch.setattr(C, "CODE_FINGERPRINT", ours)
    lines: list[str] = []
    part = replay(run_dir, from_checkpoint=True, log=lines.append)
    assert part.start == int(files[1].stem)
    assert len(lines) == 1 and files[0].name in lines[0], lines
    assert f"code fingerprint {bytes(16).hex()}, this engine's is {ours.hex()}" in lines[0]
    assert "written by another version of the engine" in lines[0]
    assert part.identical and part.digest == DIGEST
    # the same checkpoint written with this engine's fingerprint is used
    files[0].unlink()
    C.write(run_dir / C.DIR_NAME, restored.core, restored.position, last_check, {})
    assert replay(run_dir, from_checkpoint=True, log=pytest.fail).start == int(files[0].stem)


def test_the_code_fingerprint_follows_the_source_a_checkpoint_depends_on(tmp_path):
    root = tmp_path / "basis_core"
    for name in C._CODE:
        src = Path(C.__file__).resolve().parent.parent / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    (root / "cli").mkdir()
    (root / "cli" / "run.py").write_text("x = 1\n")
    base = C.code_fingerprint(root)
    assert base == C.code_fingerprint()  # the copy is the source this engine runs
    (root / "cli" / "run.py").write_text("x = 2\n")  # not a module a checkpoint holds
    assert C.code_fingerprint(root) == base
    orders = root / "engine" / "orders.py"
    orders.write_text(orders.read_text() + "\n# another version\n")
    changed = C.code_fingerprint(root)
    assert changed != base
    (root / "state" / "new_part.py").write_text("")  # a module added
    assert C.code_fingerprint(root) not in (base, changed)


def test_a_checkpoint_past_the_end_of_a_shortened_journal_is_not_used(default_run, tmp_path):
    """A journal that lost its tail (power loss with fsync = "never") ends before the newest
    checkpoint: that one describes decisions the journal no longer holds."""
    run_dir = _copy(default_run[0], tmp_path)
    files = C.checkpoint_files(run_dir)
    truncate(run_dir / "journal", int(files[0].stem) - 10)
    lines: list[str] = []
    part = replay(run_dir, from_checkpoint=True, log=lines.append)
    assert part.start == int(files[1].stem)
    assert len(lines) == 1 and "is missing or not the one" in lines[0]


def test_a_checkpoint_whose_decisions_the_journal_does_not_hold_is_not_used(default_run, tmp_path):
    """The last command journaled before the newest checkpoint differs from what the engine
    decided: the rebuilt decision digest disagrees with every checkpoint taken after it."""
    run_dir = _copy(default_run[0], tmp_path)
    positions = [int(p.stem) for p in C.checkpoint_files(run_dir)]
    records = JournalReader(run_dir / "journal").read(0, positions[0])
    pos = int(np.flatnonzero(records["source"] == S.Source.ENGINE)[-1])
    after = [p for p in positions if p > pos]
    seg = sorted((run_dir / "journal").glob("*.journal"))[0]  # one segment: position = slot
    data = bytearray(seg.read_bytes())
    slot = (pos + 1) * S.RECORD_SIZE
    data[slot + 8] ^= 1  # its timestamp, sealed again: a valid record, another decision
    data[slot + 60 : slot + 64] = zlib.crc32(bytes(data[slot : slot + 60])).to_bytes(4, "little")
    seg.write_bytes(bytes(data))
    lines: list[str] = []
    part = replay(run_dir, from_checkpoint=True, log=lines.append)
    assert part.start == max([p for p in positions if p <= pos], default=0)
    assert len(after) >= 1 and all("hash to" in line for line in lines[: len(after)]), lines
    assert not part.identical  # the replay from the earlier state finds the changed command


def test_a_checkpoint_write_cut_short_leaves_no_file_that_is_read(default_run, tmp_path):
    run_dir = _copy(default_run[0], tmp_path)
    newest = C.checkpoint_files(run_dir)[0]
    (run_dir / C.DIR_NAME / "9999999999999999.tmp").write_bytes(newest.read_bytes()[:100])
    assert C.checkpoint_files(run_dir)[0] == newest
    C.Checkpointer(run_dir, EVERY, KEEP)  # a new writer clears it
    assert not list((run_dir / C.DIR_NAME).glob("*.tmp"))


@pytest.mark.parametrize(("key", "value"), [("checkpoint_every_records", -1), ("checkpoint_keep", 0)])
def test_checkpoint_settings_are_validated(key, value):
    data = _default(10.0, EVERY)
    data["journal"][key] = value
    with pytest.raises(ConfigError, match=f"journal.{key}"):
        from_dict(data)


def test_checkpoints_off_writes_none(tmp_path):
    runner, _, _ = run(_default(5.0, 0), tmp_path)
    assert runner.checkpoints.written == 0 and not C.checkpoint_files(tmp_path / "run")


# -- the engine process ----------------------------------------------------------------------------


def test_an_engine_killed_mid_run_restarts_from_its_checkpoint_and_decides_as_a_full_replay(tmp_path, capfd):
    """The two-process layout on the real clock, checkpoints every 300 records: the engine is
    killed with SIGKILL; the standby takes over from the newest checkpoint (it says so) and the
    run's journal still replays, in full, to the decisions the io process's shadow saw."""
    import asyncio
    import os
    import signal

    from orchestration import invariants, real_time

    data = real_time(8.0)
    data["journal"].update(checkpoint_every_records=300, checkpoint_keep=2)

    async def kill_later(runner):
        async def kill():
            await asyncio.sleep(4.0)
            os.kill(runner.engine_proc.pid, signal.SIGKILL)

        asyncio.get_running_loop().create_task(kill())

    runner, _, found = run(data, tmp_path, after_start=kill_later, layout="processes")
    out = capfd.readouterr().out
    assert runner.restarts == 1 and runner.standby_takeovers == 1
    assert "engine: state from the checkpoint at journal position" in out, out
    assert len(C.checkpoint_files(tmp_path / "run")) == 2
    assert not found + invariants(runner), found + invariants(runner)
    res = replay(tmp_path / "run")
    assert res.identical and res.digest == runner.core.digest
    assert replay(tmp_path / "run", from_checkpoint=True, log=pytest.fail).digest == res.digest


# -- restart time ----------------------------------------------------------------------------------


def _restart_s(run_dir: Path, tmp_path: Path, every: int, tries: int = 3) -> tuple[float, int]:
    """Best wall time of the engine's restart work (procs.resume: checkpoint, journal tail,
    RECOVERED decided) after a crash just before the next checkpoint was due (the longest tail
    a checkpoint leaves): on copies of `run_dir` cut there. Returns it and the position cut at."""
    cfg, _ = load_run_meta(run_dir)
    end = JournalReader(run_dir / "journal").end()
    base = max(int(p.stem) for p in C.checkpoint_files(run_dir) if int(p.stem) + every - 1 <= end)
    crash = base + every - 1
    best = float("inf")
    for i in range(tries):
        d = tmp_path / f"restart{i}"
        shutil.copytree(run_dir, d)
        for p in C.checkpoint_files(d):
            if int(p.stem) > base:
                p.unlink()
        truncate(d / "journal", crash)
        lines: list[str] = []
        t0 = time.perf_counter()
        _, journal, _, start = resume(d, cfg, None, log=lines.append)
        best = min(best, time.perf_counter() - t0)
        journal.close()
        assert start == base and len(lines) == 1, lines  # no checkpoint passed over
        shutil.rmtree(d)
    return best, crash


@pytest.mark.slow
def test_restart_time_is_bounded_by_the_checkpoint_not_the_journal_length(tmp_path):
    """Journals of two lengths 10x apart (CI: ~30 K and ~300 K records, a checkpoint every
    10 000; BASIS_SOAK=full: ~110 K and ~1.2 M, every 50 000), each cut just before its next
    checkpoint was due: the engine's restart work differs by at most 2x."""
    from soak import SOAK

    short_s, every = (25.0, 10_000) if SOAK == "short" else (90.0, 50_000)
    runs = {}
    for name, duration in (("short", short_s), ("long", short_s * 11)):
        out = tmp_path / name
        run(_default(duration, every, keep=2), out)
        runs[name] = out / "run"
    ends = {k: JournalReader(d / "journal").end() for k, d in runs.items()}
    assert ends["long"] >= 10 * ends["short"], ends
    if SOAK != "short":
        assert ends["long"] >= 1_000_000, ends
    times = {k: _restart_s(d, tmp_path, every) for k, d in runs.items()}
    print(
        "restart after a crash at journal position "
        + ", ".join(f"{times[k][1]:,} (journal of {ends[k]:,}): {times[k][0]:.3f} s" for k in runs)
    )
    assert times["long"][0] <= 2 * times["short"][0], (ends, times)
