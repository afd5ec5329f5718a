import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sim.matching import MARKET, FeeSchedule, MatchingEngine, Spec
from basis_core.errors import ConfigError, OrderNotFound
from basis_core.schema import Liquidity, OrderEventType, OrderType, RejectReason, Side
from basis_core.venue import OrderStatus

SPEC = Spec("BTC/USDT", "BTC", "USDT", tick=0.01, lot=0.001, min_notional=5.0)


def engine(**fees):
    return MatchingEngine(SPEC, FeeSchedule(**fees))


def test_price_time_priority_fills_better_price_first_then_earlier_order():
    e = engine()
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 101.0)
    e.submit("b", "b1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    e.submit("c", "c1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    r = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.25, 101.0)
    makers = [(f.owner, f.price, f.qty) for f in r.fills if f.liquidity == Liquidity.MAKER]
    assert makers == [("b", 100.0, 0.1), ("c", 100.0, 0.1), ("a", 101.0, 0.05)]
    assert r.order.status is OrderStatus.FILLED
    assert math.isclose(r.order.avg_price, (100 * 0.2 + 101 * 0.05) / 0.25)
    assert e.query("a", "a1").status is OrderStatus.PARTIALLY_FILLED
    assert e.query("a", "a1").filled_qty == 0.05
    assert e.book(5)[1] == [(101.0, 0.05)]


def test_partial_fill_of_limit_rests_the_remainder_on_the_book():
    e = engine()
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    r = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.3, 100.5)
    assert r.order.status is OrderStatus.PARTIALLY_FILLED and r.order.filled_qty == 0.1
    assert e.book(5) == ([(100.5, 0.2)], [])
    assert [ev.type for ev in r.events] == [
        OrderEventType.ACK,
        OrderEventType.FILL,
        OrderEventType.PARTIAL_FILL,
    ]
    assert [o.coid for o in e.resting("t")] == ["t1"]


def test_ioc_remainder_is_expired_not_rested():
    e = engine()
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    r = e.submit("t", "t1", Side.BUY, OrderType.IOC, 0.3, 100.0)
    assert r.order.status is OrderStatus.EXPIRED and r.order.filled_qty == 0.1
    assert r.events[-1].type == OrderEventType.EXPIRED
    assert e.book(5) == ([], [])
    assert e.resting() == []


def test_market_order_respects_its_protection_price():
    e = engine()
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    e.submit("a", "a2", Side.SELL, OrderType.LIMIT, 0.1, 105.0)
    r = e.submit("t", "t1", Side.BUY, OrderType.MARKET, 0.2, 102.0)
    assert r.order.filled_qty == 0.1 and r.order.status is OrderStatus.EXPIRED
    r = e.submit("t", "t2", Side.BUY, OrderType.MARKET, 0.1)
    assert r.order.status is OrderStatus.FILLED and r.order.avg_price == 105.0


def test_post_only_that_would_cross_is_rejected_and_a_passive_one_rests():
    e = engine()
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    r = e.submit("t", "t1", Side.BUY, OrderType.POST_ONLY, 0.1, 100.0)
    assert r.order.status is OrderStatus.REJECTED and r.order.reason == RejectReason.POST_ONLY_WOULD_CROSS
    assert r.fills == []
    r = e.submit("t", "t2", Side.BUY, OrderType.POST_ONLY, 0.1, 99.99)
    assert r.order.status is OrderStatus.OPEN
    assert e.book(1) == ([(99.99, 0.1)], [(100.0, 0.1)])


