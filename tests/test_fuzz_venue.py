"""Property-based fuzz of what a ccxt venue reads from its exchange: the emulator's REST answers
(balances, order answers, open orders, our trades, depth, exchangeInfo, server time; on USDⓈ-M
also positionRisk, premiumIndex and income) rewritten by the emulator's test-only
`faults.mutate` switch (fields dropped, values replaced by NaN / "nan" / negative / huge / empty
strings / wrong types, extra nesting, truncated JSON, HTML error pages, other status codes), so
that the real ccxt client parses the mutated body and `CcxtVenue` reads what ccxt made of it.

Each call gives the answer the same call gives on the unmutated venue, or a typed BasisError
(a VenueError naming the venue, no secret in its text): never another exception, never a value
that differs from the venue's (a NaN balance, a negative price, a fill the venue did not make).

One emulator and one venue per module, on one event loop, so that an example costs a few
loopback round trips. 500 examples per format in CI; 10,000 with BASIS_SOAK=full.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from soak import SOAK

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator import RateLimitsConfig
from adapters.emulator.futures import FuturesEmulator
from adapters.emulator.harness import standard_emulator
from adapters.sim.matching import Spec
from basis_core.errors import BasisError, VenueError
from basis_core.schema import OrderType, Side
from basis_core.venue import OrderRequest, OrderStatus

EXAMPLES = 10_000 if SOAK == "full" else 500
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=SOAK != "full",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEY, SECRET = "k3y-fuzz-5e1f", "s3cret-fuzz-90ab77c1"
#: the emulator and the venue's gate never limit the fuzz (the limits have tests of their own)
NO_LIMITS = RateLimitsConfig(
    weight_limit=10**9, orders_limit=10**9, orders_day_limit=10**9, ban_after=10**9, publish=False
)
OPEN_POOLS = {
    name: {"limit": 1e9, "window_s": window_s, "burst": 0.5}
    for name, window_s in (("weight_1m", 60.0), ("orders_10s", 10.0), ("orders_1d", 86_400.0))
}

# -- mutations of a JSON answer ------------------------------------------------------------------

#: values no field of these answers may hold (a price or amount beyond parsing.MAX_AMOUNT is
#: garbled; 0 and other plausible numbers are valid values, not malformed ones)
BAD = st.sampled_from(
    [
        None,
        "",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "-1",
        "-0.001",
        "1e300",
        "1e20",
        "abc",
        "1,5",
        -1,
        1e300,
        -1e300,
        2**64,
        float("nan"),
        float("inf"),
        True,
        [],
        {},
        [1, 2],
        {"a": 1},
    ]
)
#: fields that hold a name (REST, and the user stream's short keys: client ids, assets):
#: any other non-empty name is a valid (different) answer
NAMES = {"asset", "symbol", "clientOrderId", "commissionAsset", "marginAsset"} | {"c", "C", "a", "N"}
#: fields that may be negative (a fee rebate, a PnL, a funding rate, a short position)
SIGNED = {"commission", "n", "realizedPnl", "rp", "income", "unRealizedProfit", "up"}
SIGNED |= {"fundingRate", "lastFundingRate", "interestRate", "positionAmt", "pa", "bc", "cw", "wb"}
#: a path into the answer: each step picks a key (sorted) or an element by index modulo its size
PATH = st.lists(st.integers(0, 40), min_size=0, max_size=4)
OP = st.one_of(
    st.tuples(st.just("drop"), PATH),
    st.tuples(st.just("set"), PATH, BAD),
    st.tuples(st.just("set"), PATH, BAD),
    st.tuples(st.just("nest"), PATH, st.sampled_from(["list", "dict"])),
)
WHOLE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.99)),
    st.tuples(st.just("html"), st.sampled_from([200, 403, 500, 502, 503, 504])),
    st.tuples(st.just("status"), st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 500, 502])),
    st.tuples(st.just("body"), st.sampled_from(["", "null", "{}", "[]", "0", '"x"', "{", "[{}]"])),
)


@st.composite
def mutations(draw):
    """A recipe for rewriting one JSON answer: field operations, then maybe a whole-body one."""
    ops = draw(st.lists(OP, min_size=0, max_size=5))
    whole = draw(st.none() | WHOLE) if ops else draw(WHOLE)
    return ops, whole


def _walk(node, path):
    """(parent, key) of the node `path` reaches (parent None: the root), stopping at a leaf."""
    parent, key = None, None
    for step in path:
        if isinstance(node, dict) and node:
            k = sorted(node, key=str)[step % len(node)]
        elif isinstance(node, list) and node:
            k = step % len(node)
        else:
            break
        parent, key, node = node, k, node[k]
    return parent, key


def apply(recipe, status: int, body) -> tuple[int, bytes, str]:
    ops, whole = recipe
    was_list = isinstance(body, list)
    box = [body]
    for op in ops:
        parent, key = _walk(box[0], op[1])
        if parent is None:
            parent, key = box, 0
        if op[0] == "set" and op[2] == [] and isinstance(parent[key], list):
            continue  # an empty list is a valid answer (no trades, no orders, an empty side)
        if op[0] == "set" and key in NAMES and isinstance(op[2], str) and op[2]:
            continue  # another name is another asset or order, not a malformed answer
        if op[0] == "set" and isinstance(op[2], bool) and isinstance(parent[key], bool):
            continue  # the other truth value is a valid (different) answer
        if op[0] == "set" and key in SIGNED and op[2] in ("-1", "-0.001", -1):
            continue  # a signed field: a negative value is a valid (different) answer
        if op[0] == "drop" and isinstance(parent, dict):
            del parent[key]
        elif op[0] == "drop" or op[0] == "set":
            parent[key] = copy.deepcopy(op[2]) if op[0] == "set" else None  # (never shared)
        else:
            parent[key] = [parent[key]] if op[2] == "list" else {"data": parent[key]}
    if box[0] == [] and was_list:
        box[0] = body  # an empty list is a valid answer to a list (no trades, no orders)
    text = json.dumps(box[0])  # NaN and Infinity as JavaScript writes them: not JSON
    ctype = "application/json"
    if whole is not None:
        kind, arg = whole
        if kind == "truncate":
            text = text[: int(len(text) * arg)]
        elif kind == "html":
            status, ctype = arg, "text/html"
            text = f"<html><head><title>{arg}</title></head><body><h1>Error {arg}</h1></body></html>"
        elif kind == "status":
            status = arg
        elif not (arg == "[]" and isinstance(body, list)):  # (an empty list is an answer)
            text = arg
    return status, text.encode(), ctype


class Mutator:
    """The emulator's `faults.mutate`: rewrites the answers to `paths` (every one when
    `persistent`, else the first only), counting what it rewrote."""

    def __init__(self, recipe, paths: set[str], persistent: bool):
        self.recipe, self.paths, self.persistent, self.done = recipe, paths, persistent, 0

    def __call__(self, method, path, status, body):
        if path not in self.paths or (self.done and not self.persistent):
            return None
        self.done += 1
        return apply(self.recipe, status, body)


def check_error(exc: BaseException, venue: str) -> None:
    """A typed error, naming the venue when it is a venue's, with no secret in it."""
    assert isinstance(exc, BasisError), f"untyped {type(exc).__name__}: {exc!r}"
    if isinstance(exc, VenueError):
        assert exc.venue == venue, exc
    assert SECRET not in str(exc) and KEY not in str(exc)


