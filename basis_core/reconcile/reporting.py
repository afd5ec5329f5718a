"""Reporting layer: the internal USDT accounting agrees with itself and with what is reported.

Checks (each failure is a Mismatch of layer "reporting"):

* the ledger identity: equity at the marks minus contributed capital equals realized PnL plus
  unrealized PnL minus fees (a broken identity means an entry was booked on one side only);
* fees per venue add up to the total fees, and fees per opportunity do not exceed it;
* the figures about to be written to report.json (realized_pnl_usdt, fees_usdt,
  slippage_usdt) equal the ledger's.

It also states the realized outcome per strategy: expected edge against realized net PnL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..accounting.ledger import Ledger
from .mismatch import ExceptionLog, Layer, Mismatch


@dataclass
class Outcome:
    opportunities: int = 0
    expected_edge_usdt: float = 0.0
    realized_net_usdt: float = 0.0


@dataclass
class ReportingCheck:
    raised: list[Mismatch] = field(default_factory=list)
    outcome: dict[str, Outcome] = field(default_factory=dict)


def _close(a: float, b: float, scale: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, scale))


def check_reporting(
    ledger: Ledger,
    ts_ns: int,
    report: dict | None = None,
    log: ExceptionLog | None = None,
    outcomes: bool = True,
) -> ReportingCheck:
    """Run the reporting checks at `ts_ns` (marks at that time). `report` is the report.json
    dict about to be written, if any. Raised mismatches are appended to `log` when given.
    The checks read running totals the ledger keeps, so a pass costs the same late in a run as
    early; the outcome per strategy goes over every opportunity and is left out with
    `outcomes=False` (the continuous passes)."""
    out = ReportingCheck()
    scale = ledger.gross_usdt  # (the sum over every posting, kept by the ledger)

    def flag(key, ours, theirs, cause):
        m = Mismatch(Layer.REPORTING, key, ours, theirs, cause, ts_ns)
        out.raised.append(m)
        if log is not None:
            log.raise_(m)

    lhs = ledger.equity_usdt(ts_ns) - ledger.contributed_usdt
    rhs = ledger.realized_pnl_usdt + ledger.unrealized_pnl_usdt(ts_ns) - ledger.fees_usdt
    if not _close(lhs, rhs, scale):
        flag("ledger:identity", lhs, rhs, "equity - contributed != realized + unrealized - fees")
    venue_fees = sum(t.fees_usdt for t in ledger.totals_by_venue().values())
    if not _close(venue_fees, ledger.fees_usdt, scale):
        flag(
            "ledger:fees_by_venue", venue_fees, ledger.fees_usdt, "fees per venue do not add up to the total"
        )
    opp_fees = ledger.opportunity_fees_usdt
    if opp_fees > ledger.fees_usdt + 1e-9 * max(1.0, scale):
        flag(
            "ledger:fees_by_opportunity", opp_fees, ledger.fees_usdt, "fees per opportunity exceed the total"
        )
    if report is not None:
        for name, ours in (
            ("realized_pnl_usdt", ledger.realized_pnl_usdt),
            ("fees_usdt", ledger.fees_usdt),
            ("slippage_usdt", ledger.slippage_usdt),
        ):
            theirs = report.get(name)
            if not isinstance(theirs, (int, float)) or not _close(ours, theirs, scale):
                flag(f"report:{name}", ours, theirs, "report.json differs from the ledger")
    for o in ledger.opportunities() if outcomes else ():
        s = out.outcome.setdefault(o.strategy, Outcome())
        s.opportunities += 1
        s.expected_edge_usdt += o.expected_edge_usdt
        s.realized_net_usdt += o.net_pnl_usdt
    return out