@pytest.mark.parametrize(
    "qty, price, reason",
    [
        (0.0015, 100.0, RejectReason.LOT_SIZE),  # off the lot grid
        (0.0, 100.0, RejectReason.LOT_SIZE),
        (float("nan"), 100.0, RejectReason.LOT_SIZE),
        (0.01, 100.005, RejectReason.BAD_INPUT),  # off the tick grid
        (0.01, float("nan"), RejectReason.BAD_INPUT),
        (0.01, -1.0, RejectReason.BAD_INPUT),
        (0.01, 100.0, RejectReason.MIN_NOTIONAL),  # 1.0 < 5.0
    ],
)
def test_filters_reject_with_typed_reason_codes(qty, price, reason):
    e = engine()
    r = e.submit("t", "x", Side.BUY, OrderType.LIMIT, qty, price)
    assert r.order.status is OrderStatus.REJECTED and r.order.reason == reason
    assert r.events[0].type == OrderEventType.REJECT
    assert e.book(5) == ([], [])
    assert e.query("t", "x").status is OrderStatus.REJECTED


def test_market_order_min_notional_is_checked_at_the_best_opposite_price():
    e = engine()
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 1.0, 100.0)
    r = e.submit("t", "m", Side.BUY, OrderType.MARKET, 0.001)
    assert r.order.reason == RejectReason.MIN_NOTIONAL


def test_fees_maker_and_taker_in_quote_round_down_to_an_atom():
    e = engine(maker_bps=2.0, taker_bps=10.0, asset="quote")
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    r = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.1, 100.0)
    maker, taker = r.fills
    assert maker.liquidity == Liquidity.MAKER and taker.liquidity == Liquidity.TAKER
    assert taker.quote_atoms == 10 * 10**8
    assert taker.fee_asset == maker.fee_asset == "USDT"
    assert taker.fee_atoms == 10 * 10**8 * 10 // 10_000  # 10 bps of 10 USDT
    assert maker.fee_atoms == 10 * 10**8 * 2 // 10_000
    assert e.query("t", "t1").fee_atoms == {"USDT": taker.fee_atoms}


def test_fees_in_received_asset_and_named_asset_with_fallback():
    e = engine(taker_bps=10.0, maker_bps=10.0, asset="received")
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    maker, taker = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.1, 100.0).fills
    assert (taker.fee_asset, taker.fee_atoms) == ("BTC", 10**7 * 10 // 10_000)
    assert maker.fee_asset == "USDT"
    paying = {"t": True, "a": False}
    e = MatchingEngine(
        SPEC,
        FeeSchedule(taker_bps=10.0, maker_bps=10.0, asset="BNB", asset_price=500.0),
        can_pay=lambda owner, asset, atoms: paying[owner],
    )
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    maker, taker = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.1, 100.0).fills
    assert (taker.fee_asset, taker.fee_atoms) == ("BNB", 2_000)  # 0.01 USDT / 500 = 0.00002 BNB
    assert maker.fee_asset == "USDT"  # could not pay in BNB


def test_negative_maker_fee_is_a_rebate():
    e = engine(maker_bps=-1.0, taker_bps=5.0)
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 1.0, 100.0)
    maker, _ = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 1.0, 100.0).fills
    assert maker.fee_atoms == -(100 * 10**8 // 10_000)


def test_cancel_removes_the_order_and_a_second_cancel_is_a_cancel_reject():
    e = engine()
    e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.1, 99.0)
    r = e.cancel("t", "t1", ts_ns=5)
    assert r.order.status is OrderStatus.CANCELED and r.events[0].type == OrderEventType.CANCELED
    assert e.book(5) == ([], [])
    again = e.cancel("t", "t1")
    assert again.events[0].type == OrderEventType.CANCEL_REJECT and again.order.status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        e.cancel("t", "nope")
    with pytest.raises(OrderNotFound):
        e.query("other", "t1")


def test_duplicate_client_order_id_returns_the_existing_order():
    e = engine()
    first = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.1, 99.0)
    dup = e.submit("t", "t1", Side.BUY, OrderType.LIMIT, 0.5, 98.0)
    assert dup.duplicate and dup.order.oid == first.order.oid and dup.order.qty == 0.1
    assert e.book(5)[0] == [(99.0, 0.1)]


