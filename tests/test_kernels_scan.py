"""The engine's compiled market step (kernels/scan.py) against its plain-Python reference.

Hypothesis drives both through sequences of batches: book levels, snapshots and tops of book on
the rules' books and on books no rule trades, refused records (NaN/inf/zero/negative prices,
negative quantities, bad sides, unknown ids), trades, funding and rare records mixed in, time
moving by 0..1.2 s (books go stale at 0.5 s, the volatility EWMA sees dt = 0 too), candidates
taken or left to accumulate. After every batch the two must agree exactly: the rare record
indices, the candidate (edge bit for bit, pair, tie order), the changed instruments, every
base's mark, variance and level, the market clock and the books."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basis_core import schema
from basis_core.kernels import book, scan
from basis_core.kernels.reference import RefMarket

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: (venue, instrument, base, spot, fee): BTC on three venues (one perp), ETH on two
RULES = [
    (1, 1, "BTC", True, 10.0),
    (2, 2, "BTC", True, 7.5),
    (3, 3, "BTC", False, 5.0),
    (1, 4, "ETH", True, 10.0),
    (3, 5, "ETH", False, 5.0),
]
PAIRS = [
    (b, s)
    for base in ("BTC", "ETH")
    for b, r in enumerate(RULES)
    for s, q in enumerate(RULES)
    if b != s and r[2] == base and q[2] == base
]
N_VENUES, N_INSTRUMENTS, DEPTH = 3, 6, 10  # instrument 6 has a book but no rule
MAX_AGE = 500_000_000
THRESHOLDS = (15.0, 30.0, 60.0, 150.0)

NASTY = [math.nan, math.inf, -math.inf, 0.0, -1.0]
# coarse grids (0.5 wide) around 100, bids mostly below asks: edges of equal size on different
# pairs (ties) are common, and a book crosses now and then; about one value in 15 is nasty
_BIDS = [k / 2.0 for k in range(196, 202)]
_ASKS = [k / 2.0 for k in range(199, 205)]
BID = st.sampled_from(_BIDS * 12 + NASTY)
ASK = st.sampled_from(_ASKS * 12 + NASTY)
PRICE = st.one_of(BID, ASK)
QTY = st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.0] * 14 + NASTY)
SNAP_QTY = st.sampled_from([0.5, 1.0, 2.0] * 30 + NASTY + [0.0])
#: the rules' books mostly; now and then a book no rule trades, or ids out of range
BOOK = st.sampled_from(
    [(1, 1), (2, 2), (3, 3), (1, 4), (3, 5)] * 8 + [(2, 1), (1, 6), (0, 1), (4, 2), (1, 0), (1, 9)]
)
RARE = [schema.Kind.ORDER_EVENT, schema.Kind.TIMER, schema.Kind.VENUE_STATUS, schema.Kind.CONTROL]


@st.composite
def batch(draw, ts_ns):
    """Up to 8 events: a whole one-level snapshot (6 records), a snapshot edge or a level on
    its own, a top of book, a trade, funding or a rare record."""
    rows = []  # (kind, venue, instrument, sub, action, price, qty)
    for _ in range(draw(st.integers(0, 8))):
        v, i = draw(BOOK)
        what = draw(
            st.sampled_from(
                ["snapshot"] * 6
                + ["set"] * 4
                + ["edge", "top", "top", "trade", "funding", "rare", "bad_side"]
            )
        )
        if what == "snapshot":
            bid = draw(BID)
            ask = bid + draw(st.sampled_from([0.5, 1.0])) if draw(st.booleans()) else draw(ASK)
            rows += [
                (schema.Kind.BOOK_LEVEL, v, i, 0, 1, 0.0, 0.0),
                (schema.Kind.BOOK_LEVEL, v, i, 1, 1, 0.0, 0.0),
                (schema.Kind.BOOK_LEVEL, v, i, 0, 0, bid, draw(SNAP_QTY)),
                (schema.Kind.BOOK_LEVEL, v, i, 1, 0, ask, draw(SNAP_QTY)),
                (schema.Kind.BOOK_LEVEL, v, i, 0, 2, 0.0, 0.0),
                (schema.Kind.BOOK_LEVEL, v, i, 1, 2, 0.0, 0.0),
            ]
        elif what == "edge":
            rows.append(
                (schema.Kind.BOOK_LEVEL, v, i, draw(st.integers(0, 1)), draw(st.integers(1, 2)), 0.0, 0.0)
            )
        elif what in ("set", "bad_side"):
            side = draw(st.integers(0, 1))
            rows.append(
                (
                    schema.Kind.BOOK_LEVEL,
                    v,
                    i,
                    side if what == "set" else 3,
                    0,
                    draw(BID if side == 0 else ASK),
                    draw(QTY),
                )
            )
        elif what == "top":
            bid = draw(BID)
            rows.append(
                (
                    schema.Kind.TOP_OF_BOOK,
                    v,
                    i,
                    draw(st.sampled_from([0, 300_000, 0xFFFFFFFF])),
                    0,
                    bid,
                    draw(QTY),
                    bid + 0.5 if draw(st.booleans()) else draw(ASK),
                    draw(QTY),
                )
            )
        else:
            kind = {"trade": schema.Kind.TRADE, "funding": schema.Kind.FUNDING}.get(what) or draw(
                st.sampled_from(RARE)
            )
            rows.append((kind, v, i, 0, 0, 0.0, 0.0))
    recs = schema.empty(schema.Kind.BOOK_LEVEL, len(rows))
    tops = schema.view(recs, schema.Kind.TOP_OF_BOOK)
    for k, row in enumerate(rows):
        kind, v, i = row[:3]
        recs["kind"][k], recs["venue"][k], recs["instrument"][k], recs["ts_ns"][k] = kind, v, i, ts_ns
        if kind == schema.Kind.TOP_OF_BOOK:
            tops["exch_age_us"][k] = row[3]
            tops["bid_px"][k], tops["bid_qty"][k], tops["ask_px"][k], tops["ask_qty"][k] = row[5:]
        elif kind == schema.Kind.BOOK_LEVEL:
            recs["sub"][k], recs["action"][k], recs["price"][k], recs["qty"][k] = row[3:]
    return recs.view(schema.GENERIC)


@st.composite
def sessions(draw):
    steps, now = [], 1_000_000_000
    for _ in range(draw(st.integers(1, 25))):
        now += draw(st.sampled_from([0] + [1_000_000] * 4 + [50_000_000] * 3 + [250_000_000, 700_000_000]))
        steps.append((draw(batch(now)), now, draw(st.booleans()), draw(st.booleans())))
    min_edge = draw(st.sampled_from([-400.0, -30.0, 0.0, 5.0]))
    return min_edge, draw(st.sampled_from([0, 1_000_000_000])), steps


def _pair(min_edge, start_ns):
    """The kernel's scan state and books (`_state`) beside the reference market set up alike."""
    kernel, books = _state(min_edge, start_ns)
    ref = RefMarket(
        N_VENUES, N_INSTRUMENTS, DEPTH, RULES, PAIRS, min_edge, 2000.0, THRESHOLDS, MAX_AGE, start_ns
    )
    return kernel, books, ref


