"""Every kernel against its plain-Python reference, driven from reference.COMPARISONS.

Inputs come from hypothesis and include NaN, inf, zero and negative prices, empty and one-sided
books, zero depth and lot-size edge cases. Integer results must agree exactly; float results to
the table's atol (0 = bit for bit)."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kernels_decision import decision_case

from basis_core import schema
from basis_core.kernels import reference
from basis_core.kernels.reference import COMPARISONS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NASTY = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, -0.0, 1e-300])


def mostly(good, bad=NASTY, n=6):
    """`good` about n times out of n + 1, else `bad`."""
    return st.one_of(*([good] * n), bad)


PRICE = mostly(st.floats(99.0, 101.0).map(lambda p: round(p, 1)))
QTY = mostly(st.floats(0.0, 5.0).map(lambda q: round(q, 3)), st.one_of(NASTY, st.just(0.0)))


@st.composite
def book_records(draw):
    n = draw(st.integers(1, 60))
    recs = schema.empty(schema.Kind.BOOK_LEVEL, n)
    tops = schema.view(recs, schema.Kind.TOP_OF_BOOK)
    for k in range(n):
        recs["venue"][k] = draw(st.sampled_from([1, 1, 1, 2, 2, 2, 0, 3]))
        recs["instrument"][k] = draw(st.sampled_from([1] * 8 + [0, 2]))
        recs["ts_ns"][k] = 1_000 + k
        what = draw(st.sampled_from(["set"] * 6 + ["begin", "end", "top", "other", "bad_side"]))
        if what == "top":
            recs["kind"][k] = schema.Kind.TOP_OF_BOOK
            tops["bid_px"][k], tops["bid_qty"][k] = draw(PRICE), draw(QTY)
            tops["ask_px"][k], tops["ask_qty"][k] = draw(PRICE), draw(QTY)
            tops["exch_age_us"][k] = draw(st.sampled_from([0, 5, 0xFFFFFFFF]))
        elif what == "other":
            recs["kind"][k] = schema.Kind.TRADE
        else:
            recs["sub"][k] = draw(st.integers(0, 1)) if what != "bad_side" else 2
            recs["action"][k] = {"set": 0, "begin": 1, "end": 2}.get(what, 0)
            recs["price"][k], recs["qty"][k] = draw(PRICE), draw(QTY)
    return {"n_venues": 2, "n_instruments": 1, "depth": 10, "records": recs}


LEVELS_ASK = mostly(
    st.lists(st.tuples(st.integers(1000, 1010), st.integers(1, 400)), min_size=2, max_size=12),
    st.lists(st.tuples(st.integers(1000, 1010), st.integers(0, 400)), max_size=2),
    n=5,
)


def _side(raw, side):
    """Sorted unique (price, qty) levels from integer ticks and lots: asks 100.0..101.0, bids
    100.4..101.4, so the two venues often cross and there is something to size."""
    seen = {}
    for p, q in raw:
        seen[p / 10.0 if side == 1 else (p + 4) / 10.0] = q / 100.0
    levels = sorted(seen.items(), reverse=(side == 0))
    return [(p, q) for p, q in levels if q > 0]


@st.composite
def sizing_cases(draw):
    asks = _side(draw(LEVELS_ASK), 1)
    bids = _side(draw(LEVELS_ASK), 0)
    corrupt = draw(
        st.sampled_from(
            [None] * 16
            + [
                "tick_b",
                "buy_bound",
                "sell_bound",
                "min_edge_bps",
                "base_avail",
                "quote_avail",
                "capital_free",
                "notional_cap",
            ]
        )
    )
    num = st.floats(0.0, 1e6)
    case = {
        "asks": asks,
        "bids": bids,
        "lot_b": draw(st.sampled_from([1_000_000, 10_000_000, 3_000_000, 0, 7])),
        "lot_s": draw(st.sampled_from([1_000_000, 10_000_000, 2_000_000, 999_999_937])),
        "tick_b": draw(st.sampled_from([0.1, 0.01, 0.5])),
        "tick_s": 0.1,
        "min_not_b": draw(st.sampled_from([0.0, 5.0, 100.0, 1e5])),
        "min_not_s": 5.0,
        "fee_b": draw(st.sampled_from([0.0, 5.0, 10.0])),
        "fee_s": 7.5,
        "slip_b": draw(st.sampled_from([0.0, 5.0, 20.0, 100.0, 100.0, 100.0])),
        "slip_s": draw(st.sampled_from([20.0, 100.0])),
        "buy_bound": draw(st.floats(99.0, 102.0)),
        "sell_bound": draw(st.floats(98.0, 101.0)),
        "min_edge_bps": draw(st.sampled_from([-50.0, 0.0, 1.0, 5.0])),
        "base_avail": draw(st.floats(0.0, 20.0)),
        "quote_avail": draw(num),
        "capital_free": draw(num),
        "notional_cap": draw(num),
    }
    if corrupt:
        case[corrupt] = draw(NASTY.filter(lambda x: corrupt != "min_edge_bps" or not math.isfinite(x)))
    return case


CASES = {
    "amm.amount_out": st.fixed_dictionaries(
        {
            "amount_in": st.integers(-5, 1 << 40),
            "reserve_in": st.integers(-5, 1 << 40),
            "reserve_out": st.integers(-5, 1 << 40),
            "fee_num": st.sampled_from([997, 0, 1000, 1001, 3]),
            "fee_den": st.sampled_from([1000, 0, 10_000]),
        }
    ),
    "amm.optimal_two_pool_input": st.fixed_dictionaries(
        {"reserves": st.tuples(*[st.integers(1000, 1 << 45)] * 4)}
    ),
    "book.apply": book_records(),
    "sizing.size_two_leg": sizing_cases(),
    "symmetry": st.fixed_dictionaries(
        {
            "pairs": st.lists(
                st.tuples(
                    st.one_of(st.floats(0, 10), NASTY),
                    st.one_of(st.floats(0, 10), NASTY),
                    st.one_of(st.floats(0, 10), NASTY),
                    st.one_of(st.floats(1, 1e5), NASTY),
                    st.integers(-1, 10**9),
                    st.integers(-1, 10**9),
                ),
                max_size=8,
            ),
            "now_ns": st.integers(0, 2 * 10**9),
            "policy": st.sampled_from([(0.01, 0.1, 10.0, 100.0), (0.0, 0.0, 0.0, 0.0), (0.5, 0.9, 1e3, 1e4)]),
        }
    ),
    "risk.ewma": st.fixed_dictionaries(
        {
            "observations": st.lists(
                st.tuples(st.integers(-1, 4), st.one_of(st.floats(90, 110), NASTY), st.integers(1, 10**10)),
                max_size=30,
            ),
            "n_instruments": st.just(3),
            "tau_s": st.sampled_from([1.0, 60.0]),
            "thresholds": st.just((5.0, 10.0, 20.0)),
        }
    ),
    "gate.decide": decision_case(),
}


def test_every_comparison_has_cases():
    assert set(CASES) == set(COMPARISONS)


def _same(a, b, atol):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (a, b)
        for k in a:
            _same(a[k], b[k], atol)
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            _same(x, y, atol)
    elif isinstance(a, float) or isinstance(b, float):
        assert a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol, (a, b)
    else:
        assert a == b, (a, b)


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_kernel_matches_reference(name):
    cmp = COMPARISONS[name]

    @SETTINGS
    @given(CASES[name])
    def check(case):
        _same(cmp.kernel(case), cmp.reference(case), cmp.atol)

    check()


@SETTINGS
@given(sizing_cases())
def test_sizing_bad_inputs_give_a_reason_never_a_size(case):
    reason, res = COMPARISONS["sizing.size_two_leg"].kernel(case)
    nasty = [
        case[k]
        for k in (
            "tick_b",
            "buy_bound",
            "sell_bound",
            "base_avail",
            "quote_avail",
            "capital_free",
            "notional_cap",
            "min_edge_bps",
        )
    ]
    if any(not math.isfinite(x) for x in nasty) or any(
        case[k] <= 0 for k in ("tick_b", "buy_bound", "sell_bound")
    ):
        assert reason == schema.RejectReason.BAD_INPUT and res is None
    if reason:
        assert res is None


def test_book_reference_sees_the_same_bad_record_as_the_kernel():
    recs = schema.empty(schema.Kind.BOOK_LEVEL, 2)
    recs["venue"], recs["instrument"], recs["price"], recs["qty"] = 1, 1, [100.0, math.nan], [1.0, 1.0]
    out_k = COMPARISONS["book.apply"].kernel(
        {"n_venues": 1, "n_instruments": 1, "depth": 10, "records": recs}
    )
    out_r = reference.RefBook(1, 1, 10)
    out_r.apply(recs)
    assert out_k["counters"][1] == out_r.counters[1] == 1
    assert np.uint8(out_k["status"][(1, 1)]) & 16
