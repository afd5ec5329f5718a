"""The journal: round trips, segment rolls, reopening, torn tails, corruption, fsync policies,
follow mode, and a writer process killed with SIGKILL at random points."""

import os
import select
import signal
import struct
import sys
import threading
import time
import traceback
import zlib
from pathlib import Path

import numpy as np
import pytest
from soak import SOAK

from basis_core import schema
from basis_core.config import JournalConfig
from basis_core.errors import JournalCorrupt, JournalError
from basis_core.journal import JournalReader, JournalWriter, truncate
from basis_core.journal.kernels import crc_records
from basis_core.journal.segment import FIRST_SEGMENT_RECORDS, segment_capacity, segment_name
from basis_core.journal.writer import RELEASE_EVERY


def make(start: int, n: int) -> np.ndarray:
    """Records whose every byte is derived from the position (= seq), unsealed."""
    seq = np.arange(start, start + n, dtype=np.uint64)
    r = schema.empty(schema.Kind.TRADE, n)
    r["seq"] = seq
    r["ts_ns"] = (seq * 7 + 1).astype(np.int64)
    r["source"] = (seq % 251).astype(np.uint8)
    r["venue"] = (seq % 7).astype(np.uint8)
    r["sub"] = (seq & 1).astype(np.uint8)
    r["instrument"] = (seq % 65521).astype(np.uint16)
    r["aux"] = (seq % 13).astype(np.uint16)
    r["price"] = seq * 0.5 + 1.0
    r["qty"] = (seq % 1000) + 0.25
    r["exch_ts_ns"] = -(seq.astype(np.int64))
    r["trade_id"] = seq ^ np.uint64(0xA5A5A5A5A5A5)
    return r


def expected(start: int, n: int) -> np.ndarray:
    """make(start, n) sealed (check = CRC-32 of bytes 0..59, computed by the journal's kernel,
    which test_crc_kernel_matches_zlib_and_schema_seal holds to zlib)."""
    recs = make(start, n).view(schema.GENERIC)
    crc_records(recs.view(np.uint32), recs["check"])
    return recs


def assert_journal_holds(directory, n: int) -> None:
    got = JournalReader(directory).read()
    assert len(got) == n
    assert got.tobytes() == expected(0, n).tobytes()


def cfg(**kw) -> JournalConfig:
    return JournalConfig(**{"segment_records": 64, "fsync": "never", **kw})


def write_journal(directory, n: int) -> None:
    """A closed journal in `directory` holding `make(0, n)`."""
    with JournalWriter(directory, cfg()) as w:
        w.append(make(0, n))


def segment_path(directory, index: int):
    return directory / segment_name(index)


def slot_offset(slot: int) -> int:
    return (slot + 1) * schema.RECORD_SIZE


# -- format and round trips -----------------------------------------------------------------


def test_crc_kernel_matches_zlib_and_schema_seal():
    recs = np.random.default_rng(3).integers(0, 256, size=(500, 64), dtype=np.uint8)
    out = np.zeros(500, dtype=np.uint32)
    crc_records(recs.reshape(-1).view(np.uint32), out)
    assert list(out) == [zlib.crc32(recs[i, :60].tobytes()) for i in range(500)]
    sealed = schema.seal(recs.copy().reshape(-1).view(schema.GENERIC))
    assert np.array_equal(sealed["check"], out)


def test_zero_slot_is_never_a_valid_record():
    assert zlib.crc32(bytes(60)) != 0


def test_append_returns_positions_and_reader_gets_every_record_sealed_across_rolls(tmp_path):
    with JournalWriter(tmp_path, cfg()) as w:
        assert w.append(make(0, 10)) == 0
        assert w.append(make(10, 200)) == 10  # larger than a segment: spans four
        assert w.append(make(210, 54)) == 210
        assert w.position == 264 and w.segment_index == 4
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [segment_name(i) for i in range(5)] + ["LOCK"]
    assert_journal_holds(tmp_path, 264)
    assert JournalReader(tmp_path).end() == 264


