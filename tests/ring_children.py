"""Child-process bodies for tests/test_rings.py (importable by the "spawn" start method)."""

from __future__ import annotations

import os
import time

import numpy as np

from basis_core.rings import PRODUCER, Ring, Yield, seqcheck


def produce_compiled(name: str, n: int, batch: int) -> None:
    """Attach as producer, publish records 0..n-1 from one compiled loop, close (ENDED)."""
    ring = Ring.attach(name, PRODUCER)
    done = 0
    while done < n:
        done += int(seqcheck.produce(ring.header, ring.slots, ring.local, done, n - done, batch, 1_000_000))
        if done < n and not _parent_alive():
            break
    ring.close()


def produce_python(name: str, n: int, batches: list[int]) -> None:
    """Attach as producer, push records 0..n-1 through Ring.push_wait, cycling batch sizes."""
    ring = Ring.attach(name, PRODUCER)
    src = np.zeros((max(batches), 8), np.uint64)
    done, i = 0, 0
    while done < n:
        k = min(batches[i % len(batches)], n - done)
        i += 1
        seqcheck.fill(src[:k], done)
        written = ring.push_wait(src[:k], wait=Yield(), timeout_s=30.0)
        done += written
        if written < k:
            break
    ring.close()


def publish_then_idle(name: str, n: int) -> None:
    """Attach as producer, publish n records, then stay alive beating the heartbeat until killed."""
    ring = Ring.attach(name, PRODUCER)
    src = np.zeros((n, 8), np.uint64)
    seqcheck.fill(src, 0)
    ring.push_wait(src, timeout_s=30.0)
    while _parent_alive():
        ring.heartbeat()
        time.sleep(0.01)


def create_and_idle(name: str, capacity: int) -> None:
    """Create a ring (this process owns the segment), then wait to be killed."""
    Ring.create(name, capacity, PRODUCER)
    while _parent_alive():
        time.sleep(0.01)


def _parent_alive() -> bool:
    return os.getppid() != 1
