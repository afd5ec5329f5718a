"""Nonces on a real node: no gap, no reuse; a dropped transaction, a replacement and a
cancellation each leave the account's nonce sequence contiguous."""

from __future__ import annotations

import pytest
from chainkit import E18, make_client, rpc, swap
from eth_account import Account

from adapters.web3.auth import Signer
from adapters.web3.client import EvmClient
from adapters.web3.config import Web3VenueConfig
from adapters.web3.nonce import NonceManager
from basis_core.errors import NonceConflict, OrderRejected

pytestmark = pytest.mark.chain


def _mined_nonces(c: EvmClient, hashes) -> dict[str, int | None]:
    """tx hash -> block number it was mined in (None if not mined)."""
    out = {}
    for h in hashes:
        r = c.get_receipt(h)
        out[h] = r.block_number if r else None
    return out


# -- the bookkeeping alone ---------------------------------------------------------------


def test_manager_hands_out_consecutive_nonces_and_reuses_only_the_released_top_one():
    m = NonceManager()
    m.sync(latest=5, pending=5)
    assert [m.allocate() for _ in range(3)] == [5, 6, 7]
    m.sent(5, "0xa", b"", kind="trade")
    m.sent(6, "0xb", b"")
    m.release(7)  # never reached the node, top of the range: reused
    assert m.allocate() == 7
    m.release(6)  # 6 did reach the node once: stays in flight
    assert m.allocate() == 8 and m.holes == []


def test_manager_turns_a_lower_failed_send_into_a_hole_filled_first():
    m = NonceManager()
    m.sync(0, 0)
    a, b = m.allocate(), m.allocate()
    m.sent(b, "0xb", b"")
    m.release(a)  # below a sent nonce: a hole
    assert m.holes == [0] and m.gaps({"0xb"}) == [0]
    assert m.allocate() == 0 and m.allocate() == 2


def test_manager_forgets_mined_nonces_and_follows_a_node_that_is_ahead():
    m = NonceManager()
    m.sync(0, 0)
    for n in range(3):
        m.sent(m.allocate(), f"0x{n}", b"")
    m.mined(2)
    assert [f.nonce for f in m.inflight()] == [2]
    assert m.gaps({"0x2"}) == [] and m.gaps(set()) == [2]
    m.sync(latest=10, pending=12)  # the key was used elsewhere
    assert m.allocate() == 12 and m.inflight() == []


def test_manager_refuses_to_allocate_before_it_knows_the_chain():
    with pytest.raises(RuntimeError):
        NonceManager().allocate()


# -- against anvil -----------------------------------------------------------------------


def test_sends_use_consecutive_nonces_without_gaps(world, owner):
    latest0, _ = owner.nonce_counts()
    sent = [owner.send(owner.address, b"", gas=21_000) for _ in range(4)]
    assert [s.nonce for s in sent] == list(range(latest0, latest0 + 4))
    assert all(owner.wait(s).ok for s in sent)
    assert owner.nonce_counts() == (latest0 + 4, latest0 + 4)