# -- one venue for the module ---------------------------------------------------------------------


class Bench:
    """One emulator and one venue on one loop, for every example of a module."""

    def __init__(self, loop: asyncio.AbstractEventLoop, emu, venue: CcxtVenue):
        self.loop, self.emu, self.venue, self.n = loop, emu, venue, 0

    def __repr__(self) -> str:
        return f"Bench({self.venue.name})"

    def run(self, coro, timeout_s: float = 10.0):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout_s))

    def coid(self) -> str:
        self.n += 1
        return str(10_000 + self.n)

    def through(self, mutator: Mutator | None, call):
        """`call()` with the answers rewritten by `mutator`: (result, None) or (None, error)."""
        self.emu.faults.mutate = mutator
        try:
            return self.run(call()), None
        except Exception as exc:  # judged by the test: typed or not
            return None, exc
        finally:
            self.emu.faults.mutate = None


def _bench(emu_factory, config: dict, name: str):
    loop = asyncio.new_event_loop()
    emu = emu_factory()
    loop.run_until_complete(emu.start())
    cfg = from_dict(
        {"base_url": emu.url, "timeout_ms": 1000, "backoff_s": 0.0, "pools": OPEN_POOLS, **config},
        f"venues.{name}",
    )
    venue = CcxtVenue(name, cfg, Credentials(KEY, SECRET), venue_id=3)
    loop.run_until_complete(venue.start())
    return Bench(loop, emu, venue)


