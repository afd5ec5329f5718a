"""One venue of a config served on loopback by an exchange emulator, with a generated market.

What `basis emulator` runs, so a live run (`adapters/ccxt/world.py`) has an exchange to trade on:

    served = serve_venue(cfg, "alpha", kind="spot")   # ConfigError names what it cannot serve
    port = await served.start(port=0)                 # 127.0.0.1; served.key / served.secret
    write_secrets(path, served.key, served.secret)    # the secrets file auth.py reads (0600)
    await served.run_market()                         # until cancelled
    await served.stop()

The emulator lists the venue's instruments with the config's tick, lot and min_notional,
charges its `maker_fee_bps` / `taker_fee_bps`, and funds our account (fresh random credentials)
with `[venues.NAME].balances`. The other participants come from the config's `[market]`: the
generator (`adapters.sim.market.MarketDriver`) is built over every instrument of the config, on
every venue, with the same seed, and played by wall time from a fixed origin (step
`floor(unix time / step_s)` modulo the market's length, `horizon_s`): emulators of one config
started apart show the same market at the same moment, so their cross-venue dislocations are
the config's, not an artefact of their start times. Each plays only its own venue's depth and
participants' trades. After `horizon_s` the market starts over (a jump back to its first
price).

The emulator kind is a factory (`KINDS`): "spot" is the Binance spot REST emulator
(`adapters/emulator/server.py`) for spot instruments; "usdm" the USDⓈ-M futures emulator
(`adapters/emulator/futures.py`) for perpetuals, each at its config leverage, funding every
`funding_interval_s`, marks and funding rates from the generated market.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from adapters.emulator import Emulator
from adapters.emulator.futures import FuturesEmulator
from adapters.sim.market import Listing, MarketDriver
from adapters.sim.matching import FeeSchedule, Spec
from basis_core.config import MAX_DURATION_S, MAX_MARKET_CELLS, Config
from basis_core.errors import ConfigError
from basis_core.schema import Side

from .local import OWNER, EmulatorMarket

#: the generated market's length by default; it then starts over
HORIZON_S = 3600.0
#: requests the emulator's log keeps while it serves (it runs until stopped)
LOG_KEEP = 10_000


class _Elsewhere:
    """A venue another emulator serves: the generator's steps for it go nowhere."""

    def apply_depth(self, instrument: str, row: tuple) -> None:
        pass

    def participant_trade(self, instrument: str, side: Side, lots: int, limit: int | None = None) -> None:
        pass

    def update_funding(self, instrument: str, mark: float, index: float, rate: float) -> None:
        pass

    def mute_market(self, until_ns: int) -> None:
        pass


class Face(Protocol):
    """What the generator drives on a venue (apply_book or apply_depth, participant_trade ...);
    the participants' trades are sent here by `ServedVenue` itself."""

    def participant_trade(
        self, instrument: str, side: Side, lots: int, limit: int | None = None
    ) -> object: ...


@dataclass
class Built:
    """What an emulator kind builds for one venue: the emulator, the face the generator drives
    (`apply_book`, `participant_trade` ...) and the wire symbol of each instrument."""

    emulator: Emulator
    face: Face
    symbols: dict[str, str] = field(default_factory=dict)