def test_self_trade_expires_the_resting_order_of_the_same_owner():
    e = engine()
    e.submit("t", "s1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    e.submit("a", "a1", Side.SELL, OrderType.LIMIT, 0.1, 100.0)
    r = e.submit("t", "b1", Side.BUY, OrderType.LIMIT, 0.1, 100.0)
    assert e.query("t", "s1").status is OrderStatus.EXPIRED
    assert [f.owner for f in r.fills] == ["a", "t"]


def test_market_depth_levels_queue_behind_resting_orders_and_trade_through_them():
    e = engine()
    e.set_level(Side.BUY, 9_900, 500)  # 0.5 BTC at 99.00 from the market
    e.submit("t", "b1", Side.BUY, OrderType.LIMIT, 0.1, 99.0)
    e.set_level(Side.BUY, 9_900, 800)  # growth queues behind us
    assert e.book(1)[0] == [(99.0, 0.9)]
    r = e.submit_lots(MARKET, "", Side.SELL, OrderType.MARKET, 550, None)
    ours = [f for f in r.fills if f.owner == "t"]
    assert [f.qty for f in ours] == [0.05]  # 0.5 ahead of us, then half of ours
    e.set_level(Side.BUY, 9_900, 0)  # market leaves; we stay
    assert e.book(1)[0] == [(99.0, 0.05)]
    r = e.set_level(Side.SELL, 9_890, 1000)  # asks move down through our bid
    assert [f.owner for f in r.fills if f.liquidity == Liquidity.MAKER] == ["t"]
    assert e.query("t", "b1").status is OrderStatus.FILLED
    assert e.book(1) == ([], [(98.9, 0.95)])


def test_sweep_reports_quantity_and_cost_without_changing_the_book():
    e = engine()
    e.set_level(Side.SELL, 10_000, 100)
    e.set_level(Side.SELL, 10_100, 100)
    assert e.sweep(Side.BUY, 150) == (150, 100 * 10_000 + 50 * 10_100)
    assert e.sweep(Side.BUY, 150, limit=10_000) == (100, 100 * 10_000)
    assert e.book_lots(5)[1] == [(10_000, 100), (10_100, 100)]


def test_spec_refuses_grids_that_are_not_whole_atoms():
    with pytest.raises(ConfigError):
        Spec("X/Y", "X", "Y", tick=0.01, lot=1e-9)
    with pytest.raises(ConfigError):
        Spec("X/Y", "X", "Y", tick=float("nan"), lot=0.1)


# -- replace_market: the level-by-level depth replacement, done in one call ----------------


def _reference_replace(e: MatchingEngine, bids: dict, asks: dict, ts: int) -> list:
    """The replacement as a sequence of set_level calls: every shrinking level first, then
    the growing ones, bids ascending and asks descending (what SimVenue did level by level)."""
    plan, results = [], []
    for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
        plan.append((side, levels, e.market_levels(side)))
    for side, levels, have in plan:
        for px, lots in have.items():
            if levels.get(px, 0) < lots:
                e.set_level(side, px, levels.get(px, 0), ts)
    for side, levels, have in plan:
        for px in sorted(levels, reverse=side == Side.SELL):
            if levels[px] > have.get(px, 0):
                results.append(e.set_level(side, px, levels[px], ts))
    return results


def _free_engine() -> MatchingEngine:
    """No minimum notional, so any of our orders in these small books is accepted."""
    return MatchingEngine(
        Spec("BTC/USDT", "BTC", "USDT", tick=0.01, lot=0.001), FeeSchedule(maker_bps=1.0, taker_bps=5.0)
    )


def _state(e: MatchingEngine) -> tuple:
    return (
        e.book_lots(10**6),
        e.market_levels(Side.BUY),
        e.market_levels(Side.SELL),
        e.resting(),
        e._next_oid,
        e._next_trade,
        [(o.oid, o.owner, o.lots, o.filled) for s in (e.bids, e.asks) for p in s.prices for o in s.levels[p]],
    )


_depth = st.dictionaries(st.integers(95, 105), st.integers(0, 40), max_size=6)
_ours = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(95, 105), st.integers(1, 30)), max_size=4
)
# depth that moves without crossing, and our orders resting inside it: queues that mix MARKET's
# lots with ours, grown behind ours and shrunk from the back
_bids = st.dictionaries(st.integers(97, 100), st.sampled_from([0, 5, 10, 20]), max_size=4)
_asks = st.dictionaries(st.integers(101, 104), st.sampled_from([0, 5, 10, 20]), max_size=4)
_resting = st.lists(
    st.one_of(
        st.tuples(st.just(Side.BUY), st.integers(97, 100), st.integers(1, 8)),
        st.tuples(st.just(Side.SELL), st.integers(101, 104), st.integers(1, 8)),
    ),
    max_size=2,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(st.tuples(_depth, _depth, _ours), min_size=1, max_size=5),
        st.lists(st.tuples(_bids, _asks, _resting), min_size=2, max_size=8),
    )
)
def test_replace_market_makes_the_same_calls_trades_and_book_as_level_by_level_set_level(steps):
    fast, ref = _free_engine(), _free_engine()
    for n, (bids, asks, ours) in enumerate(steps):
        for i, (side, px, lots) in enumerate(ours):  # our orders, some crossing the depth
            for e in (fast, ref):
                assert (
                    e.submit_lots("basis", f"{n}.{i}", side, OrderType.LIMIT, lots, px, n).order.reason
                    is RejectReason.NONE
                )
        got = []

        def crossing(side, px, lots):
            got.append(fast.set_level(side, px, lots, n))

        fast.replace_market(bids, asks, n, crossing)
        want = _reference_replace(ref, bids, asks, n)
        assert [(r.fills, r.events) for r in got if r.fills or r.events] == [
            (r.fills, r.events) for r in want if r.fills or r.events
        ]
        assert _state(fast) == _state(ref)


