"""A scenario's ccxt venues on loopback: one exchange emulator per venue, reached through real ccxt.

    world = LocalCcxtWorld.from_config(cfg)    # every [venues.X] with kind = "ccxt"
    await world.start()                        # emulators serve; CcxtVenue clients load markets
    market = world.start_market()              # the scenario's generated market plays their books
    ... trade through world.venues[name] (CcxtVenue: ccxt -> HTTP -> emulator) ...
    await world.close()

The same shape as `adapters.sim.world.SimWorld` (venues, clock, start, start_market, close,
digest), so the orchestrator runs unchanged over it. Each emulator gets fresh random credentials
for our account (funded with `[venues.X].balances`) and the venue's fees; the generated market
(`adapters.sim.market.MarketDriver`) sets the other participants' depth and sends their trades
through the emulator's matching engine. A venue whose instruments are all perps is a USDⓈ-M
futures emulator (`adapters.emulator.futures`, ccxt `binanceusdm`, symbols BASE/QUOTE:QUOTE,
each perp's leverage set at start, marks and funding from the generator); spot and perps on one
ccxt venue is a ConfigError (Binance serves them as two venues). Clock: real time only.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import socket

from adapters.emulator import Emulator
from adapters.emulator.futures import FuturesEmulator
from adapters.sim.clock import RealClock
from adapters.sim.faults import FaultSchedule
from adapters.sim.market import Listing, MarketDriver
from adapters.sim.matching import FeeSchedule, Spec
from basis_core.config import Config
from basis_core.errors import ConfigError
from basis_core.schema import Side

from .auth import Credentials
from .client import CcxtVenue
from .config import from_dict

OWNER = "basis"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatorMarket:
    """What the market generator drives (`apply_book`, `participant_trade`, ...), over an Emulator.
    Depth is in integer ticks and lots, as the generator produces it."""

    def __init__(self, emulator: Emulator, symbols: dict[str, str], clock):
        self.emu, self.symbols, self.clock = emulator, symbols, clock

    def apply_book(
        self, instrument: str, bids: dict[int, int], asks: dict[int, int], replace: bool = True, view=None
    ) -> None:
        sym = self.symbols[instrument]
        emu = self.emu
        with emu.lock, emu.streams.watch(sym):
            eng = emu.exchange.engine(sym)
            for side, levels in ((Side.SELL, asks), (Side.BUY, bids)):
                have = eng.market_levels(side)
                prices = (set(have) | set(levels)) if replace else set(levels)
                for px in sorted(prices, key=lambda p: (levels.get(p, 0) > 0, p)):  # shrink first
                    want = levels.get(px, 0)
                    if have.get(px, 0) != want:
                        emu._absorb(sym, emu.exchange.set_level(sym, side, px, want, self.clock.now_ns()))

    def participant_trade(self, instrument: str, side: Side, lots: int, limit: int | None = None):
        sym = self.symbols[instrument]
        emu = self.emu
        with emu.lock, emu.streams.watch(sym):
            result = emu.exchange.participant_trade(sym, side, lots, self.clock.now_ns(), limit)
            emu._absorb(sym, result)
            return result

    def update_funding(self, instrument: str, mark: float, index: float, rate: float) -> None:
        """New mark, index and funding rate of a perp (funding settles when its time passed)."""
        if not isinstance(self.emu, FuturesEmulator):
            raise ConfigError(f"instruments.{instrument}", "a spot exchange emulator has no perpetuals")
        self.emu.update_funding(self.symbols[instrument], mark, index, rate)

    def mute_market(self, until_ns: int) -> None:
        """A price gap: the generator stops moving this venue's depth (nothing to mute on REST)."""