def test_append_does_not_modify_the_callers_array_and_replaces_its_check(tmp_path):
    recs = make(0, 5)
    recs["check"] = 12345
    before = recs.tobytes()
    with JournalWriter(tmp_path, cfg()) as w:
        w.append(recs)
    assert recs.tobytes() == before
    assert_journal_holds(tmp_path, 5)


def test_append_accepts_any_record_dtype_and_uint8_rows_and_refuses_other_sizes(tmp_path):
    with JournalWriter(tmp_path, cfg()) as w:
        w.append(make(0, 3).view(schema.GENERIC))
        w.append(make(3, 2).view(np.uint8).reshape(2, 64))
        w.append(make(5, 3).view(np.uint64).reshape(3, 8))
        w.append(make(0, 16)[8:16:2].copy()[:0])  # empty
        spaced = schema.empty(schema.Kind.TRADE, 8)
        spaced[0::2] = make(8, 4)
        strided = spaced[0::2]
        assert [int(x) for x in strided["seq"]] == [8, 9, 10, 11] and not strided.flags.c_contiguous
        w.append(strided)  # a strided view is copied, not misread
        w.append(make(12, 0))
        packed = np.concatenate([make(0, 1), make(1, 1)])  # numpy drops the padding: 60-byte items
        for bad in (
            np.zeros(4, dtype=np.float64),
            np.zeros((2, 32), dtype=np.uint8),
            np.zeros((1, 16), dtype=np.int32),
            packed,
        ):
            with pytest.raises(JournalError, match="64-byte records"):
                w.append(bad)
    assert_journal_holds(tmp_path, 12)


def test_reopen_after_clean_close_resumes_at_the_end(tmp_path):
    write_journal(tmp_path, 100)
    with JournalWriter(tmp_path, cfg()) as w:
        assert w.position == 100 and w.recovery.valid == 36 and w.recovery.zeroed == 0
        w.append(make(100, 28))  # exactly fills segment 1
    with JournalWriter(tmp_path, cfg()) as w:
        assert w.position == 128 and w.segment_index == 1
        w.append(make(128, 1))  # rolls
        assert w.segment_index == 2
    assert_journal_holds(tmp_path, 129)


def test_segments_start_small_and_double_up_to_the_configured_size(tmp_path):
    first = FIRST_SEGMENT_RECORDS
    config = cfg(segment_records=4 * first)
    with JournalWriter(tmp_path, config) as w:
        assert w.segment.capacity == first  # a short run reserves the first size, not 4x it
        w.append(make(0, first + 1))
        assert w.segment.capacity == 2 * first
        w.append(make(first + 1, 2 * first + 4 * first))
        assert (w.segment_index, w.segment.capacity) == (3, 4 * first)
    sizes = [p.stat().st_size for p in sorted(tmp_path.glob("*.journal"))]
    assert sizes == [(c + 1) * schema.RECORD_SIZE for c in (first, 2 * first, 4 * first, 4 * first)]
    assert [segment_capacity(i, 64) for i in range(3)] == [64, 64, 64]
    assert_journal_holds(tmp_path, 7 * first + 1)


def test_written_pages_leave_the_writers_memory_and_read_back_whole(tmp_path):
    n = 8 * RELEASE_EVERY
    with JournalWriter(tmp_path, cfg(segment_records=2 * n)) as w:
        for start in range(0, n, 1000):
            w.append(make(start, min(1000, n - start)))
        resident = _mapped_kib(w.segment.path)
        # without the release every written page (n * 64 bytes = 8 MiB) would be counted here
        assert resident <= RELEASE_EVERY * schema.RECORD_SIZE // 1024 + 8, f"{resident} KiB resident"
    assert_journal_holds(tmp_path, n)


