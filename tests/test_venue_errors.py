"""The io path's answer to each venue error, per call: the records it leaves and the resends."""

from __future__ import annotations

import asyncio

import pytest

from basis_core import schema as S
from basis_core.engine.io import OK_EVERY_NS, VenueIO
from basis_core.errors import (
    AuthenticationFailed,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueError,
    VenueUnavailable,
)
from basis_core.registry import Registry
from basis_core.schema import Liquidity, OrderType, Side
from basis_core.venue import BookUpdate, Fill, FillsPage, OrderStatus, VenueOrder, coid_to_wire
from basis_core.venue_errors import ON_ERROR, Call, outcome_of, report_of

V, INST, COID, T0 = "alpha", "BTC-USDT", 77, 1_000_000_000
E, R = S.OrderEventType, S.VenueReport


class FailingVenue:
    """Every call raises `exc`."""

    def __init__(self, exc: VenueError):
        self.exc = exc

    async def submit(self, req):
        raise self.exc

    async def cancel(self, coid, instrument=None):
        raise self.exc

    async def fetch_order(self, coid, instrument=None):
        raise self.exc


class Clock:
    def __init__(self) -> None:
        self.ns = T0

    def __call__(self) -> int:
        return self.ns


def _io(exc: VenueError, max_rl_retries: int = 5):
    reg = Registry()
    reg.venues.add(V)
    reg.instruments.add(INST)
    out: list = []
    clock = Clock()

    async def make():
        return VenueIO({V: FailingVenue(exc)}, reg, clock, out.append, {1: INST}, max_rl_retries)

    io = asyncio.run(make())
    return io, out, clock


def _command(kind: S.Kind, ts_ns: int = T0):
    rec = S.empty(kind)
    rec["ts_ns"], rec["venue"], rec["instrument"] = ts_ns, 1, 1
    rec["coid"] = COID
    if kind == S.Kind.ORDER_NEW:
        rec["sub"], rec["qty"], rec["price"] = int(S.Side.BUY), 1.0, 100.0
        rec["aux"] = int(S.OrderType.LIMIT) | int(S.Purpose.HEDGE) << 8
    return rec


def _records(out) -> list[tuple]:
    """(kind, sub, reason or retry_after_ms) of every record emitted."""
    got = []
    for rec in out:
        kind = S.Kind(int(rec["kind"][0]))
        if kind == S.Kind.ORDER_EVENT:
            r = rec.view(S.ORDER_EVENT)[0]
            assert int(r["coid"]) == COID
            got.append(("order", E(int(r["sub"])), S.RejectReason(int(r["reason"]))))
        else:
            r = rec.view(S.VENUE_STATUS)[0]
            got.append(("status", R(int(r["sub"])), int(r["retry_after_ms"])))
    return got


def _run(io, kind: S.Kind, attempt: int = 0, ts_ns: int = T0):
    asyncio.run(io._execute(V, (_command(kind, ts_ns), attempt)))


