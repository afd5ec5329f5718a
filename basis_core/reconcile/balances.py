"""Balance layer: venue balances against the ledger, with pending transfers, fees and lag.

For each (venue, asset) the ledger says what the venue should show (`Ledger.balance`: fills,
fee deductions, transfers debited when sent and credited when confirmed). A venue may be
behind: it may not have debited a withdrawal we counted as sent, or may have credited a
deposit we have not seen confirmed yet. So a venue total is consistent when

    ledger - tol  <=  venue  <=  ledger + pending_out + pending_in + tol

Anything outside is a candidate. Venue balance updates lag our own fills (fees too), so a
candidate becomes a Mismatch only after it has persisted, continuously, for `lag_ns`; a
candidate that comes back inside the band is dropped (and a raised one is resolved). While
trading goes on the ledger keeps moving, so the band also admits any value the ledger held during
the last `lag_ns`: a venue that is merely behind is inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from basis_core.venue import Balance, Venue

from ..accounting.ledger import Ledger
from .mismatch import ExceptionLog, Layer, Mismatch


@dataclass
class _Candidate:
    since_ns: int
    raised: bool = False


@dataclass
class BalanceCheck:
    """Outcome of one check of one venue."""

    raised: list[Mismatch] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)  # key -> ns the candidate has persisted
    resolved: list[str] = field(default_factory=list)
    checked: int = 0


class BalanceReconciler:
    """Keeps the lag-window state of every (venue, asset) between checks."""

    def __init__(
        self, lag_ns: int, abs_tol: float = 1e-8, rel_tol: float = 1e-9, log: ExceptionLog | None = None
    ):
        if lag_ns < 0:
            raise ValueError("lag_ns must be >= 0")
        self.lag_ns, self.abs_tol, self.rel_tol = int(lag_ns), abs_tol, rel_tol
        self.log = log if log is not None else ExceptionLog()
        self._cand: dict[str, _Candidate] = {}

    def band(self, ledger: Ledger, venue: str, asset: str, ts_ns: int | None = None) -> tuple[float, float]:
        """The interval of venue totals consistent with the ledger for (venue, asset).

        With `ts_ns`, a venue that shows any balance the ledger held during the last `lag_ns`
        is consistent too: its balance reports trail our own fills by up to that much."""
        expected = ledger.balance(venue, asset)
        lo = hi = expected
        if ts_ns is not None and self.lag_ns:
            running = expected
            for post in reversed(ledger.postings):
                if post.ts_ns < ts_ns - self.lag_ns:
                    break
                if (
                    post.venue == venue and post.asset == asset and post.kind != "deposit"
                ):  # inventory we start with
                    running -= post.delta
                    lo, hi = min(lo, running), max(hi, running)
        tol = self.abs_tol + self.rel_tol * max(abs(lo), abs(hi))
        return lo - tol, hi + ledger.pending_out(venue, asset) + ledger.pending_in(venue, asset) + tol

    def check(self, venue: str, balances: dict[str, Balance], ledger: Ledger, ts_ns: int) -> BalanceCheck:
        """Compare the venue's balances (as fetched at `ts_ns`) with the ledger."""
        out = BalanceCheck()
        ours = {a for (v, a) in ledger.balances() if v == venue}
        for asset in sorted(ours | set(balances)):
            out.checked += 1
            key = f"{venue}:{asset}"
            theirs = balances[asset].total if asset in balances else 0.0
            lo, hi = self.band(ledger, venue, asset, ts_ns)
            if lo <= theirs <= hi:
                was = self._cand.pop(key, None)
                if was is not None and self.log.resolve(Layer.BALANCE, key, ts_ns, "back within band"):
                    out.resolved.append(key)
                continue
            cand = self._cand.setdefault(key, _Candidate(ts_ns))
            age = ts_ns - cand.since_ns
            if age < self.lag_ns:
                out.pending[key] = age
                continue
            expected = ledger.balance(venue, asset)
            po, pi = ledger.pending_out(venue, asset), ledger.pending_in(venue, asset)
            cause = (
                f"venue {'above' if theirs > hi else 'below'} ledger for {age / 1e9:.3f}s "
                f"(lag window {self.lag_ns / 1e9:.3f}s; pending out {po:g}, in {pi:g})"
            )
            m = Mismatch(Layer.BALANCE, key, expected, theirs, cause, ts_ns)
            if not cand.raised:  # one mismatch per episode; it stays open until back in band
                cand.raised = True
                self.log.raise_(m)
                out.raised.append(m)
        return out

    def forget(self, venue: str) -> None:
        """Drop lag state for a venue (after a restart its first fetch starts fresh windows)."""
        for key in [k for k in self._cand if k.startswith(f"{venue}:")]:
            del self._cand[key]


async def reconcile_balances(
    venue: Venue, ledger: Ledger, rec: BalanceReconciler, ts_ns: int
) -> BalanceCheck:
    """Fetch the venue's balances and check them against the ledger."""
    return rec.check(venue.name, await venue.balances(), ledger, ts_ns)
