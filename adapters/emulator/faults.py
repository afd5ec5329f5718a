"""Switchable faults of the exchange emulator. Tests flip them between requests.

Counters (`slow_submit`, `empty_reply`, `insufficient_balance`, `filter_failure_count`) apply to
the next N order placements and count down; flags stay on until turned off.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    #: server clock offset in ms (timestamp/recvWindow checks)
    clock_skew_ms: int = 0

    def take(self, name: str) -> bool:
        """Consume one unit of counter `name`; True if the fault applies to this request."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False
