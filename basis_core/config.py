"""The run configuration: one TOML file, loaded into frozen, validated objects.

Sections (all optional except where noted; defaults are safe for the embedded simulation):

    [run]          name, seed, duration_s, out_dir
    [journal]      segment_records, fsync ("every_n" | "segment" | "never"), fsync_every
    [rings]        md_slots, order_slots, exec_slots (powers of two), wait ("spin" | "yield" | "sleep")
    [cpu]          engine, io (core numbers, -1 = do not pin), feeds (array), realtime
    [venues.NAME]  kind ("sim" | "ccxt" | "web3"), taker_fee_bps, maker_fee_bps
    [instruments.NAME]  venue, symbol, base, quote, kind ("spot" | "perp"), tick, lot, min_notional

Later subsystems add their own sections here; `basis check FILE` validates a file and prints
each error with its key path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

from .configio import build, load_toml, require
from .registry import Registry


@dataclass(frozen=True)
class RunConfig:
    name: str = "default"
    seed: int = 7
    duration_s: float = 10.0
    out_dir: str = "runs"

    def _validate(self, path):
        require(self.duration_s > 0, f"{path}.duration_s", "must be > 0")


@dataclass(frozen=True)
class JournalConfig:
    segment_records: int = 1 << 20
    fsync: Literal["every_n", "segment", "never"] = "segment"
    fsync_every: int = 4096

    def _validate(self, path):
        require(self.segment_records >= 16, f"{path}.segment_records", "must be >= 16")
        require(self.fsync_every >= 1, f"{path}.fsync_every", "must be >= 1")


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class RingsConfig:
    md_slots: int = 1 << 16
    order_slots: int = 1 << 12
    exec_slots: int = 1 << 12
    wait: Literal["spin", "yield", "sleep"] = "yield"

    def _validate(self, path):
        for name in ("md_slots", "order_slots", "exec_slots"):
            require(_pow2(getattr(self, name)), f"{path}.{name}", "must be a power of two")


@dataclass(frozen=True)
class CpuConfig:
    engine: int = -1
    io: int = -1
    feeds: tuple[int, ...] = ()
    realtime: bool = False


@dataclass(frozen=True)
class VenueConfig:
    kind: Literal["sim", "ccxt", "web3"] = "sim"
    taker_fee_bps: float = 10.0
    maker_fee_bps: float = 2.0

    def _validate(self, path):
        require(0 <= self.taker_fee_bps < 1000, f"{path}.taker_fee_bps", "must be in [0, 1000)")
        require(-100 < self.maker_fee_bps < 1000, f"{path}.maker_fee_bps", "must be in (-100, 1000)")


@dataclass(frozen=True)
class InstrumentConfig:
    venue: str
    symbol: str
    base: str
    quote: str = "USDT"
    kind: Literal["spot", "perp"] = "spot"
    tick: float = 0.01
    lot: float = 1e-5
    min_notional: float = 5.0

    def _validate(self, path):
        for name in ("tick", "lot"):
            require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
        require(self.min_notional >= 0, f"{path}.min_notional", "must be >= 0")


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    rings: RingsConfig = field(default_factory=RingsConfig)
    cpu: CpuConfig = field(default_factory=CpuConfig)
    venues: Mapping[str, VenueConfig] = field(default_factory=lambda: MappingProxyType({}))
    instruments: Mapping[str, InstrumentConfig] = field(default_factory=lambda: MappingProxyType({}))

    def _validate(self, path):
        for name, inst in self.instruments.items():
            require(inst.venue in self.venues, f"instruments.{name}.venue",
                    f"names venue {inst.venue!r}, which is not in [venues] ({', '.join(self.venues) or 'none'})")

    def registry(self) -> Registry:
        """Ids for this config's venues, instruments and assets, in file order."""
        reg = Registry()
        for name in self.venues:
            reg.venues.add(name)
        for name, inst in self.instruments.items():
            reg.instruments.add(name)
            reg.assets.add(inst.base)
            reg.assets.add(inst.quote)
        return reg


def load(path: str | Path) -> Config:
    """Load and validate a config file. Raises ConfigError naming the offending key path."""
    return build(Config, load_toml(path))


def from_dict(data: dict) -> Config:
    return build(Config, data)
