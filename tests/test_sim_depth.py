"""The venue's fast paths give the same event streams as the matching engine.

While none of our orders rests, a SimVenue keeps the participants' depth staged (depth.py) and
plays their trades on it; the market driver hands depth over as precomputed rows. These tests
hold each fast path against the path through the matching engine, event for event.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sim_support import START_NS, VirtualClock, make_venue

from adapters.sim.market import Listing, MarketDriver, MarketModel
from basis_core import config
from basis_core.scenarios import DEFAULT
from basis_core.schema import OrderType, Side

MID = 5_000_000  # ticks (50 000.00 at tick 0.01)


def log_of(venue) -> list[str]:
    return [repr(item) for item in venue.log]


levels = st.lists(st.tuples(st.integers(1, 12), st.integers(1, 5_000)), min_size=0, max_size=8)
trade = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 12_000), st.one_of(st.none(), st.integers(-12, 12))
)
step = st.tuples(levels, levels, st.lists(trade, max_size=4))


def depth(offsets: list[tuple[int, int]], sign: int) -> dict[int, int]:
    return {MID + sign * off: lots for off, lots in offsets}


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=6), st.integers(3, 10))
def test_trades_against_staged_depth_print_and_publish_exactly_what_the_engine_does(steps, book_depth):
    clock = VirtualClock(START_NS)
    staged, engine = make_venue(clock), make_venue(clock)
    staged.book_depth = engine.book_depth = book_depth
    for bids, asks, trades in steps:
        for v in (staged, engine):
            v.apply_book("btc", depth(bids, -1), depth(asks, +1))
        engine._sync("btc")  # this one's depth goes into the matching engine
        assert "btc" in staged._staged and "btc" not in engine._staged
        for side, lots, limit in trades:
            px = None if limit is None else MID + limit
            assert staged.participant_trade("btc", side, lots, px) is None
            assert engine.participant_trade("btc", side, lots, px) is not None
        assert staged.book("btc", 50) == engine.book("btc", 50)  # all of the depth left
    assert log_of(staged) == log_of(engine)  # prints and published books


class DictOnly:
    """A venue seen through the dict interface alone (what `EmulatorMarket` offers the driver)."""

    def __init__(self, venue):
        self.venue = venue

    def apply_book(self, *args, **kwargs):
        return self.venue.apply_book(*args, **kwargs)

    def participant_trade(self, *args, **kwargs):
        return self.venue.participant_trade(*args, **kwargs)


def rest_one_order(venue, bid_ticks: int) -> None:
    """One of our limit buys at `bid_ticks`, placed at the venue right now."""
    eng = venue.exchange.engine("btc")
    venue._sync("btc")
    result = venue.exchange.submit(
        venue.owner,
        "btc",
        "ours",
        Side.BUY,
        OrderType.LIMIT,
        0.002,
        eng.price(bid_ticks),
        venue.clock.now_ns(),
    )
    venue._after("btc", result)
    assert eng.live_orders() == 1


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 8), st.integers(0, 30))
def test_driver_rows_and_the_dict_interface_give_the_same_streams_idle_or_with_our_order_resting(
    seed, levels, rest_at
):
    clock = VirtualClock(START_NS)
    model = MarketModel(levels=levels, trades_per_s=30.0, trade_qty=0.3, vol_bps=20.0)
    listing = [Listing("alpha", "btc", "spot", 0.01, 1e-5)]

    async def main():
        fast, slow = make_venue(clock), make_venue(clock)
        drivers = [
            MarketDriver({"alpha": fast}, listing, model, 4.0, seed),
            MarketDriver({"alpha": DictOnly(slow)}, listing, model, 4.0, seed),
        ]
        times, sides, qty = drivers[0].trades[0]
        k, engine_steps = 0, 0
        for step in range(drivers[0].n_steps):
            while k < len(times) and times[k] < step * model.step_s:
                engine_steps += fast.exchange.engine("btc").live_orders()  # this trade matches in the engine
                for d in drivers:
                    d._trade(listing[0], Side(int(sides[k])), max(1, round(float(qty[k]) / 1e-5)))
                k += 1
            for d in drivers:
                d.apply_step(step)
            engine_steps += "btc" not in fast._staged  # this depth went level by level into the engine
            if step == rest_at:
                for v in (fast, slow):
                    rest_one_order(v, int(drivers[0].books[0][0][step, 0]) + 1)  # inside the spread
        assert drivers[0].book_events == drivers[1].book_events == drivers[0].n_steps * 2 * levels
        assert fast.book("btc", 50) == slow.book("btc", 50)
        assert engine_steps >= 1
        return log_of(fast), log_of(slow)

    fast_log, slow_log = clock.run(main())
    assert fast_log == slow_log
    assert any("TradePrint" in line for line in fast_log)


def test_published_levels_of_the_default_scenario_are_the_engines_own_conversions():
    from adapters.sim.world import SimWorld

    cfg = config.load(DEFAULT)
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, duration_s=20.0))
    world = SimWorld.from_config(cfg)
    driver = world.market
    for j, lst in enumerate(driver.listings):
        eng = world.venues[lst.venue].exchange.engine(lst.instrument)
        for ints, floats, conv in zip(driver.books[j], driver._views[j], (eng.price, eng.qty) * 2):
            assert floats.tolist() == [[conv(x) for x in row] for row in ints.tolist()]
        for step in (0, driver.n_steps // 2, driver.n_steps - 1):  # the rows the venues receive
            driver.apply_step(step)
            staged = world.venues[lst.venue]._staged[lst.instrument].row
            bt, bl, at, al = (a[step].tolist() for a in driver.books[j])
            assert staged[0] == tuple((eng.price(t), eng.qty(n)) for t, n in zip(bt, bl))
            assert staged[1] == tuple((eng.price(t), eng.qty(n)) for t, n in zip(at, al))
            assert np.all(np.diff(bt) < 0) and np.all(np.diff(at) > 0) and bt[0] < at[0]
