"""One decision: every gate reason, orders that respect every bound, and parity with the reference."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from basis_core import schema
from basis_core.kernels import gate as G
from basis_core.kernels import reference, sizing, two_venues
from basis_core.kernels.book import BookState
from basis_core.kernels.two_venues import snapshot
from basis_core.schema import RejectReason as R

NOW = 10_000_000_000
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def market(
    asks=((100.0, 0.5), (100.1, 1.0), (100.2, 3.0)),
    bids=((100.6, 0.7), (100.5, 2.0), (100.4, 3.0)),
    lot_b=0.001,
    lot_s=0.01,
):
    """Venue 1 sells BTC cheap (instrument 1), venue 2 buys it dear (instrument 2); assets 1 BTC, 2 USDT."""
    book = BookState(2, 2, 10)
    snapshot(book, 1, 1, [(99.9, 1.0)], asks, NOW - 1_000)
    snapshot(book, 2, 2, bids, [(100.9, 1.0)], NOW - 1_000)
    ds = two_venues.decision_state(
        usdt=1e6,
        btc=10.0,
        fee_bps=5.0,
        slip_bps=30.0,
        venue_exposure=1e6,
        min_notional=5.0,
        budget=1e5,
        lots=(lot_b, lot_s),
        strategies=2,
        min_edge_bps=1.0,
        max_book_age_ns=10**9,
        max_order_notional=5e4,
        band_bps=50.0,
        exposure_limit=1e6,
    )
    ds.set_strategy(1, budget=1e5, blocked=True)
    return book, ds


def signal(n=1, **fields):
    sig = schema.empty(schema.Kind.SIGNAL, n)
    base = two_venues.signal(NOW) | {"aux": 0} | fields
    for k, v in base.items():
        sig[k] = v
    return sig


def decide(book, ds, sig):
    out = schema.empty(schema.Kind.ORDER_NEW, 2 * len(sig))
    n = G.decide_batch_nb(sig, NOW, 1, *book.arrays()[:5], *ds.arrays(), out)
    return out[:n]


def test_accepted_signal_writes_a_primary_and_a_dependent_hedge_with_equal_quantity():
    book, ds = market()
    orders = decide(book, ds, signal())
    assert len(orders) == 2 and ds.reasons() == {"NONE": 1}
    buy, sell = orders
    assert (buy["sub"], sell["sub"]) == (schema.Side.BUY, schema.Side.SELL)
    assert buy["qty"] == sell["qty"] > 0
    assert buy["depends_on"] == 0 and sell["depends_on"] == buy["coid"]
    assert schema.split_coid(int(buy["coid"])) == (1, 0) and schema.split_coid(int(sell["coid"])) == (1, 1)
    assert buy["coid"] == schema.make_coid(1, 0)
    # limit prices: the bounds rounded to tick on the safe side
    assert buy["price"] <= 100.0 * 1.005 and sell["price"] >= 100.6 * 0.995
    assert buy["max_slip_bps"] == pytest.approx(30.0)
    # the decision booked its notional and locked the funds
    assert ds.strat_f[0, G.SF_USED] > 0 and ds.balance[2, 1] == pytest.approx(10.0 - buy["qty"])


@pytest.mark.parametrize(
    "change,reason",
    [
        (lambda b, d, s: s.__setitem__("created_ns", NOW - 2_000_000), R.STALE),
        (lambda b, d, s: s.__setitem__("created_ns", NOW + 5), R.BAD_INPUT),
        (lambda b, d, s: s.__setitem__("edge_bps", math.nan), R.BAD_INPUT),
        (lambda b, d, s: s.__setitem__("sell_venue", 9), R.BAD_INPUT),
        (lambda b, d, s: s.__setitem__("qty_hint", -1.0), R.BAD_INPUT),
        (lambda b, d, s: d.policy.__setitem__(G.P_RISK_STATE, G.RISK_PROTECTIVE), R.RISK_STATE),
        (lambda b, d, s: d.inst_i.__setitem__((2, G.II_RISK_LEVEL), 3), R.RISK_STATE),
        (lambda b, d, s: d.venue_h.__setitem__(2, G.HEALTH_SUSPECT), R.VENUE_UNHEALTHY),
        (lambda b, d, s: s.__setitem__("aux", 1), R.TRANSFER_PENDING),
        (lambda b, d, s: b.status.__setitem__((1, 1), 8), R.BOOK_UNUSABLE),
        (lambda b, d, s: b.ts.__setitem__((2, 2), NOW - 2 * 10**9), R.BOOK_UNUSABLE),
        (lambda b, d, s: d.policy.__setitem__(G.P_MIN_EDGE_BPS, 200.0), R.EDGE_GONE),
        (lambda b, d, s: d.strat_f.__setitem__((0, G.SF_USED), 1e5), R.CAPITAL),
        (lambda b, d, s: d.balance.__setitem__((2, 1), 0.0), R.NO_INVENTORY),
        (lambda b, d, s: d.balance.__setitem__((1, 2), 1.0), R.NO_INVENTORY),
        (lambda b, d, s: d.policy.__setitem__(G.P_EXPOSURE, 2e6), R.EXPOSURE_LIMIT),
        (lambda b, d, s: d.inst_f.__setitem__((1, G.IF_MIN_NOTIONAL), 2e5), R.CAPITAL),
        (lambda b, d, s: d.inst_f.__setitem__((2, G.IF_MIN_NOTIONAL), 1e4), R.MIN_NOTIONAL),
        # bound 100.0 on a 0.3 tick rounds down to 99.9, below the best ask: nothing fits the bound
        (
            lambda b, d, s: (
                d.policy.__setitem__(G.P_BAND_BPS, 0.0),
                d.inst_f.__setitem__((1, G.IF_TICK), 0.3),
            ),
            R.SLIPPAGE,
        ),
        (lambda b, d, s: d.inst_i.__setitem__((2, G.II_LOT_UNITS), 2**61 + 1), R.LOT_SIZE),
    ],
)
def test_each_gate_check_rejects_with_its_reason_and_no_order(change, reason):
    book, ds = market()
    sig = signal()
    change(book, ds, sig)
    before = ds.strat_f.copy(), ds.balance.copy()
    assert len(decide(book, ds, sig)) == 0
    assert ds.reasons() == {reason.name: 1}
    assert (ds.strat_f == before[0]).all() and (ds.balance == before[1]).all()


def test_reasons_are_counted_per_reason_over_a_batch():
    book, ds = market()
    sig = signal(4)
    sig["created_ns"][1] = 0
    sig["aux"][2] = 1
    decide(book, ds, sig)
    assert ds.reasons() == {"NONE": 2, "STALE": 1, "TRANSFER_PENDING": 1}


def test_risk_level_tightens_bounds_and_reduces_size():
    book, ds = market()
    ds.balance[2, 1] = 6.0
    normal = decide(book, ds, signal())
    book, ds = market()
    ds.balance[2, 1] = 6.0
    ds.inst_i[1, G.II_RISK_LEVEL] = 2  # REDUCE: bound scale 0.5, size scale 0.5
    reduced = decide(book, ds, signal())
    assert len(reduced) == 2
    assert reduced[0]["qty"] < normal[0]["qty"]
    assert reduced[0]["price"] <= normal[0]["price"] and reduced[1]["price"] >= normal[1]["price"]


def test_lots_that_are_not_multiples_use_the_common_lot():
    book, ds = market(lot_b=0.003, lot_s=0.002)
    buy, sell = decide(book, ds, signal())
    lots = round(buy["qty"] / 0.006)
    assert buy["qty"] == sell["qty"] and math.isclose(lots * 0.006, buy["qty"], rel_tol=1e-12)


# -- sizing never violates a bound it was given -------------------------------------------


@st.composite
def sizing_case(draw):
    def side(lo_px, desc):
        n = draw(st.integers(1, 10))
        prices = sorted(
            draw(st.lists(st.integers(lo_px, lo_px + 40), min_size=n, max_size=n, unique=True)), reverse=desc
        )
        return [(p / 10.0, draw(st.integers(1, 500)) / 100.0) for p in prices]

    return {
        "asks": side(1000, False),
        "bids": side(1010, True),
        "lot_b": draw(st.sampled_from([1_000_000, 10_000_000, 3_000_000, 5_000])),
        "lot_s": draw(st.sampled_from([1_000_000, 2_000_000, 10_000_000])),
        "tick_b": draw(st.sampled_from([0.1, 0.05, 0.3])),
        "tick_s": draw(st.sampled_from([0.1, 0.2])),
        "min_not_b": draw(st.sampled_from([0.0, 5.0, 50.0])),
        "min_not_s": 5.0,
        "fee_b": draw(st.sampled_from([0.0, 5.0, 10.0])),
        "fee_s": 7.5,
        "slip_b": draw(st.sampled_from([5.0, 20.0, 100.0])),
        "slip_s": draw(st.sampled_from([5.0, 30.0, 100.0])),
        "buy_bound": draw(st.floats(100.0, 104.0)),
        "sell_bound": draw(st.floats(96.0, 100.3)),
        "min_edge_bps": draw(st.sampled_from([-20.0, 0.0, 2.0, 10.0])),
        "base_avail": draw(st.floats(0.0, 30.0)),
        "quote_avail": draw(st.floats(1.0, 5e3)),
        "capital_free": draw(st.floats(1.0, 5e3)),
        "notional_cap": draw(st.floats(1.0, 5e3)),
    }


ACCEPTED = []


def _vwap(levels, q, limit, buy):
    left, cost, worst = q, 0.0, None
    for p, a in levels:
        if (buy and p > limit) or (not buy and p < limit):
            break
        take = min(a, left)
        cost, left, worst = cost + take * p, left - take, p
        if left <= 1e-12 * q:
            return cost / q, worst
    return None, None


# derandomized: the examples follow from the test's source, so the acceptance count below is
# stable for a given source (about 1 case in 12 is accepted; 240 examples leave a wide margin)
@settings(max_examples=240, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sizing_case())
def test_sizing_never_returns_an_order_that_violates_a_bound(c):
    reason, res = reference.COMPARISONS["sizing.size_two_leg"].kernel(c)
    if reason:
        assert res is None
        return
    ACCEPTED.append(1)
    q = res["qty"]
    lot = math.lcm(c["lot_b"], c["lot_s"])
    assert res["lots"] >= 1 and q == res["lots"] * lot / sizing.QTY_SCALE
    # limits: on tick, never beyond the bound, and covering the walk
    for limit, tick, bound, buy in (
        (res["buy_limit"], c["tick_b"], c["buy_bound"], True),
        (res["sell_limit"], c["tick_s"], c["sell_bound"], False),
    ):
        assert limit <= bound if buy else limit >= bound
        assert abs(limit / tick - round(limit / tick)) < 1e-6
    vb, worst_b = _vwap(c["asks"], q, res["buy_limit"], True)
    vs, worst_s = _vwap(c["bids"], q, res["sell_limit"], False)
    assert vb is not None and vs is not None, "the limit prices do not cover the quantity"
    assert worst_b <= res["buy_limit"] and worst_s >= res["sell_limit"]
    assert vb <= c["buy_bound"] * (1 + 1e-12) and vs >= c["sell_bound"] * (1 - 1e-12)
    assert (vb / c["asks"][0][0] - 1) * 1e4 <= c["slip_b"] + 1e-9
    assert (1 - vs / c["bids"][0][0]) * 1e4 <= c["slip_s"] + 1e-9
    edge = (vs * (1 - c["fee_s"] * 1e-4) - vb * (1 + c["fee_b"] * 1e-4)) / vb * 1e4
    assert edge >= c["min_edge_bps"] - 1e-7
    assert q <= c["base_avail"] * (1 + 1e-12)
    assert q * vb * (1 + c["fee_b"] * 1e-4) <= c["quote_avail"] * (1 + 1e-9)
    assert q * vb <= min(c["capital_free"], c["notional_cap"]) * (1 + 1e-9)
    assert q * vb >= c["min_not_b"] * (1 - 1e-9) and q * vs >= c["min_not_s"] * (1 - 1e-9)
    # maximal: one more common lot breaks some bound
    assert not _feasible_lots(c, res["lots"] + 1)


def _feasible_lots(c, n):
    book = BookState(2, 2, 10)
    for side, levels, v, i in ((1, c["asks"], 1, 1), (0, c["bids"], 2, 2)):
        for k, (p, q) in enumerate(levels):
            book.px[v, i, side, k], book.qty[v, i, side, k] = p, q
        book.cnt[v, i, side] = len(levels)
    if n * math.lcm(c["lot_b"], c["lot_s"]) / sizing.QTY_SCALE > c["base_avail"]:
        return False
    out = np.zeros(sizing.N_OUT)
    r = sizing.check_lots_nb(
        book.px,
        book.qty,
        book.cnt,
        1,
        1,
        2,
        2,
        n,
        math.lcm(c["lot_b"], c["lot_s"]),
        sizing.floor_to_tick(c["buy_bound"], c["tick_b"]),
        sizing.ceil_to_tick(c["sell_bound"], c["tick_s"]),
        c["fee_b"],
        c["fee_s"],
        c["slip_b"],
        c["slip_s"],
        c["min_edge_bps"],
        c["quote_avail"],
        c["capital_free"],
        c["notional_cap"],
        out,
    )
    return r == 0


def test_the_bound_property_saw_accepted_orders():
    # runs after the property test in file order (derandomized, so the count is stable):
    # the property must not pass vacuously
    assert len(ACCEPTED) >= 10, len(ACCEPTED)


# -- decision cases for the parity table (tests/test_kernels_parity.py) --------------------


@st.composite
def decision_case(draw):
    book, ds = market()
    ds.venue_h[2] = draw(st.sampled_from([G.HEALTH_UP] * 4 + [G.HEALTH_THROTTLED, G.HEALTH_DOWN]))
    ds.inst_i[1, G.II_RISK_LEVEL] = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    ds.balance[2, 1] = draw(st.sampled_from([10.0, 3.0, 0.0, 0.004]))
    ds.policy[G.P_MIN_EDGE_BPS] = draw(st.sampled_from([1.0, 10.0, 40.0, math.nan]))
    if draw(st.booleans()):
        snapshot(book, 2, 2, [(100.3, draw(st.floats(0.0, 2.0))), (100.2, 1.0)], [(100.9, 1.0)], NOW - 1_000)
    n = draw(st.integers(1, 5))
    sig = signal(n)
    for k in range(n):
        sig["created_ns"][k] = NOW - draw(st.sampled_from([0, 10, 2_000_000]))
        sig["qty_hint"][k] = draw(st.sampled_from([0.0, 0.5, 2.0, math.nan]))
        sig["edge_bps"][k] = draw(st.sampled_from([30.0, math.inf]))
        sig["kind"][k] = draw(st.sampled_from([schema.Kind.SIGNAL] * 5 + [schema.Kind.TRADE]))
    return {"books": book, "state": ds, "signals": sig, "now_ns": NOW}


def test_decision_cases_reach_the_accepted_path():
    # the scenario the parity cases start from must reach the accepted path, or the parity
    # would compare rejections only
    accepted = 0
    for seed in range(30):
        accepted += reference.COMPARISONS["gate.decide"].kernel(_seeded_case(seed))[1][0]
    assert accepted > 0


def _seeded_case(seed):
    rng = np.random.default_rng(seed)
    book, ds = market()
    ds.balance[2, 1] = float(rng.choice([10.0, 3.0, 0.0]))
    sig = signal(3)
    sig["created_ns"] = NOW - rng.choice([0, 10, 2_000_000], 3)
    return {"books": book, "state": ds, "signals": sig, "now_ns": NOW}
