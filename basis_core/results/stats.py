"""Percentiles of latency samples, computed one way for reports and benchmarks alike.

numpy's default method (linear interpolation between the two nearest ranks) on the samples as
given: every benchmark's pyperf value uses `percentile`. A run does not keep its samples (their
number grows with the run): it counts them in a `LatencyHistogram`, fixed log buckets
(BUCKETS_PER_OCTAVE per doubling), and the report's p50/p99/p999 are that same linear method
over the buckets' midpoints, within RESOLUTION (relative) of the exact figure for every
sample between 1 ns and 2**MAX_OCTAVE ns.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

import numpy as np

from ..errors import ResultsError

T = TypeVar("T")

#: the report's latency keys and their percentiles
LATENCY_KEYS: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p99", 99.0), ("p999", 99.9))


def percentile(samples, q: float) -> float:
    """The `q`-th percentile (0..100) of `samples` (numpy's linear method)."""
    return float(np.percentile(samples, q))


def latency_percentiles(samples_ns) -> dict[str, float]:
    """{p50, p99, p999} of a sequence of latencies in ns (all 0.0 for no samples)."""
    arr = np.asarray(samples_ns, dtype=np.float64)
    if arr.size == 0:
        return {key: 0.0 for key, _ in LATENCY_KEYS}
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ResultsError("latency samples must be finite and >= 0")
    return {key: percentile(arr, q) for key, q in LATENCY_KEYS}


#: histogram buckets per doubling of the latency: bucket edges 2 ** (k / BUCKETS_PER_OCTAVE) ns
BUCKETS_PER_OCTAVE = 16
#: the last bucket starts at 2 ** MAX_OCTAVE ns (~18 minutes); longer samples are counted in it
MAX_OCTAVE = 40
#: worst relative error of a histogram percentile against numpy's linear one on the same
#: samples: half a bucket (in log space) either way, ~2.2 %
RESOLUTION = 2 ** (0.5 / BUCKETS_PER_OCTAVE) - 1


class LatencyHistogram:
    """Latency samples (ns) counted in fixed log buckets; bounded whatever the run's length.

    Bucket 0 holds samples below 1 ns (reported as 0); bucket k >= 1 holds
    [2 ** ((k - 1) / B), 2 ** (k / B)) ns and reports its geometric middle."""

    __slots__ = ("counts", "total")

    def __init__(self, counts=None):
        n = 1 + MAX_OCTAVE * BUCKETS_PER_OCTAVE
        self.counts: list[int] = [0] * n if counts is None else [int(c) for c in counts]
        if len(self.counts) != n or any(c < 0 for c in self.counts):
            raise ResultsError(f"a latency histogram has {n} non-negative bucket counts")
        self.total = sum(self.counts)

    def add(self, ns: float) -> None:
        if not ns >= 1:  # (NaN lands here too: a clock cannot give one)
            k = 0
        else:
            k = min(1 + int(math.log2(ns) * BUCKETS_PER_OCTAVE), len(self.counts) - 1)
        self.counts[k] += 1
        self.total += 1

    def __len__(self) -> int:
        return self.total

    @staticmethod
    def value(k: int) -> float:
        """What bucket k reports: 0 for bucket 0, else the geometric middle of its edges."""
        return 0.0 if k == 0 else 2 ** ((k - 0.5) / BUCKETS_PER_OCTAVE)

    def middles(self) -> np.ndarray:
        return np.array([self.value(k) for k in range(len(self.counts))])

    def percentile(self, q: float) -> float:
        """numpy's linear percentile over the samples, each taken as its bucket's value."""
        if not self.total:
            return 0.0
        rank = q / 100.0 * (self.total - 1)
        lo = math.floor(rank)
        hi = min(lo + 1, self.total - 1)
        a, b = self._at(lo), self._at(hi)
        return a + (b - a) * (rank - lo)

    def _at(self, i: int) -> float:
        """The value of the i-th smallest sample's bucket (0-based)."""
        seen = 0
        for k, c in enumerate(self.counts):
            seen += c
            if seen > i:
                return self.value(k)
        return self.value(len(self.counts) - 1)

    def percentiles(self) -> dict[str, float]:
        """{p50, p99, p999} (all 0.0 for no samples)."""
        return {key: self.percentile(q) for key, q in LATENCY_KEYS}


class Spool(Generic[T]):
    """A stream a run only appends to (state transitions, residual exposure, anomalies), held
    bounded: the newest `window` items in memory, `count` of all there were, and every item
    handed to `sink` as it comes (engine/report.py attaches one that writes it to the run
    directory; a core without one, like the engine process's or a replay's, keeps the window).

    Iterating, `len` and indexing see the window. A reader that follows the stream keeps a
    cursor (a `count` it has seen) and asks `since(cursor)`: positions count from the start
    of the run, so a cursor stays right when the oldest items leave the window. The sink is
    not pickled (a checkpoint holds the window and the count)."""

    __slots__ = ("count", "sink", "window")

    def __init__(self, window: int, items: Iterable[T] = ()):
        if window < 1:
            raise ResultsError(f"a spool's window must be >= 1, got {window}")
        self.window: deque[T] = deque(maxlen=window)
        self.count = 0
        self.sink: Callable[[T], None] | None = None
        for item in items:
            self.append(item)

    def append(self, item: T) -> None:
        self.count += 1
        self.window.append(item)
        if self.sink is not None:
            self.sink(item)

    @property
    def first(self) -> int:
        """The run position of the oldest item still in the window."""
        return self.count - len(self.window)

    def since(self, cursor: int) -> tuple[list[T], int, int]:
        """(the items from run position `cursor` on still held, how many after `cursor` left
        the window unseen, the new cursor). A cursor past `count` (a reader of a core that was
        replaced by a shorter one) starts over from the window."""
        if cursor > self.count:
            cursor = 0
        first = self.first
        start = max(cursor, first)
        return list(itertools.islice(self.window, start - first, None)), start - cursor, self.count

    def __iter__(self) -> Iterator[T]:
        return iter(self.window)

    def __len__(self) -> int:
        return len(self.window)

    def __getitem__(self, i: int) -> T:
        return self.window[i]

    def __getstate__(self):
        return (list(self.window), self.window.maxlen, self.count)

    def __setstate__(self, state) -> None:
        items, window, count = state
        self.window = deque(items, maxlen=window)
        self.count = count
        self.sink = None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Spool)
            and self.count == other.count
            and self.window.maxlen == other.window.maxlen
            and list(self.window) == list(other.window)
        )

    __hash__ = None  # type: ignore[assignment]
