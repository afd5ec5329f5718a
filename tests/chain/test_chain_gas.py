"""EIP-1559 fees under caps: quotes stay inside them, and a transaction that would need more
is refused with GasCapExceeded before anything reaches the node."""

from __future__ import annotations

import pytest
from chainkit import make_client, rpc

from adapters.web3.arbitrage import plan_two_pool
from adapters.web3.config import Web3VenueConfig
from adapters.web3.constants import GWEI
from adapters.web3.execution import AtomicTrader
from adapters.web3.gas import Fees, GasPolicy
from basis_core.errors import GasCapExceeded

pytestmark = pytest.mark.chain


def _policy(**kw) -> GasPolicy:
    return GasPolicy(Web3VenueConfig(**kw))


def test_quote_is_base_fee_times_multiplier_plus_capped_tip():
    p = _policy(max_fee_gwei=100, max_priority_fee_gwei=2, default_priority_fee_gwei=1)
    assert p.quote(10 * GWEI, 5 * GWEI) == Fees(22 * GWEI, 2 * GWEI)  # tip capped at 2
    assert p.quote(10 * GWEI, None) == Fees(21 * GWEI, 1 * GWEI)  # default tip
    assert p.quote(60 * GWEI, 1 * GWEI) == Fees(100 * GWEI, 1 * GWEI)  # clamped to the cap, still includable


def test_quote_refuses_when_even_base_fee_plus_tip_breaks_the_cap():
    p = _policy(max_fee_gwei=100, max_priority_fee_gwei=2)
    with pytest.raises(GasCapExceeded) as info:
        p.quote(99 * GWEI + 1, 1 * GWEI)
    assert (info.value.field, info.value.cap) == ("max_fee_per_gas", 100 * GWEI)
    assert info.value.wanted == 100 * GWEI + 1


def test_bump_raises_both_fields_by_at_least_an_eighth_and_respects_caps():
    p = _policy(max_fee_gwei=10, max_priority_fee_gwei=2)
    f = p.bump(Fees(8 * GWEI, 1 * GWEI))
    assert f.max_fee_per_gas == 9 * GWEI and f.max_priority_fee_per_gas == 1125 * GWEI // 1000
    with pytest.raises(GasCapExceeded):
        p.bump(Fees(9 * GWEI, 1 * GWEI))
    with pytest.raises(GasCapExceeded) as info:
        p.bump(Fees(5 * GWEI, 2 * GWEI))
    assert info.value.field == "max_priority_fee_per_gas"


def test_gas_limit_adds_the_margin_and_refuses_estimates_above_max_gas():
    p = _policy(gas_margin_pct=125, max_gas=100_000)
    assert p.gas_limit(40_000) == 50_000 and p.gas_limit(90_000) == 100_000
    with pytest.raises(GasCapExceeded) as info:
        p.gas_limit(100_001)
    assert info.value.field == "gas"


def test_sent_transaction_carries_fees_inside_the_caps(world, decoder):
    c = make_client(world.url, decoder, 0, max_fee_gwei=2.5, max_priority_fee_gwei=0.5)
    sent = c.send(c.address, b"", gas=21_000)
    tx = rpc(world.url, "eth_getTransactionByHash", [sent.tx_hash])
    assert int(tx["maxFeePerGas"], 16) <= 2.5 * GWEI and int(tx["maxPriorityFeePerGas"], 16) <= 0.5 * GWEI
    assert c.wait(sent).ok


def test_base_fee_spike_above_the_cap_refuses_to_send_and_sends_nothing(world, decoder):
    c = make_client(world.url, decoder, 0, max_fee_gwei=50)
    rpc(world.url, "anvil_setNextBlockBaseFeePerGas", [hex(80 * GWEI)])
    rpc(world.url, "evm_mine")
    counts = c.nonce_counts()
    plan, _ = plan_two_pool(c, world.pool_a, world.pool_b, world.y, deadline=2**40)
    with pytest.raises(GasCapExceeded) as info:
        AtomicTrader(c, world.executor).execute(plan)
    assert info.value.field == "max_fee_per_gas" and info.value.wanted > 50 * GWEI
    assert c.nonce_counts() == counts and rpc(world.url, "txpool_content")["pending"] == {}


def test_trade_needing_more_gas_than_max_gas_is_refused(world, decoder):
    c = make_client(world.url, decoder, 0, max_gas=60_000)
    plan, _ = plan_two_pool(c, world.pool_a, world.pool_b, world.y, deadline=2**40)
    with pytest.raises(GasCapExceeded) as info:
        AtomicTrader(c, world.executor).execute(plan)
    assert info.value.field == "gas" and info.value.wanted > 60_000


def test_replacement_that_would_break_the_cap_is_refused(world, decoder):
    c = make_client(world.url, decoder, 0, max_fee_gwei=2.5, max_priority_fee_gwei=1)
    rpc(world.url, "anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
    assert c.next_base_fee() == GWEI
    rpc(world.url, "evm_setAutomine", [False])
    sent = c.send(c.address, b"", gas=21_000)
    assert sent.fees.max_fee_per_gas == int(2.5 * GWEI)
    with pytest.raises(GasCapExceeded):
        c.replace(sent)


def test_explicit_fees_or_gas_above_the_caps_are_refused_before_signing(world, decoder):
    c = make_client(world.url, decoder, 0, max_fee_gwei=10, max_priority_fee_gwei=1, max_gas=100_000)
    counts = c.nonce_counts()
    for kw, field in (
        (dict(fees=Fees(11 * GWEI, GWEI)), "max_fee_per_gas"),
        (dict(fees=Fees(5 * GWEI, 2 * GWEI)), "max_priority_fee_per_gas"),
        (dict(gas=100_001), "gas"),
    ):
        with pytest.raises(GasCapExceeded) as info:
            c.send(c.address, b"", **({"gas": 21_000} | kw))
        assert info.value.field == field
    assert c.nonce_counts() == counts and c.nonces.next_nonce in (None, counts[1])