NONE = S.RejectReason.NONE
CASES = [
    # submit
    (S.Kind.ORDER_NEW, RequestTimeout(V, "t"), [("status", R.TIMEOUT, 0), ("order", E.TIMEOUT, NONE)]),
    (S.Kind.ORDER_NEW, MalformedResponse(V, "m"), [("status", R.TIMEOUT, 0), ("order", E.TIMEOUT, NONE)]),
    (S.Kind.ORDER_NEW, VenueUnavailable(V, "u"), [("status", R.MAINTENANCE, 0), ("order", E.TIMEOUT, NONE)]),
    (S.Kind.ORDER_NEW, OrderNotFound(V, "n"), [("status", R.TIMEOUT, 0), ("order", E.TIMEOUT, NONE)]),
    (S.Kind.ORDER_NEW, AuthenticationFailed(V, "a"), [("status", R.TIMEOUT, 0), ("order", E.TIMEOUT, NONE)]),
    (
        S.Kind.ORDER_NEW,
        OrderRejected(V, "r", reason="lot_size"),
        [("order", E.REJECT, S.RejectReason.LOT_SIZE), ("status", R.OK, 0)],
    ),
    (
        S.Kind.ORDER_NEW,
        OrderRejected(V, "r", reason="no such reason"),
        [("order", E.REJECT, S.RejectReason.VENUE_REJECT), ("status", R.OK, 0)],
    ),
    # cancel
    (S.Kind.ORDER_CANCEL, OrderNotFound(V, "n"), [("order", E.NOT_FOUND, NONE)]),
    (S.Kind.ORDER_CANCEL, OrderRejected(V, "r"), [("order", E.CANCEL_REJECT, NONE)]),
    (S.Kind.ORDER_CANCEL, RequestTimeout(V, "t"), [("status", R.TIMEOUT, 0), ("order", E.TIMEOUT, NONE)]),
    (
        S.Kind.ORDER_CANCEL,
        VenueUnavailable(V, "u"),
        [("status", R.MAINTENANCE, 0), ("order", E.TIMEOUT, NONE)],
    ),
    (
        S.Kind.ORDER_CANCEL,
        RateLimited(V, "l", retry_after_s=2.0),
        [("status", R.RATE_LIMITED, 2000), ("order", E.TIMEOUT, NONE)],
    ),
    # query
    (S.Kind.ORDER_QUERY, OrderNotFound(V, "n"), [("status", R.OK, 0), ("order", E.NOT_FOUND, NONE)]),
    (S.Kind.ORDER_QUERY, OrderRejected(V, "r"), [("status", R.TIMEOUT, 0)]),
    (S.Kind.ORDER_QUERY, VenueUnavailable(V, "u"), [("status", R.MAINTENANCE, 0)]),
    (S.Kind.ORDER_QUERY, RateLimited(V, "l"), [("status", R.RATE_LIMITED, 1000)]),
]


@pytest.mark.parametrize(
    ("kind", "exc", "expected"), CASES, ids=lambda x: getattr(x, "name", type(x).__name__)
)
def test_each_failed_call_leaves_the_records_of_its_error(kind, exc, expected):
    io, out, _ = _io(exc)
    _run(io, kind)
    assert _records(out) == expected


def test_a_rate_limited_submit_blocks_the_throttle_and_is_queued_again_not_reported():
    io, out, clock = _io(RateLimited(V, "l", retry_after_s=3.0))
    _run(io, S.Kind.ORDER_NEW)
    assert _records(out) == [("status", R.RATE_LIMITED, 3000)]
    assert io.router.pop_ready(1, clock.ns) is None  # blocked for Retry-After
    clock.ns += 3 * 10**9
    cmd = io.router.pop_ready(1, clock.ns)
    assert cmd is not None and cmd.item[1] == 1  # the same command, attempt 1


def test_a_rate_limited_submit_past_its_retries_or_window_is_rejected_as_rate_limited():
    io, out, _ = _io(RateLimited(V, "l"), max_rl_retries=2)
    _run(io, S.Kind.ORDER_NEW, attempt=1)
    assert _records(out) == [
        ("status", R.RATE_LIMITED, 1000),
        ("order", E.REJECT, S.RejectReason.RATE_LIMITED),
    ]
    io, out, clock = _io(RateLimited(V, "l"))
    clock.ns += io.resend_window_ns
    _run(io, S.Kind.ORDER_NEW)
    assert _records(out)[-1] == ("order", E.REJECT, S.RejectReason.RATE_LIMITED)


def test_a_healthy_answer_is_reported_at_most_once_per_interval():
    io, out, clock = _io(OrderNotFound(V, "n"))
    _run(io, S.Kind.ORDER_QUERY)
    _run(io, S.Kind.ORDER_QUERY)
    clock.ns += OK_EVERY_NS
    _run(io, S.Kind.ORDER_QUERY)
    assert [r[1] for r in _records(out)] == [R.OK, E.NOT_FOUND, E.NOT_FOUND, R.OK, E.NOT_FOUND]


def test_every_call_has_a_last_resort_row_and_the_lookup_takes_the_most_specific():
    for call in Call:
        assert (call, VenueError) in ON_ERROR
    assert outcome_of(Call.SUBMIT, RateLimited(V, "l")).resend
    assert outcome_of(Call.SUBMIT, VenueUnavailable(V, "u")) == ON_ERROR[(Call.SUBMIT, VenueError)]


