"""Client order ids of one run never meet another run's: a venue remembers ids across runs, so a
ccxt venue sends each id behind its run's prefix and reads any id without it as foreign.

Real ccxt against the exchange emulator on loopback; two CcxtVenue objects on the same account
stand for two runs of basis (each numbers its orders from 1)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator.harness import standard_emulator
from basis_core.engine.scenario import coid_prefix, keep_coid_prefix
from basis_core.errors import ConfigError, OrderNotFound
from basis_core.schema import OrderType, Side
from basis_core.venue import OrderRequest, OrderStatus, coid_from_wire

KEY, SECRET = "k3y-Carol-0c1d2e", "s3cret-Carol-99aa10bb"


def _venue(url: str, prefix: str) -> CcxtVenue:
    config = from_dict({"base_url": url, "timeout_ms": 1000, "instruments": {"BTCUSDT": "BTC/USDT"}})
    return CcxtVenue("emu", config, Credentials(KEY, SECRET), venue_id=3, coid_prefix=prefix)


@contextlib.asynccontextmanager
async def _runs(*prefixes: str):
    """One emulator and a started CcxtVenue per prefix on the same account (one per run)."""
    emu = standard_emulator({KEY: (SECRET, "carol")})
    await emu.start()
    venues = [_venue(emu.url, p) for p in prefixes]
    try:
        for v in venues:
            await v.start()
        yield emu, *venues
    finally:
        for v in venues:
            await v.close()
        await emu.stop()


def _resting_buy(coid: str, price: float) -> OrderRequest:
    return OrderRequest(coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, price)


def test_two_runs_numbering_from_one_keep_their_orders_apart():
    async def body():
        async with _runs("b0a0a0a", "b1b1b1b") as (emu, first, second):
            mine = await first.submit(_resting_buy("1", 40_000.0))
            theirs = await second.submit(_resting_buy("1", 39_000.0))  # the same number, no clash
            assert mine.coid == theirs.coid == "1" and mine.venue_order_id != theirs.venue_order_id
            # the venue saw each run's mark on the id
            assert sorted(p.coid for p in emu.orders_of("carol")) == ["b0a0a0a1", "b1b1b1b1"]
            # each run reads its own order back by its own id
            assert (await second.fetch_order("1")).price == 39_000.0
            # the other run's order is foreign to this one: never adopted as ours
            seen = {o.price: o.coid for o in await second.open_orders("BTCUSDT")}
            assert seen[39_000.0] == "1" and coid_from_wire(seen[39_000.0]) == 1
            assert seen[40_000.0] == "b0a0a0a1" and coid_from_wire(seen[40_000.0]) is None
            cancelled = await second.cancel("1", "BTCUSDT")
            assert cancelled.status == OrderStatus.CANCELED
            assert (await first.fetch_order("1")).status == OrderStatus.OPEN  # untouched

    asyncio.run(body())


def test_an_id_of_bare_digits_on_the_venue_is_never_read_as_ours():
    async def body():
        async with _runs("", "b1b1b1b") as (_, unmarked, marked):
            await unmarked.submit(_resting_buy("5", 40_000.0))  # e.g. placed by an older basis
            (seen,) = await marked.open_orders("BTCUSDT")
            assert seen.coid == "~5" and coid_from_wire(seen.coid) is None

    asyncio.run(body())


def test_an_id_of_another_run_is_not_found_under_ours():
    async def body():
        async with _runs("b0a0a0a", "b1b1b1b") as (_, first, second):
            await first.submit(_resting_buy("7", 40_000.0))
            with pytest.raises(OrderNotFound):
                await second.fetch_order("7", "BTCUSDT")

    asyncio.run(body())


def test_a_run_directory_keeps_its_prefix_and_runs_differ(tmp_path):
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    pa = coid_prefix(a)
    assert not a.exists()  # nothing written before the run starts
    keep_coid_prefix(a, pa)
    assert pa == coid_prefix(a)  # a resumed run reads the same prefix back
    assert pa != coid_prefix(b)
    assert len(pa) == 7 and pa[0] == "b"
    b.mkdir()
    (b / "coid_prefix").write_text("not-a-prefix\n")
    with pytest.raises(ConfigError, match="coid_prefix"):
        coid_prefix(b)


def test_a_prefix_that_a_venue_would_refuse_is_a_config_error():
    with pytest.raises(ConfigError, match="prefix"):
        _venue("http://127.0.0.1:9", "b-1")


def test_the_fill_sync_books_this_runs_fills_only():
    """A trade another run (or a hand) made on the account is in the venue's fill list but is not
    this run's: booking it would move the ledger's balances away from the venue's."""
    from basis_core.accounting.ledger import Ledger
    from basis_core.reconcile.fills import FillSync, sync_fills

    async def body():
        async with _runs("b0a0a0a", "b1b1b1b") as (_, earlier, this_run):
            take = OrderType.IOC
            await earlier.submit(OrderRequest("1", "BTCUSDT", Side.BUY, take, 0.01, 50_001.0))
            await this_run.submit(OrderRequest("1", "BTCUSDT", Side.BUY, take, 0.02, 50_001.0))
            ledger, state = Ledger(lambda asset, ts: 50_000.0), FillSync()
            assert await sync_fills(this_run, ledger, state) == 1
            assert state.foreign == 1
            assert ledger.balance("emu", "BTC") == pytest.approx(0.02)

    asyncio.run(body())
