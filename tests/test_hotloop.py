"""The compiled hot loop (basis_core.hotloop): known md sequences give the expected orders, and
on generated streams the loop, run through real shared-memory rings, publishes exactly the
orders of the plain-Python engine."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from basis_core import schema
from basis_core.errors import ConfigError, RingError
from basis_core.hotloop import HotLoop, HotParams, PyEngine, orders_tuples, quote_ticks
from basis_core.hotloop.workload import opportunity_index
from basis_core.rings import CONSUMER, PRODUCER, Ring, leftovers

_names = itertools.count()
IOC_ENTRY = int(schema.OrderType.IOC) | int(schema.Purpose.ENTRY) << 8
IOC_HEDGE = int(schema.OrderType.IOC) | int(schema.Purpose.HEDGE) << 8


def run_rings(params, records, md_cap=64, od_cap=64, batch=32, drain_every=1):
    """Push `records` through an md ring into a HotLoop and collect its orders from the order
    ring; the order consumer reads only every `drain_every` steps (a slow consumer)."""
    tag = f"t-hot-{os.getpid()}-{next(_names)}"
    md = Ring.create(tag + "-md", md_cap, PRODUCER)
    mdc = Ring.attach(tag + "-md", CONSUMER)
    od = Ring.create(tag + "-od", od_cap, PRODUCER)
    odc = Ring.attach(tag + "-od", CONSUMER)
    loop = HotLoop(params, mdc, od)
    got, buf, sent, steps = [], np.zeros((od_cap, 8), np.uint64), 0, 0
    try:
        while True:
            if sent < len(records):
                sent += md.push_batch(records[sent : sent + md_cap])
            k = loop.step(batch)
            steps += 1
            n = odc.pop_batch(buf) if steps % drain_every == 0 else 0
            got += orders_tuples(buf[:n])
            idle = k == 0 and n == 0 and steps % drain_every == 0
            if sent == len(records) and idle and mdc.published == mdc.consumed:
                break
        return got, loop
    finally:
        loop.release()
        for r in (mdc, md, odc, od):
            r.close()


def tob(venue, bid, bid_q, ask, ask_q, instrument=1, ts=0):
    r = schema.empty(schema.Kind.TOP_OF_BOOK, 1)
    r["venue"], r["instrument"], r["ts_ns"] = venue, instrument, ts
    r["bid_px"], r["bid_qty"], r["ask_px"], r["ask_qty"] = bid, bid_q, ask, ask_q
    r["exch_age_us"] = 0xFFFFFFFF
    return r


def level(venue, side, action, price=0.0, qty=0.0, instrument=1, ts=0):
    r = schema.empty(schema.Kind.BOOK_LEVEL, 1)
    r["venue"], r["instrument"], r["ts_ns"], r["sub"] = venue, instrument, ts, side
    r["action"], r["price"], r["qty"] = action, price, qty
    return r


def cat(*recs):
    return np.concatenate([r.view(schema.GENERIC) for r in recs])


def test_known_sequence_gives_the_expected_orders():
    p = HotParams()
    B, E, SET = schema.BookAction.SNAPSHOT_BEGIN, schema.BookAction.SNAPSHOT_END, schema.BookAction.SET
    recs = cat(
        # venue 1 built level by level: bid 100.00 x 2, asks 100.02 x 1.0 and 100.05 x 3
        level(1, 0, B),
        level(1, 0, SET, 100.00, 2.0),
        level(1, 1, B),
        level(1, 1, SET, 100.02, 1.0),
        level(1, 1, SET, 100.05, 3.0),
        level(1, 0, E),
        level(1, 1, E),
        tob(2, 100.01, 1.0, 100.03, 1.0, ts=5),  # no spread: nothing
        tob(2, 100.50, 0.5, 100.52, 1.0, ts=7),  # bid 2 over ask 1 by ~48 bps: buy 1, sell 2
        tob(2, 100.01, 1.0, 100.03, 1.0, ts=9),  # gone
    )
    got, loop = run_rings(p, recs)
    buy_limit = math.floor(100.02 * (1 + 10e-4) / 0.01) * 0.01  # 100.12: floor_to_tick
    assert len(got) == 2
    b, s = got
    assert b[:8] == (1, 7, 1, 1, int(schema.Side.BUY), 1, IOC_ENTRY, schema.make_coid(1, 0))
    assert b[8] == pytest.approx(buy_limit) and b[9] == 0.5 and b[10] == 0
    assert s[:8] == (2, 7, 1, 2, int(schema.Side.SELL), 1, IOC_HEDGE, schema.make_coid(1, 1))
    assert s[8] == pytest.approx(100.40) and s[9] == 0.5 and s[10] == schema.make_coid(1, 0)
    assert s[11] == pytest.approx(20.0)
    st_ = loop.stats()
    assert st_["md"] == len(recs) and st_["decisions"] == 1 and st_["orders"] == 2 and st_["next_opp"] == 2
    assert got == PyEngine(p).on_batch(recs)


def test_rejected_and_bad_records_send_nothing():
    p = HotParams(base_avail=0.0)  # no inventory: sizing says NO_INVENTORY
    recs = cat(tob(1, 100.0, 1.0, 100.02, 1.0), tob(2, 100.5, 1.0, 100.52, 1.0))
    got, loop = run_rings(p, recs)
    assert got == [] and loop.stats()["rejects"] == {"NO_INVENTORY": 1} and loop.stats()["decisions"] == 1
    with pytest.raises(RingError, match="released"):  # run_rings released it before closing the rings
        loop.step()
    # a NaN price marks the book BAD: the spread is never checked against it
    recs = cat(
        tob(1, 100.0, 1.0, 100.02, 1.0),
        tob(2, float("nan"), 1.0, 100.52, 1.0),
        tob(1, 100.0, 1.0, 100.02, 1.0),
    )
    got, loop = run_rings(HotParams(), recs)
    assert got == [] and loop.stats()["decisions"] == 0 and loop.book.counters[1] == 1
    # a stale book (older than max_age_ns at the new record's time) is not used
    recs = cat(tob(1, 100.0, 1.0, 100.02, 1.0, ts=0), tob(2, 100.5, 1.0, 100.52, 1.0, ts=2_000_000_000))
    got, _ = run_rings(HotParams(max_age_ns=1_000_000_000), recs)
    assert got == []


def test_workload_gives_one_opportunity_every_k_and_a_slow_consumer_loses_nothing():
    p = HotParams()
    recs = quote_ticks(2000, every_k=50)
    ref = PyEngine(p).on_batch(recs)
    assert len(ref) == 2 * len(opportunity_index(2000, 50))
    # an order ring of 2 slots read every 3rd step: the loop blocks, resumes, drops nothing
    got, loop = run_rings(p, recs, md_cap=128, od_cap=2, batch=64, drain_every=3)
    assert got == ref
    assert loop.stats()["md"] == 2000 and len(loop.latencies_ns()) == len(ref) // 2


def test_params_are_validated():
    with pytest.raises(ConfigError, match="venue_b"):
        HotParams(venue_a=1, venue_b=1)
    with pytest.raises(ConfigError, match="tick"):
        HotParams(tick=(0.01, float("nan")))
    with pytest.raises(ConfigError, match="lot"):
        HotParams(lot=(0.001, 1e-12))
    with pytest.raises(ConfigError, match="base_avail"):
        HotParams(base_avail=-1.0)


def test_loop_needs_the_right_ring_ends():
    tag = f"t-hot-{os.getpid()}-{next(_names)}"
    md = Ring.create(tag + "-md", 8, PRODUCER)
    od = Ring.create(tag + "-od", 8, PRODUCER)
    try:
        with pytest.raises(RingError, match="consumer end"):
            HotLoop(HotParams(), md, od)
    finally:
        md.close()
        od.close()


_cents = st.integers(9950, 10050)
_gap = st.sampled_from([-5, 1, 2, 5, 10, 40])  # ask - bid in cents (negative: crossed)
_qty = st.sampled_from([0.0, 0.001, 0.25, 1.0, 1.0, 1.7])
_venue = st.sampled_from([1, 1, 2, 2, 3])
_inst = st.sampled_from([1, 1, 1, 2])
_tob = st.tuples(st.just("tob"), _venue, _inst, _cents, _qty, _gap, _qty)
_lvl = st.tuples(
    st.just("lvl"), _venue, _inst, st.integers(0, 1), st.sampled_from([0, 0, 0, 1, 2]), _cents, _qty
)
_badp = st.tuples(
    st.just("bad"),
    st.integers(1, 2),
    st.just(1),
    st.sampled_from([float("nan"), -1.0, 0.0]),
    st.just(1.0),
    st.just(0),
    st.just(1.0),
)


def _build(events):
    out = []
    for t, e in enumerate(events):
        if e[0] == "tob":
            _, v, i, bc, bq, gap, aq = e
            out.append(tob(v, bc / 100, bq, (bc + gap) / 100, aq, instrument=i, ts=t * 1000))
        elif e[0] == "bad":
            _, v, i, bp, bq, _, aq = e
            out.append(tob(v, bp, bq, 100.0, aq, instrument=i, ts=t * 1000))
        else:
            _, v, i, side, action, pc, qty = e
            out.append(level(v, side, action, pc / 100, qty, instrument=i, ts=t * 1000))
    return cat(*out)


def test_compiled_loop_agrees_with_plain_python_on_a_long_mixed_stream():
    """A seeded stream of 3000 records (quotes, level updates, snapshots, bad prices) with the
    trigger low enough that many decisions, fills and rejects happen."""
    rng = np.random.default_rng(11)
    events = []
    for _ in range(3000):
        u = rng.random()
        v, i = int(rng.integers(1, 4)), int(rng.choice([1, 1, 1, 2]))
        if u < 0.6:
            events.append(
                (
                    "tob",
                    v,
                    i,
                    int(rng.integers(9950, 10050)),
                    float(rng.choice([0.0, 0.3, 1.0, 2.5])),
                    int(rng.choice([1, 2, 5, 20, -3])),
                    float(rng.choice([0.3, 1.0, 2.5])),
                )
            )
        elif u < 0.97:
            events.append(
                (
                    "lvl",
                    v,
                    i,
                    int(rng.integers(0, 2)),
                    int(rng.choice([0, 0, 0, 0, 1, 2])),
                    int(rng.integers(9950, 10050)),
                    float(rng.choice([0.0, 0.5, 1.5])),
                )
            )
        else:
            events.append(("bad", v, 1, float("nan"), 1.0, 0, 1.0))
    p = HotParams(
        trigger_bps=-20.0, min_edge_bps=-10.0, base_avail=1.2, max_age_ns=50_000, min_notional=(60.0, 60.0)
    )
    recs = _build(events)
    ref_engine = PyEngine(p)
    ref = ref_engine.on_batch(recs)
    got, loop = run_rings(p, recs, md_cap=64, od_cap=8, batch=16, drain_every=2)
    assert len(ref) >= 50 and len(ref_engine.rejects) >= 2  # the stream exercises both outcomes
    assert got == ref
    assert loop.stats()["decisions"] == ref_engine.decisions


_seed_pair = st.tuples(
    st.tuples(st.just("tob"), st.just(1), st.just(1), _cents, st.just(1.0), _gap, st.just(1.0)),
    st.tuples(st.just("tob"), st.just(2), st.just(1), _cents, st.just(1.0), _gap, st.just(1.0)),
)


@settings(max_examples=60, deadline=None)
@given(
    seed=_seed_pair.map(list),
    events=st.lists(st.one_of(*[_tob] * 6, _lvl, _lvl, _badp), min_size=0, max_size=120),
    trigger=st.sampled_from([-50.0, 0.0, 5.0]),
    base=st.sampled_from([0.0, 0.5, 10.0]),
    max_age=st.sampled_from([5_000, 10**12]),
)
def test_compiled_loop_agrees_with_plain_python(seed, events, trigger, base, max_age):
    p = HotParams(trigger_bps=trigger, base_avail=base, max_age_ns=max_age, min_edge_bps=-100.0)
    recs = _build(seed + events)
    ref_engine = PyEngine(p)
    ref = ref_engine.on_batch(recs)
    got, loop = run_rings(p, recs, md_cap=16, od_cap=4, batch=8, drain_every=2)
    target(float(len(ref)))
    assert got == ref
    s = loop.stats()
    assert s["decisions"] == ref_engine.decisions and s["orders"] == ref_engine.n_orders
    assert {schema.RejectReason[k]: v for k, v in s["rejects"].items()} == ref_engine.rejects


def test_no_segments_left_behind():
    assert not [n for n in leftovers() if n.startswith("basis-t-hot-")]