def test_report_of_names_only_the_health_an_error_shows():
    assert report_of(RateLimited(V, "l")) is R.RATE_LIMITED
    assert report_of(RequestTimeout(V, "t")) is R.TIMEOUT
    assert report_of(VenueUnavailable(V, "u")) is R.MAINTENANCE
    assert report_of(MalformedResponse(V, "m")) is None
    assert report_of(OrderRejected(V, "r")) is None


# -- venue streams -------------------------------------------------------------------------------


class FlakyStream:
    """A venue whose market stream fails with `errors` in turn, then yields one book and ends."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.subscriptions = 0

    async def market_data(self):
        self.subscriptions += 1
        if self.errors:
            raise self.errors.pop(0)
        yield BookUpdate(V, INST, T0, ((99.0, 1.0),), ((101.0, 1.0),), snapshot=True)


def _pump(venue) -> tuple[list, FlakyStream]:
    reg = Registry()
    reg.venues.add(V)
    reg.instruments.add(INST)
    out: list = []

    async def run():
        io = VenueIO({V: venue}, reg, Clock(), out.append, {1: INST}, 5)
        await io.pump_market(V)

    asyncio.run(run())
    return out, venue


def test_a_stream_that_fails_with_a_venue_error_reports_it_and_subscribes_again(monkeypatch):
    monkeypatch.setattr("basis_core.engine.io.STREAM_RETRY_S", (0.001, 0.002))
    out, venue = _pump(FlakyStream(VenueUnavailable(V, "maintenance"), RequestTimeout(V, "timeout")))
    assert venue.subscriptions == 3
    kinds = [(S.Kind(int(r["kind"][0])), int(r["sub"][0])) for r in out]
    assert kinds[:2] == [(S.Kind.VENUE_STATUS, int(R.MAINTENANCE)), (S.Kind.VENUE_STATUS, int(R.TIMEOUT))]
    assert {k for k, _ in kinds[2:]} <= {S.Kind.BOOK_LEVEL, S.Kind.TOP_OF_BOOK} and len(kinds) > 2


def test_a_stream_that_fails_with_a_bug_stops_the_pump():
    with pytest.raises(ZeroDivisionError):
        _pump(FlakyStream(ZeroDivisionError("bug")))


# -- fills a query implies ----------------------------------------------------------------------


class PagedFills:
    """A venue whose fill list holds `n` fills of other orders, then one of order COID."""

    def __init__(self, n: int):
        mine = Fill(
            V, INST, coid_to_wire(COID), "t-mine", Side.BUY, 100.0, 0.5, 0.0, "USDT", Liquidity.TAKER, T0
        )
        others = [
            Fill(
                V,
                INST,
                coid_to_wire(COID + 1 + i),
                f"t{i}",
                Side.BUY,
                100.0,
                0.1,
                0.0,
                "USDT",
                Liquidity.TAKER,
                T0,
            )
            for i in range(n)
        ]
        self.all = [*others, mine]
        self.pages = 0

    async def fills(self, cursor=None, limit=1000):
        self.pages += 1
        start = int(cursor) if cursor else 0
        page = self.all[start : start + limit]
        return FillsPage(tuple(page), str(start + len(page)), start + len(page) < len(self.all))


def _catch_up(venue, filled_qty: float) -> list:
    reg = Registry()
    reg.venues.add(V)
    reg.instruments.add(INST)
    out: list = []
    view = VenueOrder(
        coid_to_wire(COID), INST, Side.BUY, OrderType.IOC, 1.0, 100.0, OrderStatus.CANCELED, filled_qty
    )

    async def run():
        io = VenueIO({V: venue}, reg, Clock(), out.append, {1: INST}, 5)
        await io._catch_up_fills(V, COID, view)

    asyncio.run(run())
    events = [r.view(S.ORDER_EVENT) for r in out if int(r["kind"][0]) == S.Kind.ORDER_EVENT]
    return [(int(e["coid"][0]), float(e["last_qty"][0])) for e in events]


def test_a_fill_the_stream_missed_is_found_past_the_venues_first_page_of_fills():
    venue = PagedFills(2_500)
    assert _catch_up(venue, 0.5) == [(COID, 0.5)]
    assert venue.pages == 3


def test_an_order_whose_fills_are_all_booked_asks_the_venue_nothing():
    venue = PagedFills(10)
    assert _catch_up(venue, 0.0) == [] and venue.pages == 0
