"""A clustered engine's allowance: what it holds of the cluster's shared limits, spent locally.

The io side reserves chunks of each shared limit from the NATS JetStream bucket ahead of need
(basis_core/cluster/link.py) and tells the engine what it holds as CONTROL CLUSTER_GRANT
records, journaled like every input (so a replay decides the same). The engine never waits on
the network: the sizing of an entry is capped to what the limits it uses have left here
(`max_qty`), an entry with no room is refused with RejectReason.CLUSTER_RESERVE (counted), and
each position opened backs what it uses (basis_core/cluster/limits.py) until it is flat or
hedged (COMPLETE, CLOSED or RECONCILED), when its amounts are free here again.

A run without `[cluster]` never gets a CLUSTER_GRANT: its core has no allowance and decides as
before. The first grant comes in the run's first batch, before any market data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema as S
from ..cluster.limits import CAPITAL, POSITION, LimitId, max_qty, uses_per_qty
from ..state.tables import HedgeState

if TYPE_CHECKING:
    from .parts import EngineParts

#: a position in these states uses nothing of the shared limits any more
RELEASED = frozenset({HedgeState.COMPLETE, HedgeState.CLOSED, HedgeState.RECONCILED})
#: amounts are floats: a cap is taken this much under the room, so rounding never passes it
MARGIN = 1e-9


#: amounts below this are nothing (a limit is USDT or base: far below any lot)
TOO_SMALL = 1e-12


class Allowance:
    """What this engine holds of each shared limit (`granted`, the io side's word) and what its
    positions use of it (`used`); plain data, pickled with the core in a checkpoint."""

    def __init__(self) -> None:
        self.granted: dict[str, float] = {}
        self.peak: dict[str, float] = {}  # the most granted of each limit at any time
        self.used: dict[str, float] = {}
        #: opportunity id -> the (key, amount) it backs, while it is neither flat nor hedged
        self.backing: dict[int, tuple[tuple[str, float], ...]] = {}
        self.grants = 0  # CLUSTER_GRANT records taken
        #: positions opened beyond what was held (a bug if ever counted: the cap forbids it)
        self.over = 0

    def grant(self, key: str, total: float) -> None:
        # (a grant too small to trade on is none: subnormal amounts lose the precision the cap
        # and its check rely on)
        total = float(total)
        self.granted[key] = total if total >= TOO_SMALL else 0.0
        self.peak[key] = max(self.peak.get(key, 0.0), self.granted[key])
        self.grants += 1

    def room(self, key: str) -> float:
        return self.granted.get(key, 0.0) - self.used.get(key, 0.0)

    def release_done(self, positions: dict) -> None:
        """Free what positions now flat or hedged backed (`positions`: opportunity id -> position)."""
        done = [o for o in self.backing if o not in positions or positions[o].state in RELEASED]
        for opp in done:
            for key, amount in self.backing.pop(opp):
                self.used[key] = max(self.used.get(key, 0.0) - amount, 0.0)

    def cap(self, per_qty: dict[str, float]) -> float:
        """The largest quantity these uses per unit fit in; a key never granted is not limited."""
        room = [(k, self.room(k) * (1.0 - MARGIN)) for k in per_qty if k in self.granted]
        return max_qty(per_qty, room)

    def back(self, opp_id: int, per_qty: dict[str, float], qty: float) -> None:
        """Position `opp_id` of `qty` uses `per_qty` x `qty` of each limit until it is flat or hedged."""
        uses = tuple((k, per * qty) for k, per in sorted(per_qty.items()) if k in self.granted)
        for key, amount in uses:
            self.used[key] = self.used.get(key, 0.0) + amount
        if any(self.used[k] > self.granted[k] * (1.0 + MARGIN) for k, _ in uses):
            self.over += 1
        if uses:
            self.backing[opp_id] = uses

    def entry_cap(self, core: EngineParts, buy_name: str, sell_name: str) -> float:
        """The largest entry on this pair the limits held here allow (the decision path)."""
        self.release_done(core.positions)
        return self.cap(per_qty(core, buy_name, sell_name))

    def back_position(
        self, core: EngineParts, opp_id: int, buy_name: str, sell_name: str, qty: float
    ) -> None:
        """A position just opened backs what it uses (priced as `entry_cap` priced it)."""
        self.back(opp_id, per_qty(core, buy_name, sell_name), qty)

    def take_grant(self, reg, c) -> None:
        """A CLUSTER_GRANT record: this engine now holds `value` of the limit it names."""
        self.grant(limit_of(reg, c).key, float(c["value"]))

    def in_use(self, positions: dict) -> dict[str, float]:
        """What positions neither flat nor hedged use now, read only (the io side's figure: it
        never changes the engine's state, whose releases happen on the decision path)."""
        out = dict(self.used)
        for opp, uses in self.backing.items():
            if opp not in positions or positions[opp].state in RELEASED:
                for key, amount in uses:
                    out[key] = max(out.get(key, 0.0) - amount, 0.0)
        return out

    def snapshot(self) -> dict[str, tuple[float, float]]:
        """key -> (granted, used), for the io side and the report."""
        return {k: (g, self.used.get(k, 0.0)) for k, g in sorted(self.granted.items())}


def limit_of(reg, c) -> LimitId:
    """The limit a CLUSTER_GRANT record names (its ids through the registry)."""
    kind = int(c["operator"])
    if kind == CAPITAL:
        return LimitId(kind, reg.venues.name(int(c["venue"])), reg.assets.name(int(c["aux"])))
    if kind == POSITION:
        return LimitId(kind, instrument=reg.instruments.name(int(c["instrument"])))
    return LimitId(kind)


def grant_record(reg, now_ns: int, limit: LimitId, total: float):
    """The CLUSTER_GRANT input telling the engine it holds `total` of `limit`."""
    rec = S.empty(S.Kind.CONTROL)
    rec["ts_ns"], rec["source"], rec["sub"] = now_ns, S.Source.RUNNER, int(S.ControlCommand.CLUSTER_GRANT)
    rec["operator"], rec["value"] = limit.kind, total
    if limit.kind == CAPITAL:
        rec["venue"], rec["aux"] = reg.venue(limit.venue), reg.asset(limit.asset)
    elif limit.kind == POSITION:
        rec["instrument"] = reg.instrument(limit.instrument)
    return rec.view(S.GENERIC)


def per_qty(core: EngineParts, buy_name: str, sell_name: str) -> dict[str, float]:
    """Uses per unit of a pair, priced at the highest it can be valued at now: the mark, the buy
    leg's ask, the sell leg's bid, each plus twice the slippage cap (the same figure for the cap
    and for what the position then backs: one batch, one state)."""
    bl, sl = core.rules[buy_name], core.rules[sell_name]
    ref = core.market.mark(bl.base)
    for name, r, side in ((buy_name, bl, 2), (sell_name, sl, 0)):
        top = core.market.top(core.reg.venue(r.venue), core.reg.instrument(name))
        if top is not None:
            ref = max(ref, top[side])
    return uses_per_qty(bl, buy_name, sl, sell_name, ref * (1.0 + 2.0 * core.policy.max_slippage_bps / 1e4))