def test_dropped_transaction_is_filled_by_recovery_and_leaves_no_gap(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    latest0, _ = owner.nonce_counts()
    a = owner.send(owner.address, b"", value=1, gas=21_000)
    rpc(world.url, "anvil_dropTransaction", [a.tx_hash])  # the node loses it
    b = owner.send(owner.address, b"", value=2, gas=21_000)  # queued behind the gap
    assert (a.nonce, b.nonce) == (latest0, latest0 + 1)
    rpc(world.url, "evm_mine")
    assert owner.nonce_counts()[0] == latest0  # b cannot be mined over the gap
    assert _mined_nonces(owner, [a.tx_hash, b.tx_hash]) == {a.tx_hash: None, b.tx_hash: None}

    actions = owner.recover_nonces()

    assert actions == [(latest0, "cancel")]
    rpc(world.url, "evm_mine")
    assert owner.nonce_counts() == (latest0 + 2, latest0 + 2)
    mined = _mined_nonces(owner, [a.tx_hash, b.tx_hash])
    assert mined[a.tx_hash] is None and mined[b.tx_hash] is not None
    c = owner.send(owner.address, b"", gas=21_000)  # and the next nonce follows on
    assert c.nonce == latest0 + 2


def test_dropping_a_transaction_with_dependents_refills_every_lost_nonce(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    latest0, _ = owner.nonce_counts()
    sent = [owner.send(owner.address, b"", value=i + 1, gas=21_000) for i in range(3)]
    rpc(world.url, "anvil_dropTransaction", [sent[1].tx_hash])
    lost = [s.nonce for s in sent if rpc(world.url, "eth_getTransactionByHash", [s.tx_hash]) is None]
    assert sent[1].nonce in lost  # (anvil also drops its dependents)
    assert owner.recover_nonces() == [(n, "cancel") for n in lost]
    rpc(world.url, "evm_mine")
    assert owner.nonce_counts() == (latest0 + 3, latest0 + 3)
    assert owner.get_receipt(sent[0].tx_hash).ok


def test_dropped_transaction_can_be_rebroadcast_instead(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    latest0, _ = owner.nonce_counts()
    a = owner.send(owner.address, b"", value=1, gas=21_000)
    rpc(world.url, "anvil_dropTransaction", [a.tx_hash])
    assert owner.recover_nonces(rebroadcast=True) == [(latest0, "rebroadcast")]
    rpc(world.url, "evm_mine")
    assert owner.get_receipt(a.tx_hash).ok and owner.nonce_counts()[0] == latest0 + 1


def test_replacement_with_higher_fees_takes_the_nonce_and_the_original_never_mines(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    latest0, _ = owner.nonce_counts()
    slow = swap(owner, world.pool_a, world.y, 1_000 * E18, gas=200_000)
    fast = owner.replace(slow)
    assert fast.nonce == slow.nonce and fast.fees.max_fee_per_gas > slow.fees.max_fee_per_gas
    assert fast.fees.max_priority_fee_per_gas > slow.fees.max_priority_fee_per_gas
    rpc(world.url, "evm_mine")
    assert owner.get_receipt(slow.tx_hash) is None and owner.wait(fast).ok
    assert owner.nonce_counts() == (latest0 + 1, latest0 + 1)


def test_cancellation_is_a_zero_value_self_transfer_with_the_same_nonce(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    y0 = owner.erc20_balance(world.y, owner.address)
    trade = swap(owner, world.pool_a, world.y, 1_000 * E18, gas=200_000)
    cancel = owner.cancel(trade)
    rpc(world.url, "evm_mine")
    rec = owner.wait(cancel)
    tx = rpc(world.url, "eth_getTransactionByHash", [cancel.tx_hash])
    assert rec.ok and int(tx["nonce"], 16) == trade.nonce and int(tx["value"], 16) == 0
    assert tx["to"].lower() == owner.address.lower() and tx["input"] == "0x"
    assert owner.get_receipt(trade.tx_hash) is None
    assert owner.erc20_balance(world.y, owner.address) == y0  # the trade never happened


def test_send_that_never_reaches_the_pool_gives_its_nonce_back(world, owner, decoder):
    broke = EvmClient(
        Web3VenueConfig(rpc_url=world.url, chain_id=31337, name="anvil"), Signer(Account.create()), decoder
    )
    with pytest.raises(OrderRejected) as info:
        broke.send(broke.address, b"", gas=21_000)
    assert info.value.reason == "insufficient_funds"
    owner.send(broke.address, b"", value=E18, gas=21_000)
    assert broke.wait(broke.send(broke.address, b"", gas=21_000)).ok
    assert broke.nonce_counts() == (1, 1)  # nonce 0 used once, no gap


def test_nonce_used_by_another_process_is_detected_and_resynced(world, owner, decoder):
    owner.send(owner.address, b"", gas=21_000)
    twin = make_client(world.url, decoder, 0)  # same key, own manager
    twin.wait(twin.send(twin.address, b"", gas=21_000))
    twin.wait(twin.send(twin.address, b"", gas=21_000))
    with pytest.raises(NonceConflict):
        owner.send(owner.address, b"", gas=21_000)
    nxt = owner.send(owner.address, b"", gas=21_000)  # resynced: no reuse, no gap
    assert owner.wait(nxt).ok and nxt.nonce == owner.nonce_counts()[0] - 1


def test_resending_the_exact_same_transaction_is_idempotent(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    a = owner.send(owner.address, b"", value=3, gas=21_000)
    again = owner.send(owner.address, b"", value=3, gas=21_000, fees=a.fees, nonce=a.nonce)  # "already known"
    assert again.tx_hash == a.tx_hash
    rpc(world.url, "evm_mine")
    assert owner.wait(a).ok and owner.nonce_counts()[0] == a.nonce + 1


def test_refusal_messages_map_through_one_table():
    from adapters.web3.constants import send_refusal_code

    assert send_refusal_code("eth_sendRawTransaction: nonce too low") == "nonce_too_low"
    assert send_refusal_code("replacement transaction underpriced") == "underpriced"
    assert send_refusal_code("Insufficient funds for gas * price + value") == "insufficient_funds"
    assert (
        send_refusal_code("already known")
        == send_refusal_code("transaction already imported")
        == "already_known"
    )
    assert send_refusal_code("something new") == "rejected"
