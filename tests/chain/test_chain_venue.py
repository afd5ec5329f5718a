"""A pool as a Venue on anvil: swaps are atomic orders with price bounds, simulated before
they are sent; fills, balances, books and order lookups speak the engine's one interface."""

from __future__ import annotations

import asyncio
import time

import pytest
from chainkit import E18, make_client, rpc, swap

from adapters.web3.arbitrage import read_pool
from adapters.web3.venue import PoolMarket, Web3Venue, amount_in_for
from basis_core.errors import OrderNotFound, OrderRejected, RequestTimeout, VenueError
from basis_core.kernels import amm
from basis_core.venue import OrderRequest, OrderStatus, OrderType, Side, VenueReport

pytestmark = pytest.mark.chain


@pytest.fixture
def venue(world, owner):
    v = Web3Venue(
        owner, [PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")], poll_s=0.01
    )
    asyncio.run(v.start())
    return v


def _order(coid, side, qty, price=None, type_=OrderType.IOC):
    return OrderRequest(coid, "WETH/TUSD", side, type_, qty, price)


def test_amount_in_for_is_the_least_input_that_buys_the_output():
    for out, rin, rout in ((1, 10, 10), (5 * E18, 200_000 * E18, 100 * E18), (999, 10**6, 1000)):
        need = amount_in_for(out, rin, rout)
        assert amm.amount_out(need, rin, rout) >= out > amm.amount_out(need - 1, rin, rout)


def test_sell_fills_at_the_pool_price_and_balances_move_by_exactly_the_kernel_output(world, owner, venue):
    state = read_pool(owner, world.pool_a)
    expected = amm.amount_out(2 * E18, *state.reserves_for(world.x))
    y0, x0 = owner.erc20_balance(world.y, owner.address), owner.erc20_balance(world.x, owner.address)

    async def go():
        events = venue.user_events()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0)
        vo = await venue.submit(_order("101", Side.SELL, 2.0, price=1900.0))
        got = [await asyncio.wait_for(first, 5), await asyncio.wait_for(events.__anext__(), 5)]
        counts = owner.nonce_counts()
        again = await venue.submit(_order("101", Side.SELL, 2.0, price=1900.0))  # idempotent
        assert owner.nonce_counts() == counts  # nothing sent
        page = await venue.fills()
        await venue.close()
        return vo, got, again, page

    vo, got, again, page = asyncio.run(go())
    assert vo.status == OrderStatus.FILLED and vo.filled_qty == 2.0
    assert (
        vo.avg_price == pytest.approx(expected / 2 / E18, rel=1e-12) and vo.fee_asset == "ETH" and vo.fee > 0
    )
    assert owner.erc20_balance(world.y, owner.address) - y0 == expected
    assert x0 - owner.erc20_balance(world.x, owner.address) == 2 * E18
    assert again == vo
    assert [type(e).__name__ for e in got] == ["OrderUpdate", "Fill"] and got[1].trade_id == vo.venue_order_id
    assert len(page.fills) == 1 and page.cursor == "1" and not page.more


def test_buy_gets_exactly_the_quantity_within_its_bound(world, owner, venue):
    state = read_pool(owner, world.pool_a)
    need = amount_in_for(E18, *state.reserves_for(world.y))
    y0 = owner.erc20_balance(world.y, owner.address)
    vo = asyncio.run(venue.submit(_order("102", Side.BUY, 1.0, price=2100.0)))
    assert vo.status == OrderStatus.FILLED and vo.filled_qty == 1.0
    assert y0 - owner.erc20_balance(world.y, owner.address) == need
    assert vo.avg_price == pytest.approx(need / E18, rel=1e-12) and vo.avg_price <= 2100.0


def test_orders_outside_their_bound_are_refused_before_anything_is_sent(world, owner, venue):
    counts = owner.nonce_counts()
    for order in (
        _order("103", Side.BUY, 1.0, price=1500.0),
        _order("104", Side.SELL, 1.0, price=2500.0),
        _order("105", Side.BUY, 1.0, price=2000.0, type_=OrderType.POST_ONLY),
    ):
        with pytest.raises(OrderRejected) as info:
            asyncio.run(venue.submit(order))
        assert info.value.reason in ("slippage", "post_only_would_cross")
    assert owner.nonce_counts() == counts
    with pytest.raises(OrderNotFound):  # refused locally: it never reached the chain
        asyncio.run(venue.fetch_order("103"))
    with pytest.raises(OrderRejected):
        asyncio.run(venue.submit(OrderRequest("106", "NOPE", Side.BUY, OrderType.MARKET, 1.0)))


def test_swap_not_mined_in_time_is_verified_later_by_client_order_id(world, decoder):
    c = make_client(world.url, decoder, 0, receipt_timeout_s=0.2)
    v = Web3Venue(c, [PoolMarket("WETH/TUSD", world.pool_a, world.x, world.y, "WETH", "TUSD")])
    asyncio.run(v.start())
    rpc(world.url, "evm_setAutomine", [False])
    with pytest.raises(RequestTimeout):
        asyncio.run(v.submit(_order("107", Side.SELL, 1.0, price=1900.0)))
    assert asyncio.run(v.fetch_order("107")).status == OrderStatus.OPEN
    assert [o.coid for o in asyncio.run(v.open_orders())] == ["107"]
    rpc(world.url, "evm_mine")
    vo = asyncio.run(v.fetch_order("107"))
    assert vo.status == OrderStatus.FILLED and asyncio.run(v.open_orders()) == []


