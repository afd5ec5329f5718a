"""A reorg under a provisional fill, on anvil (`anvil_reorg`): a pool swap is a fill only once
`confirmations` blocks hold it; when the block that held it is replaced before then, the venue
notices, looks the swap up again and either counts its confirmations from the block that holds
it now or, when no block holds it, broadcasts it again and waits for its receipt. Exactly one
fill is published, at the block that stays, and the account's balances move by that fill."""

from __future__ import annotations

import asyncio
import time

import pytest
from chainkit import E18, rpc

from adapters.web3.venue import PoolMarket, Web3Venue
from basis_core.venue import Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side

pytestmark = pytest.mark.chain


def _venue(world, owner) -> Web3Venue:
    market = PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")
    v = Web3Venue(owner, [market], poll_s=0.01, confirmations=3)
    asyncio.run(v.start())
    return v


async def _mined(venue: Web3Venue, url: str, coid: str) -> dict:
    """The receipt of our swap once the node has mined it (the venue still waits for depth)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        p = venue._pending.get(coid)
        if p is not None:
            rec = await asyncio.to_thread(rpc, url, "eth_getTransactionReceipt", [p.sent.tx_hash])
            if rec is not None:
                return rec
        await asyncio.sleep(0.005)
    raise AssertionError("the swap was not mined")


async def _trade(venue: Web3Venue, url: str, reorg) -> tuple:
    """Sell 1 WETH with 3 confirmations; `reorg(receipt, raw)` runs once the swap is mined."""
    events = venue.user_events()
    got: list = []

    async def collect():
        async for ev in events:
            got.append(ev)

    reader = asyncio.ensure_future(collect())
    await asyncio.sleep(0)
    task = asyncio.ensure_future(
        venue.submit(OrderRequest("7", "WETH/TUSD", Side.SELL, OrderType.IOC, 1.0, 1800.0))
    )
    first = await _mined(venue, url, "7")
    assert not task.done()  # one block deep of three: not a fill yet
    await asyncio.to_thread(reorg, first, venue._pending["7"].sent.raw)
    second = await _mined(venue, url, "7")
    for _ in range(2):  # the depth the fill waits for, on the block that holds the swap now
        await asyncio.sleep(0.05)
        assert not task.done()
        await asyncio.to_thread(rpc, url, "evm_mine")
    view = await asyncio.wait_for(task, 10)
    await asyncio.sleep(0.05)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await venue.close()
    return view, first, second, got


def _balances(owner, world) -> tuple[int, int, int]:
    a = owner.address
    return owner.erc20_balance(world.x, a), owner.erc20_balance(world.y, a), owner.eth_balance(a)


@pytest.mark.parametrize("how", ["dropped", "reincluded"])
def test_a_reorg_before_the_fill_is_final_is_followed_to_the_block_that_stays(world, owner, how):
    venue = _venue(world, owner)
    x0, y0, eth0 = _balances(owner, world)
    mined0, _ = owner.nonce_counts()

    def reorg(rec, raw):
        if how == "dropped":  # the block is replaced by one without our swap
            rpc(world.url, "anvil_reorg", [1, []])
        else:  # one more block, then both replaced: the swap lands in the second
            rpc(world.url, "evm_mine")
            rpc(world.url, "anvil_reorg", [2, [["0x" + raw.hex(), 1]]])

    view, first, second, got = asyncio.run(_trade(venue, world.url, reorg))

    assert first["blockHash"] != second["blockHash"]
    assert view.status == OrderStatus.FILLED and view.venue_order_id == first["transactionHash"]
    if how == "reincluded":
        assert int(second["blockNumber"], 16) == int(first["blockNumber"], 16) + 1
    # counted once, with what became of the swap
    assert venue.reorgs_total == 1
    (r,) = venue.reorgs
    assert (r.coid, r.tx_hash, r.outcome) == ("7", first["transactionHash"], how)
    assert r.old_hash == first["blockHash"] and r.block_number == int(first["blockNumber"], 16)
    assert r.new_block == (int(second["blockNumber"], 16) if how == "reincluded" else 0)
    # exactly one fill, published after the reorg, for the swap as the surviving block holds it
    fills = [e for e in got if isinstance(e, Fill)]
    updates = [e.order.status for e in got if isinstance(e, OrderUpdate)]
    assert len(fills) == 1 and updates == [OrderStatus.FILLED]
    fill = fills[0]
    # the account moved by exactly that fill: one swap executed, its gas the fill's fee
    x1, y1, eth1 = _balances(owner, world)
    assert x0 - x1 == E18 and fill.qty == 1.0
    assert (y1 - y0) / E18 == pytest.approx(fill.qty * fill.price, rel=1e-12)
    assert (eth0 - eth1) / E18 == pytest.approx(fill.fee, rel=1e-12)
    mined1, pending1 = owner.nonce_counts()
    assert mined1 == pending1 == mined0 + 1
    assert (
        rpc(world.url, "eth_getTransactionReceipt", [first["transactionHash"]])["blockHash"]
        == (second["blockHash"])
    )


def test_a_reorg_that_leaves_the_block_alone_is_not_counted(world, owner):
    venue = _venue(world, owner)

    def no_reorg(rec, raw):
        pass

    view, first, second, got = asyncio.run(_trade(venue, world.url, no_reorg))
    assert view.status == OrderStatus.FILLED and first == second
    assert venue.reorgs_total == 0 and not venue.reorgs


@pytest.mark.parametrize("how", ["final_dropped", "final_reincluded"])
def test_a_reorg_under_a_final_fill_is_counted_and_the_swap_sent_again(world, owner, how):
    """With `confirmations` = 1 a mined swap is final at once; a reorg after that is deeper
    than the policy. The venue's status check sees the block go: the swap is counted, sent
    again when no block holds it, and followed until mined again; its one fill stands."""
    market = PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")
    venue = Web3Venue(owner, [market], poll_s=0.01, confirmations=1)
    asyncio.run(venue.start())
    x0 = owner.erc20_balance(world.x, owner.address)
    view = asyncio.run(venue.submit(OrderRequest("8", "WETH/TUSD", Side.SELL, OrderType.IOC, 1.0, 1800.0)))
    assert view.status == OrderStatus.FILLED
    tx = view.venue_order_id
    first = rpc(world.url, "eth_getTransactionReceipt", [tx])
    asyncio.run(venue.status())  # watched: nothing to see yet
    assert venue.reorgs_total == 0
    if how == "final_dropped":
        rpc(world.url, "anvil_reorg", [1, []])
    else:
        raw = rpc(world.url, "eth_getRawTransactionByHash", [tx])
        rpc(world.url, "evm_mine")
        rpc(world.url, "anvil_reorg", [2, [[raw, 1]]])
    asyncio.run(venue.status())
    assert venue.reorgs_total == 1
    (r,) = venue.reorgs
    assert (r.coid, r.tx_hash, r.outcome, r.old_hash) == ("8", tx, how, first["blockHash"])
    again = rpc(world.url, "eth_getTransactionReceipt", [tx])  # mined again (sent again if dropped)
    assert again is not None and again["blockHash"] != first["blockHash"]
    for _ in range(2):  # followed in its new block: no second count
        asyncio.run(venue.status())
    assert venue.reorgs_total == 1
    assert x0 - owner.erc20_balance(world.x, owner.address) == E18  # executed once
    assert len(asyncio.run(venue.fills()).fills) == 1
    asyncio.run(venue.close())
