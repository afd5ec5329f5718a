"""Builders shared by the simulated-venue tests (no tests here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.sim.clock import VirtualClock
from adapters.sim.exchange import Exchange
from adapters.sim.faults import Fault, FaultSchedule
from adapters.sim.matching import FeeSchedule, Spec
from adapters.sim.transfers import TransferNetwork, TransferRules
from adapters.sim.venue import Latency, SimVenue
from basis_core.venue import InstrumentInfo

START_NS = 1_700_000_000_000_000_000
SPOT = Spec("BTC/USDT", "BTC", "USDT", tick=0.01, lot=1e-5, min_notional=5.0)
PERP = Spec("BTC/USDT:USDT", "BTC", "USDT", tick=0.1, lot=0.001, kind="perp")


def info(name: str, spec: Spec) -> InstrumentInfo:
    return InstrumentInfo(
        name, spec.symbol, spec.base, spec.quote, spec.kind, spec.tick, spec.lot, spec.min_notional
    )


def make_venue(
    clock,
    name="alpha",
    faults=(),
    network=None,
    latency=Latency(),
    perp=False,
    seed=1,
    usdt=100_000.0,
    btc=2.0,
    fee_asset="quote",
):
    spec = PERP if perp else SPOT
    ex = Exchange(name, {"btc": (spec, FeeSchedule(1.0, 5.0, asset=fee_asset))})
    ex.accounts.deposit("basis", "USDT", round(usdt * 1e8))
    if not perp:
        ex.accounts.deposit("basis", "BTC", round(btc * 1e8))
    schedule = (
        faults
        if isinstance(faults, FaultSchedule)
        else FaultSchedule(tuple(faults), seed=seed, start_ns=START_NS)
    )
    return SimVenue(
        name,
        ex,
        {"btc": info("btc", spec)},
        clock,
        latency=latency,
        faults=schedule,
        network=network,
        seed=seed,
    )


def linked_venues(clock, rules: TransferRules, latency=Latency(), faults: FaultSchedule | None = None):
    """Venues alpha and beta joined by one transfer network with `rules` (and transfer `faults`)."""
    net = TransferNetwork(clock, rules, faults=faults)
    alpha = make_venue(clock, "alpha", network=net, latency=latency)
    beta = make_venue(clock, "beta", network=net, latency=latency)
    return alpha, beta


def book_around(venue, mid=50_000.0, levels=5, lots=20_000):
    """Market depth: `levels` per side, one tick apart, around `mid`."""
    eng = venue.exchange.engine("btc")
    t = eng.to_ticks(mid)
    venue.apply_book(
        "btc", {t - 1 - i: lots for i in range(levels)}, {t + 1 + i: lots for i in range(levels)}
    )


def run(coro):
    return VirtualClock(START_NS).run(coro)


async def _collect(aiter, into: list):
    async for item in aiter:
        into.append(item)


@asynccontextmanager
async def running(*venues: SimVenue, watch: SimVenue | None = None) -> AsyncIterator[tuple[list, list]]:
    """The venues started; yields `watch`'s user and market events as they arrive (two lists, both
    empty without `watch`); on leaving, every venue is closed and the collectors have ended."""
    for v in venues:
        await v.start()
    user: list = []
    md: list = []
    tasks = []
    if watch is not None:
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(_collect(watch.user_events(), user)),
            loop.create_task(_collect(watch.market_data(), md)),
        ]
    try:
        yield user, md
    finally:
        for v in venues:
            await v.close()
        await asyncio.gather(*tasks)


__all__ = ["Fault", "FaultSchedule", "Latency", "TransferNetwork", "TransferRules", "VirtualClock"]
