"""What an adapter's error means, in one table: for the venue's health and for our order.

A venue call that fails raises one of the `basis_core.errors.VenueError` types. `ON_ERROR` says,
for each call (submit, cancel, query, status) and error type, what the io path reports: the
VENUE_STATUS record (the engine turns its report into a venue event: TIMEOUT → SUSPECT,
RATE_LIMITED → THROTTLED, MAINTENANCE → QUARANTINED, DISCONNECTED (an IP ban) → DOWN), the
ORDER_EVENT record, and whether a rate-limited submit may be sent again. Lookups walk the
error's MRO, so the most specific row wins and each call's `VenueError` row is its last resort.

`REPORT_OF_ERROR` is the health a failed request shows (also what a venue's own status check
answers, `adapters.ccxt`); an error type it does not list leaves the outcome unknown: TIMEOUT.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import (
    IpBanned,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueError,
    VenueUnavailable,
)
from .schema import OrderEventType, RejectReason, VenueReport

T = TypeVar("T")

#: error type → the venue's health a request that failed with it shows (looked up along the MRO)
REPORT_OF_ERROR: dict[type[VenueError], VenueReport] = {
    IpBanned: VenueReport.DISCONNECTED,  # a 418: DOWN until the ban ends, not THROTTLED
    RateLimited: VenueReport.RATE_LIMITED,
    RequestTimeout: VenueReport.TIMEOUT,
    VenueUnavailable: VenueReport.MAINTENANCE,
}


def most_specific(
    exc: BaseException, table: Mapping[Any, T], key: Callable[[type], Any] = lambda cls: cls
) -> T | None:
    """The row of `table` for the most specific type `exc` is, walking its MRO; a row's key is
    `key(type)`. None when no type of `exc` has a row."""
    for cls in type(exc).__mro__:
        row = table.get(key(cls))
        if row is not None:
            return row
    return None


def report_of(exc: VenueError) -> VenueReport | None:
    """The report of the most specific type in `REPORT_OF_ERROR` that `exc` is (None: not listed)."""
    return most_specific(exc, REPORT_OF_ERROR)


class Call(enum.Enum):
    """The venue calls the io path makes for the engine."""

    SUBMIT = "submit"
    CANCEL = "cancel"
    QUERY = "query"
    STATUS = "status"


class Status(enum.Enum):
    """Which VENUE_STATUS the io path emits for a failed call."""

    NONE = "none"
    OK = "ok"  # the venue answered: it is healthy (sent at most once per OK interval)
    FAILED = "failed"  # report_of(error), TIMEOUT when unlisted; RATE_LIMITED also blocks the throttle


@dataclass(frozen=True)
class Outcome:
    """What the io path does when one call fails with one error type, in this order: the
    `before` status, the order event (`event`; with `resend`, only once resending is refused),
    the `after` status."""

    before: Status
    event: OrderEventType | None = None
    reason: RejectReason | None = RejectReason.NONE  # None: the reason the venue gave (OrderRejected)
    resend: bool = False  # refused before execution: the same command (same client order id) may go again
    after: Status = Status.NONE


_C, _E = Call, OrderEventType

#: (call, error type) → outcome. Looked up along the error's MRO (most specific first).
ON_ERROR: dict[tuple[Call, type[VenueError]], Outcome] = {
    (_C.SUBMIT, RateLimited): Outcome(Status.FAILED, _E.REJECT, RejectReason.RATE_LIMITED, resend=True),
    # refused before execution too, but the ban outlasts any resend window: a reject
    (_C.SUBMIT, IpBanned): Outcome(Status.FAILED, _E.REJECT, RejectReason.RATE_LIMITED),
    (_C.SUBMIT, OrderRejected): Outcome(Status.NONE, _E.REJECT, None, after=Status.OK),
    (_C.SUBMIT, VenueError): Outcome(Status.FAILED, _E.TIMEOUT),  # the engine verifies by client order id
    (_C.CANCEL, OrderNotFound): Outcome(Status.NONE, _E.NOT_FOUND),
    (_C.CANCEL, OrderRejected): Outcome(Status.NONE, _E.CANCEL_REJECT),
    (_C.CANCEL, VenueError): Outcome(Status.FAILED, _E.TIMEOUT),
    (_C.QUERY, OrderNotFound): Outcome(Status.OK, _E.NOT_FOUND),
    (_C.QUERY, VenueError): Outcome(Status.FAILED),  # the engine asks again on its verify interval
    (_C.STATUS, VenueError): Outcome(Status.FAILED),
}


def outcome_of(call: Call, exc: VenueError) -> Outcome:
    """The row of `ON_ERROR` for `call` and the most specific type `exc` is."""
    outcome = most_specific(exc, ON_ERROR, lambda cls: (call, cls))
    if outcome is not None:
        return outcome
    raise TypeError(f"{call.name}: no row for {type(exc).__name__}")  # every call has a VenueError row
