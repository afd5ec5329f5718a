"""Swaps through a bundle relay instead of the public mempool, on anvil: the local relay
(tests/bundle_relay.py) simulates with eth_callBundle and builds eth_sendBundle's bundles into
the next blocks. A bundle lands; one whose simulation reverts is refused with its reason and
never sent; one no block includes is reported EXPIRED once the chain is past its last block,
its nonce given back (the next swap takes it: no gap)."""

from __future__ import annotations

import asyncio
import time

import pytest
from bundle_relay import LocalRelay
from chainkit import E18, rpc

from adapters.web3.bundle import BundleRelay
from adapters.web3.venue import PoolMarket, Web3Venue
from basis_core.errors import OrderRejected
from basis_core.venue import OrderRequest, OrderStatus, OrderType, OrderUpdate, Side

pytestmark = pytest.mark.chain

BLOCKS = 3


@pytest.fixture
def relay(world):
    with LocalRelay(world.url) as r:
        yield r


def _venue(owner, world, relay) -> Web3Venue:
    market = PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")
    client = BundleRelay(relay.url, "anvil", owner.signer, owner.decoder)
    v = Web3Venue(owner, [market], poll_s=0.01, relay=client, bundle_blocks=BLOCKS)
    asyncio.run(v.start())
    return v


def _sell(coid: str, qty: float = 1.0, price: float | None = 1800.0, type_=OrderType.IOC) -> OrderRequest:
    return OrderRequest(coid, "WETH/TUSD", Side.SELL, type_, qty, price)


def test_a_bundle_lands_in_the_next_block(world, owner, relay):
    venue = _venue(owner, world, relay)
    head = int(rpc(world.url, "eth_blockNumber"), 16)
    x0, mined0 = owner.erc20_balance(world.x, owner.address), owner.nonce_counts()[0]
    view = asyncio.run(venue.submit(_sell("31")))
    assert view.status == OrderStatus.FILLED and view.filled_qty == 1.0
    assert relay.calls == ["eth_callBundle"] + ["eth_sendBundle"] * BLOCKS
    assert relay.signers == {owner.address}  # every request signed by the venue's account
    assert relay.included == [(head + 1, relay.included[0][1])]  # built into the next block
    rec = rpc(world.url, "eth_getTransactionReceipt", [view.venue_order_id])
    assert int(rec["blockNumber"], 16) == head + 1 and rec["status"] == "0x1"
    assert x0 - owner.erc20_balance(world.x, owner.address) == E18
    assert owner.nonce_counts() == (mined0 + 1, mined0 + 1)
    asyncio.run(venue.close())


def test_a_bundle_whose_simulation_reverts_is_refused_and_never_sent(world, owner, relay):
    venue = _venue(owner, world, relay)
    counts = owner.nonce_counts()
    held = owner.erc20_balance(world.x, owner.address) / E18
    with pytest.raises(OrderRejected) as info:
        asyncio.run(venue.submit(_sell("32", held * 2, None, OrderType.MARKET)))
    assert info.value.reason == "insufficient_funds" and "bundle simulation" in str(info.value)
    assert "TestToken: balance" in str(info.value)
    assert relay.calls == ["eth_callBundle"] and not relay.held and not relay.included
    assert owner.nonce_counts() == counts
    vo = asyncio.run(venue.fetch_order("32"))
    assert vo.status == OrderStatus.REJECTED and vo.reason.name == "INSUFFICIENT_FUNDS"
    # the nonce went back: the next swap takes it and lands
    view = asyncio.run(venue.submit(_sell("33")))
    assert view.status == OrderStatus.FILLED
    tx = rpc(world.url, "eth_getTransactionByHash", [view.venue_order_id])
    assert int(tx["nonce"], 16) == counts[0]
    asyncio.run(venue.close())


