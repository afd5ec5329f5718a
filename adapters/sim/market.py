"""Generated markets: correlated mids across venues, spot vs perp, moving depth, participants.

Prices. One common log-price factor (Gaussian steps, `vol_bps` per sqrt(second), multiplied in
`volatility_spike` windows, jumping at `price_gap` faults) drives every listing. Each listing adds
its own dislocation in bps: a mean-reverting (Ornstein-Uhlenbeck, half-life `revert_s`) noise of
`noise_bps` plus Poisson jumps (`dislocations_per_min`, sizes exponential with mean
`dislocation_bps`, random sign). Perp listings also carry a premium over spot: mean
`basis_bps`, its own OU noise and jumps; the funding rate each interval is
`premium * funding_factor`. Dislocations larger than two taker fees are real cross-venue
opportunities; premium excursions are basis/funding opportunities.

Depth. Around each mid, `levels` price levels per side on a fixed grid of `level_step_bps`
(of the start price), the best at least `half_spread_bps` from the mid; level i holds `level_qty * (1 + depth_growth * i)` times a lognormal factor
redrawn every step (`depth_noise`), so depth moves. Other participants send market orders at
Poisson times (`trades_per_s` per listing, sizes lognormal around `trade_qty`): they walk the
book — our resting orders included, in price-time priority — and the depth refills at the next
step.

`generate_mids` and `book_arrays` are pure numpy (vectorized, deterministic per seed);
`MarketDriver` plays them into SimVenues on the event loop's clock, handing each step's depth
over as a row (depth.py) built once per block of steps; a venue without `apply_depth` gets
the same depth through `apply_book`. perf/bench_sim.py measures both halves.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from basis_core.config import MarketConfig
from basis_core.schema import Side

from .depth import row_dicts, rows
from .faults import FaultSchedule
from .matching import step_decimals

#: the generator's parameters: the `[market]` section of a scenario
MarketModel = MarketConfig

#: steps of depth converted to Python lists at a time by MarketDriver
_CHUNK = 256


@dataclass(frozen=True)
class Listing:
    """One instrument on one venue as the generator sees it."""

    venue: str
    instrument: str
    kind: str  # "spot" | "perp"
    tick: float
    lot: float


def generate_mids(
    model: MarketModel, listings: list[Listing], n_steps: int, seed: int, faults: FaultSchedule | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mid prices [n_steps, n_listings] and perp premiums in bps [n_steps] (0 without perps).

    Row t is the market at t * step_s seconds from the start."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n, k, dt = n_steps, len(listings), model.step_s
    t = np.arange(n) * dt
    vol = np.ones(n)
    jumps = np.zeros(n)
    for f in faults.faults if faults else ():
        if f.kind == "volatility_spike":
            vol[(t >= f.start_s) & (t < f.end_s)] *= f.magnitude
        elif f.kind == "price_gap" and f.venue == "*":
            jumps[min(n - 1, int(f.start_s / dt))] += f.magnitude
    steps = rng.standard_normal(n) * (model.vol_bps * 1e-4 * math.sqrt(dt)) * vol + jumps * 1e-4
    steps[0] = 0.0
    common = np.cumsum(steps)
    offsets = _ou(
        rng, n, k, dt, model.revert_s, model.noise_bps, model.dislocations_per_min, model.dislocation_bps
    )
    for j, lst in enumerate(listings):  # venue-specific gaps
        for f in faults.faults if faults else ():
            if f.kind == "price_gap" and f.venue == lst.venue:
                offsets[int(min(n - 1, f.start_s / dt)) :, j] += f.magnitude
    premium = (
        _ou(
            rng,
            n,
            1,
            dt,
            model.revert_s * 4,
            model.basis_noise_bps,
            model.basis_jumps_per_min,
            model.basis_jump_bps,
        )[:, 0]
        + model.basis_bps
    )
    is_perp = np.array([lst.kind == "perp" for lst in listings], dtype=bool)
    bps = offsets + np.where(is_perp[None, :], premium[:, None], 0.0)
    mids = model.start_price * np.exp(common)[:, None] * (1.0 + bps * 1e-4)
    return mids, (premium if is_perp.any() else np.zeros(n))


def _ou(
    rng, n: int, k: int, dt: float, revert_s: float, noise_bps: float, rate_per_min: float, jump_bps: float
) -> np.ndarray:
    """k independent mean-reverting paths in bps with Poisson jumps, shape [n, k]."""
    a = math.exp(-math.log(2) * dt / revert_s)
    shock = rng.standard_normal((n, k)) * noise_bps * math.sqrt(max(1 - a * a, 1e-12))
    p_jump = 1 - math.exp(-rate_per_min * dt / 60.0)
    hit = rng.random((n, k)) < p_jump
    size = (
        rng.exponential(jump_bps, (n, k)) * np.where(rng.random((n, k)) < 0.5, -1.0, 1.0)
        if jump_bps > 0
        else 0.0
    )
    shock = shock + np.where(hit, size, 0.0)
    # x_t = a*x_{t-1} + shock_t, solved in blocks: x_t = a^j (x_start + cumsum(shock_i a^-i))
    block = max(1, min(n, int(20.0 / max(1e-12, -math.log(a))) if a < 1 else n))
    out = np.empty((n, k))
    x = np.zeros(k)
    for start in range(0, n, block):
        s = shock[start : start + block]
        j = np.arange(1, s.shape[0] + 1)[:, None]
        out[start : start + s.shape[0]] = a**j * (x[None, :] + np.cumsum(s * a ** (-j), axis=0))
        x = out[start + s.shape[0] - 1]
    return out


def book_arrays(
    model: MarketModel, listing: Listing, mids: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Depth for one listing over all steps: (bid_ticks, bid_lots, ask_ticks, ask_lots), each
    [n_steps, levels], best first. Levels sit on a fixed price grid (`level_step_bps` of the
    start price, in whole ticks) like resting orders do: while the mid moves less than a grid
    step, prices stay and only sizes change. Prices are strictly ordered and never cross."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n, L = mids.shape[0], model.levels
    grid = max(1, round(model.start_price * model.level_step_bps * 1e-4 / listing.tick))
    hs = model.half_spread_bps * 1e-4
    top_bid = np.floor(mids * (1 - hs) / listing.tick / grid).astype(np.int64) * grid
    top_ask = np.ceil(mids * (1 + hs) / listing.tick / grid).astype(np.int64) * grid
    top_ask = np.where(top_ask <= top_bid, top_bid + grid, top_ask)
    steps = np.arange(L, dtype=np.int64)[None, :] * grid
    bid, ask = top_bid[:, None] - steps, top_ask[:, None] + steps
    shape = model.level_qty * (1 + model.depth_growth * np.arange(L))
    noise = np.exp(rng.standard_normal((2, n, L)) * model.depth_noise - model.depth_noise**2 / 2)
    lots = np.maximum(1, np.round(shape[None, None, :] * noise / listing.lot)).astype(np.int64)
    return bid, lots[0], ask, lots[1]


def trade_times(
    model: MarketModel, duration_s: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Participants' market orders for one listing: (times s, sides 0=buy/1=sell, qty)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    count = rng.poisson(model.trades_per_s * duration_s)
    times = np.sort(rng.random(count) * duration_s)
    sides = (rng.random(count) < 0.5).astype(np.int8)
    qty = model.trade_qty * np.exp(rng.standard_normal(count) * 0.8 - 0.32)
    return times, sides, qty


class MarketDriver:
    """Plays a generated market into SimVenues: depth every `step_s`, participants' trades,
    perp marks and funding rates, gaps (no book publication) from the fault schedule."""

    def __init__(
        self,
        venues: dict,
        listings: list[Listing],
        model: MarketModel,
        duration_s: float,
        seed: int,
        faults: FaultSchedule | None = None,
    ):
        self.venues, self.listings, self.model = venues, listings, model
        self.duration_s, self.seed = duration_s, seed
        self.faults = faults or FaultSchedule()
        self.n_steps = max(1, math.ceil(duration_s / model.step_s) + 1)
        self.mids, self.premium = generate_mids(model, listings, self.n_steps, seed, self.faults)
        self.books = [
            book_arrays(model, lst, self.mids[:, j], seed * 7919 + j) for j, lst in enumerate(listings)
        ]
        self.trades = [trade_times(model, duration_s, seed * 104729 + j) for j in range(len(listings))]
        spot = [j for j, lst in enumerate(listings) if lst.kind == "spot"]
        self._index = self.mids[:, spot].mean(axis=1) if spot else self.mids[:, 0] / (1 + self.premium * 1e-4)
        self._perps = [j for j, lst in enumerate(listings) if lst.kind == "perp"]
        self.book_events = 0
        self._chunk_start = -_CHUNK
        self._chunk: list[list[tuple]] = []  # per listing: the rows (depth.py) of the loaded block
        # per listing: (the venue's apply_depth, or None: it takes apply_book), venue, instrument
        self._targets: list[tuple[Callable[[str, tuple], None] | None, Any, str]] | None = None
        self._events_per_step = 2 * model.levels * len(listings)
        self._views = []
        for j, lst in enumerate(listings):
            bt, bl, at, al = self.books[j]
            dec = step_decimals(lst.tick), step_decimals(lst.lot)
            self._views.append(
                (
                    np.round(bt * lst.tick, dec[0]),
                    np.round(bl * lst.lot, dec[1]),
                    np.round(at * lst.tick, dec[0]),
                    np.round(al * lst.lot, dec[1]),
                )
            )

    def book_records(
        self,
        venue_ids: list[int],
        instrument_ids: list[int],
        start: int = 0,
        stop: int | None = None,
        start_ns: int = 0,
    ) -> np.ndarray:
        """Steps [start, stop) of every listing's depth as schema BOOK_LEVEL records, vectorized:
        per listing and step one snapshot — SNAPSHOT_BEGIN bid, SNAPSHOT_BEGIN ask, the bid
        levels best first, the ask levels best first, SNAPSHOT_END — the layout the engine's
        feed writes for a snapshot BookUpdate. `venue_ids`/`instrument_ids` are the registry ids
        of `listings`, in order. Rows are ordered by step, then listing. `seq` is left 0."""
        from basis_core import schema as S

        stop = self.n_steps if stop is None else min(stop, self.n_steps)
        n, k, L = max(0, stop - start), len(self.listings), self.model.levels
        per = 2 * L + 3
        rec = S.empty(S.Kind.BOOK_LEVEL, n * k * per).reshape(n, k, per)
        ts = start_ns + np.round(np.arange(start, stop) * self.model.step_s * 1e9).astype(np.int64)
        rec["ts_ns"] = ts[:, None, None]
        rec["exch_ts_ns"] = ts[:, None, None]
        rec["update_id"] = np.arange(start, stop, dtype=np.uint64)[:, None, None] + 1
        rec["aux"] = 0xFFFF
        rec["venue"] = np.asarray(venue_ids, dtype=np.uint8)[None, :, None]
        rec["instrument"] = np.asarray(instrument_ids, dtype=np.uint16)[None, :, None]
        sub = np.zeros(per, dtype=np.uint8)
        sub[1] = sub[2 + L : 2 + 2 * L] = int(Side.SELL)
        action = np.full(per, int(S.BookAction.SET), dtype=np.uint8)
        action[:2] = int(S.BookAction.SNAPSHOT_BEGIN)
        action[-1] = int(S.BookAction.SNAPSHOT_END)
        rec["sub"] = sub
        rec["action"] = action
        for j in range(k):
            bp, bq, ap, aq = self._views[j]
            rec["price"][:, j, 2 : 2 + L] = bp[start:stop]
            rec["qty"][:, j, 2 : 2 + L] = bq[start:stop]
            rec["price"][:, j, 2 + L : 2 + 2 * L] = ap[start:stop]
            rec["qty"][:, j, 2 + L : 2 + 2 * L] = aq[start:stop]
        return rec.reshape(-1)

    def spot_index(self, step: int) -> float:
        """The perp index at `step`: the mean of the spot mids, or the perp mid without its
        premium when there is no spot listing."""
        return float(self._index[step])

    def apply_step(self, step: int) -> None:
        """Set every listing's depth to row `step`."""
        if self._targets is None:
            self._targets = [
                (getattr(self.venues[lst.venue], "apply_depth", None), self.venues[lst.venue], lst.instrument)
                for lst in self.listings
            ]
        if not self._chunk_start <= step < self._chunk_start + _CHUNK:
            self._load_chunk(step)
        i = step - self._chunk_start
        for (apply_depth, venue, instrument), chunk in zip(self._targets, self._chunk):
            row = chunk[i]
            if apply_depth is not None:
                apply_depth(instrument, row)
            else:
                bids, asks = row_dicts(row)
                venue.apply_book(instrument, bids, asks, view=(row[0], row[1]))
        self.book_events += self._events_per_step

    def _load_chunk(self, step: int) -> None:
        """Rows (depth.py) of every listing for the block of `_CHUNK` steps holding `step`:
        Python objects built once per block rather than once per step, and never for the
        whole run at once."""
        start = step - step % _CHUNK
        self._chunk = [
            rows(self.books[j], self._views[j], start, start + _CHUNK) for j in range(len(self.listings))
        ]
        self._chunk_start = start

    def publish_funding(self, step: int) -> None:
        if not self._perps:
            return
        index = float(self._index[step])
        rate = float(self.premium[step]) * 1e-4 * self.model.funding_factor
        for j in self._perps:
            lst = self.listings[j]
            self.venues[lst.venue].update_funding(lst.instrument, float(self.mids[step, j]), index, rate)

    async def run(self, hold: bool = False) -> None:
        """Drive the venues from t=0 to `duration_s` on the running loop's clock. With `hold`,
        the task then goes on quoting the last step's depth every `step_s` (no participants'
        trades) until it is cancelled: a run that settles after its duration still sees live
        books, so a hedge or an unwind started near the end can be priced and completed."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for f in self.faults.faults:
            if f.kind == "price_gap":
                for name, venue in self.venues.items():
                    if f.venue in ("*", name):
                        loop.call_at(t0 + f.start_s, self._mute, venue, f)
        for j, (times, sides, qty) in enumerate(self.trades):
            lst = self.listings[j]
            for when, side, q in zip(times.tolist(), sides.tolist(), qty.tolist()):
                lots = max(1, round(q / lst.lot))
                loop.call_at(t0 + when, self._trade, lst, Side(side), lots)
        every = max(1, round(self.model.funding_update_s / self.model.step_s))
        for step in range(self.n_steps):
            when = t0 + step * self.model.step_s
            if when > loop.time():
                await asyncio.sleep(when - loop.time())
            self.apply_step(step)
            if step % every == 0:
                self.publish_funding(step)
        while hold:
            await asyncio.sleep(self.model.step_s)
            self.apply_step(self.n_steps - 1)

    def _trade(self, lst: Listing, side: Side, lots: int) -> None:
        self.venues[lst.venue].participant_trade(lst.instrument, side, lots)

    @staticmethod
    def _mute(venue, fault) -> None:
        venue.mute_market(venue.clock.now_ns() + int(fault.duration_s * 1e9))