def _specs(cfg: Config, venue: str, kind: str) -> tuple[list[Spec], dict[str, str]]:
    """Specs and wire symbols of `venue`'s instruments, all of `kind` ("spot" or "perp")."""
    specs, symbols = [], {}
    for iname, inst in cfg.instruments.items():
        if inst.venue != venue:
            continue
        if inst.kind != kind:
            what = "the spot emulator lists spot" if kind == "spot" else "the usdm emulator lists perp"
            raise ConfigError(f"instruments.{iname}.kind", f"{what} instruments only")
        sym = f"{inst.base}{inst.quote}"
        try:
            specs.append(
                Spec(
                    sym,
                    inst.base,
                    inst.quote,
                    inst.tick,
                    inst.lot,
                    inst.min_notional,
                    inst.max_qty or math.inf,
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"instruments.{iname}", exc.message) from None
        symbols[iname] = sym
    return specs, symbols


def _funded(emu: Emulator, cfg: Config, venue: str, symbols: dict[str, str]) -> Built:
    for asset, amount in cfg.venues[venue].balances.items():
        emu.deposit(OWNER, asset, amount)
    return Built(emu, EmulatorMarket(emu, symbols, _WallClock()), symbols)


def _spot(cfg: Config, venue: str, keys: dict[str, tuple[str, str]]) -> Built:
    """Binance spot REST (ccxt `binance`)."""
    vcfg = cfg.venues[venue]
    specs, symbols = _specs(cfg, venue, "spot")
    fees = FeeSchedule(vcfg.maker_fee_bps, vcfg.taker_fee_bps)
    return _funded(Emulator(specs, keys, name=venue, fees=fees), cfg, venue, symbols)


def _usdm(cfg: Config, venue: str, keys: dict[str, tuple[str, str]]) -> Built:
    """Binance USDⓈ-M futures REST (ccxt `binanceusdm`): perps, each at its config leverage;
    marks and funding come from the generator, funding settles every `funding_interval_s`."""
    vcfg = cfg.venues[venue]
    specs, symbols = _specs(cfg, venue, "perp")
    leverage = {symbols[n]: i.leverage for n, i in cfg.instruments.items() if n in symbols}
    emu = FuturesEmulator(
        specs,
        keys,
        name=venue,
        fees=FeeSchedule(vcfg.maker_fee_bps, vcfg.taker_fee_bps),
        leverage=leverage,
        funding_interval_s=vcfg.funding_interval_s,
    )
    return _funded(emu, cfg, venue, symbols)


#: emulator kinds: name -> builder(cfg, venue, keys). A new kind is one builder and one entry.
KINDS: dict[str, Callable[[Config, str, dict[str, tuple[str, str]]], Built]] = {
    "spot": _spot,
    "usdm": _usdm,
}


class _WallClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ServedVenue:
    """An emulator serving venue `name` of `cfg`, and the wall-clock market it plays."""

    def __init__(self, cfg: Config, name: str, kind: str, seed: int, horizon_s: float = HORIZON_S):
        self.cfg, self.name, self.kind = cfg, name, kind
        self.key, self.secret = secrets.token_hex(16), secrets.token_hex(32)
        self.built = KINDS[kind](cfg, name, {self.key: (self.secret, OWNER)})
        self.emulator = self.built.emulator
        m = cfg.market
        if m.source != "synthetic":
            raise ConfigError("market.source", "an emulator plays the synthetic market only")
        if not 0 < horizon_s <= MAX_DURATION_S:
            raise ConfigError("horizon_s", f"must be in (0, {MAX_DURATION_S:g}], got {horizon_s:g}")
        if horizon_s / m.step_s * m.levels > MAX_MARKET_CELLS:
            raise ConfigError(
                "market.step_s", f"a {horizon_s:g} s market of this step and depth is too large"
            )
        listings = [Listing(i.venue, n, i.kind, i.tick, i.lot) for n, i in cfg.instruments.items()]
        faces: dict[str, object] = {v: _Elsewhere() for v in cfg.venues}
        faces[name] = self.built.face
        self.market = MarketDriver(faces, listings, m, horizon_s, seed) if listings else None
        self._own = [j for j, lst in enumerate(listings) if lst.venue == name]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on `host:port` (0: a free port), with the market's current depth in place."""
        if self.market is not None:
            self.market.apply_step(self._step(time.time_ns()))
        return await self.emulator.start(host, port)

    async def stop(self) -> None:
        await self.emulator.stop()

    @property
    def url(self) -> str:
        return self.emulator.url

    def _step(self, now_ns: int) -> int:
        assert self.market is not None
        step_ns = round(self.market.model.step_s * 1e9)
        return (now_ns // step_ns) % self.market.n_steps

    async def run_market(self) -> None:
        """Play the market by wall time until cancelled: each step's depth, and the other
        participants' trades on this venue that fell due since the last step."""
        market = self.market
        if market is None:
            await asyncio.Event().wait()
            return
        step_ns = round(market.model.step_s * 1e9)
        length_ns = step_ns * market.n_steps
        every = max(1, round(market.model.funding_update_s / market.model.step_s))
        last_pos = time.time_ns() % length_ns
        while True:
            now = time.time_ns()
            pos = now % length_ns
            step = pos // step_ns
            market.apply_step(step)
            if step % every == 0:
                market.publish_funding(step)
            self._trades(last_pos, pos)
            last_pos = pos
            log = self.emulator.log  # the emulator's request log: its newest LOG_KEEP requests
            if len(log) > 2 * LOG_KEEP:
                del log[:-LOG_KEEP]
            await asyncio.sleep((step_ns - pos % step_ns) / 1e9)

    def _trades(self, since_ns: int, until_ns: int) -> None:
        """The participants' trades on this venue timed in [since, until) of the market's cycle
        (a cycle's wrap plays its tail, then its head)."""
        assert self.market is not None
        spans = [(since_ns, until_ns)]
        if until_ns < since_ns:
            length = round(self.market.model.step_s * 1e9) * self.market.n_steps
            spans = [(since_ns, length), (0, until_ns)]
        for j in self._own:
            lst = self.market.listings[j]
            times, sides, qty = self.market.trades[j]
            for a, b in spans:
                lo, hi = np.searchsorted(times, [a / 1e9, b / 1e9])
                for k in range(int(lo), int(hi)):
                    lots = max(1, round(float(qty[k]) / lst.lot))
                    self.built.face.participant_trade(lst.instrument, Side(int(sides[k])), lots)


def serve_venue(cfg: Config, name: str, kind: str = "spot", seed: int | None = None) -> ServedVenue:
    """An emulator for venue `name` of `cfg` (not yet serving). ConfigError names the key it
    cannot serve: an unknown venue or kind, a venue that is not ccxt, an instrument the kind
    does not list."""
    if name not in cfg.venues:
        raise ConfigError("venue", f"{name!r} is not in [venues] ({', '.join(cfg.venues) or 'none'})")
    if cfg.venues[name].kind != "ccxt":
        raise ConfigError(
            f"venues.{name}.kind", f"is {cfg.venues[name].kind!r}: an emulator stands in for a ccxt venue"
        )
    if kind not in KINDS:
        raise ConfigError("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    return ServedVenue(cfg, name, kind, cfg.run.seed if seed is None else seed)


def write_secrets(path: str | Path, api_key: str, secret: str) -> Path:
    """Write the credentials as the secrets file `adapters/ccxt/auth.py` reads (TOML, mode 0600,
    created or replaced; never readable by group or others, not even for a moment)."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, f'api_key = "{api_key}"\nsecret = "{secret}"\n'.encode())
    finally:
        os.close(fd)
    return p
