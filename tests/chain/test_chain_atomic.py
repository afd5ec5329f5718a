"""Atomic two-pool arbitrage on a real anvil node: profit lands exactly as the kernel says,
failed simulations are never sent, a stale trade reverts on chain with no token exposure."""

from __future__ import annotations

import json

import pytest
from chainkit import E18, rpc, swap

from adapters.web3.arbitrage import plan_two_pool, read_pool
from adapters.web3.calldata import Leg, encode_call
from adapters.web3.constants import EXECUTE_SIGNATURE
from adapters.web3.execution import AtomicTrader, Outcome, plan_path
from basis_core import schema
from basis_core.errors import ChainRevert, OrderRejected
from basis_core.kernels import amm

pytestmark = pytest.mark.chain


def _now(c) -> int:
    return int(c.latest_block()["timestamp"], 16)


def _balances(c, world):
    return {
        "exec_y": c.erc20_balance(world.y, world.executor),
        "exec_x": c.erc20_balance(world.x, world.executor),
        "a_x": c.erc20_balance(world.x, world.pool_a),
        "a_y": c.erc20_balance(world.y, world.pool_a),
        "b_x": c.erc20_balance(world.x, world.pool_b),
        "b_y": c.erc20_balance(world.y, world.pool_b),
    }


def test_two_pool_arbitrage_executes_atomically_and_profit_equals_kernel_prediction(world, owner):
    planned = plan_two_pool(
        owner,
        world.pool_a,
        world.pool_b,
        world.y,
        deadline=_now(owner) + 60,
        slippage_bps=10,
        tag=schema.make_coid(42, 0),
    )
    assert planned is not None
    plan, quote = planned
    # the kernel's prediction, recomputed from the reserves read on chain
    a, b = read_pool(owner, world.pool_a), read_pool(owner, world.pool_b)
    x = amm.optimal_two_pool_input(*a.reserves_for(world.y), *b.reserves_for(world.x))
    mid = amm.amount_out(x, *a.reserves_for(world.y))
    final = amm.amount_out(mid, *b.reserves_for(world.x))
    assert (plan.amount_in, quote.final_out) == (x, final) and final > x
    eth0, before = owner.eth_balance(owner.address), _balances(owner, world)

    result = AtomicTrader(owner, world.executor).execute(plan)

    assert result.outcome == Outcome.FILLED and result.ok and not result.exposure_free
    assert result.simulated_out == final and result.amount_out == final
    after = _balances(owner, world)
    assert after["exec_y"] - before["exec_y"] == final - x == result.profit
    assert after["exec_x"] == before["exec_x"]  # nothing left in the middle token
    assert (after["a_y"] - before["a_y"], before["a_x"] - after["a_x"]) == (x, mid)
    assert (after["b_x"] - before["b_x"], before["b_y"] - after["b_y"]) == (mid, final)
    assert eth0 - owner.eth_balance(owner.address) == result.gas_cost_wei > 0
    rec = result.to_record(seq=1, venue_id=3)
    assert schema.verify(rec).all() and rec[0]["sub"] == schema.OrderEventType.FILL
    assert rec[0]["coid"] == schema.make_coid(42, 0)
    # the arbitrage closed the gap: a second plan finds (almost) nothing
    again = plan_two_pool(
        owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60, min_profit=10**15
    )
    assert again is None


def test_trade_whose_simulation_fails_is_never_sent(world, owner):
    planned = plan_two_pool(owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60)
    plan, quote = planned
    greedy = plan_path(plan.legs, plan.amount_in, quote.profit + 1, plan.deadline)  # one wei too much
    nonce0, block0 = owner.nonce_counts(), owner.block_number()
    before = _balances(owner, world)

    result = AtomicTrader(owner, world.executor).execute(greedy)

    assert result.outcome == Outcome.NOT_SENT and result.tx_hash is None and result.exposure_free
    assert result.reason.error_name == "ProfitBelowMin"
    assert result.reason.revert_args == (plan.amount_in, quote.final_out, quote.profit + 1)
    assert owner.nonce_counts() == nonce0 and owner.block_number() == block0
    assert _balances(owner, world) == before
    rec = result.to_record(seq=2, venue_id=3)
    assert rec[0]["sub"] == schema.OrderEventType.REJECT and rec[0]["reason"] == schema.RejectReason.SLIPPAGE


