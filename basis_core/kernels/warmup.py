"""Compile (first run) or load from numba's on-disk cache (later runs) every decision kernel.

`basis` calls `warm_up()` at start so that no kernel compiles on the first live event. It runs
each kernel once on a tiny scenario with the same argument types the engine uses and returns
the seconds it took per kernel group; `python -m basis_core.kernels.warmup` prints them.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()
import numpy as np  # noqa: E402

from .. import schema  # noqa: E402
from . import amm, book, gate, risk, scan, symmetry, two_venues  # noqa: E402

#: seconds spent importing numba and the kernel modules (the pool kernels carry explicit
#: signatures, so they compile, or load from the cache, at import)
IMPORT_S = time.perf_counter() - _T0


def _book_and_state():
    """Two complete books, (1, 1) at 99.9 / 100.0 and (2, 2) at 100.5 / 100.9, and a top of book."""
    bs = book.BookState(2, 2, book.MIN_DEPTH)
    recs = schema.empty(schema.Kind.BOOK_LEVEL, 12)
    rows = [
        (1, 1, 1, 0, 0.0, 0.0),
        (1, 1, 1, 1, 0.0, 0.0),
        (1, 1, 0, 1, 100.0, 1.0),
        (1, 1, 0, 0, 99.9, 1.0),
        (1, 1, 2, 0, 0.0, 0.0),
        (2, 2, 1, 0, 0.0, 0.0),
        (2, 2, 1, 1, 0.0, 0.0),
        (2, 2, 0, 0, 100.5, 1.0),
        (2, 2, 0, 1, 100.9, 1.0),
        (2, 2, 2, 0, 0.0, 0.0),
    ]
    for k, (v, i, action, side, p, q) in enumerate(rows):
        recs[k]["venue"], recs[k]["instrument"], recs[k]["action"] = v, i, action
        recs[k]["sub"], recs[k]["price"], recs[k]["qty"], recs[k]["ts_ns"] = side, p, q, 1
    tops = schema.view(recs[10:], schema.Kind.TOP_OF_BOOK)
    tops["kind"] = schema.Kind.TOP_OF_BOOK
    tops["venue"], tops["instrument"] = 1, 2
    tops["bid_px"], tops["bid_qty"], tops["ask_px"], tops["ask_qty"] = 99.0, 1.0, 101.0, 1.0
    tops["exch_age_us"] = 0xFFFFFFFF
    bs.apply(recs)
    return bs, recs


def _scan(recs) -> None:
    """The engine's market step on the same records: books (1, 1) and (2, 2) are one pair."""
    bs = book.BookState(2, 2, book.MIN_DEPTH)
    st = scan.ScanState(
        [(1, 1, "BTC", True, 1.0), (2, 2, "BTC", True, 1.0)],
        [(0, 1), (1, 0)],
        3,
        min_edge_bps=0.0,
        vol_halflife_ms=1000.0,
        vol_thresholds=(15.0, 30.0, 60.0, 150.0),
        max_age_ns=10,
    )
    st.step(recs.view(schema.GENERIC), bs, 2, True)
    cand = st.take()
    if cand is None or cand[1:] != (0, 1):
        raise RuntimeError(f"warm-up market step found {cand} instead of buying book 1 and selling book 2")


def warm_up() -> dict[str, float]:
    """Run every kernel once; returns {group: seconds}. Raises if a kernel fails to compile."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    amm.amount_out(10**18, 10**21, 10**21)
    amm.amount_out_nb(1, 2, 3, 997, 1000)
    amm.optimal_two_pool_input_nb(10**6, 2 * 10**6, 2 * 10**6, 1_200_000, 997, 1000)
    times["amm"] = time.perf_counter() - t

    t = time.perf_counter()
    bs, recs = _book_and_state()
    bs.usable(1, 1, 2, 10)
    _scan(recs)
    ds = two_venues.decision_state(
        usdt=1e6,
        btc=10.0,
        fee_bps=1.0,
        slip_bps=50.0,
        venue_exposure=1e6,
        min_notional=1.0,
        budget=1e6,
        min_edge_bps=0.0,
        max_book_age_ns=10**18,
        max_order_notional=1e6,
        band_bps=50.0,
        exposure_limit=1e9,
    )
    times["book"] = time.perf_counter() - t

    t = time.perf_counter()
    sig = schema.empty(schema.Kind.SIGNAL, 1)
    sig["venue"], sig["instrument"], sig["sell_venue"], sig["sell_instrument"] = 1, 1, 2, 2
    sig["created_ns"], sig["ttl_us"], sig["edge_bps"] = 1, 10**6, 10.0
    out = schema.empty(schema.Kind.ORDER_NEW, 2)
    # mypy cannot match an argument after *args (numba's typed call)
    n = gate.decide_batch_nb(sig, 2, 1, *bs.arrays()[:5], *ds.arrays(), out)  # type: ignore[call-arg]
    gate.decide_nb(  # type: ignore[call-arg]
        1,
        1,
        2,
        2,
        0,
        1,
        10**6,
        10.0,
        0.0,
        2,
        1,
        *bs.arrays()[:5],
        ds.venue_f,
        ds.venue_h,
        ds.inst_f,
        ds.inst_i,
        ds.balance,
        ds.strat_f,
        ds.policy,
        ds.seqs,
        ds.counters,
        ds.work,
        out,
        0,
    )
    times["decision"] = time.perf_counter() - t
    if n != 2:
        raise RuntimeError(f"warm-up decision produced {n} orders instead of 2: {ds.reasons()}")

    t = time.perf_counter()
    z = np.zeros(1)
    zi = np.zeros(1, dtype=np.int64)
    symmetry.symmetry_nb(
        np.ones(1),
        z,
        z,
        np.ones(1),
        zi,
        zi,
        0,
        0.1,
        0.2,
        1.0,
        2.0,
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
    )
    vs = risk.VolState(2)
    vs.update(np.array([1, 1]), np.array([100.0, 100.1]), np.array([1, 10**9]))
    times["symmetry+risk"] = time.perf_counter() - t
    return times


if __name__ == "__main__":
    t0 = time.perf_counter()
    print(f"{'import':15s} {IMPORT_S * 1e3:9.1f} ms")
    for name, s in warm_up().items():
        print(f"{name:15s} {s * 1e3:9.1f} ms")
    print(f"{'total':15s} {(time.perf_counter() - t0 + IMPORT_S) * 1e3:9.1f} ms")