def _close(b: Bench) -> None:
    b.run(b.venue.close())
    b.run(b.emu.stop())
    b.loop.close()


SPOT_BOOK = (
    [(50_000.00, 0.5), (49_999.00, 1.0)],
    [(50_000.01, 0.3), (50_001.00, 1.0)],
)


@pytest.fixture(scope="module")
def spot():
    b = _bench(
        lambda: standard_emulator({KEY: (SECRET, "alice")}, limits=NO_LIMITS),
        {"instruments": {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}},
        "emu",
    )
    # trades of ours to read back, and one order resting all along
    b.run(b.venue.submit(OrderRequest("9001", "BTCUSDT", Side.BUY, OrderType.IOC, 0.002, 50_000.01)))
    b.run(b.venue.submit(OrderRequest("9002", "BTCUSDT", Side.SELL, OrderType.IOC, 0.001, 50_000.00)))
    b.run(b.venue.submit(OrderRequest("9003", "ETHUSDT", Side.BUY, OrderType.LIMIT, 0.01, 2_000.00)))
    yield b
    _close(b)


# -- what "the same answer" is ----------------------------------------------------------------------


def order_key(o):
    return (
        o.coid,
        o.instrument,
        o.side,
        o.qty,
        o.price,
        o.status,
        o.filled_qty,
        round(o.avg_price, 6) if o.filled_qty else 0.0,
        o.venue_order_id,
    )


def same_order(got, want):
    assert order_key(got) == order_key(want)
    assert 0 <= got.created_ns < 2**63 and 0 <= got.updated_ns < 2**63
    assert got.fee == want.fee or not got.fee_asset, (got.fee, got.fee_asset, want.fee, want.fee_asset)
    assert math.isfinite(got.fee) and got.fee >= 0


SPOT_PATHS = {
    "balances": {"/api/v3/account"},
    "book": {"/api/v3/depth"},
    "fetch_order": {"/api/v3/order"},
    "open_orders": {"/api/v3/openOrders"},
    "fills": {"/api/v3/myTrades", "/api/v3/order"},
    "submit": {"/api/v3/order"},
    "cancel": {"/api/v3/order", "/api/v3/myTrades"},
    "status": {"/api/v3/depth"},
    "clock": {"/api/v3/time"},
}


def spot_case(b: Bench, call: str, mutator: Mutator) -> None:
    v, name = b.venue, "emu"
    b.emu.set_book("BTCUSDT", *SPOT_BOOK)
    if call == "submit":
        resting = b.coid() if b.n % 2 else None
        coid = resting or b.coid()
        req = (
            OrderRequest(coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, 40_000.00)
            if resting
            else OrderRequest(coid, "BTCUSDT", Side.BUY, OrderType.IOC, 0.001, 50_000.01)
        )
        got, err = b.through(mutator, lambda: v.submit(req))
        want = b.run(v.fetch_order(coid, "BTCUSDT")) if b.emu.orders_of("alice")[-1].coid == coid else None
        if resting and want is not None:
            b.run(v.cancel(coid, "BTCUSDT"))
        if err is None:
            assert want is not None, "a submit answered with an order the venue does not have"
            same_order(got, want)
        return check_error(err, name) if err is not None else None
    if call == "cancel":
        coid = b.coid()
        b.run(v.submit(OrderRequest(coid, "BTCUSDT", Side.SELL, OrderType.LIMIT, 0.001, 60_000.00)))
        got, err = b.through(mutator, lambda: v.cancel(coid, "BTCUSDT"))
        want = b.run(v.fetch_order(coid, "BTCUSDT"))
        if want.status != OrderStatus.CANCELED:
            b.run(v.cancel(coid, "BTCUSDT"))
        if err is None:
            same_order(got, want)
            assert got.status == OrderStatus.CANCELED
        return check_error(err, name) if err is not None else None
    reads = {
        "balances": v.balances,
        "book": lambda: v.book("BTCUSDT"),
        "fetch_order": lambda: v.fetch_order("9001", "BTCUSDT"),
        "open_orders": v.open_orders,
        "fills": v.fills,
        "status": v.status,
        "clock": v.sync_clock,
    }
    got, err = b.through(mutator, reads[call])
    want = b.run(reads[call]())
    if err is not None:
        return check_error(err, name)
    if call == "fetch_order":
        same_order(got, want)
    elif call == "open_orders":
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            same_order(g, w)
    elif call == "book":
        assert (got.bids, got.asks, got.update_id) == (want.bids, want.asks, want.update_id)
    elif call == "clock":
        assert abs(got - want) < 1_000  # the same clock, measured twice on loopback
    elif call == "status":
        assert got.venue == name  # any status is an answer (a mutated book reads as a failure)
    elif call == "fills":
        # a trade's time is read as ccxt reads it (a JSON true is 1 ms): held to its range only
        assert got.cursor == want.cursor and len(got.fills) == len(want.fills)
        for g, w in zip(got.fills, want.fills, strict=True):
            assert dataclasses.replace(g, ts_ns=w.ts_ns) == w and 0 <= g.ts_ns < 2**63
    else:
        assert got == want