def test_expired_deadline_and_foreign_caller_fail_simulation_with_decoded_errors(world, owner, other):
    plan, _ = plan_two_pool(owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60)
    old = plan_path(plan.legs, plan.amount_in, 1, _now(owner) - 1)
    res = AtomicTrader(owner, world.executor).execute(old)
    assert res.outcome == Outcome.NOT_SENT and res.reason.error_name == "Expired"
    assert res.reject_reason() == schema.RejectReason.EXPIRED
    res = AtomicTrader(other, world.executor).execute(plan)
    assert (
        res.outcome == Outcome.NOT_SENT
        and res.reason.error_name == "NotOwner"
        and res.reason.revert_args == ()
    )


def test_require_strings_custom_errors_and_local_checks_decode_to_typed_errors(world, owner):
    res = AtomicTrader(owner, world.executor).execute(
        plan_path(
            (Leg(world.pool_a, world.y, 0), Leg(world.pool_b, world.y, 0)), 10 * E18, 0, _now(owner) + 60
        )
    )
    assert res.outcome == Outcome.NOT_SENT
    assert res.reason.error_name == "BrokenPath" and res.reason.revert_args == (1,)
    # a one-leg path is refused locally; sent raw it meets the contract's require string
    with pytest.raises(OrderRejected) as info:
        plan_path((Leg(world.pool_a, world.y, 0),), E18, 0, _now(owner) + 60).calldata()
    assert info.value.reason == "bad_input"
    raw = encode_call(
        EXECUTE_SIGNATURE,
        ["(address,address,uint256)[]", "uint256", "uint256", "uint256", "bytes32"],
        [[(world.pool_a, world.y, 0)], E18, 0, _now(owner) + 60, bytes(32)],
    )
    with pytest.raises(ChainRevert) as info:
        owner.call(world.executor, raw)
    assert info.value.error_name == "Error"
    assert info.value.revert_args == ("Executor: path must have 2..4 legs",)
    with pytest.raises(ChainRevert) as info:
        owner.call(
            world.pool_a, encode_call("getAmountOut(uint256,uint256,uint256)", ["uint256"] * 3, [0, 1, 1])
        )
    assert info.value.revert_args == ("Pool: INSUFFICIENT_INPUT_AMOUNT",)
    with pytest.raises(ChainRevert) as info:
        owner.call(
            world.pool_a, encode_call("quote(address,uint256)", ["address", "uint256"], [world.executor, 1])
        )
    assert (info.value.error_name, info.value.revert_args) == ("UnknownToken", (world.executor,))


def test_pool_moved_between_simulation_and_mining_reverts_on_chain_without_exposure(world, owner, other):
    planned = plan_two_pool(
        owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60, slippage_bps=5
    )
    plan, quote = planned
    trader = AtomicTrader(owner, world.executor)
    assert trader.simulate(plan) == quote.final_out  # the gate passes...
    rpc(world.url, "evm_setAutomine", [False])
    fees = owner.quote_fees()
    sent = trader.dispatch(plan)  # ...and the trade is broadcast
    # a competitor buys X on pool A first (higher tip: ordered ahead of us in the same block)
    bump = owner.gas.bump(fees)
    swap(other, world.pool_a, world.y, 20_000 * E18, gas=200_000, fees=bump)
    before, eth0 = _balances(owner, world), owner.eth_balance(owner.address)
    before_exec = (before["exec_y"], before["exec_x"])
    rpc(world.url, "evm_mine")

    result = trader.settle(plan, sent, simulated_out=quote.final_out)

    assert result.outcome == Outcome.REVERTED and not result.ok and result.exposure_free
    assert result.reason.error_name == "LegBelowMin"
    leg, got, minimum = result.reason.revert_args
    assert leg == 0 and got < minimum == plan.legs[0].min_out
    after = _balances(owner, world)
    assert (after["exec_y"], after["exec_x"]) == before_exec  # no token moved for us
    assert eth0 - owner.eth_balance(owner.address) == result.gas_cost_wei > 0
    rec = result.to_record(seq=3, venue_id=3)
    assert rec[0]["sub"] == schema.OrderEventType.REJECT and rec[0]["reason"] == schema.RejectReason.SLIPPAGE
    assert rec[0]["fee"] == pytest.approx(result.gas_cost_wei * 1e-18)
    logged = json.loads(json.dumps(result.as_dict()))
    assert logged["outcome"] == "REVERTED" and logged["error"] == "LegBelowMin"
    assert logged["error_args"] == [str(a) for a in (leg, got, minimum)] and logged["profit"] == "0"
    assert logged["tx_hash"] == sent.tx_hash and int(logged["gas_cost_wei"]) == result.gas_cost_wei


