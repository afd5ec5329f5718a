"""Book events per second of the simulated market: generating it, and playing it through SimVenues.

Unit. One *book event* is one price level set or consumed: each step of each listing sets
2 x `levels` levels (the generator's depth), and each print of another participant's trade
consumes one level (or one resting order of a level). A benchmark's pyperf value is seconds
per book event, so `basis bench sim` shows events/s.

Market. The embedded default scenario (basis_core/scenarios/default.toml) as `basis run` loads
it: its three listings, `levels`, `step_s`, `trades_per_s`, seed and duration, built into real
SimVenues by `SimWorld.from_config`. Nothing subscribes to the venues' market data (the cost of
delivering events to a consumer belongs to the consumer), and no time is slept: the play calls
what `MarketDriver.run` schedules — each step's depth (`apply_step`), funding updates, every
participant trade — directly, in time order, on a clock set to each event's time.

    SimMarketThroughput[generate]       generate_mids + book_arrays + trade_times (MarketDriver())
    SimMarketThroughput[play,idle]      generation + play; none of our orders on any book (the
                                        realistic mix: the engine rests an order only briefly)
    SimMarketThroughput[play,resting]   generation + play with one of our limit orders resting
                                        on each listing at every step (twice the minimum
                                        notional at the second-best level, placed again at the
                                        end of the step in which it filled), so the full
                                        matching path runs: depth set level by level in the
                                        matching engine, participants matched in price-time
                                        priority against MARKET's lots and our order

Time is the benchmark thread's CPU time (`time.thread_time`), so "on one core" is what is
measured: on a shared host the time other processes hold the core is not counted (wall time
on an idle core is the same; on this 2-vCPU VM, busy, wall time ran up to 2x higher).
`gc.collect()` runs before each timed run (outside the timing) so garbage of earlier runs is
not collected on a later run's time; the run's own collections are timed.

Each benchmark checks what it played (event counts, our fills in the resting variant) before
reporting a value; a failed check fails the run.

Figures (perf/results/sim-20261124T012347Z.json, `basis bench sim`, 2026-11-24 01:24 UTC,
2-vCPU AMD EPYC VM shared with other work, load average 2.4-3.5 during the run; medians of
4 processes x 3 values): generation 12.4 M book events/s, generation + play idle 1.47 M/s,
generation + play with our orders resting 166 K/s. Idle is the common case (our orders rest
on a book only part of a run); resting is the worst case, bounded by the plain-Python
price-time book, where every level of every step is a queue operation.

    .venv/bin/python perf/bench_sim.py -o perf/results/sim.json       (pyperf options apply)
    .venv/bin/python perf/bench_sim.py --fast
    basis bench sim
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import time

import numpy as np
import pyperf

from adapters.sim.clock import Clock
from adapters.sim.market import MarketDriver
from adapters.sim.world import OWNER, SimWorld
from basis_core import config
from basis_core.scenarios import DEFAULT
from basis_core.schema import OrderType, Side
from basis_core.venue import Fill, OrderStatus, TradePrint


class SetClock(Clock):
    """A clock the play sets to each event's time."""

    def __init__(self, start_ns: int):
        self.start_ns = self.ns = start_ns

    def now_ns(self) -> int:
        return self.ns


def scenario(duration_s: float | None = None):
    cfg = config.load(DEFAULT)
    if duration_s is not None:
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, duration_s=duration_s))
    return cfg


def generate(cfg, world: SimWorld) -> MarketDriver:
    """The generation `SimWorld` does for a synthetic market."""
    return MarketDriver(
        world.venues, world.listings, cfg.market, cfg.run.duration_s, cfg.run.seed, world.faults
    )


