"""The USDⓈ-M futures emulator against the real ccxt `binanceusdm` client on loopback."""

from __future__ import annotations

import asyncio

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from adapters.emulator.futures import FuturesEmulator, usdm_emulator
from adapters.sim.matching import Spec
from basis_core.errors import ConfigError

KEY, SECRET = "k-futures", "s-futures"
SYM, PERP = "BTCUSDT", "BTC/USDT:USDT"
BTC = Spec(SYM, "BTC", "USDT", tick=0.1, lot=0.001, min_notional=5.0)
ENTRY = (50_000.1 * 1.0 + 50_010.0 * 0.5) / 1.5  # two fills, one entry price
OPTIONS = {"fetchCurrencies": False, "fetchMargins": False, "warnOnFetchOpenOrdersWithoutSymbol": False}


def emulator(**kw) -> FuturesEmulator:
    emu = FuturesEmulator([BTC], {KEY: (SECRET, "alice")}, **kw)
    emu.deposit("alice", "USDT", 10_000.0)
    emu.set_book(SYM, [(50_000.0, 1.0), (49_990.0, 2.0)], [(50_000.1, 1.0), (50_010.0, 2.0)])
    return emu


def client(emu: FuturesEmulator, secret: str = SECRET):
    ex = ccxt_async.binanceusdm(
        {"apiKey": KEY, "secret": secret, "enableRateLimit": False, "timeout": 2000, "options": dict(OPTIONS)}
    )
    ex.urls["api"] = {  # every REST base moved to the emulator, path prefixes kept
        name: emu.url + "/" + url.split("://", 1)[1].split("/", 1)[1]
        for name, url in ex.urls["api"].items()
        if isinstance(url, str) and "://" in url
    }
    return ex


def run(emu: FuturesEmulator, body, secret: str = SECRET):
    async def go():
        await emu.start()
        ex = client(emu, secret)
        try:
            return await body(ex)
        finally:
            await ex.close()
            await emu.stop()

    return asyncio.run(go())


def test_markets_book_time_and_weights():
    emu = emulator()

    async def body(ex):
        markets = await ex.load_markets()
        m = markets[PERP]
        assert (m["swap"], m["linear"], m["settle"], m["contractSize"]) == (True, True, "USDT", 1.0)
        assert (m["precision"]["price"], m["precision"]["amount"], m["limits"]["cost"]["min"]) == (
            0.1,
            0.001,
            5.0,
        )
        book = await ex.fetch_order_book(PERP, 5)
        assert book["bids"][0] == [50_000.0, 1.0] and book["asks"][0] == [50_000.1, 1.0]
        assert abs(await ex.fetch_time() - emu.now_ms()) < 5_000
        return ex.last_response_headers

    headers = run(emu, body)
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 1 + 2 + 1  # exchangeInfo, depth, time
    assert [p for _, p, _ in emu.log] == ["/fapi/v1/exchangeInfo", "/fapi/v1/depth", "/fapi/v1/time"]


def test_positions_average_entry_realize_pnl_and_charge_commission_in_usdt():
    emu = emulator(leverage={SYM: 10})

    async def body(ex):
        await ex.load_markets()
        o = await ex.create_order(PERP, "limit", "buy", 1.0, 50_000.1, {"clientOrderId": "b1"})
        assert (o["status"], o["filled"], o["average"], o["clientOrderId"]) == ("closed", 1.0, 50_000.1, "b1")
        await ex.create_order(PERP, "limit", "buy", 0.5, 50_010.0, {"clientOrderId": "b2"})  # next level
        (pos,) = await ex.fetch_positions([PERP])
        assert pos["side"] == "long" and pos["contracts"] == pytest.approx(1.5)
        assert pos["entryPrice"] == pytest.approx(ENTRY)
        emu.set_mark(SYM, 50_100.0)
        (pos,) = await ex.fetch_positions([PERP])
        assert pos["markPrice"] == 50_100.0
        assert pos["unrealizedPnl"] == pytest.approx((50_100.0 - ENTRY) * 1.5)
        # close half on the bid: PnL realized into the wallet, commission charged in USDT
        sell = await ex.create_order(PERP, "market", "sell", 0.5, None, {"clientOrderId": "s1"})
        assert sell["status"] == "closed"
        trades = await ex.fetch_my_trades(PERP)
        assert [t["side"] for t in trades] == ["buy", "buy", "sell"]
        assert {t["fee"]["currency"] for t in trades} == {"USDT"}
        realized = float(trades[-1]["info"]["realizedPnl"])
        assert realized == pytest.approx((50_000.0 - ENTRY) * 0.5)
        fees = sum(t["fee"]["cost"] for t in trades)
        assert fees == pytest.approx(sum(t["price"] * t["amount"] for t in trades) * 4e-4)  # takers
        assert (await ex.fetch_trading_fees())[PERP]["taker"] == 0.0004
        raw = await ex.fapiPrivateV2GetAccount()
        (usdt,) = [a for a in raw["assets"] if a["asset"] == "USDT"]
        assert float(usdt["walletBalance"]) == pytest.approx(10_000.0 + realized - fees, abs=1e-6)
        (risk,) = await ex.fapiPrivateV2GetPositionRisk({"symbol": SYM})
        assert (risk["positionAmt"], risk["marginType"], risk["leverage"]) == ("1.000", "cross", "10")
        assert 0 < float(risk["liquidationPrice"]) < ENTRY
        income = await ex.fapiPrivateGetIncome({"incomeType": "REALIZED_PNL"})
        assert [float(r["income"]) for r in income] == [pytest.approx(realized)]
        return usdt

    usdt = run(emu, body)
    assert emu.position("alice", SYM) == (pytest.approx(1.0), pytest.approx(ENTRY))
    assert float(usdt["availableBalance"]) < float(usdt["walletBalance"])


