"""Which shared limits a clustered run draws on, and how much of each one position uses.

No network here: the engine core reads this on its decision path (engine/allowance.py), the io
side (`link.py`) to know which keys to reserve. Three kinds of limit, each a key of the bucket
(`reservations.py`):

    capital.VENUE.ASSET   what the positions lock on a venue, in the asset's units: a spot buy
                          locks its quote (qty x price), a spot sell its base (qty), a perp leg
                          its margin (qty x price / leverage, in the quote)
    position.INSTRUMENT   the notional (USDT) of the positions on an instrument
    residual              the exposure (USDT) left if one leg of every position in flight filled
                          alone: the larger leg's notional

A position backs what it uses from when it is opened until it is flat or hedged (engine side).
Every amount is priced at one reference price per pair (`uses_per_qty`): the highest price the
position can be valued at now, so the amount backed is never less than the position can use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

#: CONTROL CLUSTER_GRANT `operator` field: the kind of limit the record names
CAPITAL, POSITION, RESIDUAL = 1, 2, 3
RESIDUAL_KEY = "residual"


class Rule(Protocol):
    """What this module reads of an instrument's rules (engine/core.py InstrumentRules)."""

    @property
    def venue(self) -> str: ...
    @property
    def base(self) -> str: ...
    @property
    def quote(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def leverage(self) -> float: ...


@dataclass(frozen=True, order=True)
class LimitId:
    """One shared limit, by the names a CONTROL record carries as ids."""

    kind: int
    venue: str = ""
    asset: str = ""
    instrument: str = ""

    @property
    def key(self) -> str:
        if self.kind == CAPITAL:
            return f"capital.{self.venue}.{self.asset}"
        if self.kind == POSITION:
            return f"position.{self.instrument}"
        return RESIDUAL_KEY


def run_limits(rules: Mapping[str, Rule]) -> list[LimitId]:
    """Every limit a run trading `rules` (instrument name -> rules) can draw on, sorted."""
    out: set[LimitId] = {LimitId(RESIDUAL)}
    for name, r in rules.items():
        out.add(LimitId(CAPITAL, r.venue, r.quote))
        if r.kind == "spot":
            out.add(LimitId(CAPITAL, r.venue, r.base))
        out.add(LimitId(POSITION, instrument=name))
    return sorted(out)


def uses_per_qty(buy: Rule, buy_name: str, sell: Rule, sell_name: str, ref_px: float) -> dict[str, float]:
    """What one unit of base of a position buying `buy_name` and selling `sell_name` uses of each
    limit, every leg priced at `ref_px`."""
    out: dict[str, float] = {}

    def add(key: str, amount: float) -> None:
        out[key] = out.get(key, 0.0) + amount

    for rule, selling in ((buy, False), (sell, True)):
        if rule.kind == "perp":
            add(LimitId(CAPITAL, rule.venue, rule.quote).key, ref_px / rule.leverage)
        elif selling:
            add(LimitId(CAPITAL, rule.venue, rule.base).key, 1.0)
        else:
            add(LimitId(CAPITAL, rule.venue, rule.quote).key, ref_px)
    add(LimitId(POSITION, instrument=buy_name).key, ref_px)
    add(LimitId(POSITION, instrument=sell_name).key, ref_px)
    add(RESIDUAL_KEY, ref_px)
    return out


def max_qty(per_qty: dict[str, float], room: Iterable[tuple[str, float]]) -> float:
    """The largest quantity whose uses fit in `room` ((key, amount left) of the limits this engine
    holds; a key without room listed is not limited)."""
    best = float("inf")
    for key, left in room:
        per = per_qty.get(key, 0.0)
        if per > 0:
            best = min(best, max(left, 0.0) / per)
    return best
