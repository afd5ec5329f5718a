"""Building the engine's inputs from a config: its policy, its instruments' rules and the fixed
marks of fee assets without a book. Every way of making an EngineCore (a run, a replay, the
engine process, a restart) takes them from here, so they cannot differ.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import LIMIT_FIELDS, Config, policy_limit
from .core import InstrumentRules
from .policy import PolicyConfig


def policy_of(cfg: Config) -> PolicyConfig:
    """The engine policy: the scenario's [policy], with its [limits] applied."""
    limits: dict[str, Any] = dict(policy_limit(key, getattr(cfg.limits, key)) for key in LIMIT_FIELDS)
    return replace(cfg.policy, **limits)


def rules_of(cfg: Config) -> dict[str, InstrumentRules]:
    out = {}
    for name, inst in cfg.instruments.items():
        venue = cfg.venues[inst.venue]
        out[name] = InstrumentRules(
            name,
            inst.venue,
            inst.base,
            inst.quote,
            inst.kind,
            inst.tick,
            inst.lot,
            inst.min_notional,
            venue.taker_fee_bps,
            inst.leverage,
        )
    return out


def fixed_marks_of(cfg: Config) -> dict[str, float]:
    """USDT prices of fee assets that have no book in the scenario (venues.X.fee_asset_price)."""
    out = {}
    for v in cfg.venues.values():
        asset = getattr(v, "fee_asset", "")
        if asset and asset not in ("quote", "received") and getattr(v, "fee_asset_price", 0):
            out[asset] = float(v.fee_asset_price)
    return out