def _mapped_kib(path) -> int:
    """Resident KiB of this process's mappings of the file `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


def test_reopen_with_another_segment_size_keeps_old_segments_and_uses_the_new_size(tmp_path):
    with JournalWriter(tmp_path, cfg(segment_records=64)) as w:
        w.append(make(0, 70))
    with JournalWriter(tmp_path, cfg(segment_records=16)) as w:
        w.append(make(70, 90))  # fills segment 1 (64 slots), then 16-slot segments
        assert w.segment_index == 3
    assert_journal_holds(tmp_path, 160)


@pytest.mark.parametrize("start", [0, 1, 63, 64, 65, 150, 199, 200])
def test_reader_starts_at_any_position(tmp_path, start):
    write_journal(tmp_path, 200)
    batches = list(JournalReader(tmp_path).batches(start, max_records=10))
    assert all(len(b) <= 10 for _, b in batches)
    assert [p for p, _ in batches] == sorted(p for p, _ in batches)
    got = np.concatenate([b for _, b in batches]) if batches else np.zeros(0, schema.GENERIC)
    assert got.tobytes() == expected(start, 200 - start).tobytes()
    if batches:
        assert batches[0][0] == start


def test_record_iterator_and_read_count(tmp_path):
    write_journal(tmp_path, 70)
    r = JournalReader(tmp_path)
    assert r.read().dtype == schema.GENERIC
    seqs = [int(rec["seq"]) for rec in r]
    assert seqs == list(range(70))
    assert [int(x) for x in r.read(65, 3)["seq"]] == [65, 66, 67]
    assert len(r.read(70)) == 0


@pytest.mark.parametrize("policy", ["every_n", "segment", "never"])
def test_every_fsync_policy_produces_a_readable_journal(tmp_path, policy):
    with JournalWriter(tmp_path, cfg(fsync=policy, fsync_every=5)) as w:
        for start in range(0, 300, 30):
            w.append(make(start, 30))
        w.flush()
    assert_journal_holds(tmp_path, 300)
    with JournalWriter(tmp_path, cfg(fsync=policy, fsync_every=5)) as w:
        assert w.position == 300


def _dirty_kib(path) -> int:
    """Dirty KiB of this process's mappings of `path` (/proc/self/smaps): pages written through
    the mapping and not yet written back to the file."""
    total, inside = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and len(parts[1]) == 4:
                inside = parts[-1] == str(path)
            elif inside and parts[0] in ("Shared_Dirty:", "Private_Dirty:"):
                total += int(parts[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs /proc/self/smaps")
def test_every_n_policy_writes_back_once_n_records_are_unsynced_and_flush_writes_back_all(tmp_path):
    with JournalWriter(tmp_path / "a", cfg(segment_records=8192, fsync="every_n", fsync_every=1024)) as w:
        for start in range(0, 768, 256):
            w.append(make(start, 256))
        assert _dirty_kib(w._seg.path) > 0  # 768 unsynced records: still only in the page cache
        w.append(make(768, 256))
        assert _dirty_kib(w._seg.path) == 0  # 1024 unsynced records reached: msync'd
        w.append(make(1024, 256))
        assert w._synced == 1024
    with JournalWriter(tmp_path / "b", cfg(segment_records=8192, fsync="never")) as w:
        w.append(make(0, 1000))
        w.flush()
        assert _dirty_kib(w._seg.path) == 0


def test_second_writer_on_the_same_directory_is_refused(tmp_path):
    with JournalWriter(tmp_path, cfg()):
        with pytest.raises(JournalError, match="another writer"):
            JournalWriter(tmp_path, cfg())
    JournalWriter(tmp_path, cfg()).close()


def test_closed_writer_refuses_appends(tmp_path):
    w = JournalWriter(tmp_path, cfg())
    w.close()
    w.close()
    with pytest.raises(JournalError, match="closed"):
        w.append(make(0, 1))
    with pytest.raises(JournalError, match="closed"):
        _ = w.position
    w.flush()  # nothing left to sync: a no-op, like a second close


def test_leftover_tmp_segment_from_a_crash_during_roll_is_removed(tmp_path):
    write_journal(tmp_path, 64)
    (tmp_path / (segment_name(1) + ".tmp")).write_bytes(b"half a header")
    with JournalWriter(tmp_path, cfg()) as w:
        assert w.position == 64
        w.append(make(64, 1))
    assert not (tmp_path / (segment_name(1) + ".tmp")).exists()
    assert_journal_holds(tmp_path, 65)


# -- torn tails and corruption --------------------------------------------------------------


def _poke(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def test_torn_tail_is_not_read_and_the_writer_zeroes_it_and_resumes(tmp_path):
    write_journal(tmp_path, 10)
    seg = segment_path(tmp_path, 0)
    full = expected(10, 3).tobytes()
    _poke(seg, slot_offset(10), full[:64])  # whole payload, check word...
    _poke(seg, slot_offset(10) + 60, b"\0\0\0\0")  # ...never written
    _poke(seg, slot_offset(11), full[64 : 64 + 37])  # half a payload
    _poke(seg, slot_offset(12), full[128:188] + b"\x01\x02\x03\x04")  # wrong check word
    assert JournalReader(tmp_path).end() == 10
    assert_journal_holds(tmp_path, 10)
    with JournalWriter(tmp_path, cfg()) as w:
        assert (w.recovery.valid, w.recovery.zeroed) == (10, 3)
        assert w.position == 10
        w.append(make(10, 60))
    assert_journal_holds(tmp_path, 70)


def test_damaged_record_followed_by_valid_records_is_corruption_naming_segment_and_offset(tmp_path):
    write_journal(tmp_path, 20)
    seg = segment_path(tmp_path, 0)
    _poke(seg, slot_offset(5) + 30, b"\xff")
    where = rf"{segment_name(0)}: slot 5 \(byte offset {slot_offset(5)}, position 5\)"
    with pytest.raises(JournalCorrupt, match=where):
        JournalReader(tmp_path).read()
    with pytest.raises(JournalCorrupt, match="refusing to append"):
        JournalWriter(tmp_path, cfg())
    assert seg.read_bytes()[slot_offset(6) : slot_offset(20)] == expected(6, 14).tobytes()  # untouched


def test_truncate_drops_a_damaged_record_and_all_after_it_so_appending_can_resume(tmp_path):
    write_journal(tmp_path, 150)
    _poke(segment_path(tmp_path, 1), slot_offset(10) + 3, b"\x99")
    with pytest.raises(JournalCorrupt, match="position 74") as info:
        JournalReader(tmp_path).read()
    assert "truncate" in str(info.value)
    with JournalWriter(tmp_path, cfg()):
        with pytest.raises(JournalError, match="another writer"):
            truncate(tmp_path, 74)
    with pytest.raises(JournalError, match="not inside"):
        truncate(tmp_path, 193)
    with pytest.raises(JournalError, match="no such journal directory"):
        truncate(tmp_path / "nope", 0)
    truncate(tmp_path, 74)
    assert not segment_path(tmp_path, 2).exists()
    assert_journal_holds(tmp_path, 74)
    with JournalWriter(tmp_path, cfg()) as w:
        assert w.position == 74
        w.append(make(74, 100))
    assert_journal_holds(tmp_path, 174)
    truncate(tmp_path, 128)  # a segment boundary: segment 2 goes, segment 1 stays full
    assert_journal_holds(tmp_path, 128)
    truncate(tmp_path, 0)
    assert JournalReader(tmp_path).end() == 0
    write_journal(tmp_path, 3)
    assert_journal_holds(tmp_path, 3)


def test_zeroed_hole_in_the_middle_is_corruption(tmp_path):
    write_journal(tmp_path, 20)
    _poke(segment_path(tmp_path, 0), slot_offset(7), bytes(64))
    with pytest.raises(JournalCorrupt, match="slot 7"):
        JournalReader(tmp_path).end()


def test_damage_in_a_full_earlier_segment_raises_before_yielding_any_of_it(tmp_path):
    write_journal(tmp_path, 150)
    _poke(segment_path(tmp_path, 1), slot_offset(63) + 8, b"\x00\x01")  # last slot of segment 1
    got = []
    with pytest.raises(JournalCorrupt, match=rf"{segment_name(1)}: slot 63 .*later segment exists"):
        for pos, batch in JournalReader(tmp_path).batches():
            got.append((pos, len(batch)))
    assert got == [(0, 64)]


def test_missing_segment_is_corruption(tmp_path):
    write_journal(tmp_path, 150)
    segment_path(tmp_path, 1).unlink()
    with pytest.raises(JournalCorrupt, match="segment 1 is missing"):
        JournalReader(tmp_path).read()


def test_wrong_magic_is_a_journal_error(tmp_path):
    write_journal(tmp_path, 5)
    _poke(segment_path(tmp_path, 0), 0, b"NOTAJRNL")
    with pytest.raises(JournalError, match="not a journal segment"):
        JournalReader(tmp_path).read()
    with pytest.raises(JournalError, match="not a journal segment"):
        JournalWriter(tmp_path, cfg())


def test_damaged_header_and_truncated_file_are_journal_errors(tmp_path):
    write_journal(tmp_path, 70)
    _poke(segment_path(tmp_path, 1), 30, b"\x07")
    with pytest.raises(JournalError, match="header fails its CRC"):
        JournalReader(tmp_path).read()
    _poke(segment_path(tmp_path, 1), 30, b"\x00")
    assert JournalReader(tmp_path).end() == 70
    os.truncate(segment_path(tmp_path, 0), 1000)
    with pytest.raises(JournalError, match="file is 1000 bytes"):
        list(JournalReader(tmp_path).batches())


def test_reader_on_a_missing_or_empty_directory_is_a_journal_error(tmp_path):
    with pytest.raises(JournalError, match="no such journal directory"):
        JournalReader(tmp_path / "nope")
    with pytest.raises(JournalError, match="no journal segments"):
        JournalReader(tmp_path).read()


# -- follow mode ----------------------------------------------------------------------------


def test_follow_yields_records_of_a_live_writer_across_rolls(tmp_path):
    total = 3000
    w = JournalWriter(tmp_path, cfg(segment_records=128))
    w.append(make(0, 1))

    def produce():
        pos = 1
        rng = np.random.default_rng(5)
        while pos < total:
            n = min(int(rng.integers(1, 200)), total - pos)
            w.append(make(pos, n))
            pos += n
            time.sleep(0.0005)

    t = threading.Thread(target=produce)
    t.start()
    got, deadline = [], time.monotonic() + 20
    count = 0
    for pos, batch in JournalReader(tmp_path).follow(
        stop=lambda: count >= total or time.monotonic() > deadline, poll_s=0.0002
    ):
        assert pos == count
        got.append(batch)
        count += len(batch)
    t.join()
    w.close()
    assert count == total
    assert np.concatenate(got).tobytes() == expected(0, total).tobytes()


def test_follow_from_a_position_returns_the_rest_then_stops_and_refuses_a_start_past_the_end(tmp_path):
    write_journal(tmp_path, 130)
    calls = []
    got = list(
        JournalReader(tmp_path).follow(100, poll_s=0.0001, stop=lambda: calls.append(1) or len(calls) > 3)
    )
    assert np.concatenate([b for _, b in got]).tobytes() == expected(100, 30).tobytes()
    assert len(calls) == 4  # kept polling at the end until stop() said so
    with pytest.raises(JournalError, match="ends at 130"):
        next(JournalReader(tmp_path).follow(131))


# -- kill -9 --------------------------------------------------------------------------------

MAX_BATCH = 2000
SEGMENT = 16384


def _child_writes_until_killed(directory, policy: str, seed: int, report_fd: int) -> None:
    """Runs in a forked child: append seq-derived batches forever, reporting each new end.
    Records are generated a block at a time so that most of the child's time is spent inside
    `append`, where a kill leaves a torn batch."""
    try:
        w = JournalWriter(directory, cfg(segment_records=SEGMENT, fsync=policy, fsync_every=4096))
        pos = w.position
        rng = np.random.default_rng(seed)
        block, at = make(pos, 10 * MAX_BATCH), 0
        os.write(report_fd, struct.pack("<Q", pos))
        while True:
            n = int(rng.integers(1, MAX_BATCH + 1))
            if at + n > len(block):
                block, at = make(pos, 10 * MAX_BATCH), 0
            w.append(block[at : at + n])
            at += n
            pos += n
            os.write(report_fd, struct.pack("<Q", pos))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)


def _read_or_kill(fd: int, n: int, pid: int, timeout_s: float = 20.0) -> bytes:
    """Read up to `n` bytes the child sends; if it sends nothing in time, kill it and fail."""
    if not select.select([fd], [], [], timeout_s)[0]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"writer child sent nothing within {timeout_s} s")
    return os.read(fd, n)


def _kill_once(directory, policy: str, seed: int, delay_s: float, during_open: bool) -> int:
    """Fork a writer, SIGKILL it `delay_s` after it opened the journal (or after the fork when
    `during_open`), return the last end it reported (-1 if none)."""
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child_writes_until_killed(directory, policy, seed, wfd)
        os._exit(4)
    os.close(wfd)
    first = b"" if during_open else _read_or_kill(r, 8, pid)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    data = first
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"child ended with status {status}"
    )
    usable = len(data) // 8 * 8
    return struct.unpack_from("<Q", data, usable - 8)[0] if usable else -1


def test_sigkill_at_random_points_loses_no_whole_record_and_yields_nothing_torn(tmp_path):
    kills = 300 if SOAK == "full" else 24
    with JournalWriter(tmp_path / "warm", cfg()) as w:  # compile every kernel before forking
        w.append(make(0, 100))
    assert_journal_holds(tmp_path / "warm", 100)
    tmp_path = tmp_path / "journal"
    rng = np.random.default_rng(20261124)
    policies = ["never", "segment", "every_n"]
    end = 0
    torn_seen = 0
    t0 = time.monotonic()
    for i in range(kills):
        policy = policies[i % 3]
        reported = _kill_once(
            tmp_path, policy, seed=i, delay_s=float(rng.uniform(0.0, 0.004)), during_open=i % 8 == 7
        )
        r = JournalReader(tmp_path)
        n = r.end()
        # every record the child finished is there, plus at most the batch it was writing
        assert max(reported, end) <= n <= max(reported, end) + MAX_BATCH, (i, n, reported, end)
        since = end - end % SEGMENT  # earlier segments were read back in earlier rounds
        got = r.read(since)
        assert len(got) == n - since
        assert schema.verify(got[end - since :]).all()  # zlib's CRC over the records new this round
        assert got.tobytes() == expected(since, n - since).tobytes()  # contiguous, nothing torn
        assert r.end() == n
        # the writer recovers the tail and resumes; old and new records read back contiguous
        with JournalWriter(tmp_path, cfg(segment_records=SEGMENT, fsync=policy)) as w:
            assert w.position == n
            torn_seen += w.recovery.zeroed > 0
            w.append(make(n, 5))
        end = n + 5
        tail = JournalReader(tmp_path).read(max(0, end - 50))
        assert tail.tobytes() == expected(max(0, end - 50), min(end, 50)).tobytes()
    assert_journal_holds(tmp_path, end)
    print(f"{kills} kills, {end} records, {torn_seen} torn tails recovered, {time.monotonic() - t0:.1f} s")


def test_sigkill_inside_a_large_batch_leaves_a_torn_tail_that_is_dropped_and_zeroed(tmp_path):
    big = 200_000  # ~13 MB: the append takes milliseconds, so the kill lands inside it
    with JournalWriter(tmp_path / "warm", cfg()) as w:  # compile every kernel before forking
        w.append(make(0, 100))
    assert_journal_holds(tmp_path / "warm", 100)
    tmp_path = tmp_path / "journal"
    config = cfg(segment_records=1 << 18)
    with JournalWriter(tmp_path, config) as w:
        w.append(make(0, 100))
    start = 100
    for _attempt in range(5):
        data = make(start, big)
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                w = JournalWriter(tmp_path, config)
                os.write(wfd, b"go")
                w.append(data)
                os.write(wfd, b"done")
                time.sleep(60)
            finally:
                os._exit(3)
        os.close(wfd)
        assert _read_or_kill(r, 2, pid) == b"go"
        time.sleep(0.002)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        finished = os.read(r, 4) == b"done"
        os.close(r)
        n = JournalReader(tmp_path).end()
        with JournalWriter(tmp_path, config) as w:
            zeroed = w.recovery.zeroed
            assert w.position == n
        if not finished and zeroed:
            break
        start = n
    assert zeroed > 0 and not finished
    assert start <= n < start + big
    assert JournalReader(tmp_path).read().tobytes() == expected(0, n).tobytes()
    with JournalWriter(tmp_path, config) as w:
        w.append(make(n, 10))
    assert_journal_holds(tmp_path, n + 10)
