"""A live run's world: ccxt venues built from the config, beside its simulated venues.

    world = CcxtWorld.from_config(cfg)   # every [venues.X] kind "ccxt" from its [venues.X.ccxt]
    await world.start()                  # sim venues, then each ccxt venue loads its markets and
                                         # its rules are held against the config's
    ... run_scenario(cfg, run_dir, world, layout="processes") ...
    await world.close()

The same shape as `adapters.sim.world.SimWorld` (venues, clock, start, start_market, close,
digest). Each ccxt venue is a `CcxtVenue` over its `[venues.NAME.ccxt]` table
(`adapters/ccxt/config.py`): any ccxt exchange id, its REST base (a real venue, its sandbox, or a
local emulator's `base_url`), credentials from the environment or a mode-0600 secrets file (a
relative path is read from the config file's directory). Unless the table says otherwise the
client is a thin pipe (`max_attempts = 1`, `verify_submits = false`): the orchestrator retries,
verifies unknown outcomes (SUSPECT) and degrades by itself. The table's `instruments` maps our
instrument names to ccxt symbols; when it is left out, each instrument of the venue is its
`symbol`, or BASE/QUOTE for a spot one whose symbol is not unified.

What the config must say, checked here (ConfigError with the key path otherwise):

* `run.clock = "real"`: a venue keeps real time;
* each ccxt venue has a ccxt table, credentials that load, and instruments the table covers;
* at start, what the venue says about each instrument equals the config: kind, tick, lot,
  min_notional (and max_qty when both set one), and the maker and taker fees when the
  exchange reports them (`instruments.BTCUSDT.tick: venue says 0.01, config says 0.1`).

The simulated venues and their generated market come from `SimWorld` on the real clock; a
live venue's market is its own. `digest()` covers the simulated side and the ccxt venues'
names only: live runs do not repeat, and their digest is reported, never compared.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Mapping

from adapters.sim.clock import RealClock
from adapters.sim.world import SimWorld
from basis_core.config import Config, InstrumentConfig
from basis_core.configio import to_plain
from basis_core.errors import ConfigError
from basis_core.venue import InstrumentInfo

from . import auth
from .client import CcxtVenue
from .config import from_dict

#: what a run's ccxt client does unless its table says otherwise (see the module docstring)
THIN_PIPE = {"max_attempts": 1, "verify_submits": False}
#: relative tolerance when a venue's tick, lot or minimum is held against the config's
_RTOL = 1e-9


def _symbol(inst: InstrumentConfig) -> str:
    """The ccxt unified symbol of a config instrument that names none of its own."""
    if "/" in inst.symbol:
        return inst.symbol
    if inst.kind == "perp":
        return f"{inst.base}/{inst.quote}:{inst.quote}"
    return f"{inst.base}/{inst.quote}"


def venue_table(cfg: Config, name: str) -> dict:
    """The `[venues.NAME.ccxt]` table as `adapters.ccxt.config.from_dict` takes it: the run's
    defaults under it, its instruments filled in from `[instruments]`, a relative secrets file
    resolved against the config's directory. ConfigError names what is missing."""
    path = f"venues.{name}.ccxt"
    given = to_plain(cfg.venues[name].ccxt)
    if not given:
        raise ConfigError(path, "a ccxt venue needs its table: exchange, credentials (and base_url ...)")
    table = {**THIN_PIPE, **given}
    mine = {n: i for n, i in cfg.instruments.items() if i.venue == name}
    if "instruments" in table:
        named = table["instruments"]
        for iname in named if isinstance(named, dict) else ():
            if iname not in mine:
                raise ConfigError(f"{path}.instruments.{iname}", f"is not an instrument of venue {name!r}")
        for iname in mine:
            if not isinstance(named, dict) or iname not in named:
                raise ConfigError(f"{path}.instruments", f"has no ccxt symbol for instrument {iname!r}")
    else:
        table["instruments"] = {n: _symbol(i) for n, i in mine.items()}
    perps = {n: i.leverage for n, i in mine.items() if i.kind == "perp"}
    if perps and "leverage" not in table:  # the engine sizes perps at the config's leverage
        table["leverage"] = perps
    cred = table.get("credentials")
    if isinstance(cred, dict) and isinstance(cred.get("secrets_file"), str) and cred["secrets_file"]:
        table["credentials"] = dict(cred, secrets_file=str(cfg.data_path(cred["secrets_file"])))
    return table