def schedule(driver: MarketDriver) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every participant trade of every listing in time order: (times s, listing, side, lots)."""
    times = np.concatenate([t for t, _, _ in driver.trades])
    listing = np.concatenate([np.full(len(t), j, np.int64) for j, (t, _, _) in enumerate(driver.trades)])
    sides = np.concatenate([s for _, s, _ in driver.trades])
    lots = np.concatenate(
        [
            np.maximum(1, np.round(q / driver.listings[j].lot)).astype(np.int64)
            for j, (_, _, q) in enumerate(driver.trades)
        ]
    )
    order = np.argsort(times, kind="stable")
    return times[order], listing[order], sides[order], lots[order]


class Resting:
    """Keeps one of our limit orders (twice the minimum notional, second-best level, buys and
    sells in turn) live on every listing."""

    def __init__(self, driver: MarketDriver):
        self.driver, self.n = driver, 0

    def refresh(self, step: int) -> None:
        d = self.driver
        for j, lst in enumerate(d.listings):
            venue = d.venues[lst.venue]
            eng = venue.exchange.engine(lst.instrument)
            if eng.live_orders():
                continue
            self.n += 1
            side = Side.BUY if self.n % 2 else Side.SELL
            bt, _, at, _ = d.books[j]
            px = (bt if side == Side.BUY else at)[step, min(1, bt.shape[1] - 1)]
            lots = max(1, math.ceil(2 * eng.spec.min_notional / (eng.price(int(px)) * lst.lot)))
            now = venue.clock.now_ns()  # what SimVenue.submit does at the venue, minus latency
            venue._sync(lst.instrument)
            result = venue.exchange.submit(
                OWNER,
                lst.instrument,
                f"r{self.n}",
                side,
                OrderType.LIMIT,
                eng.qty(lots),
                eng.price(int(px)),
                now,
            )
            venue._after(lst.instrument, result)
            if result.order.status not in (
                OrderStatus.OPEN,
                OrderStatus.PARTIALLY_FILLED,
                OrderStatus.FILLED,
            ):
                raise AssertionError(
                    f"our order on {lst.instrument} was {result.order.status}: {result.order.reason}"
                )


def play(driver: MarketDriver, clock: SetClock, resting: bool) -> None:
    """What `MarketDriver.run` does, in time order, without sleeping (price gaps aside: the
    default scenario schedules none)."""
    model = driver.model
    times, listing, sides, lots = schedule(driver)
    t_ns = (clock.start_ns + np.round(times * 1e9)).astype(np.int64).tolist()
    listing, lots = listing.tolist(), lots.tolist()
    sides = [(Side.BUY, Side.SELL)[s] for s in sides.tolist()]
    every = max(1, round(model.funding_update_s / model.step_s))
    keeper = Resting(driver) if resting else None
    k, n_trades = 0, len(t_ns)
    for step in range(driver.n_steps):
        when = clock.start_ns + round(step * model.step_s * 1e9)
        while k < n_trades and t_ns[k] < when:
            clock.ns = t_ns[k]
            driver._trade(driver.listings[listing[k]], sides[k], lots[k])
            k += 1
        clock.ns = when
        driver.apply_step(step)
        if step % every == 0:
            driver.publish_funding(step)
        if keeper is not None:
            keeper.refresh(step)


def book_events(world: SimWorld, driver: MarketDriver) -> tuple[int, int]:
    """(book events played, our fills): levels set by the driver plus participants' prints."""
    prints = fills = 0
    for v in world.venues.values():
        for item in v.log:
            if item[1] == "md" and isinstance(item[2], TradePrint):
                prints += 1
            elif item[1] == "user" and isinstance(item[3], Fill):
                fills += 1
    return driver.book_events + prints, fills


def run_once(cfg, resting: bool | None) -> tuple[float, int, int, SimWorld]:
    """Build the venues (untimed), then generate (and play, unless `resting` is None), timed.
    Returns (seconds, book events, our fills, world)."""
    clock = SetClock(cfg.run.start_ns)
    # its own driver is left unused; the whole event log is kept (book_events counts it)
    world = SimWorld(cfg, clock, log_keep=None)
    gc.collect()  # start each run on a clean heap, as a fresh process would

    async def timed():
        t0 = time.thread_time()
        driver = generate(cfg, world)
        if resting is not None:
            play(driver, clock, resting)
        return time.thread_time() - t0, driver

    dt, driver = asyncio.run(timed())
    if resting is None:
        return dt, driver.n_steps * len(driver.listings) * 2 * cfg.market.levels, 0, world
    events, fills = book_events(world, driver)
    return dt, events, fills, world


def _bench(resting: bool | None, expect: dict):
    cfg = scenario()

    def func(loops: int) -> float:
        total = 0.0
        for _ in range(loops):
            dt, events, fills, _ = run_once(cfg, resting)
            if events != expect["events"]:
                raise AssertionError(f"played {events} book events, expected {expect['events']}")
            if resting and fills < len(cfg.instruments):
                raise AssertionError(f"only {fills} fills of our resting orders")
            total += dt
        return total

    return func


def main() -> None:
    runner = pyperf.Runner(processes=4, values=3)
    cfg = scenario()
    runner.metadata["sim_scenario"] = (
        f"default: {len(cfg.instruments)} listings, {cfg.market.levels} levels, "
        f"step {cfg.market.step_s} s, {cfg.market.trades_per_s} trades/s, "
        f"seed {cfg.run.seed}, {cfg.run.duration_s:g} s"
    )
    runner.metadata["sim_timer"] = "time.thread_time (CPU time of the benchmark thread)"
    for name, resting in (
        ("SimMarketThroughput[generate]", None),
        ("SimMarketThroughput[play,idle]", False),
        ("SimMarketThroughput[play,resting]", True),
    ):
        _, events, _, _ = run_once(cfg, resting)
        runner.bench_time_func(name, _bench(resting, {"events": events}), inner_loops=events)


if __name__ == "__main__":
    main()
