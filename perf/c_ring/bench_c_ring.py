"""The C reference ring (perf/c_ring/ring.c), measured with the same topologies and names as
perf/bench_rings.py so the two tables line up: basis's ring should be within 3x of it.

    OneToOneThroughput[c,batch=B]   B = 1, 16, 256; 4096 slots; the producer fills numbered,
                                    checksummed records in place and publishes every B; the
                                    consumer claims up to B, checks each record, releases.
                                    pyperf value: seconds per record.
    PingPongLatency[c].p50 / .p99   two 64-slot rings, one record per round trip, one-way
                                    latency = half the round trip (CLOCK_MONOTONIC).

ring.c is compiled with `gcc -O2 -std=c11` into a temporary directory when the suite starts
(never kept); without gcc the suite stops with a clear message. Consumer / pinger on cpu 1,
producer / ponger on cpu 0 when both exist. Each timed run is a fresh pair of processes; the
process start is outside the timed part. A run whose records arrive out of order or torn
fails (ring.c exits non-zero) instead of reporting a figure.

    .venv/bin/python perf/c_ring/bench_c_ring.py -o cring.json [--fast]
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyperf

from basis_core.results.stats import percentile

SOURCE = Path(__file__).with_name("ring.c")
BATCHES = (1, 16, 256)
RING_SLOTS = 4096
PING_SLOTS = 64
MIN_RECORDS = 200_000  # a C run shorter than this is dominated by fork + page faults
MIN_PINGS = 2_000

_binary: list[str] = []


def build() -> str:
    """Compile ring.c into a temporary directory (removed at exit); returns the binary's path."""
    if _binary:
        return _binary[0]
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        sys.exit("bench_c_ring: no C compiler (gcc / cc) on PATH: the C reference ring cannot be built")
    tmp = tempfile.mkdtemp(prefix="basis-cring-")
    atexit.register(shutil.rmtree, tmp, True)
    out = os.path.join(tmp, "ring")
    proc = subprocess.run([gcc, "-O2", "-std=c11", "-o", out, str(SOURCE)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_c_ring: compiling {SOURCE.name} failed:\n{proc.stderr}")
    _binary.append(out)
    return out


def _cpus() -> tuple[int, int]:
    have = os.sched_getaffinity(0)
    return (1, 0) if {0, 1} <= have else (-1, -1)


def _run(args: list[str]) -> str:
    proc = subprocess.run([build(), *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"C ring {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def throughput(loops: int, batch: int) -> float:
    """Seconds for `loops` records (a run of at least MIN_RECORDS, scaled back)."""
    n = max(loops, MIN_RECORDS)
    a, b = _cpus()
    out = _run(["throughput", str(n), str(batch), str(RING_SLOTS), str(a), str(b)])
    ns = int(out.split()[1])
    return ns * 1e-9 * loops / n


def pingpong(loops: int, pct: float) -> float:
    """The pct-th percentile of one-way latency, times `loops` (pyperf divides it back)."""
    n = max(loops, MIN_PINGS)
    a, b = _cpus()
    out = _run(["pingpong", str(n), str(PING_SLOTS), str(a), str(b)])
    lat = np.array(out.split()[1:], dtype=np.int64)
    if lat.size != n:
        raise AssertionError(f"C ring ping-pong returned {lat.size} of {n} samples")
    return percentile(lat, pct) * 1e-9 * loops


def main() -> None:
    runner = pyperf.Runner(processes=2, values=3)
    build()
    a, b = _cpus()
    runner.metadata["cring_cpus"] = (
        f"consumer/pinger cpu {a}, producer/ponger cpu {b}" if a >= 0 else "unpinned"
    )
    runner.metadata["cring_compiler"] = "gcc -O2 -std=c11"
    for batch in BATCHES:
        runner.bench_time_func(f"OneToOneThroughput[c,batch={batch}]", throughput, batch)
    for pct in (50, 99):
        runner.bench_time_func(f"PingPongLatency[c].p{pct}", pingpong, pct)


if __name__ == "__main__":
    main()
