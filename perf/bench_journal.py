"""Journal append throughput for each fsync policy, side by side in one pyperf run.

    engine ── append(batch of 1024 records) ──▶ JournalWriter ── mmap ──▶ segment files
                                                  (CRC-32 per record, roll every 65,536)

Benchmarks: JournalAppendThroughput[<policy>,batch=1024] for policy never, segment and every_n
(fsync_every=4096), named like the other suites so `basis bench` can tabulate them. Each timed run appends `loops` batches of 1024 TRADE records to a fresh
journal (stamping each batch's seq, ~1 us of the ~50 us a batch costs) and closes the writer,
so the closing msync is part of the figure. pyperf's value is seconds per record
(inner_loops=1024); the table printed at the end gives records/s. Before a run counts, its
journal is read back and checked: record count, contiguous seqs, every CRC valid.

    .venv/bin/python perf/bench_journal.py -o journal.json            # full run
    .venv/bin/python perf/bench_journal.py --fast --journal-dir /data  # quick, on another disk

The journal directory defaults to the system temp dir; fsync figures depend on the disk under
it (a tmpfs makes msync free).
"""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np
import pyperf

from basis_core import schema
from basis_core.config import JournalConfig
from basis_core.journal import JournalReader, JournalWriter

BATCH = 1024
SEGMENT = 1 << 16
POLICIES = ("never", "segment", "every_n")


def _batch() -> np.ndarray:
    recs = schema.empty(schema.Kind.TRADE, BATCH)
    recs["seq"] = np.arange(BATCH, dtype=np.uint64)
    recs["ts_ns"] = time.time_ns()
    recs["price"] = 65000.5
    recs["qty"] = 0.01
    return recs


def _check(directory: str, expected: int) -> None:
    reader = JournalReader(directory)
    count = 0
    for pos, batch in reader.batches():
        seqs = batch["seq"]
        if pos != count or not np.array_equal(seqs, np.arange(pos, pos + len(batch), dtype=np.uint64)):
            raise AssertionError(f"journal read back out of order at position {pos}")
        sample = np.ascontiguousarray(batch[:: max(1, len(batch) // 64)])
        if not schema.verify(sample).all():  # zlib spot check; the reader checked every CRC already
            raise AssertionError(f"journal read back with a bad CRC near position {pos}")
        count += len(batch)
    if count != expected:
        raise AssertionError(f"journal holds {count} records, {expected} were appended")


def append_batches(loops: int, policy: str, root: str) -> float:
    directory = tempfile.mkdtemp(dir=root, prefix=f"bench-journal-{policy}-")
    try:
        writer = JournalWriter(
            directory, JournalConfig(segment_records=SEGMENT, fsync=policy, fsync_every=4096)
        )
        batch = _batch()
        seq = batch["seq"]
        step = np.uint64(BATCH)
        t0 = time.perf_counter()
        for _ in range(loops):
            writer.append(batch)
            seq += step
        writer.close()
        elapsed = time.perf_counter() - t0
        _check(directory, loops * BATCH)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return elapsed


def main() -> None:
    runner = pyperf.Runner()
    runner.argparser.add_argument(
        "--journal-dir",
        default=tempfile.gettempdir(),
        help="where the benchmark journals are written (default: temp dir)",
    )
    args = runner.parse_args()
    results = {}
    for policy in POLICIES:
        bench = runner.bench_time_func(
            f"JournalAppendThroughput[{policy},batch={BATCH}]",
            append_batches,
            policy,
            args.journal_dir,
            inner_loops=BATCH,
        )
        if bench is not None:
            results[policy] = bench
    if results and not args.worker:
        print()
        print(
            f"{'fsync policy':<14}{'records/s':>14}{'MB/s':>9}{'ns/record':>11}   (batch {BATCH}, segment {SEGMENT})"
        )
        for policy, bench in results.items():
            per_record = bench.median()
            print(
                f"{policy:<14}{1 / per_record:>14,.0f}{64 / per_record / 1e6:>9.0f}{per_record * 1e9:>11.1f}"
            )


if __name__ == "__main__":
    main()