def test_book_snapshots_follow_the_pool_and_bracket_its_price(world, owner, other, venue):
    async def go():
        stream = venue.market_data()
        first = await asyncio.wait_for(stream.__anext__(), 5)
        await asyncio.to_thread(lambda: other.wait(swap(other, world.pool_a, world.x, 5 * E18, gas=200_000)))
        second = await asyncio.wait_for(stream.__anext__(), 5)
        await venue.close()
        return first, second

    first, second = asyncio.run(go())
    state = read_pool(owner, world.pool_a)
    mid = state.reserves_for(world.y)[0] / state.reserves_for(world.x)[0]
    assert first.snapshot and first.bids[0][0] < 2000.0 < first.asks[0][0]
    assert second.bids[0][0] < mid < second.asks[0][0] and second.asks[0][0] < first.asks[0][0]
    assert all(q > 0 for _, q in first.bids + first.asks)
    # the first ask level is what the pool gives for a price move of one step
    assert sum(q for _, q in first.asks[:1]) == pytest.approx(100 * (1 - (1 / 1.001) ** 0.5), rel=1e-9)


def test_status_balances_and_unsupported_transfers(world, owner, venue):
    st = asyncio.run(venue.status())
    assert st.state == VenueReport.OK
    bal = asyncio.run(venue.balances())
    assert bal["TUSD"].free == owner.erc20_balance(world.y, owner.address) / E18 and bal["ETH"].free > 0
    with pytest.raises(VenueError) as info:
        asyncio.run(venue.transfer("WETH", 1.0, "binance"))
    assert info.value.code == "not_supported"


def test_failing_simulation_is_rejected_and_recorded_without_a_transaction(world, owner, venue):
    counts = owner.nonce_counts()
    held = owner.erc20_balance(world.x, owner.address) / E18
    with pytest.raises(OrderRejected) as info:
        asyncio.run(venue.submit(_order("108", Side.SELL, held * 2, type_=OrderType.MARKET)))
    # a token balance too small is said as such (not "slippage")
    assert "TestToken: balance" in str(info.value) and info.value.reason == "insufficient_funds"
    assert owner.nonce_counts() == counts
    vo = asyncio.run(venue.fetch_order("108"))
    assert vo.status == OrderStatus.REJECTED and vo.venue_order_id == ""
    assert vo.reason.name == "INSUFFICIENT_FUNDS"


def test_swap_overtaken_in_its_block_reverts_on_chain_with_no_token_exposure(world, owner, other, venue):
    y0, x0 = owner.erc20_balance(world.y, owner.address), owner.erc20_balance(world.x, owner.address)
    rpc(world.url, "evm_setAutomine", [False])

    def overtake():
        for _ in range(500):  # wait until our swap is in the pool
            pending = rpc(world.url, "txpool_content")["pending"]
            if owner.address.lower() in {a.lower() for a in pending}:
                break
            time.sleep(0.01)
        fees = owner.gas.bump(owner.quote_fees())
        swap(other, world.pool_a, world.x, 10 * E18, gas=200_000, fees=owner.gas.bump(fees))
        rpc(world.url, "evm_mine")

    async def go():
        task = asyncio.ensure_future(venue.submit(_order("109", Side.SELL, 2.0, price=1940.0)))
        await asyncio.sleep(0)
        await asyncio.to_thread(overtake)
        with pytest.raises(OrderRejected) as info:
            await task
        return info.value

    err = asyncio.run(go())
    assert err.reason == "slippage" and "InsufficientOutput" in str(err)
    vo = asyncio.run(venue.fetch_order("109"))
    assert vo.status == OrderStatus.REJECTED and vo.venue_order_id.startswith("0x")
    assert owner.get_receipt(vo.venue_order_id).status == 0
    assert (owner.erc20_balance(world.y, owner.address), owner.erc20_balance(world.x, owner.address)) == (
        y0,
        x0,
    )


def test_lost_answer_to_the_send_is_verified_by_client_order_id_and_never_sent_twice(
    world, owner, venue, monkeypatch
):
    real = owner.rpc

    def answer_lost(method, params):
        out = real(method, params)
        if method == "eth_sendRawTransaction":
            raise RequestTimeout(owner.venue, "timeout", "no answer")  # the node got it; we did not hear
        return out

    monkeypatch.setattr(owner, "rpc", answer_lost)
    with pytest.raises(RequestTimeout):
        asyncio.run(venue.submit(_order("110", Side.SELL, 1.0, price=1900.0)))
    monkeypatch.setattr(owner, "rpc", real)
    counts = owner.nonce_counts()
    vo = asyncio.run(venue.fetch_order("110"))
    assert vo.status == OrderStatus.FILLED and vo.filled_qty == 1.0
    assert asyncio.run(venue.submit(_order("110", Side.SELL, 1.0, price=1900.0))) == vo
    assert owner.nonce_counts() == counts
