"""Position layer: net exposure, hedge completion and residual inventory.

Three checks, each a Mismatch when it fails:

* perp positions: the signed quantity our fills put on each (venue, instrument) against the
  venue's `positions()`; they must agree within `qty_tol`, or agree again within `lag_ns` (a
  fill the venue applied may still be on its way to us);
* hedge completion: an opportunity whose legs are not symmetric (`OpportunityResult.symmetry`
  below `min_symmetry`) longer than `hedge_window_ns` after its last fill;
* residual exposure: the net exposure per asset (`Ledger.exposure_by_asset`, USDT at marks)
  above `max_residual_usdt` for longer than `hedge_window_ns`.

`check_positions` is pure over a Ledger and the venues' positions; `reconcile_positions`
fetches the positions first. The lag state (since when a residual is over the limit) lives in
a PositionReconciler between rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from basis_core.venue import Position, Venue

from ..accounting.ledger import Ledger
from .mismatch import ExceptionLog, Layer, Mismatch


@dataclass(frozen=True)
class PositionPolicy:
    hedge_window_ns: int = 2_000_000_000
    min_symmetry: float = 0.95
    max_residual_usdt: float = 100.0
    qty_tol: float = 1e-9
    #: a perp position that differs is a mismatch only once it has differed for this long: a
    #: fill the venue has applied may still be on its way to us (0: at once)
    lag_ns: int = 0


@dataclass
class PositionCheck:
    exposure_usdt: dict[str, float] = field(default_factory=dict)
    residual_usdt: float = 0.0  # sum of |exposure| over assets
    incomplete: list[int] = field(default_factory=list)  # opportunity ids not (yet) hedged
    raised: list[Mismatch] = field(default_factory=list)


class PositionReconciler:
    def __init__(
        self,
        policy: PositionPolicy = PositionPolicy(),
        log: ExceptionLog | None = None,
        fee_assets: frozenset[str] = frozenset(),
    ):
        """`fee_assets` are spent on fees only (a venue's fee token): their use is a cost the
        ledger books, not market exposure, so the residual check leaves them out."""
        self.policy = policy
        self.fee_assets = frozenset(fee_assets)
        self.log = log if log is not None else ExceptionLog()
        self._over_since: dict[str, int] = {}
        self._differs_since: dict[str, int] = {}  # perp position key -> first check it differed
        #: a hedge's window starts no earlier than this (a resumed run's restart: the time no
        #: process ran is not counted against a hedge nothing could work on meanwhile)
        self.window_from_ns = 0
        # hedge completion is checked for the opportunities the ledger changed since the last
        # check and those still incomplete then, not for every opportunity of the run each time
        self._ledger: Ledger | None = None
        self._changed: set[int] = set()
        self._incomplete: set[int] = set()

    def check(
        self, ledger: Ledger, venue_positions: dict[str, dict[str, Position]], ts_ns: int
    ) -> PositionCheck:
        """`venue_positions` maps venue name -> instrument -> Position, for every venue that
        trades perps (a venue missing from it is not checked for perps)."""
        p, out = self.policy, PositionCheck()
        ours = ledger.perp_positions()
        for venue, positions in venue_positions.items():
            instruments = {i for (v, i) in ours if v == venue} | set(positions)
            for inst in sorted(instruments):
                mine = ours.get((venue, inst), 0.0)
                theirs = positions[inst].qty if inst in positions else 0.0
                key = f"{venue}:{inst}"
                if abs(mine - theirs) > p.qty_tol:
                    since = self._differs_since.setdefault(key, ts_ns)
                    if ts_ns - since >= p.lag_ns:
                        self._raise(
                            out, Mismatch(Layer.POSITION, key, mine, theirs, "perp position differs", ts_ns)
                        )
                else:
                    self._differs_since.pop(key, None)
                    self.log.resolve(Layer.POSITION, key, ts_ns, "perp position agrees")
        if ledger is not self._ledger:
            self._ledger, self._changed, self._incomplete = ledger, ledger.watch(), set()
        todo = sorted(self._changed | self._incomplete)
        self._changed.clear()
        for opp in map(ledger.opportunity, todo):
            if not (opp.bought or opp.sold) or opp.symmetry >= p.min_symmetry:
                self.log.resolve(Layer.POSITION, f"opportunity:{opp.opportunity_id}", ts_ns, "hedged")
                continue
            out.incomplete.append(opp.opportunity_id)
            if ts_ns - max(opp.last_ts_ns, self.window_from_ns) > p.hedge_window_ns:
                self._raise(
                    out,
                    Mismatch(
                        Layer.POSITION,
                        f"opportunity:{opp.opportunity_id}",
                        dict(opp.bought),
                        dict(opp.sold),
                        f"hedge incomplete past the window (symmetry {opp.symmetry:.3f} < {p.min_symmetry})",
                        ts_ns,
                    ),
                )
        self._incomplete = set(out.incomplete)
        out.exposure_usdt = {
            a: v for a, v in ledger.exposure_by_asset(ts_ns).items() if a not in self.fee_assets
        }
        out.residual_usdt = sum(abs(v) for v in out.exposure_usdt.values())
        for asset in sorted(set(out.exposure_usdt) | {k for k in self._over_since}):
            value = out.exposure_usdt.get(asset, 0.0)
            key = f"exposure:{asset}"
            if abs(value) <= p.max_residual_usdt:
                if self._over_since.pop(asset, None) is not None:
                    self.log.resolve(Layer.POSITION, key, ts_ns, "residual within limit")
                continue
            since = self._over_since.setdefault(asset, ts_ns)
            if ts_ns - since > p.hedge_window_ns:
                self._raise(
                    out,
                    Mismatch(
                        Layer.POSITION,
                        key,
                        value,
                        p.max_residual_usdt,
                        "residual exposure over the limit past the hedge window",
                        ts_ns,
                    ),
                )
        return out

    def _raise(self, out: PositionCheck, m: Mismatch) -> None:
        if all(o.key != m.key or o.layer != m.layer for o in self.log.open()):
            self.log.raise_(m)
            out.raised.append(m)


async def reconcile_positions(
    venues: list[Venue], ledger: Ledger, rec: PositionReconciler, ts_ns: int
) -> PositionCheck:
    """Fetch every venue's perp positions and run the position checks."""
    return rec.check(ledger, {v.name: await v.positions() for v in venues}, ts_ns)
