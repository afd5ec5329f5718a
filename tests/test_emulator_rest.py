"""The exchange emulator, driven by the real ccxt async Binance client over loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import ccxt
import pytest

from adapters.emulator import EmulatorThread, RateLimitsConfig, auth
from adapters.emulator.harness import binance_client, standard_emulator
from basis_core.schema import Side

KEYS = {"key-alice": ("secret-alice", "alice"), "key-bob": ("secret-bob", "bob")}


def run(coro):
    return asyncio.run(coro)


@asynccontextmanager
async def _session(limits=None, key="key-alice", secret="secret-alice", timeout_ms=1000):
    """A started emulator and a ccxt client on it, (emu, ex); both closed on leaving."""
    emu = standard_emulator(KEYS, limits=limits)
    await emu.start()
    ex = binance_client(emu.url, key, secret, timeout_ms)
    try:
        yield emu, ex
    finally:
        await ex.close()
        await emu.stop()


# -- pure signature checks ------------------------------------------------------------------------


def test_signature_covers_query_and_body_without_the_signature_itself():
    secrets = {"k": "s"}
    payload = "symbol=BTCUSDT&timestamp=1000&recvWindow=5000"
    sig = auth.sign(payload, "s")
    ok = auth.verify(
        "k", secrets, f"{payload}&signature={sig}", "", {"timestamp": "1000", "recvWindow": "5000"}, 1200
    )
    assert ok == "k"
    tampered = auth.verify(
        "k",
        secrets,
        f"symbol=ETHUSDT&timestamp=1000&recvWindow=5000&signature={sig}",
        "",
        {"timestamp": "1000", "recvWindow": "5000"},
        1200,
    )
    assert (tampered.status, tampered.code) == (400, -1022)
    assert auth.verify("nobody", secrets, payload, "", {}, 0).code == -2015
    assert auth.verify("k", secrets, payload, "", {"timestamp": "1000"}, 1200).code == -1102


def test_timestamps_outside_the_receive_window_are_refused():
    secrets = {"k": "s"}
    payload = "timestamp=1000&recvWindow=500"
    query = f"{payload}&signature={auth.sign(payload, 's')}"
    params = {"timestamp": "1000", "recvWindow": "500"}
    assert auth.verify("k", secrets, query, "", params, 1500) == "k"
    assert auth.verify("k", secrets, query, "", params, 1501).code == -1021  # too old
    assert auth.verify("k", secrets, query, "", params, -1).code == -1021  # from the future


# -- through ccxt -------------------------------------------------------------------------------


def test_markets_book_and_balance_through_ccxt():
    async def body():
        async with _session() as (emu, ex):
            markets = await ex.load_markets()
            btc = markets["BTC/USDT"]
            assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
            assert btc["limits"]["cost"]["min"] == 5.0
            book = await ex.fetch_order_book("BTC/USDT", 5)
            assert book["bids"][0] == [50000.0, 0.5] and book["asks"][0] == [50000.01, 0.3]
            bal = await ex.fetch_balance()
            assert bal["free"]["USDT"] == 100_000.0 and bal["BTC"]["total"] == 2.0
            assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == str(20 + 5 + 20)

    run(body())


def test_a_wrong_secret_is_refused_as_an_authentication_error_and_nothing_is_placed():
    async def body():
        async with _session(secret="not-the-secret") as (emu, ex):
            await ex.load_markets()
            with pytest.raises(ccxt.AuthenticationError):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "1"})
            assert emu.placed == []
            assert ("POST", "/api/v3/order", 400) in emu.log

    run(body())


def test_an_unknown_key_is_refused():
    async def body():
        async with _session(key="key-mallory") as (emu, ex):
            await ex.load_markets()
            with pytest.raises(ccxt.AuthenticationError):
                await ex.fetch_balance()

    run(body())


def test_a_skewed_clock_fails_the_receive_window():
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            emu.faults.clock_skew_ms = 60_000  # the venue's clock is a minute ahead
            with pytest.raises(ccxt.InvalidNonce):
                await ex.fetch_balance()
            emu.faults.clock_skew_ms = 0
            await ex.fetch_balance()

    run(body())


def test_partial_fill_rests_the_remainder_and_locks_only_what_it_needs():
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            o = await ex.create_order("BTC/USDT", "limit", "buy", 0.5, 50000.01, {"clientOrderId": "101"})
            assert (o["status"], o["filled"], o["remaining"]) == ("open", 0.3, 0.2)
            assert o["clientOrderId"] == "101" and o["fee"]["currency"] == "USDT"
            free, locked = emu.balance("alice", "USDT")
            assert locked == pytest.approx(0.2 * 50000.01 * 1.001, rel=1e-6)  # remainder + taker fee cap
            trades = await ex.fetch_my_trades("BTC/USDT")
            assert [(t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
                (50000.01, 0.3, "taker")
            ]
            emu.trade_against("BTCUSDT", Side.SELL, 0.2)  # someone sells into us
            got = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "101"})
            assert (got["status"], got["filled"]) == ("closed", 0.5)
            assert emu.balance("alice", "BTC")[0] == pytest.approx(2.5)
            assert len(await ex.fetch_my_trades("BTC/USDT")) == 2
            assert await ex.fetch_open_orders("BTC/USDT") == []

    run(body())


def test_place_fetch_cancel_by_client_order_id():
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            await ex.create_order("ETH/USDT", "limit", "sell", 1.0, 3100.0, {"clientOrderId": "201"})
            opened = await ex.fetch_open_orders("ETH/USDT")
            assert [o["clientOrderId"] for o in opened] == ["201"]
            c = await ex.cancel_order(None, "ETH/USDT", {"origClientOrderId": "201"})
            assert c["status"] == "canceled" and c["info"]["origClientOrderId"] == "201"
            assert emu.balance("alice", "ETH") == (20.0, 0.0)
            with pytest.raises(ccxt.OrderNotFound):
                await ex.cancel_order(None, "ETH/USDT", {"origClientOrderId": "201"})
            with pytest.raises(ccxt.OrderNotFound):
                await ex.fetch_order(None, "ETH/USDT", {"origClientOrderId": "never-sent"})

    run(body())


def test_accounts_are_separate_and_a_reused_client_id_is_a_duplicate():
    async def body():
        async with _session() as (emu, ex):
            ex_bob = binance_client(emu.url, "key-bob", "secret-bob")
            try:
                await ex.load_markets()
                await ex_bob.load_markets()
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "301"})
                await ex_bob.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "301"})
                with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
                    await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "301"})
                assert len(emu.orders_of("alice")) == 1 and len(emu.orders_of("bob")) == 1
            finally:
                await ex_bob.close()

    run(body())


def test_filters_and_funds_are_refused_with_binance_codes():
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            with pytest.raises(ccxt.BadRequest):  # NOTIONAL: 0.5 USDT
                await ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 50000, {"clientOrderId": "401"})
            with pytest.raises(ccxt.InsufficientFunds):
                await ex.create_order("BTC/USDT", "limit", "buy", 3.0, 49000, {"clientOrderId": "402"})
            with pytest.raises(ccxt.OrderImmediatelyFillable):
                await ex.create_order(
                    "BTC/USDT", "limit", "buy", 0.001, 50001, {"clientOrderId": "403", "postOnly": True}
                )
            emu.faults.filter_failure, emu.faults.filter_failure_count = "LOT_SIZE", 1
            with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "404"})
            emu.faults.insufficient_balance = 1
            with pytest.raises(ccxt.InsufficientFunds):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "405"})
            await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "406"})
            assert [p.coid for p in emu.orders_of("alice")] == ["406"]
            with pytest.raises(ccxt.OrderNotFound):  # a rejected order does not exist
                await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "402"})

    run(body())


def test_cancel_fill_race_answers_unknown_order_and_the_order_is_filled():
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 49000, {"clientOrderId": "501"})
            emu.faults.fill_on_cancel = True
            with pytest.raises(ccxt.OrderNotFound):
                await ex.cancel_order(None, "BTC/USDT", {"origClientOrderId": "501"})
            got = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "501"})
            assert (got["status"], got["filled"]) == ("closed", 0.01)

    run(body())


@pytest.mark.parametrize("style,error", [("json", ccxt.OnMaintenance), ("html", ccxt.ExchangeNotAvailable)])
def test_maintenance_answers_503(style, error):
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            emu.faults.maintenance = style
            with pytest.raises(error):
                await ex.fetch_order_book("BTC/USDT")
            emu.faults.maintenance = ""
            await ex.fetch_order_book("BTC/USDT")

    run(body())


def test_an_empty_200_answer_becomes_an_order_without_id_in_ccxt_but_the_order_exists():
    async def body():
        async with _session() as (emu, ex):
            await ex.load_markets()
            emu.faults.empty_reply = 1
            o = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "601"})
            assert o["id"] is None and o["status"] is None
            assert [p.coid for p in emu.orders_of("alice")] == ["601"]

    run(body())


@pytest.mark.parametrize("placed", [True, False])
def test_a_slow_submit_times_out_the_client_with_the_order_placed_or_not(placed):
    async def body():
        async with _session(timeout_ms=300) as (emu, ex):
            await ex.load_markets()
            emu.faults.slow_submit, emu.faults.slow_submit_placed, emu.faults.slow_s = 1, placed, 0.6
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "701"})
            assert [p.coid for p in emu.orders_of("alice")] == (["701"] if placed else [])

    run(body())


def test_weight_abuse_gets_429_with_retry_after_then_a_418_ban():
    async def body():
        limits = RateLimitsConfig(weight_limit=40, weight_window_s=30.0, ban_after=3, ban_s=5.0)
        async with _session(limits=limits) as (emu, ex):
            await ex.load_markets()  # weight 20
            await ex.fetch_order_book("BTC/USDT", 5)  # 25
            await ex.fetch_order_book("BTC/USDT", 5)  # 30
            with pytest.raises(ccxt.DDoSProtection, match="429"):
                await ex.fetch_balance()  # +20 > 40
            retry_after = int(ex.last_response_headers["Retry-After"])
            assert 1 <= retry_after <= 30
            statuses = []
            for _ in range(4):  # keeps going during the wait
                with pytest.raises(ccxt.DDoSProtection):
                    await ex.fetch_order_book("BTC/USDT", 5)
                statuses.append(emu.log[-1][2])
            assert statuses == [429, 429, 418, 418]
            assert int(ex.last_response_headers["Retry-After"]) == 5
            assert emu.limiter.counts == {429: 3, 418: 2}

    run(body())


def test_order_rate_limit_answers_429_too():
    async def body():
        async with _session(limits=RateLimitsConfig(orders_limit=2, orders_window_s=30.0)) as (emu, ex):
            await ex.load_markets()
            for i in range(2):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": f"80{i}"})
            with pytest.raises(ccxt.DDoSProtection):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 40000, {"clientOrderId": "809"})
            assert len(emu.orders_of("alice")) == 2

    run(body())


def test_emulator_thread_serves_a_caller_on_another_loop():
    emu = standard_emulator(KEYS)
    with EmulatorThread(emu) as th:
        assert th.port > 0

        async def body():
            ex = binance_client(emu.url, "key-alice", "secret-alice")
            try:
                t0 = time.perf_counter()
                book = await ex.fetch_order_book("BTC/USDT", 5)
                assert book["asks"][0][0] == 50000.01
                assert time.perf_counter() - t0 < 5
                emu.set_book("BTCUSDT", [(49_000.0, 1.0)], [(49_500.0, 1.0)])  # from this thread
                book = await ex.fetch_order_book("BTC/USDT", 5)
                assert book["bids"] == [[49000.0, 1.0]] and book["asks"] == [[49500.0, 1.0]]
            finally:
                await ex.close()

        run(body())