@settings(max_examples=200, deadline=None)
@given(
    _ours,
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.sampled_from([OrderType.MARKET, OrderType.IOC, OrderType.LIMIT]),
            st.integers(-2, 60),
            st.one_of(st.none(), st.integers(-1, 106)),
        ),
        max_size=6,
    ),
)
def test_market_orders_in_integers_act_exactly_like_the_same_orders_in_floats(ours, orders):
    ints, floats = _free_engine(), _free_engine()
    for i, (side, px, lots) in enumerate(ours):
        for e in (ints, floats):
            assert (
                e.submit_lots("basis", str(i), side, OrderType.LIMIT, lots, px, 1).order.reason
                is RejectReason.NONE
            )
    for n, (side, otype, lots, px) in enumerate(orders):
        a = ints.submit_lots(MARKET, "", side, otype, lots, px, n)
        b = floats.submit(
            MARKET, "", side, otype, floats.qty(lots), None if px is None else floats.price(px), n
        )
        assert (a.order, a.fills, a.events) == (b.order, b.fills, b.events)
        assert _state(ints) == _state(floats)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["limit", "ioc", "cancel", "level"]),
            st.sampled_from(["a", "b"]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(9_990, 10_010),  # ticks around 100.00
            st.integers(5, 40),  # lots of 0.001
        ),
        max_size=60,
    )
)
def test_resting_orders_are_found_in_the_book_as_among_every_order(steps):
    """`resting` looks in the book, not at every order the engine took: the same answer."""
    e = engine()
    for n, (what, owner, side, px, lots) in enumerate(steps):
        if what == "level":
            e.set_level(side, px, lots)
        elif what == "cancel":
            live = e.resting(owner)
            if live:
                e.cancel(owner, live[n % len(live)].coid)
        else:
            otype = OrderType.LIMIT if what == "limit" else OrderType.IOC
            e.submit(owner, f"{owner}{n}", side, otype, lots * 0.001, px * 0.01)
        for who in ("a", "b", None):
            every = [
                o
                for o in e._orders.values()
                if o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED) and who in (None, o.owner)
            ]
            assert [v.coid for v in e.resting(who)] == [o.coid for o in sorted(every, key=lambda o: o.oid)]
