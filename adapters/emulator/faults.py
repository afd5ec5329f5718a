"""Switchable faults of the exchange emulator. Tests flip them between requests.

Counters (`slow_submit`, `empty_reply`, `insufficient_balance`, `filter_failure_count`) apply to
the next N order placements and count down; flags stay on until turned off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: `Faults.mutate`: (method, path, HTTP status, the parsed JSON body) -> None to send the answer
#: as it is, or (status, body bytes, content type) to send instead
Mutator = Callable[[str, str, int, object], "tuple[int, bytes, str] | None"]


@dataclass
class Faults:
    #: every request answered HTTP 503: "json" = {"code":1,"msg":"System is under maintenance."},
    #: "html" = a non-JSON error page (what a load balancer in front of a closed venue sends)
    maintenance: str = ""
    #: added to every answer, seconds
    latency_s: float = 0.0
    #: the next N POST /api/v3/order are held `slow_s` before the answer (past the client timeout)
    slow_submit: int = 0
    #: whether such a held order is executed (placed) before the hold, or never executed
    slow_submit_placed: bool = True
    slow_s: float = 2.0
    #: the next N POST /api/v3/order are executed and then answered HTTP 200 with `{}`
    empty_reply: int = 0
    #: the next N POST /api/v3/order are refused -2010 insufficient balance (whatever the balance)
    insufficient_balance: int = 0
    #: "LOT_SIZE" | "PRICE_FILTER" | "NOTIONAL": the next `filter_failure_count` orders fail it
    filter_failure: str = ""
    filter_failure_count: int = 0
    #: cancel/fill race: a DELETE /api/v3/order finds its order filled by another participant
    #: an instant before (the venue answers -2011 Unknown order sent.)
    fill_on_cancel: bool = False
    #: server clock offset in ms: its time endpoint, its rate-limit windows and its
    #: timestamp/recvWindow checks all read the local clock plus this
    clock_skew_ms: int = 0
    #: the time endpoint answers this much off the clock the timestamp checks use (a venue that
    #: misreports its time: re-measuring cannot cure its -1021s)
    time_endpoint_error_ms: int = 0
    #: the order view lags behind the trade list: for an order that has fills, GET and DELETE
    #: /api/v3/order answer from the view before them: "new" = as placed (NEW, nothing executed;
    #: a DELETE cancels what is left and answers CANCELED with nothing executed), "unknown" =
    #: -2013 / -2011 as if the order did not exist (a DELETE cancels nothing); myTrades is current
    stale_order_view: str = ""
    #: the next N depth diffs are never sent, their update ids used all the same (a sequence gap)
    depth_skip: int = 0
    #: while True no depth diff is sent; they wait, and go out in order once it is False again
    depth_paused: bool = False

    #: test-only, off by default: every JSON answer of the REST endpoints is handed to this
    #: function after it is made (the order placed, the state changed), and what it returns is
    #: sent instead; the fuzz of the ccxt adapter's parsing (tests/test_fuzz_venue.py) uses it
    mutate: Mutator | None = None
    #: test-only, off by default: each depth diff (as a dict) is handed to this function before
    #: it is sent; a string it returns is sent instead (tests/test_fuzz_streams.py)
    mutate_frame: Callable[[dict], str | None] | None = None

    def take(self, name: str) -> bool:
        """Consume one unit of counter `name`; True if the fault applies to this request."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False