def test_stale_plan_after_the_pool_moved_is_refused_by_the_gate_or_reverts_if_sent_blind(world, owner, other):
    plan, quote = plan_two_pool(owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60)
    trader = AtomicTrader(owner, world.executor)
    other.wait(swap(other, world.pool_a, world.y, 30_000 * E18, gas=200_000))  # mined: the gap is gone
    before, counts = _balances(owner, world), owner.nonce_counts()

    gated = trader.execute(plan)  # simulation at latest

    assert gated.outcome == Outcome.NOT_SENT and gated.reason.error_name in ("LegBelowMin", "ProfitBelowMin")
    assert owner.nonce_counts() == counts and _balances(owner, world) == before
    blind = trader.settle(plan, trader.dispatch(plan, gas=400_000))  # no gate, explicit gas
    assert blind.outcome == Outcome.REVERTED and blind.reason.error_name == gated.reason.error_name
    assert blind.reason.revert_args == gated.reason.revert_args
    assert _balances(owner, world) == before and blind.gas_cost_wei > 0


def test_four_leg_multi_hop_path_pays_exactly_the_kernel_chain(world, owner):
    a, b = read_pool(owner, world.pool_a), read_pool(owner, world.pool_b)
    reserves = {
        world.pool_a: dict(zip((a.token0, a.token1), (a.reserve0, a.reserve1))),
        world.pool_b: dict(zip((b.token0, b.token1), (b.reserve0, b.reserve1))),
    }
    hops = [(world.pool_a, world.y, world.x), (world.pool_b, world.x, world.y)] * 2
    amount = amm.optimal_two_pool_input(*a.reserves_for(world.y), *b.reserves_for(world.x)) // 10
    running, legs = amount, []
    for pool, tin, tout in hops:  # the kernel, with each leg moving its pool
        r = reserves[pool]
        out = amm.amount_out(running, r[tin], r[tout])
        r[tin], r[tout] = r[tin] + running, r[tout] - out
        legs.append(Leg(pool, tin, out))  # min_out = the exact expected output
        running = out
    assert running > amount
    before = owner.erc20_balance(world.y, world.executor)

    res = AtomicTrader(owner, world.executor).execute(
        plan_path(legs, amount, running - amount, _now(owner) + 60)
    )

    assert res.ok and res.amount_out == running == res.simulated_out
    assert owner.erc20_balance(world.y, world.executor) - before == running - amount
    assert read_pool(owner, world.pool_a).reserves_for(world.y) == (
        reserves[world.pool_a][world.y],
        reserves[world.pool_a][world.x],
    )


def test_size_capped_by_inventory_still_pays_exactly_the_kernel_profit(world, owner):
    full, _ = plan_two_pool(owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60)
    cap = full.amount_in // 3
    plan, quote = plan_two_pool(
        owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60, max_in=cap
    )
    a, b = read_pool(owner, world.pool_a), read_pool(owner, world.pool_b)
    expected = amm.amount_out(amm.amount_out(cap, *a.reserves_for(world.y)), *b.reserves_for(world.x))
    assert plan.amount_in == cap and quote.final_out == expected
    before = owner.erc20_balance(world.y, world.executor)
    res = AtomicTrader(owner, world.executor).execute(plan)
    assert res.ok and owner.erc20_balance(world.y, world.executor) - before == expected - cap == res.profit
    assert (
        plan_two_pool(owner, world.pool_a, world.pool_b, world.y, deadline=_now(owner) + 60, max_in=0) is None
    )
