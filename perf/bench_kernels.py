"""Decision kernels: book update cost per event and one full decision's latency, beside the
plain-Python references in the same run.

    BOOK_LEVEL batch ──▶ book.apply_batch_nb ──▶ top-20 book arrays          (BookUpdate)
    SIGNAL ──▶ freshness ─▶ gate ─▶ sizing (walk both books) ─▶ risk ─▶ 2 ORDER_NEW records
               (gate.decide_nb)                                                (Decision)

Benchmarks (pyperf values are seconds; `basis bench` tabulates them):

| benchmark | one value |
| --- | --- |
| `BookUpdate[numba,batch=4096]` | seconds per record: one compiled call applies 4096 BOOK_LEVEL SETs (10% deletes) to a 20-level book |
| `BookUpdate[reference,batch=256]` | the same stream through reference.RefBook |
| `Decision[numba-loop].p50` / `.p99` | percentile of one decision's latency over `loops` decisions run inside one compiled loop, each timed with CLOCK_MONOTONIC in compiled code (the two clock reads, ~40-60 ns, are included) |
| `Decision[numba-from-python].p50` / `.p99` | one decide_nb call per decision from a Python loop, timed with perf_counter_ns |
| `Decision[reference].p50` / `.p99` | reference.decide on plain lists, timed the same way |

Every decision in the run is the full accepted path (fresh, eligible, sized over ~8 levels per
book, orders written, budget and exposure booked); before a block counts, every decision is
checked to have been accepted with two orders of equal, positive quantity.

    .venv/bin/python perf/bench_kernels.py --fast -o kernels.json
"""

from __future__ import annotations

import time

import numpy as np
import pyperf
from numba import njit

from basis_core import schema
from basis_core.kernels import gate, reference
from basis_core.kernels.book import BookState, apply_batch_nb
from basis_core.kernels.two_venues import decision_state, signal, snapshot
from basis_core.results.stats import percentile
from basis_core.rings.atomics import monotonic_ns

DEPTH = 20
BATCH = 4096
REF_BATCH = 256
NOW = 10**12


def _market():
    book = BookState(2, 2, DEPTH)
    snapshot(
        book,
        1,
        1,
        [(99.9 - 0.1 * k, 1.0) for k in range(DEPTH)],
        [(round(100.0 + 0.1 * k, 1), 0.5) for k in range(DEPTH)],
        NOW - 1000,
    )
    snapshot(
        book,
        2,
        2,
        [(round(100.8 - 0.1 * k, 1), 0.5) for k in range(DEPTH)],
        [(100.9 + 0.1 * k, 1.0) for k in range(DEPTH)],
        NOW - 1000,
    )
    ds = decision_state(
        usdt=1e18,
        btc=1e12,
        fee_bps=5.0,
        slip_bps=40.0,
        venue_exposure=1e18,
        min_notional=5.0,
        budget=1e18,
        min_edge_bps=1.0,
        max_book_age_ns=10**9,
        max_order_notional=1e18,
        band_bps=60.0,
        exposure_limit=1e18,
    )
    return book, ds