def test_a_bundle_no_block_includes_is_reported_expired_and_its_nonce_reused(world, owner, relay):
    venue = _venue(owner, world, relay)
    relay.include = False  # outbid at every block
    x0, y0, eth0 = (
        owner.erc20_balance(world.x, owner.address),
        owner.erc20_balance(world.y, owner.address),
        owner.eth_balance(owner.address),
    )
    counts = owner.nonce_counts()

    async def go():
        events = venue.user_events()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0)
        task = asyncio.ensure_future(venue.submit(_sell("34")))
        deadline = time.monotonic() + 10
        while len(relay.held) < BLOCKS:
            assert time.monotonic() < deadline, "the bundles never reached the relay"
            await asyncio.sleep(0.005)
        for _ in range(BLOCKS):  # the blocks it was sent for pass without it
            await asyncio.sleep(0.02)
            assert not task.done()
            await asyncio.to_thread(rpc, world.url, "evm_mine")
        view = await asyncio.wait_for(task, 10)
        update = await asyncio.wait_for(first, 5)
        return view, update

    view, update = asyncio.run(go())
    assert view.status == OrderStatus.EXPIRED and view.filled_qty == 0.0
    assert isinstance(update, OrderUpdate) and update.order.status == OrderStatus.EXPIRED
    assert asyncio.run(venue.fetch_order("34")).status == OrderStatus.EXPIRED
    assert asyncio.run(venue.open_orders()) == []
    # nothing traded, no gas spent, no nonce used
    assert owner.erc20_balance(world.x, owner.address) == x0
    assert owner.erc20_balance(world.y, owner.address) == y0
    assert owner.eth_balance(owner.address) == eth0
    assert owner.nonce_counts() == counts
    assert rpc(world.url, "eth_getTransactionReceipt", [view.venue_order_id]) is None
    # a relay that builds again: the next swap takes the same nonce and lands
    relay.include = True
    again = asyncio.run(venue.submit(_sell("35")))
    assert again.status == OrderStatus.FILLED
    assert int(rpc(world.url, "eth_getTransactionByHash", [again.venue_order_id])["nonce"], 16) == counts[0]
    asyncio.run(venue.close())


def _cfg(**web3):
    from web3_local import cex_dex_data

    from basis_core.config import from_dict

    data = cex_dex_data()
    data["venues"]["dex"]["web3"] = {"rpc_url": "http://127.0.0.1:1", "chain_id": 31337, **web3}
    return from_dict(data)


def test_the_relay_keys_are_checked_by_basis_check_with_their_key_path():
    from basis_core.engine.scenario import check_inputs
    from basis_core.errors import ConfigError

    (line,) = check_inputs(_cfg())
    assert line.startswith("venues.dex.web3: chain 31337") and "the public mempool" in line
    (line,) = check_inputs(_cfg(relay_url="https://user:s3cret@relay.example/rpc", bundle_blocks=5))
    assert "bundles through https://relay.example" in line and "5 block(s)" in line
    assert "s3cret" not in line
    for bad, key in (({"relay_url": "ws://relay"}, "relay_url"), ({"bundle_blocks": 0}, "bundle_blocks")):
        with pytest.raises(ConfigError) as info:
            check_inputs(_cfg(**bad))
        assert info.value.path == f"venues.dex.web3.{key}"


def test_a_venue_built_from_a_table_with_a_relay_sends_bundles(world, owner, relay):
    from chainkit import DEV_KEYS

    from adapters.web3.auth import Signer
    from adapters.web3.client import EvmClient
    from adapters.web3.config import Web3VenueConfig, load_table
    from adapters.web3.world import ChainWorld, PoolAddresses

    cfg = _cfg(relay_url=relay.url, bundle_blocks=2)
    table = load_table(cfg.venues["dex"].web3, "venues.dex.web3")
    client = EvmClient(
        Web3VenueConfig(rpc_url=world.url, chain_id=31337, name="dex"),
        Signer.from_hex(DEV_KEYS[0]),
        owner.decoder,
    )
    pools = {"dex-BTCUSDT": PoolAddresses(world.pool_a, world.x, world.y)}
    chain = ChainWorld.from_config(cfg, {"dex": client}, pools, tables={"dex": table}).chain["dex"]
    assert chain.relay is not None and chain.bundle_blocks == 2
    view = asyncio.run(chain.submit(OrderRequest("36", "dex-BTCUSDT", Side.SELL, OrderType.IOC, 1.0, 1800.0)))
    assert view.status == OrderStatus.FILLED
    assert relay.calls == ["eth_callBundle", "eth_sendBundle", "eth_sendBundle"] and len(relay.included) == 1
    asyncio.run(chain.close())