def _same_state(kernel, books, ref):
    assert kernel.changed() == {i for i in ref.changed if i <= N_INSTRUMENTS}
    assert int(kernel.ctl[scan.C_NOW]) == ref.now and int(kernel.ctl[scan.C_START]) == ref.start_ns
    for base, b in kernel.base_index.items():
        has = bool(kernel.istate[b, scan.S_HAS_MARK])
        assert has == (base in ref.marks)
        if has:
            assert kernel.fstate[b, scan.F_MARK] == ref.marks[base]
        assert kernel.fstate[b, scan.F_VAR] == ref.var.get(base, 0.0)
        assert kernel.istate[b, scan.S_LEVEL] == ref.level.get(base, 0)
    assert kernel.ctl[scan.C_LEVEL_MAX] == max(ref.level.values(), default=0)
    for (v, i), sides in ref.book.sides.items():
        for s in (0, 1):
            assert books.levels(v, i, s) == sides[s]
    assert [int(c) for c in books.counters] == ref.book.counters


@SETTINGS
@given(sessions())
def test_market_step_matches_reference(session):
    min_edge, start_ns, steps = session
    kernel, books, ref = _pair(min_edge, start_ns)
    for recs, now, scan_pairs, take in steps:
        rare = kernel.step(recs, books, now, scan_pairs)
        assert rare.tolist() == ref.step(recs, now, scan_pairs)
        assert kernel.candidate() == ref.candidate
        _same_state(kernel, books, ref)
        if take:
            assert kernel.take() == ref.take()
            assert kernel.changed() == set()


def _snapshot(recs, k, v, i, bid, ask, ts_ns):
    """Four records from k: a one-level snapshot of book (v, i)."""
    for j, (side, action, p) in enumerate([(0, 1, 0.0), (1, 1, 0.0), (0, 0, bid), (1, 0, ask)]):
        recs["venue"][k + j], recs["instrument"][k + j], recs["ts_ns"][k + j] = v, i, ts_ns
        recs["sub"][k + j], recs["action"][k + j], recs["price"][k + j], recs["qty"][k + j] = (
            side,
            action,
            p,
            1.0,
        )
    for j, side in enumerate((0, 1)):
        recs["venue"][k + 4 + j], recs["instrument"][k + 4 + j], recs["ts_ns"][k + 4 + j] = v, i, ts_ns
        recs["sub"][k + 4 + j], recs["action"][k + 4 + j] = side, 2


def _books(prices, ts_ns=10):
    """Complete books for rules 0..2 of RULES at (bid, ask) each."""
    recs = schema.empty(schema.Kind.BOOK_LEVEL, 6 * len(prices))
    for k, ((v, i, *_), (bid, ask)) in enumerate(zip(RULES, prices)):
        _snapshot(recs, 6 * k, v, i, bid, ask, ts_ns)
    return recs.view(schema.GENERIC)


