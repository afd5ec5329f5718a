"""The ccxt venue trading USDⓈ-M perpetuals: CcxtVenue (ccxt `binanceusdm`) against the futures
emulator on loopback, seen through the Venue interface the engine, ledger and reconciliation use."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.ccxt.auth import Credentials
from adapters.ccxt.client import CcxtVenue
from adapters.ccxt.config import from_dict
from adapters.ccxt.local import LocalCcxtWorld
from adapters.emulator.futures import FuturesEmulator
from adapters.sim.matching import Spec
from basis_core.accounting.convert import ledger_fill
from basis_core.accounting.ledger import Ledger
from basis_core.config import load
from basis_core.errors import ConfigError, OrderRejected
from basis_core.schema import OrderType, Side
from basis_core.venue import BookUpdate, FundingPayment, FundingUpdate, OrderRequest, OrderStatus

KEY, SECRET = "k-perps", "s-perps"
SYM, NAME = "BTCUSDT", "BTCPERP"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ccxt-local.toml"


def emulator() -> FuturesEmulator:
    emu = FuturesEmulator(
        [Spec(SYM, "BTC", "USDT", tick=0.1, lot=0.001, min_notional=5.0)], {KEY: (SECRET, "basis")}
    )
    emu.deposit("basis", "USDT", 10_000.0)
    emu.set_book(SYM, [(50_000.0, 1.0), (49_990.0, 2.0)], [(50_000.1, 1.0), (50_010.0, 2.0)])
    return emu


def venue_on(emu: FuturesEmulator, **extra) -> CcxtVenue:
    cfg = from_dict(
        {
            "exchange": "binanceusdm",
            "base_url": emu.url,
            "timeout_ms": 2000,
            "instruments": {NAME: "BTC/USDT:USDT"},
            "leverage": {NAME: 10},
            "mark_poll_s": 0.05,
            "funding_poll_s": 0.1,
            **extra,
        },
        "venues.usdm",
    )
    return CcxtVenue("usdm", cfg, Credentials(KEY, SECRET), poll_s=0.05)


def run(body):
    async def go():
        emu = emulator()
        await emu.start()
        venue = venue_on(emu)
        try:
            await venue.start()
            return await body(emu, venue)
        finally:
            await venue.close()
            await emu.stop()

    return asyncio.run(go())


def order(coid: str, side: Side, qty: float, price: float, otype=OrderType.IOC, reduce_only=False):
    return OrderRequest(coid, NAME, side, otype, qty, price, reduce_only=reduce_only)


def test_markets_leverage_positions_and_wallet_balances():
    async def body(emu, venue):
        info = venue.instruments()[NAME]
        assert (info.kind, info.symbol, info.base, info.quote, info.tick, info.lot) == (
            "perp",
            "BTC/USDT:USDT",
            "BTC",
            "USDT",
            0.1,
            0.001,
        )
        assert emu.exchange.leverage[SYM] == 10.0  # set at start from the config
        assert (await venue.positions())[NAME].qty == 0.0
        buy = await venue.submit(order("1001", Side.BUY, 0.4, 50_000.1))
        assert (buy.status, buy.filled_qty, buy.avg_price) == (OrderStatus.FILLED, 0.4, 50_000.1)
        emu.set_mark(SYM, 50_100.0)
        pos = (await venue.positions())[NAME]
        assert (pos.qty, pos.entry_price, pos.mark_price) == (pytest.approx(0.4), 50_000.1, 50_100.0)
        assert pos.unrealized_pnl == pytest.approx((50_100.0 - 50_000.1) * 0.4)
        fee = 0.4 * 50_000.1 * 4e-4
        usdt = (await venue.balances())["USDT"]
        assert usdt.total == pytest.approx(10_000.0 - fee)  # the wallet: unrealized PnL left out
        margin = 0.4 * 50_100.0 / 10
        assert usdt.locked == pytest.approx(margin - pos.unrealized_pnl)
        # a reduce-only order may only shrink the position
        with pytest.raises(OrderRejected) as err:
            await venue.submit(order("1002", Side.SELL, 0.5, 49_990.0, reduce_only=True))
        assert err.value.reason == "venue_reject" and "ReduceOnly" in str(err.value)
        sell = await venue.submit(order("1003", Side.SELL, 0.4, 49_990.0, reduce_only=True))
        assert sell.status == OrderStatus.FILLED and sell.avg_price == 50_000.0
        assert (await venue.positions())[NAME].qty == 0.0
        page = await venue.fills()
        assert [(f.coid, f.side, f.fee_asset) for f in page.fills] == [
            ("1001", Side.BUY, "USDT"),
            ("1003", Side.SELL, "USDT"),
        ]
        return page.fills, (await venue.balances())["USDT"]

    fills, usdt = run(body)
    fees = sum(f.fee for f in fills)
    assert usdt.total == pytest.approx(10_000.0 + (50_000.0 - 50_000.1) * 0.4 - fees)
    assert usdt.locked == 0.0


def test_an_order_short_of_margin_is_a_typed_refusal():
    async def body(emu, venue):
        with pytest.raises(OrderRejected) as err:  # 3 BTC at 10x needs 14 700 of 10 000
            await venue.submit(order("2001", Side.BUY, 3.0, 49_000.0, OrderType.LIMIT))
        assert (err.value.code, err.value.reason) == ("insufficient_funds", "insufficient_funds")
        assert "Margin is insufficient." in str(err.value) and SECRET not in str(err.value)
        assert emu.orders_of("basis") == []
        ok = await venue.submit(order("2002", Side.BUY, 1.5, 49_000.0, OrderType.LIMIT))
        assert ok.status == OrderStatus.OPEN
        assert [o.coid for o in await venue.open_orders(NAME)] == ["2002"]
        assert (await venue.cancel("2002")).status == OrderStatus.CANCELED

    run(body)


def test_a_post_only_order_that_would_take_is_refused_as_one():
    """GTX on USDⓈ-M: a post-only buy at the ask is refused (-5022, which ccxt raises as
    InvalidOrder) with the reason post_only_would_cross, so the engine reprices it as it does
    on spot; one below the ask rests."""

    async def body(emu, venue):
        with pytest.raises(OrderRejected) as err:
            await venue.submit(order("2101", Side.BUY, 0.1, 50_000.1, OrderType.POST_ONLY))
        assert (err.value.code, err.value.reason) == ("post_only_would_cross", "post_only_would_cross")
        rests = await venue.submit(order("2102", Side.BUY, 0.1, 50_000.0, OrderType.POST_ONLY))
        assert rests.status == OrderStatus.OPEN and rests.filled_qty == 0.0
        assert (await venue.cancel("2102")).status == OrderStatus.CANCELED

    run(body)


def test_funding_reaches_the_user_stream_and_the_ledger_books_it():
    async def body(emu, venue):
        ledger = Ledger(lambda asset, ts: {"USDT": 1.0, "BTC": 50_000.0}[asset])
        ledger.deposit("usdm", "USDT", 10_000.0, 0)
        info = venue.instruments()[NAME]
        await venue.submit(order("3001", Side.SELL, 0.5, 50_000.0))  # short 0.5: receives funding
        stream = venue.user_events()
        events = []

        async def collect():
            async for ev in stream:
                events.append(ev)
                if isinstance(ev, FundingPayment):
                    return

        task = asyncio.create_task(collect())
        await asyncio.sleep(0.2)
        paid = emu.apply_funding(SYM, 0.0003, 50_020.0)
        assert paid == [("basis", pytest.approx(0.5 * 50_020.0 * 0.0003))]
        await asyncio.wait_for(task, 5.0)
        await stream.aclose()
        (pay,) = [e for e in events if isinstance(e, FundingPayment)]
        assert (pay.venue, pay.instrument, pay.asset) == ("usdm", NAME, "USDT")
        assert (pay.amount, pay.rate, pay.mark_price, pay.position_qty) == (
            pytest.approx(7.503),
            0.0003,
            50_020.0,
            pytest.approx(-0.5),
        )
        for f in (await venue.fills()).fills:
            ledger.book_fill(ledger_fill(f, info))
        ledger.book_funding(
            pay.venue, pay.asset, pay.amount, pay.ts_ns, f"funding:{pay.instrument}:{pay.ts_ns}"
        )
        assert ledger.funding_usdt == pytest.approx(7.503)
        # what reconciliation compares: the ledger's wallet and position against the venue's
        assert ledger.balance("usdm", "USDT") == pytest.approx(
            (await venue.balances())["USDT"].total, abs=1e-6
        )
        pos = (await venue.positions())[NAME]
        assert ledger.perp_positions()[("usdm", NAME)] == pytest.approx(pos.qty) == -0.5
        assert pos.funding_paid == pytest.approx(-7.503)
        # the market stream carries the premium index: mark, index, rate, next funding time
        emu.update_funding(SYM, 50_030.0, 50_025.0, 0.0001)
        async for ev in venue.market_data([NAME]):
            if isinstance(ev, FundingUpdate):
                assert (ev.mark_price, ev.index_price, ev.rate) == (50_030.0, 50_025.0, 0.0001)
                assert ev.next_ns > ev.ts_ns
                break

    run(body)


def test_a_local_world_trades_perps_on_a_usdm_emulator():
    cfg = load(EXAMPLE)
    inst = dict(cfg.instruments)
    inst["west-BTCUSDT"] = replace(inst["west-BTCUSDT"], kind="perp", leverage=4.0)
    world = LocalCcxtWorld.from_config(replace(cfg, instruments=inst))
    west = world.emulators["west"]
    assert isinstance(west, FuturesEmulator) and west.exchange.leverage["BTCUSDT"] == 4.0

    async def body():
        await world.start()
        try:
            assert world.venues["west"].instruments()["west-BTCUSDT"].kind == "perp"
            assert world.venues["east"].instruments()["east-BTCUSDT"].kind == "spot"
            assert world.market is not None
            world.market.publish_funding(0)  # the generator's marks reach the emulator
            mark = west.mark("BTCUSDT")
            assert mark == pytest.approx(world.market.mids[0, 1], rel=0.01)
            assert (await world.venues["west"].positions())["west-BTCUSDT"].qty == 0.0
        finally:
            await world.close()

    asyncio.run(body())
    inst["west-ETHUSDT"] = replace(inst["west-BTCUSDT"], kind="spot", base="ETH")
    with pytest.raises(ConfigError, match="mixes spot and perps"):
        LocalCcxtWorld.from_config(replace(cfg, instruments=inst))


def test_leverage_the_venue_cannot_take_is_a_config_error():
    with pytest.raises(ConfigError, match=r"venues\.usdm\.leverage\.BTCPERP"):
        from_dict(
            {"exchange": "binanceusdm", "instruments": {NAME: "BTC/USDT:USDT"}, "leverage": {NAME: 2.5}},
            "venues.usdm",
        )
    with pytest.raises(ConfigError, match=r"leverage\.OTHER"):
        from_dict({"instruments": {NAME: "BTC/USDT:USDT"}, "leverage": {"OTHER": 3}}, "venues.usdm")


def test_basis_emulator_kind_usdm_serves_a_perp_venue_of_a_config(tmp_path):
    from adapters.ccxt.emulate import serve_venue
    from adapters.ccxt.world import venue_table

    cfg = load(Path(__file__).resolve().parents[1] / "examples" / "live-local.toml")
    inst = dict(cfg.instruments)
    inst["beta-BTCUSDT"] = replace(inst["beta-BTCUSDT"], kind="perp", symbol="BTC/USDT:USDT", leverage=3.0)
    cfg = replace(cfg, instruments=inst)
    with pytest.raises(ConfigError, match=r"alpha-BTCUSDT\.kind: .*perp instruments only"):
        serve_venue(cfg, "alpha", "usdm")
    served = serve_venue(cfg, "beta", "usdm")
    emu = served.emulator
    assert isinstance(emu, FuturesEmulator) and emu.exchange.leverage["BTCUSDT"] == 3.0
    table = venue_table(cfg, "beta")
    assert table["instruments"] == {"beta-BTCUSDT": "BTC/USDT:USDT"} and table["leverage"] == {
        "beta-BTCUSDT": 3.0
    }

    async def body():
        await served.start()
        venue = CcxtVenue(
            "beta",
            from_dict(
                {
                    "exchange": "binanceusdm",
                    "base_url": served.url,
                    "instruments": table["instruments"],
                    "leverage": {"beta-BTCUSDT": 3},
                },
                "venues.beta.ccxt",
            ),
            Credentials(served.key, served.secret),
        )
        try:
            await venue.start()
            assert venue.instruments()["beta-BTCUSDT"].kind == "perp"
            assert served.market is not None
            served.market.publish_funding(0)  # the generator's mark and rate reach the venue
            (update,) = await venue._perps.funding_updates()  # type: ignore[union-attr]
            assert update.mark_price == pytest.approx(emu.mark("BTCUSDT")) and update.mark_price > 0
            usdt = (await venue.balances())["USDT"]
            assert usdt.total == cfg.venues["beta"].balances["USDT"]
        finally:
            await venue.close()
            await served.stop()

    asyncio.run(body())


def test_websocket_books_and_premium_index_marks_on_the_market_stream():
    async def go():
        emu = emulator()
        await emu.start()
        venue = venue_on(emu, market_data="ws")
        try:
            await venue.start()
            emu.update_funding(SYM, 50_000.05, 50_001.0, 0.0002)
            seen: dict[type, object] = {}
            stream = venue.market_data([NAME])
            async for ev in stream:
                seen.setdefault(type(ev), ev)
                if len(seen) == 2:
                    break
            await stream.aclose()
            return seen
        finally:
            await venue.close()
            await emu.stop()

    seen = asyncio.run(asyncio.wait_for(go(), 20))
    book, fund = seen[BookUpdate], seen[FundingUpdate]
    assert book.bids[0] == (50_000.0, 1.0) and book.asks[0] == (50_000.1, 1.0)  # type: ignore[attr-defined]
    assert (fund.mark_price, fund.index_price, fund.rate) == (50_000.05, 50_001.0, 0.0002)  # type: ignore[attr-defined]
