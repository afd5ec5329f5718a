"""A scenario's simulated side, built from a `basis_core.config.Config`.

    world = SimWorld.from_config(cfg)              # venues of kind "sim", their market, faults
    async with world:                              # start venues; close them at the end
        market = world.start_market()              # task that plays the market for run.duration_s
        ... trade through world.venues[name] (basis_core.venue.Venue) ...
        await market
    world.digest()                                 # sha256 of every event the venues emitted

With `run.clock = "virtual"` the caller runs its coroutine with `world.clock.run(coro)`; with
"real" it uses `asyncio.run` and the venues' delays are real. Initial balances are deposited for
our account (`owner`); the other participants come from `[market]`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math

from basis_core.config import Config
from basis_core.errors import ConfigError
from basis_core.venue import InstrumentInfo

from .accounts import Accounts
from .clock import Clock, RealClock, VirtualClock
from .exchange import Exchange
from .faults import FaultSchedule
from .market import Listing, MarketDriver
from .matching import FeeSchedule, Spec
from .recorded import RecordedMarket, check, load
from .transfers import TransferNetwork, TransferRules
from .venue import SimVenue

OWNER = "basis"
#: newest events each venue's log holds in memory (every one is hashed into the digest); None:
#: all. A small tail: each event holds its book levels (a tail of 10,000 per venue grew a
#: 30-minute run's resident set by ~80 MiB)
LOG_KEEP = 1_000


class SimWorld:
    """Clock, simulated venues, transfer network, fault schedule and market of one scenario."""

    def __init__(self, cfg: Config, clock: Clock, log_keep: int | None = LOG_KEEP):
        self.cfg, self.clock = cfg, clock
        start_ns = cfg.run.start_ns if isinstance(clock, VirtualClock) else clock.now_ns()
        self.faults = FaultSchedule(tuple(cfg.faults), seed=cfg.run.seed, start_ns=start_ns)
        t = cfg.transfers
        self.network = TransferNetwork(
            clock, TransferRules(t.delay_s, t.confirmations, t.confirm_interval_s), self.faults
        )
        self.venues: dict[str, SimVenue] = {}
        self.listings: list[Listing] = []
        for vname, vcfg in cfg.venues.items():
            if vcfg.kind != "sim":
                continue
            insts = {n: i for n, i in cfg.instruments.items() if i.venue == vname}
            fees = FeeSchedule(
                vcfg.maker_fee_bps, vcfg.taker_fee_bps, vcfg.fee_asset, vcfg.fee_asset_price or 1.0
            )
            specs = {}
            for iname, icfg in insts.items():
                try:
                    specs[iname] = (
                        Spec(
                            icfg.symbol,
                            icfg.base,
                            icfg.quote,
                            icfg.tick,
                            icfg.lot,
                            icfg.min_notional,
                            icfg.max_qty or math.inf,
                            kind=icfg.kind,
                        ),
                        fees,
                    )
                except ConfigError as exc:
                    raise ConfigError(f"instruments.{iname}", exc.message) from None
                self.listings.append(Listing(vname, iname, icfg.kind, icfg.tick, icfg.lot))
            ex = Exchange(
                vname,
                specs,
                Accounts(),
                leverage={n: i.leverage for n, i in insts.items()},
                queue_model=vcfg.queue_model,
                queue_seed=cfg.run.seed,
            )
            for asset, amount in vcfg.balances.items():
                ex.accounts.deposit(OWNER, asset, ex.accounts.to_atoms(asset, amount))
            infos = {
                n: InstrumentInfo(
                    n, i.symbol, i.base, i.quote, i.kind, i.tick, i.lot, i.min_notional, i.max_qty or math.inf
                )
                for n, i in insts.items()
            }
            self.venues[vname] = SimVenue(
                vname,
                ex,
                infos,
                clock,
                latency=vcfg.latency,
                faults=self.faults,
                network=self.network,
                seed=cfg.run.seed,
                owner=OWNER,
                funding_interval_s=vcfg.funding_interval_s,
                log_keep=log_keep,
            )
        self.market = self._market()

    @classmethod
    def from_config(cls, cfg: Config, clock: Clock | None = None) -> SimWorld:
        if clock is None:
            clock = VirtualClock(cfg.run.start_ns) if cfg.run.clock == "virtual" else RealClock()
        return cls(cfg, clock)

    def _market(self):
        m = self.cfg.market
        if m.source == "recorded":
            return recorded_market(self.cfg)
        if not self.listings:
            return None
        return MarketDriver(
            self.venues, self.listings, m, self.cfg.run.duration_s, self.cfg.run.seed, self.faults
        )

    async def start(self) -> None:
        for v in self.venues.values():
            await v.start()

    async def close(self) -> None:
        for v in self.venues.values():
            await v.close()

    async def __aenter__(self) -> SimWorld:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start_market(self, hold: bool = False) -> asyncio.Task:
        """Play the market on the running loop; the task ends after run.duration_s, or with
        `hold` goes on quoting the generated market's last depth until cancelled (a recorded
        market ends with its data)."""
        loop = asyncio.get_running_loop()
        if self.market is None:
            return loop.create_task(asyncio.sleep(self.cfg.run.duration_s))
        if isinstance(self.market, RecordedMarket):
            return loop.create_task(self.market.run(self.venues))
        return loop.create_task(self.market.run(hold=hold))

    def digest(self) -> str:
        """sha256 over every venue's event log digest and the faults that fired, in venue order."""
        h = hashlib.sha256()
        for name in sorted(self.venues):
            h.update(self.venues[name].log.digest().encode())
        for fired in self.faults.log:
            h.update(repr(fired).encode())
        return h.hexdigest()


def recorded_market(cfg: Config) -> RecordedMarket:
    """The recorded books and trades `cfg` names, loaded and every row held against its simulated
    instruments' tick and lot (adapters/sim/recorded.py): a DataFileError before anything runs."""
    m = cfg.market
    grids = {
        (inst.venue, name): (inst.tick, inst.lot)
        for name, inst in cfg.instruments.items()
        if cfg.venues[inst.venue].kind == "sim"
    }
    recordings = []
    for kind, path in (("books", m.books), ("trades", m.trades)):
        rec = load(cfg.data_path(path), kind) if path else None
        if rec is not None:
            check(rec, grids)
        recordings.append(rec)
    return RecordedMarket(*recordings)