def _state(min_edge=0.0, start_ns=0):
    return (
        scan.ScanState(
            RULES,
            PAIRS,
            N_INSTRUMENTS + 1,
            min_edge_bps=min_edge,
            vol_halflife_ms=2000.0,
            vol_thresholds=THRESHOLDS,
            max_age_ns=MAX_AGE,
            start_ns=start_ns,
        ),
        book.BookState(N_VENUES, N_INSTRUMENTS, DEPTH),
    )


def test_best_pair_is_the_widest_edge_net_of_both_taker_fees():
    kernel, books = _state()
    # buy venue 1 at 100.0, sell venue 2 at 100.5: 50 bps - 10 - 7.5; the perp is not crossed
    kernel.step(_books([(99.9, 100.0), (100.5, 100.6), (100.0, 100.1)]), books, 20, True)
    edge, kb, ks = kernel.take()
    assert (kb, ks) == (0, 1)
    assert edge == (100.5 - 100.0) / 100.0 * 1e4 - 10.0 - 7.5
    # nothing changed since the take: no candidate, even though the books still cross
    kernel.step(schema.aligned_empty(0), books, 30, True)
    assert kernel.candidate() is None


def test_a_nan_price_never_enters_the_book_nor_the_candidate():
    kernel, books = _state()
    kernel.step(_books([(99.9, 100.0), (99.9, 100.0)]), books, 20, True)
    bad = schema.empty(schema.Kind.BOOK_LEVEL, 2)
    bad["venue"], bad["instrument"], bad["ts_ns"], bad["sub"] = 2, 2, 30, 0
    bad["price"], bad["qty"] = [math.nan, -101.0], [1.0, 1.0]
    kernel.step(bad.view(schema.GENERIC), books, 30, True)
    assert books.counters[book.EV_BAD] == 2 and books.status[2, 2] & book.BAD
    assert books.levels(2, 2, 0) == [(99.9, 1.0)]
    assert kernel.candidate() is None  # the bad book is unusable: no pair with it
    assert kernel.changed() == {1, 2}  # refused records still mark their instrument


def test_marks_are_the_median_spot_mid_and_a_spike_raises_the_volatility_level():
    kernel, books = _state()
    kernel.step(_books([(99.0, 101.0), (101.0, 103.0), (200.0, 202.0)]), books, 10, False)
    b = kernel.base_index["BTC"]
    assert kernel.fstate[b, scan.F_MARK] == (100.0 + 102.0) / 2.0  # the perp is left out
    assert kernel.istate[b, scan.S_LEVEL] == 0
    kernel.step(_books([(109.0, 111.0), (111.0, 113.0)], ts_ns=110_000_000), books, 110_000_000, False)
    assert kernel.fstate[b, scan.F_MARK] == 111.0
    assert kernel.istate[b, scan.S_LEVEL] == 4 and kernel.fstate[b, scan.F_VAR] > THRESHOLDS[3] ** 2


def test_stale_books_give_no_mark_and_no_candidate():
    kernel, books = _state()
    kernel.step(_books([(99.9, 100.0), (100.5, 100.6)]), books, 10, True)
    assert kernel.candidate() is not None
    late = schema.empty(schema.Kind.TRADE, 1)
    late["instrument"], late["ts_ns"] = 1, 10 + MAX_AGE + 1
    kernel.step(late.view(schema.GENERIC), books, 10 + MAX_AGE + 1, True)
    assert kernel.candidate() is None and int(kernel.ctl[scan.C_NOW]) == 10 + MAX_AGE + 1


def test_rare_records_come_back_in_order_and_leave_the_books_alone():
    kernel, books = _state()
    recs = schema.empty(schema.Kind.ORDER_EVENT, 6).view(schema.GENERIC)
    recs["kind"][1] = schema.Kind.TRADE
    recs["kind"][3] = schema.Kind.CONTROL
    recs["kind"][5] = schema.Kind.TIMER  # a TIMER only moves the time
    assert kernel.step(recs, books, 5, True).tolist() == [0, 2, 3, 4]
    assert books.counters.tolist() == [0, 0, 0, 1]
    assert int(kernel.ctl[scan.C_NOW]) == 5  # a trade is market data: the clock moves
    big = schema.empty(schema.Kind.VENUE_STATUS, 1000).view(schema.GENERIC)
    assert len(kernel.step(big, books, 6, True)) == 1000
    assert int(kernel.ctl[scan.C_NOW]) == 5  # no market data: the market clock stays
    assert int(kernel.ctl[scan.C_STEP_NOW]) == 6  # the batch's time: the engine clock before it


def test_the_batch_time_is_the_latest_record_or_the_clock_before():
    kernel, books = _state()
    recs = schema.empty(schema.Kind.TIMER, 3).view(schema.GENERIC)
    recs["ts_ns"] = [7, 30, 12]
    kernel.step(recs, books, 20, False)
    assert int(kernel.ctl[scan.C_STEP_NOW]) == 30
    kernel.step(recs, books, 40, False)
    assert int(kernel.ctl[scan.C_STEP_NOW]) == 40
    assert np.all(books.cnt == 0)