def test_an_unreachable_relay_is_a_typed_error_that_does_not_show_its_key(owner):
    from adapters.web3.bundle import BundleRelay
    from basis_core.errors import VenueUnavailable

    r = BundleRelay("http://searcher:s3cret@127.0.0.1:1/", "dex", owner.signer, owner.decoder, 2.0)
    assert "s3cret" not in repr(r)
    with pytest.raises(VenueUnavailable) as info:
        r.simulate([b"\x02"], 1)
    assert info.value.code == "relay_unreachable" and "s3cret" not in str(info.value)


def test_a_relay_that_cannot_be_reached_refuses_nothing_silently_and_keeps_no_nonce(world, owner, relay):
    from adapters.web3.bundle import BundleRelay
    from basis_core.errors import OrderNotFound, VenueUnavailable

    market = PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")
    dead = Web3Venue(
        owner, [market], relay=BundleRelay("http://127.0.0.1:1", "anvil", owner.signer, owner.decoder)
    )
    counts = owner.nonce_counts()
    with pytest.raises(VenueUnavailable):
        asyncio.run(dead.submit(_sell("37")))
    with pytest.raises(OrderNotFound):  # nothing tracked: the order was not placed
        asyncio.run(dead.fetch_order("37"))
    # its nonce went back: a swap through a working relay takes it
    view = asyncio.run(_venue(owner, world, relay).submit(_sell("38")))
    assert view.status == OrderStatus.FILLED
    assert int(rpc(world.url, "eth_getTransactionByHash", [view.venue_order_id])["nonce"], 16) == counts[0]


def test_a_bundled_swap_dropped_by_a_reorg_goes_to_the_relay_again(world, owner, relay):
    market = PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")
    client = BundleRelay(relay.url, "anvil", owner.signer, owner.decoder)
    venue = Web3Venue(owner, [market], poll_s=0.01, confirmations=3, relay=client, bundle_blocks=BLOCKS)
    asyncio.run(venue.start())
    x0 = owner.erc20_balance(world.x, owner.address)

    async def receipt(tx_hash: str, not_in: str = "") -> dict:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rec = await asyncio.to_thread(rpc, world.url, "eth_getTransactionReceipt", [tx_hash])
            if rec is not None and rec["blockHash"] != not_in:
                return rec
            await asyncio.sleep(0.005)
        raise AssertionError(f"{tx_hash} not mined")

    async def go():
        task = asyncio.ensure_future(venue.submit(_sell("39")))
        while "39" not in venue._pending:
            await asyncio.sleep(0.002)
        tx_hash = venue._pending["39"].sent.tx_hash
        first = await receipt(tx_hash)
        await asyncio.sleep(0.05)  # the venue waits for depth
        await asyncio.to_thread(rpc, world.url, "anvil_reorg", [1, []])
        second = await receipt(tx_hash, first["blockHash"])
        for _ in range(2):
            await asyncio.sleep(0.05)
            assert not task.done()
            await asyncio.to_thread(rpc, world.url, "evm_mine")
        return await asyncio.wait_for(task, 10), first, second

    view, first, second = asyncio.run(go())
    assert view.status == OrderStatus.FILLED
    assert [(r.outcome, r.tx_hash) for r in venue.reorgs] == [("dropped", first["transactionHash"])]
    # sent to the relay again, never to the public mempool; built once before and once after
    assert relay.calls == ["eth_callBundle"] + ["eth_sendBundle"] * (2 * BLOCKS)
    assert len(relay.included) == 2
    assert x0 - owner.erc20_balance(world.x, owner.address) == E18
    asyncio.run(venue.close())