class LocalCcxtWorld:
    """Emulators + CcxtVenue clients + generated market for the ccxt venues of a scenario."""

    def __init__(self, cfg: Config, timeout_ms: int = 2000):
        if cfg.run.clock != "real":
            raise ConfigError("run.clock", 'ccxt venues over HTTP need clock = "real"')
        self.cfg, self.clock = cfg, RealClock()
        self.emulators: dict[str, Emulator] = {}
        self.venues: dict[str, CcxtVenue] = {}
        self.faces: dict[str, EmulatorMarket] = {}
        self.listings: list[Listing] = []
        self._ports: dict[str, int] = {}
        reg = cfg.registry()
        for vname, vcfg in cfg.venues.items():
            if vcfg.kind != "ccxt":
                continue
            insts = {n: i for n, i in cfg.instruments.items() if i.venue == vname}
            specs, symbols, unified = [], {}, {}
            usdm = bool(insts) and all(i.kind == "perp" for i in insts.values())
            for iname, i in insts.items():
                if (i.kind == "perp") != usdm:
                    raise ConfigError(
                        f"instruments.{iname}.kind",
                        f"venue {vname} mixes spot and perps: an emulated venue is spot or USDⓈ-M",
                    )
                sym = f"{i.base}{i.quote}"
                try:
                    specs.append(
                        Spec(sym, i.base, i.quote, i.tick, i.lot, i.min_notional, i.max_qty or math.inf)
                    )
                except ConfigError as exc:
                    raise ConfigError(f"instruments.{iname}", exc.message) from None
                symbols[iname] = sym
                unified[iname] = f"{i.base}/{i.quote}:{i.quote}" if usdm else f"{i.base}/{i.quote}"
                self.listings.append(Listing(vname, iname, i.kind, i.tick, i.lot))
            key, secret = secrets.token_hex(12), secrets.token_hex(24)
            fees = FeeSchedule(vcfg.maker_fee_bps, vcfg.taker_fee_bps)
            leverage = {n: i.leverage for n, i in insts.items() if i.kind == "perp"}
            emu = (
                FuturesEmulator(
                    specs,
                    {key: (secret, OWNER)},
                    name=vname,
                    fees=fees,
                    leverage={symbols[n]: lev for n, lev in leverage.items()},
                    funding_interval_s=vcfg.funding_interval_s,
                )
                if usdm
                else Emulator(specs, {key: (secret, OWNER)}, name=vname, fees=fees)
            )
            for asset, amount in vcfg.balances.items():
                emu.deposit(OWNER, asset, amount)
            port = free_port()
            # a thin pipe: the orchestrator retries, verifies (SUSPECT) and degrades by itself
            vc = from_dict(
                {
                    "exchange": "binanceusdm" if usdm else "binance",
                    "base_url": f"http://127.0.0.1:{port}",
                    "timeout_ms": timeout_ms,
                    "instruments": unified,
                    "leverage": leverage,
                    "max_attempts": 1,
                    "verify_submits": False,
                },
                f"venues.{vname}",
            )
            self.emulators[vname], self._ports[vname] = emu, port
            self.faces[vname] = EmulatorMarket(emu, symbols, self.clock)
            self.venues[vname] = CcxtVenue(
                vname, vc, Credentials(key, secret), venue_id=reg.venue(vname), poll_s=0.1
            )
        self.faults = FaultSchedule(tuple(cfg.faults), seed=cfg.run.seed, start_ns=self.clock.now_ns())
        m = cfg.market
        if m.source != "synthetic":
            raise ConfigError("market.source", "a local ccxt world plays the synthetic market only")
        self.market = (
            MarketDriver(self.faces, self.listings, m, cfg.run.duration_s, cfg.run.seed, self.faults)
            if self.listings
            else None
        )

    @classmethod
    def from_config(cls, cfg: Config) -> LocalCcxtWorld:
        return cls(cfg)

    async def start(self) -> None:
        if self.market is not None:
            self.market.apply_step(0)  # depth before the clients look at the books
        for name, emu in self.emulators.items():
            await emu.start("127.0.0.1", self._ports[name])
        for v in self.venues.values():
            await v.start()

    async def close(self) -> None:
        for v in self.venues.values():
            await v.close()
        for emu in self.emulators.values():
            await emu.stop()

    async def __aenter__(self) -> LocalCcxtWorld:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start_market(self, hold: bool = False) -> asyncio.Task:
        loop = asyncio.get_running_loop()
        if self.market is None:
            return loop.create_task(asyncio.sleep(self.cfg.run.duration_s))
        return loop.create_task(self.market.run(hold=hold))

    def digest(self) -> str:
        """sha256 of the orders each emulator accepted (HTTP timing makes runs differ)."""
        h = hashlib.sha256()
        for name in sorted(self.emulators):
            for p in self.emulators[name].placed:
                h.update(repr((name, p.symbol, p.coid)).encode())
        return h.hexdigest()
