"""Constant-product pool math: the 128-bit kernel against Python ints, the optimal-input search
against brute force, and the argument checks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_core.kernels import amm

I63 = st.integers(min_value=0, max_value=(1 << 63) - 1)
POS63 = st.integers(min_value=1, max_value=(1 << 63) - 1)
FEES = st.sampled_from([(997, 1000), (9970, 10000), (1, 1), (3, 1000), (65535, 65536), (2**32 - 1, 2**32)])


def contract(amount_in, reserve_in, reserve_out, fee_num=997, fee_den=1000):
    """The pool contract's getAmountOut, written out as in Solidity (uint256, floor division)."""
    amount_in_with_fee = amount_in * fee_num
    numerator = amount_in_with_fee * reserve_out
    denominator = reserve_in * fee_den + amount_in_with_fee
    return numerator // denominator


@settings(max_examples=300, deadline=None)
@given(I63, POS63, POS63, FEES)
def test_kernel_equals_contract_or_says_overflow(a, ri, ro, fee):
    out = amm.amount_out_nb(a, ri, ro, *fee)
    if out == amm.AMM_OVERFLOW:
        # only when the numerator really leaves 128 bits
        assert a * fee[0] * ro >= 1 << 128
    else:
        assert out == contract(a, ri, ro, *fee)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1 << 40), st.integers(1, 1 << 40), st.integers(1, 1 << 40))
def test_kernel_exact_without_overflow_for_realistic_sizes(a, ri, ro):
    assert amm.amount_out_nb(a, ri, ro, 997, 1000) == contract(a, ri, ro)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1 << 200), st.integers(1, 1 << 200), st.integers(1, 1 << 200))
def test_wrapper_is_exact_for_uint256_sized_values(a, ri, ro):
    assert amm.amount_out(a, ri, ro) == contract(a, ri, ro)


def test_known_pool_values():
    # 1 ETH into a 100 ETH / 200,000 USDC(6 dp) pool
    out = amm.amount_out(10**18, 100 * 10**18, 200_000 * 10**6)
    assert out == contract(10**18, 100 * 10**18, 200_000 * 10**6)
    assert 1_970 * 10**6 < out < 1_980 * 10**6  # ~1974.3 USDC after fee and impact
    assert amm.amount_out(1, 10**18, 10**18) == 0  # dust rounds to zero, as on chain
    assert amm.amount_out(0, 5, 5) == 0


@pytest.mark.parametrize(
    "args",
    [
        (-1, 10, 10),
        (1, 0, 10),
        (1, 10, 0),
        (1, -5, 10),
    ],
)
def test_wrapper_rejects_bad_amounts(args):
    with pytest.raises(ValueError):
        amm.amount_out(*args)
    assert amm.amount_out_nb(*args, 997, 1000) == amm.AMM_BAD_INPUT


@pytest.mark.parametrize("fee", [(0, 1000), (1001, 1000), (5, 0), (1, 2**33)])
def test_bad_fees_rejected(fee):
    with pytest.raises(ValueError):
        amm.amount_out(1, 10, 10, *fee)
    assert amm.amount_out_nb(1, 10, 10, *fee) == amm.AMM_BAD_INPUT


def test_wrapper_rejects_floats_and_bools():
    with pytest.raises(TypeError):
        amm.amount_out(1.5, 10, 10)
    with pytest.raises(TypeError):
        amm.amount_out(True, 10, 10)


#: profit units (of the input token's smallest unit) the search may leave to a distant floor spike
FLOOR_SLACK = 2


def _profit(x, a_in, a_out, b_in, b_out):
    return contract(contract(x, a_in, a_out), b_in, b_out) - x


@settings(max_examples=60, deadline=None)
@given(st.integers(50, 3000), st.integers(50, 3000), st.integers(50, 3000), st.integers(50, 3000))
def test_two_pool_optimum_matches_brute_force(a_in, a_out, b_in, b_out):
    best = max(range(0, 4 * max(a_in, b_out) + 1), key=lambda x: (_profit(x, a_in, a_out, b_in, b_out), -x))
    best_p = max(_profit(best, a_in, a_out, b_in, b_out), 0)
    x = amm.optimal_two_pool_input(a_in, a_out, b_in, b_out)
    # floors make the integer profit a plateau with +-1 spikes: within FLOOR_SLACK of the best
    assert (_profit(x, a_in, a_out, b_in, b_out) if x else 0) >= best_p - FLOOR_SLACK
    assert amm.optimal_two_pool_input_nb(a_in, a_out, b_in, b_out, 997, 1000) == x


