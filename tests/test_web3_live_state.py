"""A pool venue's books kept live on anvil: heads and Sync logs by websocket (or polled), the
book the venue's own swap left handed on before its fill, a silent node marking the books stale,
and no venue lock held while a swap waits to be mined."""

from __future__ import annotations

import asyncio
import time

import pytest
from web3_local import E18, INSTRUMENT, local_chain, rpc, swap_data

from adapters.web3.arbitrage import read_pool
from adapters.web3.venue import Web3Venue
from basis_core.venue import BookUpdate, Fill, OrderRequest, OrderType, Side, VenueReport, VenueStatus

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def chain():
    c = local_chain()
    yield c
    c.stop()


@pytest.fixture
def fresh(chain):
    """The chain as the module left it, again after the test (automine on, no interval mining)."""
    snap = rpc(chain.url, "evm_snapshot")
    yield chain
    rpc(chain.url, "evm_setIntervalMining", [0])
    rpc(chain.url, "evm_setAutomine", [True])
    assert rpc(chain.url, "evm_revert", [snap]) is True


async def until(pred, timeout_s: float = 3.0, what: str = "") -> None:
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.005)


class Follow:
    """What the io side would see of a venue: its market data and its user events, in order."""

    def __init__(self, venue: Web3Venue):
        self.venue, self.seen = venue, []

    async def _market(self):
        async for ev in self.venue.market_data():
            self.seen.append(ev)

    async def _user(self):
        async for ev in self.venue.user_events():
            self.seen.append(ev)

    async def __aenter__(self):
        await self.venue.start()
        self.tasks = [asyncio.create_task(self._market()), asyncio.create_task(self._user())]
        await until(lambda: self.books(), what="a first book")
        return self

    async def __aexit__(self, *exc):
        await self.venue.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def books(self) -> list[BookUpdate]:
        return [e for e in self.seen if isinstance(e, BookUpdate)]


def _book_at(venue: Web3Venue, block: int):
    m = venue.markets[INSTRUMENT]
    s = read_pool(venue.client, m.pool, block)
    b = venue.book(m, s, 0)
    return b.bids, b.asks


@pytest.mark.parametrize("ws", [True, False], ids=["websocket", "polled"])
def test_another_accounts_swap_changes_our_book_within_one_block(fresh, ws):
    asyncio.run(_another_swap(fresh, ws))


async def _another_swap(chain, ws: bool) -> None:
    mover = chain.mover()
    venue = chain.venue(ws=ws, poll_s=0.02)
    async with Follow(venue) as f:
        before = f.books()[-1]
        assert (before.bids, before.asks) == _book_at(venue, mover.block_number())
        n = len(f.books())
        rec = mover.wait(
            mover.send(chain.pool, swap_data(chain.dev.tokens["USDT"], 200_000 * E18, mover.address))
        )
        assert rec.ok
        t0 = time.monotonic()
        want = _book_at(venue, rec.block_number)
        await until(
            lambda: any((b.bids, b.asks) == want for b in f.books()[n:]), 2.0, "the moved pool's book"
        )
        moved = next(b for b in f.books()[n:] if (b.bids, b.asks) == want)
        print(
            f"{'ws' if ws else 'poll'}: moved book {1e3 * (time.monotonic() - t0):.1f} ms after the receipt"
        )
        assert moved.update_id == rec.block_number and moved.asks[0][0] > before.asks[0][0] * 1.01
        # a new book on every block, even an empty one: each stamped with its block
        n = len(f.books())
        for _ in range(3):  # a poll sees the latest block: leave each one time to be seen
            rpc(chain.url, "evm_mine")
            await asyncio.sleep(0.1)
        await until(lambda: len({b.update_id for b in f.books()[n:]}) >= 3, 2.0, "a book per block")
        ids = sorted({b.update_id for b in f.books()[n:]})
        assert ids[-3:] == [rec.block_number + 1, rec.block_number + 2, rec.block_number + 3]
        assert all((b.bids, b.asks) == want for b in f.books()[n:])


def test_our_own_swaps_book_is_handed_on_before_its_fill(fresh):
    asyncio.run(_own_swap(fresh))


async def _own_swap(chain) -> None:
    # polled every 10 s: only the receipt can bring the swap's book in time
    venue = chain.venue(ws=False, poll_s=10.0)
    async with Follow(venue) as f:
        n = len(f.seen)
        view = await venue.submit(OrderRequest("7001", INSTRUMENT, Side.BUY, OrderType.MARKET, 0.5, None))
        assert view.status.name == "FILLED"
        rec = venue.client.get_receipt(view.venue_order_id)
        await until(lambda: any(isinstance(e, Fill) for e in f.seen[n:]), what="the fill")
        after = f.seen[n:]
        fill_at = next(i for i, e in enumerate(after) if isinstance(e, Fill))
        books = [(i, e) for i, e in enumerate(after) if isinstance(e, BookUpdate)]
        assert books and books[0][0] < fill_at, after  # the book came first
        assert (books[0][1].bids, books[0][1].asks) == _book_at(venue, rec.block_number)
        assert books[0][1].update_id == rec.block_number


def test_a_silent_node_marks_the_books_stale_until_the_next_head(fresh):
    asyncio.run(_silent(fresh))