def test_resting_order_fetch_open_and_cancel():
    emu = emulator()

    async def body(ex):
        await ex.load_markets()
        o = await ex.create_order(PERP, "limit", "sell", 0.2, 51_000.0, {"clientOrderId": "r1"})
        assert o["status"] == "open"
        got = await ex.fetch_order(None, PERP, {"origClientOrderId": "r1"})
        assert (got["id"], got["price"], got["remaining"]) == (o["id"], 51_000.0, 0.2)
        assert [x["clientOrderId"] for x in await ex.fetch_open_orders(PERP)] == ["r1"]
        gone = await ex.cancel_order(None, PERP, {"origClientOrderId": "r1"})
        assert gone["status"] == "canceled" and gone["clientOrderId"] == "r1"
        assert await ex.fetch_open_orders(PERP) == []
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order(None, PERP, {"origClientOrderId": "r1"})
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, PERP, {"origClientOrderId": "never"})
        post = await ex.create_order(PERP, "limit", "buy", 0.1, 49_000.0, {"postOnly": True})
        assert post["info"]["timeInForce"] == "GTX" and post["status"] == "open"

    run(emu, body)


def test_margin_is_checked_at_entry_and_leverage_changes_it():
    emu = emulator()

    async def body(ex):
        await ex.load_markets()
        # 1 BTC at 50 000 and 5x needs 10 000 of margin: more than the 10 000 wallet less fees
        with pytest.raises(ccxt.ExchangeError, match="-2019") as err:
            await ex.create_order(PERP, "limit", "buy", 1.2, 50_000.0, {"clientOrderId": "big"})
        assert "Margin is insufficient." in str(err.value)
        assert (await ex.set_leverage(20, PERP))["leverage"] == 20
        big = await ex.create_order(PERP, "limit", "buy", 1.2, 50_000.0, {"clientOrderId": "big2"})
        assert big["status"] == "open"
        (risk,) = await ex.fapiPrivateV2GetPositionRisk({"symbol": SYM})
        assert risk["leverage"] == "20"
        # a reduce-only order that would open a position is refused
        with pytest.raises(ccxt.ExchangeError, match="-2022"):
            await ex.create_order(PERP, "limit", "sell", 0.1, 51_000.0, {"reduceOnly": True})
        bal = await ex.fetch_balance()
        assert bal["USDT"]["used"] == pytest.approx(1.2 * 50_000.0 / 20 + 1.2 * 50_000.0 * 4e-4)

    run(emu, body)
    assert emu.exchange.leverage[SYM] == 20.0


def test_funding_is_paid_at_the_mark_and_listed_as_income():
    emu = emulator(funding_interval_s=0.3)

    async def body(ex):
        await ex.load_markets()
        await ex.create_order(PERP, "market", "sell", 0.4, None, {"clientOrderId": "short"})
        paid = emu.apply_funding(SYM, 0.0002, 50_000.0)  # shorts receive
        assert paid == [("alice", pytest.approx(0.4 * 50_000.0 * 0.0002))]
        history = await ex.fetch_funding_history(PERP)
        assert [(h["amount"], h["code"]) for h in history] == [(pytest.approx(4.0), "USDT")]
        rates = await ex.fetch_funding_rate_history(PERP)
        assert [(r["fundingRate"], r["info"]["markPrice"]) for r in rates] == [(0.0002, "50000.00000000")]
        # the market driver's updates settle funding once a funding time has passed
        assert emu.update_funding(SYM, 50_020.0, 50_010.0, -0.0001) == []
        fr = await ex.fetch_funding_rate(PERP)
        assert (fr["markPrice"], fr["indexPrice"], fr["fundingRate"]) == (50_020.0, 50_010.0, -0.0001)
        assert fr["fundingTimestamp"] > emu.now_ms()
        await asyncio.sleep(0.35)
        assert emu.update_funding(SYM, 50_030.0, 50_030.0, 0.0) == [
            ("alice", pytest.approx(-0.4 * 50_030.0 * 0.0001))
        ]
        return await ex.fetch_funding_history(PERP)

    history = run(emu, body)
    assert [h["amount"] for h in history] == [pytest.approx(4.0), pytest.approx(-2.0012)]


def test_signed_endpoints_check_the_signature_and_the_usual_refusals():
    emu = emulator()

    async def body(ex):
        await ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await ex.fetch_balance()

    run(emu, body, secret="wrong")
    assert emu.log[-1] == ("GET", "/fapi/v3/account", 400)
    with pytest.raises(ConfigError, match="leverage"):
        FuturesEmulator([BTC], {}, leverage={SYM: 200})
    with pytest.raises(ConfigError, match="margin asset"):
        FuturesEmulator([BTC, Spec("ETHBUSD", "ETH", "BUSD", tick=0.01, lot=0.001)], {})
    assert isinstance(usdm_emulator([BTC], {}, "u"), FuturesEmulator)