@settings(max_examples=100, deadline=None)
@given(
    st.integers(10**6, 10**15),
    st.integers(10**6, 10**15),
    st.integers(9_000, 11_000),
    st.integers(9_000, 11_000),
)
def test_two_pool_optimum_kernel_equals_reference_and_is_a_local_max(a_in, a_out, b_scale, c_scale):
    b_in, b_out = a_out * b_scale // 10_000, a_in * c_scale // 10_000
    x = amm.optimal_two_pool_input(a_in, a_out, b_in, b_out)
    assert amm.optimal_two_pool_input_nb(a_in, a_out, b_in, b_out, 997, 1000) == x
    p = _profit(x, a_in, a_out, b_in, b_out)
    assert p >= 0
    if x:
        for dx in range(-40, 41):
            if x + dx >= 0:
                assert _profit(x + dx, a_in, a_out, b_in, b_out) <= p + FLOOR_SLACK


def test_two_pool_without_price_gap_trades_nothing():
    assert amm.optimal_two_pool_input(10**18, 2 * 10**18, 2 * 10**18, 10**18) == 0
    assert amm.optimal_two_pool_input_nb(10**15, 2 * 10**15, 2 * 10**15, 10**15, 997, 1000) == 0


def test_two_pool_with_gap_profits_on_big_reserves():
    # pool B prices Y 5% richer than pool A: the optimum is a real, profitable trade
    a_in, a_out, b_in, b_out = 10**24, 2 * 10**24, 2 * 10**24, 105 * 10**22
    x = amm.optimal_two_pool_input(a_in, a_out, b_in, b_out)
    p = _profit(x, a_in, a_out, b_in, b_out)
    assert x > 0 and p > 0
    for dx in (-(10**15), -1, 1, 10**15):
        assert _profit(x + dx, a_in, a_out, b_in, b_out) <= p


@settings(max_examples=40, deadline=None)
@given(st.integers(100, 3000), st.integers(100, 3000), st.integers(1, 50), st.integers(1, 50))
def test_cex_dex_optimum_matches_brute_force(r_in, r_out, pn, pd):
    def profit(x):
        return contract(x, r_in, r_out) * pn // pd - x

    best_p = max(max(profit(x) for x in range(0, 3 * r_in)), 0)
    x = amm.optimal_cex_dex_input(r_in, r_out, pn, pd)
    assert (profit(x) if x else 0) >= best_p - FLOOR_SLACK


@pytest.mark.parametrize(
    "expected,bps,floor", [(10_000, 50, 9_950), (999, 30, 996), (0, 100, 0), (7, 0, 7), (10**30, 10_000, 0)]
)
def test_min_out_with_slippage(expected, bps, floor):
    assert amm.min_out_with_slippage(expected, bps) == floor


@pytest.mark.parametrize("expected,bps", [(-1, 10), (10, -1), (10, 10_001)])
def test_min_out_rejects_bad_arguments(expected, bps):
    with pytest.raises(ValueError):
        amm.min_out_with_slippage(expected, bps)


def test_two_pool_sawtooth_when_one_output_unit_costs_many_input_units():
    # pool A gives ~1 Y per 1e9 X: the profit is a sawtooth whose teeth start where the
    # output steps up; the search must land on a tooth start, and quickly
    a_in, a_out, b_in, b_out = 999_999_999_999_999, 1_000_000, 900_000, 996_999_999_999_999
    x = amm.optimal_two_pool_input(a_in, a_out, b_in, b_out)
    assert amm.optimal_two_pool_input_nb(a_in, a_out, b_in, b_out, 997, 1000) == x
    p = _profit(x, a_in, a_out, b_in, b_out)
    y = contract(x, a_in, a_out)
    assert contract(x - 1, a_in, a_out) < y  # x is the first input giving y
    for yy in range(max(y - 50, 1), y + 50):  # no other tooth nearby is higher
        xx = amm.amount_in_min(yy, a_in, a_out)
        assert _profit(xx, a_in, a_out, b_in, b_out) <= p


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1 << 40), st.integers(2, 1 << 40), st.integers(1, 1 << 40))
def test_amount_in_min_is_the_smallest_input_reaching_the_output(ri, ro, y):
    y = y % ro or 1
    x = amm.amount_in_min(y, ri, ro)
    assert contract(x, ri, ro) >= y and (x == 0 or contract(x - 1, ri, ro) < y)
    assert amm.amount_in_min_nb(y, ri, ro, 997, 1000) == x
    assert (
        amm.amount_in_min(ro, ri, ro) is None
        and amm.amount_in_min_nb(ro, ri, ro, 997, 1000) == amm.AMM_BAD_INPUT
    )


def test_two_pool_with_reserves_beyond_float_range():
    big = 10**160
    x = amm.optimal_two_pool_input(big, 2 * big, 2 * big, 105 * big // 100)
    assert x > 0 and _profit(x, big, 2 * big, 2 * big, 105 * big // 100) > 0
