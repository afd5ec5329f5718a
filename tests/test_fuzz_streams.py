"""Property-based fuzz of the websocket messages a ccxt venue reads, and of recorded Parquet.

User data: the emulator's real user-data events (spot `executionReport` and
`outboundAccountPosition` on the WebSocket API; USDⓈ-M `ORDER_TRADE_UPDATE` and
`ACCOUNT_UPDATE` on a listen key's stream), captured from a live subscription, are mutated as
tests/test_fuzz_venue.py mutates REST answers and handed to the venue's message hook and parser
(`UserStream.on_message`, `_parse`, with ccxt's own ws parsers), as ccxt.pro hands them over.
Each gives the events the unmutated message gives, or a typed error (the subscription ends and
the next one's REST backstop reads our orders), and a message that should carry our order is
never dropped silently.

Depth: the emulator's depth diffs are mutated on the wire (`faults.mutate_frame`) while ccxt.pro
keeps the book; every book the venue passes on is the venue's book at its update id or marked
stale, and once the feed is clean the book comes back right.

Recorded Parquet: files with the CSV's columns, values and types mutated, and files that are not
Parquet: loaded and checked, or a DataFileError naming the file.

500 examples per format in CI; 10,000 with BASIS_SOAK=full.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_fuzz_venue import (
    FUZZ,
    KEY,
    NO_LIMITS,
    PERP_BOOK,
    SECRET,
    _bench,
    _close,
    _futures_emulator,
    check_error,
    mutations,
)
from test_fuzz_venue import apply as apply_recipe

from adapters.ccxt import streams
from adapters.emulator.harness import standard_emulator
from basis_core.errors import MalformedResponse
from basis_core.schema import OrderType, Side
from basis_core.venue import BalanceUpdate, Fill, OrderRequest, OrderUpdate

# -- user data --------------------------------------------------------------------------------------


class Captured:
    """A venue whose user stream ran against the emulator, and the messages it received."""

    def __init__(self, bench, messages: list[tuple[dict, str]]):
        self.b, self.messages = bench, messages

    def __repr__(self) -> str:
        return f"Captured({self.b.venue.name}, {len(self.messages)} messages)"


async def _capture(b, trade) -> list[tuple[dict, str]]:
    """Run the user stream while `trade(venue)` places orders; the user-data events seen."""
    v = b.venue
    us = v.user_stream
    seen: list[tuple[dict, str]] = []
    hook = us.on_message

    def record(message, url=""):
        if isinstance(message, dict) and ("e" in message or "event" in message):
            seen.append((copy.deepcopy(message), url))
        hook(message, url)

    v._ex.basis_on_message = record
    events = v.user_events()
    pump = asyncio.ensure_future(_drain(events))
    for _ in range(500):
        if us.subscriptions:
            break
        await asyncio.sleep(0.01)
    await trade(v)
    await asyncio.sleep(0.3)
    pump.cancel()
    v._ex.basis_on_message = hook
    return seen


async def _drain(events):
    async for _ in events:
        pass


def _captured(bench, trade) -> Captured:
    messages = bench.run(_capture(bench, trade), 30)
    assert messages, "no user-data event was captured"
    return Captured(bench, messages)


@pytest.fixture(scope="module")
def spot_user():
    b = _bench(
        lambda: standard_emulator({KEY: (SECRET, "alice")}, limits=NO_LIMITS),
        {"instruments": {"BTCUSDT": "BTC/USDT"}, "user_data": "ws"},
        "emu",
    )

    async def trade(v):
        await v.submit(OrderRequest("8001", "BTCUSDT", Side.BUY, OrderType.IOC, 0.002, 50_000.01))
        await v.submit(OrderRequest("8002", "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, 40_000.00))
        await v.cancel("8002", "BTCUSDT")

    yield _captured(b, trade)
    _close(b)


@pytest.fixture(scope="module")
def perp_user():
    b = _bench(
        _futures_emulator,
        {
            "exchange": "binanceusdm",
            "instruments": {"BTCPERP": "BTC/USDT:USDT"},
            "leverage": {"BTCPERP": 10},
            "user_data": "ws",
        },
        "usdm",
    )
    b.emu.set_book("BTCUSDT", *PERP_BOOK)

    async def trade(v):
        await v.submit(OrderRequest("8001", "BTCPERP", Side.BUY, OrderType.IOC, 0.4, 50_000.1))
        await v.submit(OrderRequest("8002", "BTCPERP", Side.BUY, OrderType.LIMIT, 0.01, 40_000.0))
        await v.cancel("8002", "BTCPERP")

    yield _captured(b, trade)
    _close(b)


def _read(cap: Captured, message, url: str):
    """The events the venue makes of one message, from the same memory each time."""
    v = cap.b.venue
    us = v.user_stream
    last, live = dict(v._last), set(v._live)
    seen, passed = copy.copy(us._seen), dict(us._passed_qty)
    us._queue, us._garbled = asyncio.Queue(), 0
    try:
        us.on_message(message, url)
        out = []
        while not us._queue.empty():
            out += us._parse(v._ex, us._queue.get_nowait())
        return out, us._garbled
    finally:
        us._queue = None
        v._last, v._live, us._seen, us._passed_qty = last, live, seen, passed


def _plain(ev):
    """An event without the time it was read at."""
    if isinstance(ev, OrderUpdate | BalanceUpdate):
        return dataclasses.replace(ev, ts_ns=0)
    return ev


def user_case(cap: Captured, pick: int, recipe) -> None:
    message, url = cap.messages[pick % len(cap.messages)]
    want, garbled = _read(cap, copy.deepcopy(message), url)
    assert not garbled
    status, body, _ = apply_recipe(recipe, 200, copy.deepcopy(message))
    import json

    try:
        mutated = json.loads(body)
    except ValueError:
        return  # not JSON: ccxt.pro's client fails on it and the connection ends (RequestTimeout)
    try:
        got, garbled = _read(cap, mutated, url)
    except Exception as exc:
        return check_error(exc, cap.b.venue.name)
    if garbled:
        return  # counted: the subscription ends with MalformedResponse
    assert [_plain(e) for e in got] == [_plain(e) for e in want]
    for e in got:
        if isinstance(e, Fill):
            assert math.isfinite(e.price) and e.price > 0 and e.qty > 0 and 0 <= e.ts_ns < 2**63


# found by the fuzz (regression examples): messages read wrong before their fix
@example(pick=0, recipe=([("drop", [])], None))  # a null frame on the user connection: dropped
@example(pick=5, recipe=([("drop", [0, 0])], None))  # a cancel report without "C": the cancel's id adopted
@example(pick=0, recipe=([("set", [0, 21], "nan")], None))  # order id "nan"
@FUZZ
@given(pick=st.integers(0, 1000), recipe=mutations())
def test_any_spot_user_event_is_read_right_or_is_a_typed_error(spot_user, pick, recipe):
    user_case(spot_user, pick, recipe)


@FUZZ
@given(pick=st.integers(0, 1000), recipe=mutations())
def test_any_usdm_user_event_is_read_right_or_is_a_typed_error(perp_user, pick, recipe):
    user_case(perp_user, pick, recipe)


# -- depth diffs ------------------------------------------------------------------------------------


class Books:
    """A spot venue keeping BTCUSDT's book from the emulator's depth diffs (`watch_book`, as the
    venue's market stream runs it, started again after a typed error as the io side does), and
    the emulator's book at each update id."""

    def __init__(self, bench):
        self.b, self.got, self.errors, self.truth = bench, [], [], {}
        self.task: asyncio.Future | None = None

    def __repr__(self) -> str:
        return f"Books({len(self.got)} books, {len(self.errors)} errors)"

    def start(self) -> None:
        async def put(item):
            (self.errors if isinstance(item, Exception) else self.got).append(item)

        async def loop():
            while True:
                await streams.watch_book(self.b.venue, "BTCUSDT", put)
                await asyncio.sleep(0.01)

        self.task = asyncio.ensure_future(loop(), loop=self.b.loop)

    def record(self) -> int:
        emu = self.b.emu
        with emu.lock:
            fmt = emu.formats["BTCUSDT"]
            bids, asks = emu.exchange.engine("BTCUSDT").book(1000)
            uid = emu.streams.update_id("BTCUSDT")
            side = lambda rows: tuple((float(fmt.px(p)), float(fmt.qty(q))) for p, q in rows)
            self.truth[uid] = (side(bids), side(asks))
        return uid


@pytest.fixture(scope="module")
def books():
    b = _bench(
        lambda: standard_emulator({KEY: (SECRET, "alice")}, limits=NO_LIMITS),
        {
            "instruments": {"BTCUSDT": "BTC/USDT"},
            "market_data": "ws",
            "user_data": "rest",
            "book_stale_ms": 300,
        },
        "emu",
    )
    bk = Books(b)
    bk.record()
    bk.start()
    yield bk
    bk.task.cancel()
    b.run(asyncio.sleep(0.05))
    _close(b)


def _change(bk: Books, step: int) -> int:
    """Move BTCUSDT's book one step (a level's quantity, a level added or taken); its new id."""
    q = 0.1 + 0.01 * (step % 37)
    bids = [(50_000.00, q), (49_999.00, 1.0)] + ([(49_998.00, 0.2)] if step % 3 else [])
    asks = [(50_000.01, 0.3), (50_001.00, round(1.0 + q, 5))]
    bk.b.emu.set_book("BTCUSDT", bids, asks)
    return bk.record()


def depth_case(bk: Books, recipe, frames: int, persistent: bool) -> None:
    b = bk.b
    done = [0]

    def mutate(frame):
        if done[0] >= frames and not persistent:
            return None
        done[0] += 1
        return apply_recipe(recipe, 200, frame)[1].decode()

    start = len(bk.got)
    b.emu.faults.mutate_frame = mutate
    try:
        for _ in range(frames):
            _change(bk, len(bk.truth))
            b.run(asyncio.sleep(0.001))
    finally:
        b.emu.faults.mutate_frame = None
    last = _change(bk, len(bk.truth))  # clean diffs: the book must come back

    async def settled():  # (a book resynced after a gap is passed on with the next diff)
        for i in range(1500):
            if bk.got and len(bk.got) > start and bk.got[-1].update_id >= last and bk.got[-1].bids:
                return
            if i % 25 == 24:
                _change(bk, len(bk.truth))
            await asyncio.sleep(0.002)

    b.run(settled())
    for err in bk.errors:
        check_error(err, "emu")
    bk.errors.clear()
    for book in bk.got[start:]:
        if not book.bids and not book.asks:
            continue  # marked stale
        assert book.update_id in bk.truth, book
        assert (book.bids, book.asks) == bk.truth[book.update_id], book.update_id
    latest = bk.got[-1]
    assert latest.update_id >= last and (latest.bids, latest.asks) == bk.truth[latest.update_id]


# found by the fuzz (regression examples): the book stuck (not JSON: ccxt.pro's receive loop
# stopped; a diff without its event time: skipped, and the book stopped advancing)
@example(recipe=([], ("truncate", 0.5)), frames=1, persistent=False)
@example(recipe=([("drop", [0])], None), frames=1, persistent=False)
@example(recipe=([("nest", [], "dict"), ("drop", [0, 2])], None), frames=1, persistent=False)  # wrapped
@FUZZ
@given(recipe=mutations(), frames=st.integers(1, 3), persistent=st.booleans())
def test_any_depth_diff_keeps_the_book_right_or_marks_it_stale(books, recipe, frames, persistent):
    depth_case(books, recipe, frames, persistent)


def test_a_garbled_user_event_ends_the_subscription_and_the_next_one_finds_the_fill():
    """End to end on the wire: an executionReport the venue cannot read ends the subscription
    with MalformedResponse (the io side reports it and subscribes again); a fill made meanwhile
    is found by the next subscription's REST backstop, once."""
    b = _bench(
        lambda: standard_emulator({KEY: (SECRET, "alice")}, limits=NO_LIMITS),
        {"instruments": {"BTCUSDT": "BTC/USDT"}, "user_data": "ws"},
        "emu",
    )
    v, emu = b.venue, b.emu

    async def body():
        first = v.user_events()
        nxt = asyncio.ensure_future(first.__anext__())
        for _ in range(500):
            if v.user_stream.subscriptions:
                break
            await asyncio.sleep(0.01)
        await v.submit(OrderRequest("8101", "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, 49_999.00))
        while not nxt.done():  # the order's NEW, pushed
            await asyncio.sleep(0.01)
        assert isinstance(nxt.result(), OrderUpdate)
        with emu.lock:
            emu.users.publish("alice", {"e": "executionReport", "s": "BTCUSDT", "c": "8101", "i": "nan"})
        with pytest.raises(MalformedResponse):
            while True:
                await asyncio.wait_for(first.__anext__(), 5)
        emu.trade_against("BTCUSDT", Side.SELL, 1.501)  # 0.5 at 50,000, the 1.0 before ours, ours
        second = v.user_events()
        fills = []
        while not fills:
            ev = await asyncio.wait_for(second.__anext__(), 5)
            fills += [ev] if isinstance(ev, Fill) else []
        await second.aclose()
        return fills

    try:
        fills = b.run(body(), 30)
        assert [(f.coid, f.qty, f.price) for f in fills] == [("8101", 0.001, 49_999.0)]
    finally:
        _close(b)
