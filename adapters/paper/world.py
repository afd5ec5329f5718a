"""A paper run's world: the config's ccxt venues as simulated venues fed by the live books.

    world = PaperWorld.from_config(cfg)   # run.clock "real"; every ccxt venue becomes paper
    await world.start()                   # markets loaded (public), rules held against the
                                          # config, a first book per instrument applied
    market = world.start_market()         # each live book applied as it changes
    ... trade through world.venues[name] (SimVenue: our orders match the live depth) ...
    await world.close()

A paper venue is a `SimVenue` (adapters/sim/venue.py) built from `[venues.NAME]` as any
simulated venue is (fees, latency, balances: the configured ones), whose other participants'
depth is the live venue's book: `LiveBooks` applies each book a `PublicFeed` (feed.py) gets
to the venue with `apply_book`, as the market generator does with its depth (MarketDriver), so
our orders rest in and take from the live depth in the simulated matching engine, a live book
that moves through our resting order fills it, and the venue reports it all with its latencies.
Perps take the venue's mark, index and funding rate every FUNDING_POLL_S. A book that has not
changed for STALE_S is taken again by a REST snapshot; when that fails too the book is emptied
(nothing fills against stale prices) until the next one; a feed failure is logged and retried
with back-off. What is not replayed from the live venue: its
public trades (our resting orders fill when the book moves through them, not by queue
position against trades at their price).

Simulated venues of the config keep their generated market. The ccxt table's credentials are
never read: nothing private is asked of the live venue.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import replace
from types import MappingProxyType

from adapters.ccxt.config import from_dict
from adapters.ccxt.world import check_rules, venue_table
from adapters.sim.clock import RealClock
from adapters.sim.market import MarketDriver
from adapters.sim.venue import SimVenue
from adapters.sim.world import SimWorld
from basis_core.config import Config
from basis_core.errors import BasisError, ConfigError

from .feed import Levels, PublicFeed

#: seconds without a fresh book after which a paper venue's book is emptied
STALE_S = 5.0
#: seconds between funding-rate polls of a perp
FUNDING_POLL_S = 10.0
#: back-off after a feed failure: first wait, longest wait (s)
BACKOFF_S = (0.25, 5.0)

log = logging.getLogger("basis.paper")


def paper_config(cfg: Config) -> Config:
    """`cfg` with every ccxt venue made a simulated one (same fees, latency, balances)."""
    venues = {
        n: replace(v, kind="sim", ccxt=MappingProxyType({})) if v.kind == "ccxt" else v
        for n, v in cfg.venues.items()
    }
    out = replace(cfg, venues=MappingProxyType(venues))
    object.__setattr__(out, "base_dir", cfg.base_dir)
    return out


def to_grid(levels: Levels, tick: float, lot: float, side: str) -> dict[int, int]:
    """(price, qty) levels as ticks -> lots on the instrument's grid: a price off the grid goes
    to the next tick away from the touch (bids down, asks up), a quantity is cut to whole lots,
    a level under one lot is dropped, levels meeting on one tick add up."""
    out: dict[int, int] = {}
    for price, qty in levels:
        x = price / tick
        n = round(x)
        if abs(n - x) > 1e-6:
            n = math.floor(x) if side == "bid" else math.ceil(x)
        lots = math.floor(qty / lot + 1e-9)
        if n > 0 and lots > 0:
            out[n] = out.get(n, 0) + lots
    return out


class LiveBooks:
    """Applies the live books of `feeds` to their paper venues (see module docstring)."""

    def __init__(self, venues: dict[str, SimVenue], feeds: dict[str, PublicFeed]):
        self.venues, self.feeds = venues, feeds
        self.infos = {name: v.instruments() for name, v in venues.items()}
        self.books_applied = 0
        self.failures = 0

    def apply(self, venue: str, instrument: str, bids: Levels, asks: Levels) -> None:
        v = self.venues[venue]
        info = self.infos[venue][instrument]
        b = to_grid(bids, info.tick, info.lot, "bid")
        a = to_grid(asks, info.tick, info.lot, "ask")
        if b and a:  # a crossed live book (between two messages): keep the side of each touch
            best_ask = min(a)
            b = {px: q for px, q in b.items() if px < best_ask}
        v.apply_book(instrument, b, a, replace=True)
        self.books_applied += 1

    async def prime(self) -> None:
        """A first book for every instrument, before anything trades (failures raise)."""
        for venue, feed in self.feeds.items():
            for instrument in feed.config.instruments:
                bids, asks = await feed.snapshot(instrument)
                self.apply(venue, instrument, bids, asks)

    async def run(self) -> None:
        """Follow every instrument's book (and a perp's funding) until cancelled."""
        tasks = []
        for venue, feed in self.feeds.items():
            infos = self.infos[venue]
            for instrument in feed.config.instruments:
                tasks.append(asyncio.create_task(self._follow(venue, feed, instrument)))
                if infos[instrument].kind == "perp":
                    tasks.append(asyncio.create_task(self._funding(venue, feed, instrument)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, venue: str, feed: PublicFeed, instrument: str) -> None:
        wait = BACKOFF_S[0]
        while True:
            books = feed.books(instrument)
            try:
                while True:
                    bids, asks = await asyncio.wait_for(anext(books), STALE_S)
                    self.apply(venue, instrument, bids, asks)
                    wait = BACKOFF_S[0]
            except TimeoutError:  # a quiet book, or a silent feed: a REST snapshot tells which
                try:
                    self.apply(venue, instrument, *await feed.snapshot(instrument))
                except BasisError as exc:
                    log.warning("%s %s: no book for %.0f s (%s); emptied", venue, instrument, STALE_S, exc)
                    self.venues[venue].apply_book(instrument, {}, {}, replace=True)
                    self.failures += 1
            except BasisError as exc:
                self.failures += 1
                log.warning(
                    "%s %s: market data failed (%s); retrying in %.2f s", venue, instrument, exc, wait
                )
                await asyncio.sleep(wait)
                wait = min(BACKOFF_S[1], wait * 2)
            finally:
                await books.aclose()

    async def _funding(self, venue: str, feed: PublicFeed, instrument: str) -> None:
        while True:
            try:
                mark, index, rate = await feed.funding(instrument)
                self.venues[venue].update_funding(instrument, mark, index, rate)
            except BasisError as exc:
                self.failures += 1
                log.warning("%s %s: funding rate failed (%s)", venue, instrument, exc)
            await asyncio.sleep(FUNDING_POLL_S)


class PaperWorld(SimWorld):
    """Simulated venues, the ccxt ones fed by their live books (see module docstring)."""

    def __init__(self, cfg: Config):
        if cfg.run.clock != "real":
            raise ConfigError("run.clock", 'paper mode follows live venues: it needs clock = "real"')
        papers = [n for n, v in cfg.venues.items() if v.kind == "ccxt"]
        if not papers:
            raise ConfigError("venues", "paper mode needs at least one venue of kind 'ccxt' to follow")
        for name, v in cfg.venues.items():
            if v.kind not in ("sim", "ccxt"):
                raise ConfigError(f"venues.{name}.kind", f"paper mode runs sim and ccxt venues, not {v.kind}")
        self.live_cfg = cfg
        self.paper = frozenset(papers)
        super().__init__(paper_config(cfg), RealClock())
        self.feeds: dict[str, PublicFeed] = {}
        for name in papers:
            table = venue_table(cfg, name)
            kinds = {i.kind for i in cfg.instruments.values() if i.venue == name}
            self.feeds[name] = PublicFeed(name, from_dict(table, f"venues.{name}.ccxt"), kinds)
        self.live = LiveBooks({n: self.venues[n] for n in papers}, self.feeds)

    @classmethod
    def from_config(cls, cfg: Config, clock=None) -> PaperWorld:
        return cls(cfg)

    def _market(self):
        """The generated market for the simulated venues only (the paper ones follow feeds)."""
        listings = [lst for lst in self.listings if lst.venue not in self.paper]
        if not listings:
            return None
        m = self.cfg.market
        if m.source == "recorded":
            raise ConfigError(
                "market.source", "a paper run beside simulated venues takes the generated market"
            )
        return MarketDriver(
            {n: v for n, v in self.venues.items() if n not in self.paper},
            listings,
            m,
            self.cfg.run.duration_s,
            self.cfg.run.seed,
            self.faults,
        )

    async def start(self) -> None:
        """Load each live venue's markets and hold its rules against the config; apply a
        first book everywhere; then start the venues."""
        try:
            for name, feed in self.feeds.items():
                check_rules(self.live_cfg, name, await feed.start())
            await self.live.prime()
        except BaseException:
            for feed in self.feeds.values():
                await feed.close()
            raise
        await super().start()

    def start_market(self, hold: bool = False) -> asyncio.Task:
        """The live books (and the simulated venues' market, if any) until cancelled."""
        sim = super().start_market(hold=hold) if self.market is not None else None

        async def both() -> None:
            try:
                await self.live.run()
            finally:
                if sim is not None:
                    sim.cancel()

        return asyncio.get_running_loop().create_task(both(), name="paper-market")

    async def close(self) -> None:
        try:
            for feed in self.feeds.values():
                await feed.close()
        finally:
            await super().close()