# found by the fuzz, each a crash or a wrong value accepted before its fix (regression examples)
@example(call="balances", recipe=([], ("truncate", 0.0)), persistent=False)  # empty 200: no balances
@example(call="book", recipe=([("set", [], [])], None), persistent=False)  # a list: an empty book
@example(call="book", recipe=([("set", [0, 0], float("nan"))], None), persistent=False)  # NaN literal
@example(call="book", recipe=([("set", [0, 0, 0], "0")], None), persistent=False)  # a level at price 0
@example(call="fetch_order", recipe=([("set", [1], "1e300")], None), persistent=False)  # average 5e302
@example(call="book", recipe=([("set", [8], -1)], None), persistent=False)  # update id -1
@example(call="cancel", recipe=([("set", [14], "-1")], None), persistent=False)  # time -1 ms
@example(call="cancel", recipe=([("set", [14], "inf")], None), persistent=False)  # OverflowError
@example(call="fetch_order", recipe=([("drop", [1])], None), persistent=False)  # no cost: average 0
@example(call="fetch_order", recipe=([("drop", [8])], None), persistent=False)  # no price: a market order
@example(call="submit", recipe=([("set", [2, 33], None)], None), persistent=False)  # FILLED, 0 executed
@example(call="fills", recipe=([("drop", [0, 0])], None), persistent=False)  # no commission: no fee
@example(call="fills", recipe=([("drop", [0, 4])], None), persistent=False)  # no isBuyer: read as a sell
@example(call="fills", recipe=([("drop", [0, 31])], None), persistent=False)  # no isMaker: liquidity unknown
@example(call="fills", recipe=([("drop", [22, 27, 4])], None), persistent=False)  # fee of no asset
@example(call="fills", recipe=([("set", [11, 38, 3, 4], True)], None), persistent=False)  # time true
@FUZZ
@given(
    call=st.sampled_from(sorted(SPOT_PATHS)),
    recipe=mutations(),
    persistent=st.booleans(),
)
def test_any_spot_answer_is_read_right_or_is_a_typed_error(spot, call, recipe, persistent):
    spot_case(spot, call, Mutator(recipe, SPOT_PATHS[call], persistent))


# -- USDⓈ-M perpetuals ------------------------------------------------------------------------------


def _futures_emulator():
    emu = FuturesEmulator(
        [Spec("BTCUSDT", "BTC", "USDT", tick=0.1, lot=0.001, min_notional=5.0)],
        {KEY: (SECRET, "basis")},
        limits=NO_LIMITS,
    )
    emu.deposit("basis", "USDT", 10_000.0)
    return emu


PERP_BOOK = ([(50_000.0, 1.0), (49_990.0, 2.0)], [(50_000.1, 1.0), (50_010.0, 2.0)])


@pytest.fixture(scope="module")
def perp():
    b = _bench(
        _futures_emulator,
        {"exchange": "binanceusdm", "instruments": {"BTCPERP": "BTC/USDT:USDT"}, "leverage": {"BTCPERP": 10}},
        "usdm",
    )
    b.emu.set_book("BTCUSDT", *PERP_BOOK)
    b.run(b.venue.submit(OrderRequest("9001", "BTCPERP", Side.BUY, OrderType.IOC, 0.4, 50_000.1)))
    b.emu.apply_funding("BTCUSDT", 0.0001, 50_000.0)  # one funding payment to read back
    yield b
    _close(b)


