"""The Cython throttle, router and retry policy, driven by an injected clock (integer ns)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_core.units import S
from basis_ext import router as R
from basis_ext.sequencer import Sequencer
from basis_ext.throttle import NEVER, Throttle


def binance_like(now_ns: int = 0, burst: float = 0.25) -> Throttle:
    thr = Throttle()
    thr.add_pool("weight_1m", 6000, 60.0, burst, now_ns)
    thr.add_pool("orders_10s", 100, 10.0, burst, now_ns)
    thr.add_pool("orders_1d", 200_000, 86_400.0, burst, now_ns)
    thr.add_endpoint("order", {"weight_1m": 1, "orders_10s": 1, "orders_1d": 1})
    thr.add_endpoint("cancel", {"weight_1m": 1})
    thr.add_endpoint("open_orders", {"weight_1m": 6})
    thr.add_endpoint("depth", {"weight_1m": 25})
    return thr


# -- bucket math --------------------------------------------------------------------------------


def test_bucket_starts_full_and_a_burst_drains_it_then_returns_exact_wait():
    thr = Throttle()
    thr.add_pool("w", 100, 10.0, 0.5)  # capacity 50, refill 5 per second
    ep = thr.add_endpoint("x", {"w": 1})
    assert thr.capacity("w") == 50
    for _ in range(50):
        assert thr.try_acquire(ep, 0) == 0
    wait = thr.try_acquire(ep, 0)
    assert wait == 200_000_000  # one token at 5/s
    assert thr.level("w", 0) == pytest.approx(0.0)
    assert thr.try_acquire(ep, wait - 1) > 0
    assert thr.try_acquire(ep, wait) == 0


def test_refill_caps_at_capacity_and_time_going_backwards_adds_nothing():
    thr = Throttle()
    thr.add_pool("w", 100, 10.0, 0.5)
    ep = thr.add_endpoint("x", {"w": 10})
    assert thr.try_acquire(ep, 5 * S) == 0
    assert thr.level("w", 5 * S) == pytest.approx(40)
    assert thr.level("w", 1 * S) == pytest.approx(40)  # earlier clock reading: no refill
    assert thr.level("w", 7 * S) == pytest.approx(50)  # +10 in 2 s, capped at 50
    assert thr.level("w", 100 * S) == pytest.approx(50)


def test_endpoint_weights_draw_proportionally():
    thr = binance_like()
    depth, cancel = thr.endpoint("depth"), thr.endpoint("cancel")
    assert thr.try_acquire(depth, 0) == 0
    assert thr.level("weight_1m", 0) == pytest.approx(1500 - 25)
    assert thr.try_acquire(cancel, 0) == 0
    assert thr.level("weight_1m", 0) == pytest.approx(1500 - 26)


def test_linked_pools_are_all_or_nothing():
    thr = binance_like()
    order, cancel = thr.endpoint("order"), thr.endpoint("cancel")
    for _ in range(25):  # orders_10s capacity is 25
        assert thr.try_acquire(order, 0) == 0
    weight_before = thr.level("weight_1m", 0)
    daily_before = thr.level("orders_1d", 0)
    wait = thr.try_acquire(order, 0)
    assert wait == pytest.approx(1 / 7.5 * S, abs=2)  # orders refill 75 per 10 s
    assert thr.level("weight_1m", 0) == weight_before  # nothing taken from the others
    assert thr.level("orders_1d", 0) == daily_before
    assert thr.try_acquire(cancel, 0) == 0  # a cancel uses only request weight


def test_weight_above_capacity_is_never_served():
    thr = Throttle()
    thr.add_pool("w", 10, 1.0, 0.5)
    ep = thr.add_endpoint("big", {"w": 6})
    assert thr.try_acquire(ep, 0) == NEVER
    assert thr.wait_ns(ep, 10 * S) == NEVER


def test_block_until_holds_everything_and_never_shortens():
    thr = binance_like()
    cancel = thr.endpoint("cancel")
    thr.block_until(3 * S)
    thr.block_until(1 * S)
    assert thr.blocked_until == 3 * S
    assert thr.try_acquire(cancel, 1 * S) == 2 * S
    assert thr.try_acquire(cancel, 3 * S) == 0


def test_rate_factor_slows_refill_from_the_moment_it_is_set():
    thr = Throttle()
    thr.add_pool("w", 100, 10.0, 0.5)  # 5 tokens/s
    ep = thr.add_endpoint("x", {"w": 50})
    assert thr.try_acquire(ep, 0) == 0
    thr.set_rate_factor(0.5, 2 * S)  # 10 tokens accrued at full rate before this
    assert thr.level("w", 2 * S) == pytest.approx(10)
    assert thr.level("w", 4 * S) == pytest.approx(15)  # then 2.5 tokens/s
    with pytest.raises(ValueError):
        thr.set_rate_factor(0.0, 4 * S)


def test_drain_empties_a_pool_when_the_venue_says_it_is_spent():
    thr = binance_like()
    thr.drain("weight_1m", 0)
    assert thr.try_acquire(thr.endpoint("cancel"), 0) > 0


def test_declaration_errors_are_clear():
    thr = Throttle()
    thr.add_pool("w", 10, 1.0)
    with pytest.raises(ValueError, match="declared twice"):
        thr.add_pool("w", 10, 1.0)
    with pytest.raises(ValueError, match="unknown pool"):
        thr.add_endpoint("x", {"nope": 1})
    with pytest.raises(ValueError, match="limit > 0"):
        thr.add_pool("v", -1, 1.0)
    with pytest.raises(ValueError, match="unknown endpoint"):
        thr.endpoint("missing")
    with pytest.raises(ValueError, match="out of range"):
        thr.try_acquire(7, 0)


@settings(max_examples=60, deadline=None)
@given(
    burst=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    gaps=st.lists(st.integers(min_value=0, max_value=400_000_000), min_size=50, max_size=400),
    start=st.integers(min_value=0, max_value=10 * S),
)
def test_no_window_of_the_venue_ever_sees_more_than_its_limit(burst, gaps, start):
    """Whatever the arrival pattern, any interval of one window admits at most `limit` units."""
    limit, window = 20, 2 * S
    thr = Throttle()
    thr.add_pool("w", limit, window / S, burst, start)
    ep = thr.add_endpoint("x", {"w": 1})
    now, admitted = start, []
    for gap in gaps:
        now += gap
        while thr.try_acquire(ep, now) == 0:
            admitted.append(now)
    lo = 0
    for hi, t in enumerate(admitted):
        while admitted[lo] <= t - window:
            lo += 1
        assert hi - lo + 1 <= limit


# -- router: priorities, strictness, sequencing ---------------------------------------------------


def make_router(thr: Throttle, venue: int = 3) -> R.Router:
    router = R.Router()
    router.add_venue(venue, thr)
    return router


def test_cancels_then_hedges_then_queries_then_entries():
    thr = binance_like()
    router = make_router(thr)
    order, cancel, oo = thr.endpoint("order"), thr.endpoint("cancel"), thr.endpoint("open_orders")
    router.push(3, R.ENTRY, order, "entry-1")
    router.push(3, R.QUERY, oo, "query-1")
    router.push(3, R.HEDGE, order, "hedge-1")
    router.push(3, R.ENTRY, order, "entry-2")
    router.push(3, R.CANCEL, cancel, "cancel-1")
    router.push(3, R.HEDGE, order, "hedge-2")
    assert router.pending(3) == (1, 2, 1, 2)
    out = []
    while (cmd := router.pop_ready(3, 0)) is not None:
        out.append((cmd.seq, cmd.item))
    assert out == [
        (1, "cancel-1"),
        (2, "hedge-1"),
        (3, "hedge-2"),
        (4, "query-1"),
        (5, "entry-1"),
        (6, "entry-2"),
    ]
    assert router.wait_ns(3, 0) == -1


def test_a_held_hedge_is_not_overtaken_by_an_entry_but_a_cancel_passes():
    thr = Throttle()
    thr.add_pool("weight", 100, 1.0, 1.0)
    thr.add_pool("orders", 2, 10.0, 0.5)  # capacity 1 order, 1 more per 10 s
    order = thr.add_endpoint("order", {"weight": 1, "orders": 1})
    small = thr.add_endpoint("cancel", {"weight": 1})
    router = make_router(thr)
    router.push(3, R.HEDGE, order, "hedge-1")
    router.push(3, R.HEDGE, order, "hedge-2")
    router.push(3, R.ENTRY, small, "entry-cheap")  # would fit, but must wait behind the hedge
    assert router.pop_ready(3, 0).item == "hedge-1"
    assert router.pop_ready(3, 0) is None
    assert router.wait_ns(3, 0) == 10 * S
    router.push(3, R.CANCEL, small, "cancel-1")
    assert router.pop_ready(3, 0).item == "cancel-1"
    assert router.pop_ready(3, 10 * S).item == "hedge-2"
    assert router.pop_ready(3, 10 * S).item == "entry-cheap"


def test_sequence_numbers_are_per_venue_and_reproducible():
    def run():
        router = R.Router(Sequencer())
        for venue in (1, 2):
            router.add_venue(venue, binance_like())
        log = []
        for i in range(40):
            venue = 1 + i % 2
            router.push(venue, (R.ENTRY, R.HEDGE, R.CANCEL)[i % 3], 0 if i % 3 < 2 else 1, i, i)
            if i % 5 == 4:
                for v in (1, 2):
                    while (cmd := router.pop_ready(v, i * 1000)) is not None:
                        log.append((v, cmd.seq, cmd.item))
        return log

    first, second = run(), run()
    assert first == second
    for venue in (1, 2):
        seqs = [s for v, s, _ in first if v == venue]
        assert seqs == list(range(1, len(seqs) + 1))


def test_router_continues_a_restored_sequencer():
    seq = Sequencer()
    seq.restore(3, 41)
    router = R.Router(seq)
    thr = binance_like()
    router.add_venue(3, thr)
    router.push(3, R.ENTRY, thr.endpoint("order"), "x")
    assert router.pop_ready(3, 0).seq == 42


def test_drop_removes_waiting_entries_only():
    thr = binance_like()
    router = make_router(thr)
    router.push(3, R.ENTRY, 0, "e")
    router.push(3, R.HEDGE, 0, "h")
    dropped = router.drop(3, R.ENTRY)
    assert [c.item for c in dropped] == ["e"]
    assert router.pending(3) == (0, 1, 0, 0)


def test_router_refuses_unknown_venues_and_priorities():
    router = make_router(binance_like())
    with pytest.raises(ValueError, match="not routed"):
        router.push(9, R.ENTRY, 0, "x")
    with pytest.raises(ValueError, match="priority"):
        router.push(3, 7, 0, "x")
    with pytest.raises(ValueError, match="added twice"):
        router.add_venue(3, binance_like())


def test_router_reports_never_for_an_oversized_head():
    thr = Throttle()
    thr.add_pool("w", 10, 1.0, 0.5)
    big = thr.add_endpoint("big", {"w": 6})
    router = make_router(thr)
    router.push(3, R.ENTRY, big, "x")
    assert router.wait_ns(3, 0) == -2
    assert router.pop_ready(3, 0) is None


# -- retry policy -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [R.FAULT_TIMEOUT, R.FAULT_NETWORK, R.FAULT_UNAVAILABLE, R.FAULT_MALFORMED])
def test_a_submit_with_unknown_outcome_is_verified_never_resent_blindly(fault):
    policy = R.RetryPolicy()
    for attempt in (1, 2, 5):
        assert policy.decide(R.OP_SUBMIT, fault, attempt) == R.VERIFY


def test_a_rate_limited_submit_was_not_executed_and_may_be_retried_within_bounds():
    policy = R.RetryPolicy(max_attempts=3)
    assert policy.decide(R.OP_SUBMIT, R.FAULT_RATE_LIMITED, 1) == R.RETRY
    assert policy.decide(R.OP_SUBMIT, R.FAULT_RATE_LIMITED, 3) == R.GIVE_UP


@pytest.mark.parametrize(
    "op", [R.OP_CANCEL, R.OP_FETCH_ORDER, R.OP_OPEN_ORDERS, R.OP_FILLS, R.OP_BALANCES, R.OP_BOOK]
)
def test_safe_operations_are_retried_blindly_until_the_attempt_budget(op):
    policy = R.RetryPolicy(max_attempts=2)
    for fault in (R.FAULT_TIMEOUT, R.FAULT_NETWORK, R.FAULT_RATE_LIMITED, R.FAULT_UNAVAILABLE):
        assert policy.decide(op, fault, 1) == R.RETRY
        assert policy.decide(op, fault, 2) == R.GIVE_UP


@pytest.mark.parametrize("fault", [R.FAULT_REJECTED, R.FAULT_AUTH, R.FAULT_NOT_FOUND])
def test_refusals_are_final_for_every_operation(fault):
    policy = R.RetryPolicy()
    for op in range(8):
        assert policy.decide(op, fault, 1) == R.GIVE_UP


def test_backoff_doubles_to_its_cap_and_honours_retry_after():
    policy = R.RetryPolicy(base_backoff_s=0.1, max_backoff_s=0.5)
    assert [policy.backoff_ns(a) for a in (1, 2, 3, 4, 10)] == [
        100_000_000,
        200_000_000,
        400_000_000,
        500_000_000,
        500_000_000,
    ]
    assert policy.backoff_ns(1, 2 * S) == 2 * S
    policy.set_max_attempts(R.OP_CANCEL, 5)
    assert policy.decide(R.OP_CANCEL, R.FAULT_TIMEOUT, 4) == R.RETRY
