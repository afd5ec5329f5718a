"""Percentiles of latency samples, computed one way for reports and benchmarks alike.

numpy's default method (linear interpolation between the two nearest ranks) on the samples as
given: the run report's p50/p99/p999 and every benchmark's pyperf value use `percentile`, so
figures from both sides are comparable.
"""

from __future__ import annotations

import numpy as np

from ..errors import ResultsError

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
