"""The synthetic market-data workload of the hot-loop tests and the end-to-end benchmarks.

`quote_ticks(n, every_k)`: `n` TOP_OF_BOOK records alternating between two venues on one
instrument. Ordinary ticks quote both venues about one mid (half spread ~1 bp, a few ticks of
noise), so no spread check passes. Every `every_k` records there is one opportunity: record
`j` with `j % every_k == every_k - 2` quotes its venue's bid 25 bps above the other venue's ask
(the spread check passes and sizing succeeds under the default `HotParams`), and the next record
re-quotes the same venue normally, so exactly one decision (two orders) falls on each block of
`every_k` ticks. The mid follows a sine of period `n`, so the stream can be replayed in a loop
with no jump at the seam: replaying it gives the same decisions on every lap (the first record
of the first lap sees an empty book and decides nothing, as does every lap's first record).

Records carry seq = index + 1, ts_ns = 0 and exch_age_us unknown; a feed stamps seq and ts_ns
when it publishes.
"""

from __future__ import annotations

import numpy as np

from .. import schema

TICK = 0.01
ARB_BPS = 25.0


def opportunity_index(n: int, every_k: int) -> np.ndarray:
    """Indices of the records that carry an opportunity in `quote_ticks(n, every_k)`."""
    return np.arange(every_k - 2, n, every_k)


def quote_ticks(
    n: int,
    every_k: int = 100,
    venues: tuple[int, int] = (1, 2),
    instrument: int = 1,
    seed: int = 7,
    mid: float = 1000.0,
) -> np.ndarray:
    """`n` TOP_OF_BOOK records (see the module docstring); `every_k` >= 4."""
    if every_k < 4:
        raise ValueError(f"every_k must be >= 4, got {every_k}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    j = np.arange(n)
    va, vb = venues
    venue = np.where(j % 2 == 0, va, vb)
    restore = (j % every_k == every_k - 1) & (j > 0)
    venue[restore] = venue[np.maximum(j[restore] - 1, 0)]
    m = mid + 0.005 * mid * np.sin(2 * np.pi * j / n)
    noise = rng.integers(-3, 4, n) * TICK
    bid = np.round((m - 0.1 + noise) / TICK) * TICK
    ask = np.round((m + 0.1 + noise) / TICK) * TICK
    bid_q = np.round(rng.uniform(0.1, 2.0, n), 3)
    ask_q = np.round(rng.uniform(0.1, 2.0, n), 3)
    arb = opportunity_index(n, every_k)
    # the other venue's ask at an opportunity is the previous record's (it quotes the other venue)
    prev_ask = ask[np.maximum(arb - 1, 0)]
    bid[arb] = np.round(prev_ask * (1 + ARB_BPS * 1e-4) / TICK) * TICK
    ask[arb] = bid[arb] + 2 * TICK
    recs = schema.empty(schema.Kind.TOP_OF_BOOK, n)
    recs["seq"] = j + 1
    recs["venue"] = venue
    recs["instrument"] = instrument
    recs["bid_px"], recs["ask_px"] = bid, ask
    recs["bid_qty"], recs["ask_qty"] = bid_q, ask_q
    recs["exch_age_us"] = 0xFFFFFFFF
    return recs