class CcxtWorld:
    """Simulated venues plus live ccxt venues, one world for `run_scenario`."""

    def __init__(self, cfg: Config, sim: SimWorld, live: dict[str, CcxtVenue]):
        clash = set(sim.venues) & set(live)
        if clash:
            raise ConfigError("venues", f"{', '.join(sorted(clash))} built twice")
        self.cfg, self.sim, self.live = cfg, sim, dict(live)
        self.venues: dict = {**sim.venues, **live}
        self.clock = sim.clock

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        env: Mapping[str, str] | None = None,
        poll_s: float = 0.1,
        coid_prefix: str = "",
    ) -> CcxtWorld:
        """Build every venue of `cfg` (kinds "sim" and "ccxt"); nothing connects yet.
        `env` stands in for the process environment (credentials by variable name);
        `coid_prefix` marks the run's client order ids on the venues (scenario.coid_prefix)."""
        if cfg.run.clock != "real":
            raise ConfigError(
                "run.clock", 'a run with ccxt venues needs clock = "real" (a venue keeps real time)'
            )
        reg = cfg.registry()
        live = {}
        for name, vcfg in cfg.venues.items():
            if vcfg.kind != "ccxt":  # sim: the SimWorld's; web3: a ChainWorld's over this one
                continue
            path = f"venues.{name}.ccxt"
            vc = from_dict(venue_table(cfg, name), path)
            cred = auth.load(vc.credentials, env, f"{path}.credentials")
            live[name] = CcxtVenue(
                name, vc, cred, venue_id=reg.venue(name), poll_s=poll_s, coid_prefix=coid_prefix
            )
        return cls(cfg, SimWorld(cfg, RealClock()), live)

    # -- what run_scenario uses --------------------------------------------------------------

    async def start(self) -> None:
        """Start the simulated venues, then each ccxt venue (markets loaded), and hold what
        each venue says against the config: a mismatch is a ConfigError naming the key."""
        await self.sim.start()
        for name, venue in self.live.items():
            await venue.start()
            check_rules(self.cfg, name, venue.instruments())
            check_fees(self.cfg, name, await venue.trading_fees())

    async def close(self) -> None:
        try:
            for venue in self.live.values():
                await venue.close()
        finally:
            await self.sim.close()

    async def __aenter__(self) -> CcxtWorld:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start_market(self, hold: bool = False) -> asyncio.Task:
        return self.sim.start_market(hold=hold)

    def digest(self) -> str:
        """The simulated side's digest and the live venues' names (a live run never repeats)."""
        h = hashlib.sha256(self.sim.digest().encode())
        for name in sorted(self.live):
            h.update(name.encode())
        return h.hexdigest()


def _differs(venue: float, config: float) -> bool:
    return not math.isclose(venue, config, rel_tol=_RTOL, abs_tol=1e-12)


def check_rules(cfg: Config, venue: str, infos: dict[str, InstrumentInfo]) -> None:
    """Each instrument of `venue` in the config against the venue's own rules for it."""
    for iname, inst in cfg.instruments.items():
        if inst.venue != venue:
            continue
        path = f"instruments.{iname}"
        info = infos.get(iname)
        if info is None:
            raise ConfigError(path, f"venue {venue!r} did not list it")
        if info.kind != inst.kind:
            raise ConfigError(f"{path}.kind", f"venue says {info.kind}, config says {inst.kind}")
        for key in ("tick", "lot", "min_notional"):
            said, want = getattr(info, key), getattr(inst, key)
            if _differs(said, want):
                raise ConfigError(f"{path}.{key}", f"venue says {said:g}, config says {want:g}")
        if inst.max_qty and math.isfinite(info.max_qty) and inst.max_qty > info.max_qty * (1 + _RTOL):
            raise ConfigError(
                f"{path}.max_qty", f"venue says at most {info.max_qty:g}, config says {inst.max_qty:g}"
            )


def check_fees(cfg: Config, venue: str, fees: dict[str, tuple[float, float]]) -> None:
    """The venue's maker/taker fees (bps, per instrument) against `[venues.NAME]`'s."""
    vcfg = cfg.venues[venue]
    for iname, (maker, taker) in sorted(fees.items()):
        for key, said, want in (
            ("maker_fee_bps", maker, vcfg.maker_fee_bps),
            ("taker_fee_bps", taker, vcfg.taker_fee_bps),
        ):
            if abs(said - want) > 1e-6:
                raise ConfigError(
                    f"venues.{venue}.{key}", f"venue says {said:g} for {iname}, config says {want:g}"
                )


def describe_tables(cfg: Config) -> list[str]:
    """Each ccxt venue's table checked as a run builds it (credentials named, not read: the
    emulator or the key file may come later), one line per venue; ConfigError names a bad key."""
    out = []
    for name, vcfg in cfg.venues.items():
        if vcfg.kind != "ccxt":
            continue
        vc = from_dict(venue_table(cfg, name), f"venues.{name}.ccxt")
        cred = vc.credentials
        if cred.secrets_file:
            source = f"secrets file {cred.secrets_file}"
        elif cred.api_key_env:
            source = f"${cred.api_key_env} / ${cred.secret_env}"
        else:
            source = "nowhere (a run will refuse it)"
        where = vc.base_url or ("its sandbox" if vc.sandbox else "its own endpoints")
        out.append(
            f"venues.{name}.ccxt: {vc.exchange} at {where}, {len(vc.instruments)} instrument(s), "
            f"market data {vc.market_data}, credentials from {source}"
        )
    return out
