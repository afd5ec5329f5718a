"""Kernel equals contract: basis_core.kernels.amm gives exactly the pool contract's integer
result, checked with eth_call against the deployed ConstantProductPool."""

from __future__ import annotations

import random

import pytest
from chainkit import E18, swap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import HTTPProvider

from adapters.web3.arbitrage import quote_two_pool, read_pool
from adapters.web3.calldata import encode_call
from basis_core.kernels import amm

pytestmark = pytest.mark.chain

UINT112 = (1 << 112) - 1
SIG, TYPES = "getAmountOut(uint256,uint256,uint256)", ["uint256"] * 3


def _sized(lo: int, hi: int):
    """Integers spread over magnitudes (log-uniform-ish) rather than clustered near `hi`."""
    return st.integers(min_value=lo.bit_length(), max_value=hi.bit_length()).flatmap(
        lambda bits: st.integers(min_value=max(lo, 1 << (bits - 1)), max_value=min(hi, (1 << bits) - 1))
    )


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(amount_in=_sized(1, UINT112), reserve_in=_sized(1, UINT112), reserve_out=_sized(1, UINT112))
def test_kernel_amount_out_equals_the_pool_contract_for_1000_cases(
    world, owner, amount_in, reserve_in, reserve_out
):
    data = encode_call(SIG, TYPES, [amount_in, reserve_in, reserve_out])
    on_chain = int.from_bytes(owner.call(world.pool_a, data), "big")
    assert amm.amount_out(amount_in, reserve_in, reserve_out) == on_chain


def test_kernel_equals_contract_over_2000_seeded_cases_in_one_batch(world, owner):
    rng = random.Random(20261124)
    cases = []
    for _ in range(2000):
        bits = [rng.randint(1, 112) for _ in range(3)]
        cases.append(tuple(rng.randint(1 << (b - 1), (1 << b) - 1) for b in bits))
    cases += [
        (1, 1, 1),
        (1, UINT112, 1),
        (UINT112, 1, UINT112),
        (UINT112, UINT112, UINT112),
        (999, 1000, 1000),
    ]
    provider = HTTPProvider(world.url)
    calls = [
        ("eth_call", [{"to": world.pool_a, "data": "0x" + encode_call(SIG, TYPES, list(c)).hex()}, "latest"])
        for c in cases
    ]
    answers = provider.make_batch_request(calls)
    assert len(answers) == len(cases)
    mismatches = [(c, a) for c, a in zip(cases, answers) if amm.amount_out(*c) != int(a["result"], 16)]
    assert mismatches == []


def test_kernel_on_live_reserves_equals_the_pool_quote_after_each_move(world, owner, other):
    # move pool A a few times; after each move the kernel on the reserves read from chain equals
    # the pool's own quote() for several sizes
    for step in range(4):
        state = read_pool(owner, world.pool_a)
        for amount in (1, 10**6, 3 * E18 + 7, 10**9 * E18):
            q = int.from_bytes(
                owner.call(
                    world.pool_a,
                    encode_call("quote(address,uint256)", ["address", "uint256"], [world.x, amount]),
                ),
                "big",
            )
            assert amm.amount_out(amount, *state.reserves_for(world.x)) == q
        other.wait(swap(other, world.pool_a, world.y if step % 2 else world.x, (step + 1) * 1_000 * E18 // 7))


def test_kernel_sized_input_is_the_contract_optimum_among_its_neighbours(world, owner):
    a, b = read_pool(owner, world.pool_a), read_pool(owner, world.pool_b)
    q = quote_two_pool(a, b, world.y)
    assert q is not None and q.profit > 0

    def on_chain_profit(x):
        mid = int.from_bytes(
            owner.call(
                world.pool_a, encode_call("quote(address,uint256)", ["address", "uint256"], [world.y, x])
            ),
            "big",
        )
        out = int.from_bytes(
            owner.call(
                world.pool_b, encode_call("quote(address,uint256)", ["address", "uint256"], [world.x, mid])
            ),
            "big",
        )
        return out - x

    best = on_chain_profit(q.amount_in)
    assert best == q.profit
    for dx in (-1000, -1, 1, 1000, q.amount_in // 100):
        assert on_chain_profit(q.amount_in + dx) <= best
