"""Top-N book state: snapshots, incremental levels, depth limit, and the unusable states
(awaiting snapshot, crossed, stale, bad input) with how each one heals."""

import math

import pytest

from basis_core import schema
from basis_core.kernels import book as B
from basis_core.kernels.book import BookState

T = 1_000_000


def levels(rows, v=1, i=1, ts=T):
    """rows: (action, side, price, qty)."""
    recs = schema.empty(schema.Kind.BOOK_LEVEL, len(rows))
    recs["venue"], recs["instrument"], recs["ts_ns"] = v, i, ts
    for k, (a, s, p, q) in enumerate(rows):
        recs["action"][k], recs["sub"][k], recs["price"][k], recs["qty"][k] = a, s, p, q
    return recs


def snap(bids, asks):
    return levels(
        [(1, 0, 0, 0), (1, 1, 0, 0)]
        + [(0, 0, p, q) for p, q in bids]
        + [(0, 1, p, q) for p, q in asks]
        + [(2, 0, 0, 0)]
    )


def fresh_book():
    b = BookState(1, 1, 10)
    b.apply(snap([(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.5), (102.0, 3.0)]))
    return b


def test_new_book_waits_for_a_snapshot():
    b = BookState(1, 1, 10)
    b.apply(levels([(0, 0, 99.0, 1.0), (0, 1, 101.0, 1.0)]))
    assert b.status[1, 1] & B.NEED_SNAPSHOT and not b.usable(1, 1, T, 10**9)
    b.apply(levels([(2, 0, 0, 0)]))
    assert b.usable(1, 1, T, 10**9)


def test_snapshot_then_incremental_updates_keep_levels_sorted():
    b = fresh_book()
    assert b.levels(1, 1, 0) == [(99.0, 1.0), (98.0, 2.0)]
    assert b.levels(1, 1, 1) == [(101.0, 1.5), (102.0, 3.0)]
    b.apply(
        levels(
            [
                (0, 0, 98.5, 4.0),
                (0, 1, 101.5, 0.5),
                (0, 0, 99.0, 0.25),
                (0, 1, 102.0, 0.0),
                (0, 1, 150.0, 0.0),
            ]
        )
    )
    assert b.levels(1, 1, 0) == [(99.0, 0.25), (98.5, 4.0), (98.0, 2.0)]
    assert b.levels(1, 1, 1) == [(101.0, 1.5), (101.5, 0.5)]
    assert b.usable(1, 1, T, 10**9)


def test_only_the_best_n_levels_are_kept():
    b = BookState(1, 1, 10)
    b.apply(snap([(100.0 - k, 1.0) for k in range(12)], [(200.0, 1.0)]))
    assert [p for p, _ in b.levels(1, 1, 0)] == [100.0 - k for k in range(10)]
    assert b.counters[B.EV_BEYOND_DEPTH] == 2
    b.apply(levels([(0, 0, 100.5, 2.0)]))  # a better level pushes the worst one out
    assert b.levels(1, 1, 0)[0] == (100.5, 2.0) and b.levels(1, 1, 0)[-1][0] == 92.0


def test_depth_below_ten_is_refused():
    with pytest.raises(ValueError):
        BookState(1, 1, 9)


def test_crossed_book_is_unusable_until_the_cross_resolves():
    b = fresh_book()
    b.apply(levels([(0, 0, 101.0, 1.0)]))  # bid at the ask
    assert b.status[1, 1] & B.CROSSED and not b.usable(1, 1, T, 10**9)
    b.apply(levels([(0, 1, 101.0, 0.0)]))  # the ask level goes: best ask 102 > best bid 101
    assert b.status[1, 1] == 0 and b.usable(1, 1, T, 10**9)


def test_crossed_book_heals_with_a_snapshot():
    b = fresh_book()
    b.apply(levels([(0, 1, 95.0, 1.0)]))
    assert not b.usable(1, 1, T, 10**9)
    b.apply(snap([(99.0, 1.0)], [(100.0, 1.0)]))
    assert b.usable(1, 1, T, 10**9)


def test_stale_book_is_unusable_until_a_fresh_update():
    b = fresh_book()
    assert not b.usable(1, 1, T + 2 * 10**9, 10**9)
    b.apply(levels([(0, 0, 97.0, 1.0)], ts=T + 2 * 10**9))
    assert b.usable(1, 1, T + 2 * 10**9, 10**9)


@pytest.mark.parametrize(
    "price,qty",
    [
        (math.nan, 1.0),
        (math.inf, 1.0),
        (-1.0, 1.0),
        (0.0, 1.0),
        (100.0, math.nan),
        (100.0, -1.0),
        (100.0, math.inf),
    ],
)
def test_bad_level_never_enters_the_book_and_marks_it_until_a_snapshot(price, qty):
    b = fresh_book()
    before = (b.levels(1, 1, 0), b.levels(1, 1, 1))
    b.apply(levels([(0, 0, price, qty)]))
    assert (b.levels(1, 1, 0), b.levels(1, 1, 1)) == before
    assert b.counters[B.EV_BAD] == 1 and b.status[1, 1] & B.BAD and not b.usable(1, 1, T, 10**9)
    b.apply(levels([(0, 0, 98.8, 1.0)]))  # good updates do not heal a bad input
    assert not b.usable(1, 1, T, 10**9)
    b.apply(snap([(99.0, 1.0)], [(100.0, 1.0)]))
    assert b.usable(1, 1, T, 10**9)


def test_unknown_ids_side_or_action_are_bad_input():
    b = fresh_book()
    recs = levels([(0, 0, 99.5, 1.0)] * 4)
    recs["venue"][0] = 7
    recs["instrument"][1] = 0
    recs["sub"][2] = 2
    recs["action"][3] = 9
    b.apply(recs)
    assert b.counters[B.EV_BAD] == 4 and b.levels(1, 1, 0)[0] == (99.0, 1.0)


def test_top_of_book_is_a_one_level_snapshot_and_other_kinds_are_ignored():
    b = fresh_book()
    recs = schema.empty(schema.Kind.TOP_OF_BOOK, 3)
    recs["venue"], recs["instrument"], recs["ts_ns"] = 1, 1, T
    recs["bid_px"], recs["bid_qty"], recs["ask_px"], recs["ask_qty"] = 99.5, 2.0, 99.7, 1.0
    recs["exch_age_us"] = [0xFFFFFFFF, 10, 0]
    recs["kind"][2] = schema.Kind.TRADE
    b.apply(recs)
    assert b.levels(1, 1, 0) == [(99.5, 2.0)] and b.levels(1, 1, 1) == [(99.7, 1.0)]
    assert b.ts[1, 1] == T - 10_000  # the venue's age is taken off the ingest time
    assert b.counters[B.EV_IGNORED] == 1 and b.usable(1, 1, T, 10**9)


def test_top_of_book_with_nan_is_bad_and_one_sided_top_is_not_usable():
    b = fresh_book()
    recs = schema.empty(schema.Kind.TOP_OF_BOOK, 1)
    recs["venue"], recs["instrument"], recs["ts_ns"] = 1, 1, T
    recs["bid_px"], recs["bid_qty"], recs["ask_px"], recs["ask_qty"] = math.nan, 1.0, 99.7, 1.0
    b.apply(recs)
    assert b.status[1, 1] & B.BAD and b.levels(1, 1, 0) == [(99.0, 1.0), (98.0, 2.0)]
    recs["bid_px"], recs["bid_qty"] = 0.0, 0.0  # an empty bid side
    b.apply(recs)
    assert b.status[1, 1] == 0 and b.levels(1, 1, 0) == [] and not b.usable(1, 1, T, 10**9)