PERP_PATHS = {
    "balances": {"/fapi/v3/account"},
    "positions": {"/fapi/v3/positionRisk", "/fapi/v1/leverageBracket"},
    "funding_updates": {"/fapi/v1/premiumIndex"},
    "funding_payments": {"/fapi/v1/income", "/fapi/v1/fundingRate"},
    "fills": {"/fapi/v1/userTrades", "/fapi/v1/order"},
    "fetch_order": {"/fapi/v1/order"},
    "book": {"/fapi/v1/depth"},
    "submit": {"/fapi/v1/order"},
}


def perp_case(b: Bench, call: str, mutator: Mutator) -> None:
    v, name = b.venue, "usdm"
    perps = v._perps
    assert perps is not None
    b.emu.set_book("BTCUSDT", *PERP_BOOK)
    if call == "submit":  # a resting order: the position stays as it is
        coid = b.coid()
        req = OrderRequest(coid, "BTCPERP", Side.BUY, OrderType.LIMIT, 0.01, 40_000.0)
        got, err = b.through(mutator, lambda: v.submit(req))
        placed = [p.coid for p in b.emu.orders_of("basis")]
        want = b.run(v.fetch_order(coid, "BTCPERP")) if coid in placed else None
        if want is not None and not want.status.terminal:
            b.run(v.cancel(coid, "BTCPERP"))
        if err is not None:
            return check_error(err, name)
        assert want is not None, "a submit answered with an order the venue does not have"
        return same_order(got, want)
    # funding payments are read once each: both reads start from the same memory
    state = (dict(perps._seen), perps._since_ms, dict(perps.funding_paid), dict(perps._next_funding_ms))

    def restore():
        perps._seen, perps._since_ms = dict(state[0]), state[1]
        perps.funding_paid, perps._next_funding_ms = dict(state[2]), dict(state[3])

    reads = {
        "balances": v.balances,
        "positions": v.positions,
        "funding_updates": perps.funding_updates,
        "funding_payments": lambda: perps.funding_payments(60.0),
        "fills": v.fills,
        "fetch_order": lambda: v.fetch_order("9001", "BTCPERP"),
        "book": lambda: v.book("BTCPERP"),
    }
    got, err = b.through(mutator, reads[call])
    restore()
    want = b.run(reads[call]())
    restore()
    if err is not None:
        return check_error(err, name)
    if call == "fetch_order":
        same_order(got, want)
    elif call == "book":
        assert (got.bids, got.asks, got.update_id) == (want.bids, want.asks, want.update_id)
    elif call == "funding_updates":
        assert [dataclasses.replace(u, ts_ns=0) for u in got] == [
            dataclasses.replace(u, ts_ns=0) for u in want
        ]
        assert all(0 <= u.ts_ns < 2**63 and 0 <= u.next_ns < 2**63 for u in got)
    elif call == "fills":
        assert got.cursor == want.cursor and len(got.fills) == len(want.fills)
        for g, w in zip(got.fills, want.fills, strict=True):
            assert dataclasses.replace(g, ts_ns=w.ts_ns) == w and 0 <= g.ts_ns < 2**63
    else:
        assert got == want


@example(call="fills", recipe=([("set", [0, 1], "")], None), persistent=False)  # commission "": no fee
@example(call="fills", recipe=([("set", [0, 1], "abc")], None), persistent=False)  # "abc": no fee
@example(call="submit", recipe=([("set", [32], 2**64)], None), persistent=False)  # order id 2**64
@example(  # a notional of -1: ccxt read the long position as short
    call="positions", recipe=([("set", [0, 0], None), ("set", [0, 12], "-1")], None), persistent=False
)
@example(  # a position row of no market (and a garbled leverage bracket): read as flat
    call="positions", recipe=([("set", [0, 0], None), ("set", [0, 17], "")], None), persistent=False
)
@FUZZ
@given(
    call=st.sampled_from(sorted(PERP_PATHS)),
    recipe=mutations(),
    persistent=st.booleans(),
)
def test_any_usdm_answer_is_read_right_or_is_a_typed_error(perp, call, recipe, persistent):
    perp_case(perp, call, Mutator(recipe, PERP_PATHS[call], persistent))
