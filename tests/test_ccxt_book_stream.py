"""Order books over the emulator's depth websocket, through the ccxt venue and the io side: a
sequence gap forces a fresh snapshot, and a silent feed marks the book stale until it speaks."""

from __future__ import annotations

import asyncio
import contextlib
import time

from waiting import run_within, until

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator.harness import standard_emulator
from basis_core.engine.io import VenueIO
from basis_core.kernels.book import BookState
from basis_core.registry import Registry
from basis_core.venue import BookUpdate

KEY, SECRET = "k3y-Alice-7f3a9c", "s3cret-Alice-b81d44e0"
KEYS = {KEY: (SECRET, "alice")}
SYM = "BTCUSDT"


def run(coro):
    return run_within(coro, 30)


@contextlib.asynccontextmanager
async def venue(**cfg):
    emu = standard_emulator(KEYS)
    await emu.start()
    config = from_dict(
        {
            "base_url": emu.url,
            "market_data": "ws",
            "user_data": "rest",
            "instruments": {SYM: "BTC/USDT"},
            **cfg,
        }
    )
    v = CcxtVenue("emu", config, Credentials(KEY, SECRET))
    try:
        await v.start()
        yield emu, v
    finally:
        await v.close()
        await emu.stop()


def emulator_book(emu, depth: int = 1000):
    with emu.lock:
        bids, asks = emu.exchange.engine(SYM).book(depth)
    return tuple((float(p), float(q)) for p, q in bids), tuple((float(p), float(q)) for p, q in asks)


def test_a_sequence_gap_forces_a_fresh_snapshot_equal_to_the_venues_book():
    async def body():
        async with venue() as (emu, v):
            books: list[BookUpdate] = []

            async def follow():
                async for ev in v.market_data():
                    books.append(ev)

            task = asyncio.create_task(follow())
            await until(lambda: books and books[-1].bids, what="the first book")
            first = books[-1].update_id
            depth_calls = lambda: sum(1 for m, p, _ in emu.log if p == "/api/v3/depth")
            assert depth_calls() == 1
            emu.faults.depth_skip = 1
            emu.set_book(SYM, [(50_000.0, 0.6)], [(50_000.01, 0.3), (50_001.0, 1.0)])  # never sent
            emu.set_book(SYM, [(50_000.0, 0.7), (49_998.0, 2.0)], [(50_000.02, 0.4)])  # its U skips one
            await until(lambda: v.book_resyncs.get(SYM) == 1, what="the gap")
            await until(lambda: books[-1].bids and books[-1].update_id > first + 1, what="the fresh book")
            assert depth_calls() == 2  # ccxt took a new REST snapshot
            stale = [b for b in books if not b.bids and not b.asks]
            assert len(stale) == 1 and stale[0].snapshot  # marked stale between the gap and the snapshot
            assert (books[-1].bids, books[-1].asks) == emulator_book(emu)
            # and it goes on from the fresh snapshot by diffs
            emu.set_book(SYM, [(50_000.0, 0.9)], [(50_000.02, 0.4)])
            await until(lambda: books[-1].bids == ((50_000.0, 0.9),), what="the next diff")
            assert (books[-1].bids, books[-1].asks) == emulator_book(emu)
            assert depth_calls() == 2
            task.cancel()

    run(body())


def test_a_silent_feed_marks_the_book_stale_in_the_engine_until_it_speaks():
    async def body():
        async with venue(book_stale_ms=150) as (emu, v):
            reg = Registry()
            reg.venues.add("emu")
            reg.instruments.add(SYM)
            books = BookState(1, 1, 20)
            io = VenueIO({"emu": v}, reg, time.time_ns, books.apply, {1: SYM})
            pump = asyncio.create_task(io.pump_market("emu"))
            max_age = 10**12  # the book's age is not what is tested here: its contents are

            def usable() -> bool:
                return books.usable(1, 1, time.time_ns(), max_age)

            def levels():
                return tuple(books.levels(1, 1, 0)), tuple(books.levels(1, 1, 1))

            await until(usable, what="the first book")
            assert levels() == emulator_book(emu, 20)
            # a quiet market is marked stale once, and stays so while nothing arrives
            await until(lambda: not usable(), what="the stale mark")
            assert v.book_stale[SYM] == 1 and levels() == ((), ())
            emu.set_book(SYM, [(50_000.0, 0.8)], [(50_000.01, 0.3), (50_001.0, 1.0)])
            await until(usable, what="the book back")
            assert levels() == emulator_book(emu, 20)
            # the feed pauses while the book changes: stale; when it resumes, the held diff
            # brings the venue's book back
            emu.faults.depth_paused = True
            emu.set_book(SYM, [(50_000.0, 0.9), (49_990.0, 3.0)], [(50_000.05, 0.2)])
            await asyncio.sleep(0.3)
            assert not usable() and v.book_stale[SYM] == 2
            emu.faults.depth_paused = False
            await until(usable, what="the book after the pause")
            assert levels() == emulator_book(emu, 20)
            assert v.book_resyncs.get(SYM, 0) == 0  # held, not lost: no gap, no new snapshot
            pump.cancel()

    run(body())