async def _silent(chain) -> None:
    rpc(chain.url, "evm_setIntervalMining", [1])  # a block a second, like a (fast) real chain
    venue = chain.venue(ws=True, head_timeout_s=1.6)
    async with Follow(venue) as f:
        await until(lambda: len({b.update_id for b in f.books()}) >= 3, 4.0, "blocks by the interval")
        assert not [e for e in f.seen if isinstance(e, VenueStatus)]
        assert (await venue.status()).state == VenueReport.OK
        # block production stops: no head for 1.6 s and the books go stale
        rpc(chain.url, "evm_setIntervalMining", [0])
        rpc(chain.url, "evm_setAutomine", [False])
        stopped, n = time.monotonic(), len(f.seen)
        await until(lambda: any(isinstance(e, VenueStatus) for e in f.seen[n:]), 4.0, "stale")
        waited = time.monotonic() - stopped
        assert 0.5 < waited < 3.0, waited
        status = next(e for e in f.seen[n:] if isinstance(e, VenueStatus))
        assert status.state == VenueReport.DISCONNECTED and "no new head" in status.message
        empty = [e for e in f.seen[n:] if isinstance(e, BookUpdate)][-1]
        assert empty.snapshot and empty.bids == () and empty.asks == ()  # unusable to the engine
        st = await venue.status()
        assert st.state == VenueReport.DISCONNECTED and "no new head" in st.message
        # a head again: OK, then the books
        n = len(f.seen)
        rpc(chain.url, "evm_mine")
        await until(lambda: any(isinstance(e, BookUpdate) and e.asks for e in f.seen[n:]), 2.0, "revived")
        kinds = [type(e).__name__ for e in f.seen[n:]]
        assert kinds[0] == "VenueStatus" and f.seen[n].state == VenueReport.OK
        assert (await venue.status()).state == VenueReport.OK


def test_a_swap_waiting_to_be_mined_does_not_hold_the_venue(fresh):
    asyncio.run(_no_lock_held(fresh))


async def _no_lock_held(chain) -> None:
    venue = chain.venue(ws=True)
    async with Follow(venue):
        some = await venue.submit(OrderRequest("7100", INSTRUMENT, Side.BUY, OrderType.MARKET, 0.02, None))
        assert some.status.name == "FILLED"  # BTC to sell below
        rpc(chain.url, "evm_setAutomine", [False])
        first = asyncio.create_task(
            venue.submit(OrderRequest("7101", INSTRUMENT, Side.BUY, OrderType.MARKET, 0.01, None))
        )
        addr = venue.client.address.lower()

        def pooled() -> int:
            pending = rpc(chain.url, "txpool_content")["pending"]
            return sum(len(v) for a, v in pending.items() if a.lower() == addr)

        await until(lambda: pooled() == 1, 3.0, "the first swap in the node's pool")
        # the first swap waits for its receipt; the venue still answers and sends
        t0 = time.monotonic()
        bal = await venue.balances()
        st = await venue.status()
        assert time.monotonic() - t0 < 0.5 and bal["USDT"].free > 0 and st.state == VenueReport.OK
        second = asyncio.create_task(
            # a sell: its minimum output (the slippage bound) holds after the pending buy
            venue.submit(OrderRequest("7102", INSTRUMENT, Side.SELL, OrderType.MARKET, 0.01, None))
        )
        await until(lambda: pooled() == 2, 3.0, "the second swap sent while the first waits")
        assert not first.done() and not second.done()
        rpc(chain.url, "evm_mine")
        a, b = await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert a.status.name == b.status.name == "FILLED"
        ra, rb = (venue.client.get_receipt(v.venue_order_id) for v in (a, b))
        assert ra.block_number == rb.block_number  # both in the one block mined


def test_the_engine_sends_nothing_to_a_pool_whose_node_went_silent(fresh, tmp_path):
    """Through the Runner: block production stops, the pool venue goes DOWN (its books empty);
    no order is sent to it until a head comes again."""
    from orchestration import transitions
    from web3_local import cex_dex_data

    from adapters.web3.world import ChainWorld
    from basis_core.config import from_dict
    from basis_core.engine.scenario import run_scenario

    chain = fresh
    rpc(chain.url, "evm_setIntervalMining", [1])
    cfg = from_dict(cex_dex_data(3.0))
    table = chain.table(ws_url=chain.ws_url, head_timeout_s=1.2)
    world = ChainWorld.from_config(
        cfg, {"dex": chain.client()}, {INSTRUMENT: chain.addresses()}, tables={"dex": table}
    )
    marks: dict = {}

    async def after_start(runner):
        async def stop_blocks():
            await asyncio.sleep(0.8)  # trades first, on a chain making a block a second
            rpc(chain.url, "evm_setIntervalMining", [0])
            rpc(chain.url, "evm_setAutomine", [False])
            marks["stopped_ns"] = time.time_ns()
            await asyncio.sleep(2.0)
            marks["resumed_ns"] = time.time_ns()
            rpc(chain.url, "evm_mine")
            rpc(chain.url, "evm_setIntervalMining", [1])  # blocks again, a second apart

        marks["task"] = asyncio.create_task(stop_blocks())

    runner = asyncio.run(
        run_scenario(cfg, tmp_path / "run", world, progress=None, settle_s=1.5, after_start=after_start)
    )
    venue = [(a, b) for a, b, _ in transitions(runner, "venue:dex")]
    assert ("UP", "DOWN") in venue, venue
    down = next(
        t for t in runner.core.transitions_as_dicts() if t["machine"] == "venue:dex" and t["to"] == "DOWN"
    )
    assert marks["stopped_ns"] < down["t"] < marks["resumed_ns"]
    sent = [o.created_ns for o in runner.core.orders.orders.values() if o.venue == "dex"]
    assert not [t for t in sent if down["t"] <= t <= marks["resumed_ns"]], "an order went to a silent node"
    # back once heads came again (DOWN -> SUSPECT, its orders verified -> UP), and it stays so
    assert venue[venue.index(("UP", "DOWN")) + 1 :] == [("DOWN", "SUSPECT"), ("SUSPECT", "UP")], venue