def _level_stream(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    recs = schema.empty(schema.Kind.BOOK_LEVEL, n)
    side = rng.integers(0, 2, n)
    recs["venue"], recs["instrument"], recs["sub"], recs["ts_ns"] = 1, 1, side, NOW
    tick = rng.integers(0, 30, n)
    recs["price"] = np.where(side == 0, 99.9 - 0.1 * tick, 100.0 + 0.1 * tick).round(1)
    recs["qty"] = np.where(rng.random(n) < 0.1, 0.0, rng.integers(1, 500, n) / 100.0)
    return recs


def book_numba(loops: int) -> float:
    book, _ = _market()
    recs = _level_stream(BATCH, 1)
    levels, tops = schema.view(recs, schema.Kind.BOOK_LEVEL), schema.view(recs, schema.Kind.TOP_OF_BOOK)
    arrays = book.arrays()
    apply_batch_nb(levels[:1], tops[:1], *arrays)
    before = int(book.counters.sum())
    t0 = time.perf_counter()
    for _ in range(loops):
        apply_batch_nb(levels, tops, *arrays)
    dt = time.perf_counter() - t0
    if int(book.counters.sum()) - before != loops * BATCH or book.counters[1]:
        raise AssertionError(f"book counters {book.counters} after {loops} x {BATCH} records")
    return dt


def book_reference(loops: int) -> float:
    ref = reference.RefBook(2, 2, DEPTH)
    recs = _level_stream(REF_BATCH, 1)
    t0 = time.perf_counter()
    for _ in range(loops):
        ref.apply(recs)
    dt = time.perf_counter() - t0
    if sum(ref.counters) != loops * REF_BATCH:
        raise AssertionError(f"reference book counted {ref.counters}")
    return dt


@njit(cache=True)
def _timed_decisions(
    lat,
    px,
    qty,
    cnt,
    ts,
    status,
    venue_f,
    venue_h,
    inst_f,
    inst_i,
    balance,
    strat_f,
    policy,
    seqs,
    counters,
    work,
    out,
):
    bad = 0
    for k in range(lat.shape[0]):
        t0 = monotonic_ns()
        r = gate.decide_nb(
            1,
            1,
            2,
            2,
            0,
            NOW - 1000,
            1000,
            30.0,
            0.0,
            NOW,
            1,
            px,
            qty,
            cnt,
            ts,
            status,
            venue_f,
            venue_h,
            inst_f,
            inst_i,
            balance,
            strat_f,
            policy,
            seqs,
            counters,
            work,
            out,
            0,
        )
        lat[k] = monotonic_ns() - t0
        if r != 0 or out[0].qty <= 0.0 or out[0].qty != out[1].qty:
            bad += 1
    return bad


def _check(bad: int, what: str) -> None:
    if bad:
        raise AssertionError(f"{what}: {bad} decisions were not accepted with two equal orders")


def decision_numba_loop(loops: int, pct: float) -> float:
    book, ds = _market()
    out = schema.empty(schema.Kind.ORDER_NEW, 2)
    lat = np.zeros(loops, np.int64)
    _check(_timed_decisions(lat, *book.arrays()[:5], *ds.arrays(), out), "numba loop")
    return percentile(lat, pct) * 1e-9 * loops


def decision_from_python(loops: int, pct: float) -> float:
    book, ds = _market()
    out = schema.empty(schema.Kind.ORDER_NEW, 2)
    px, qty, cnt, ts, status = book.arrays()[:5]
    args = ds.arrays()
    lat = np.zeros(loops, np.int64)
    decide, clock = gate.decide_nb, time.perf_counter_ns
    bad = 0
    for k in range(loops):
        t0 = clock()
        r = decide(
            1, 1, 2, 2, 0, NOW - 1000, 1000, 30.0, 0.0, NOW, 1, px, qty, cnt, ts, status, *args, out, 0
        )
        lat[k] = clock() - t0
        bad += r != 0
    _check(bad + (out[0]["qty"] != out[1]["qty"]), "from python")
    return percentile(lat, pct) * 1e-9 * loops


def decision_reference(loops: int, pct: float) -> float:
    book, ds = _market()
    books, st = reference.books_as_lists(book), reference.state_as_lists(ds)
    sig = signal(NOW) | {"strategy": 0}
    lat = np.zeros(loops, np.int64)
    clock, decide = time.perf_counter_ns, reference.decide
    bad = 0
    for k in range(loops):
        t0 = clock()
        r, orders = decide(sig, books, st, NOW, 1)
        lat[k] = clock() - t0
        bad += r != 0 or len(orders) != 2
    _check(bad, "reference")
    return percentile(lat, pct) * 1e-9 * loops


def main() -> None:
    runner = pyperf.Runner(processes=4, values=3)
    runner.metadata["book_depth"] = str(DEPTH)
    runner.bench_time_func(f"BookUpdate[numba,batch={BATCH}]", book_numba, inner_loops=BATCH)
    runner.bench_time_func(f"BookUpdate[reference,batch={REF_BATCH}]", book_reference, inner_loops=REF_BATCH)
    for pct in (50, 99):
        runner.bench_time_func(f"Decision[numba-loop].p{pct}", decision_numba_loop, pct)
        runner.bench_time_func(f"Decision[numba-from-python].p{pct}", decision_from_python, pct)
        runner.bench_time_func(f"Decision[reference].p{pct}", decision_reference, pct)


if __name__ == "__main__":
    main()
