"""Parameters of the compiled hot loop: one cross-venue spread strategy on one instrument.

`HotParams` is validated on construction (ConfigError naming the field) and flattened by
`arrays()` into the two vectors the compiled loop reads (indices below), so the loop takes no
Python object. Per-venue values are pairs (venue_a, venue_b).

Decision rule, per market-data record that touches (venue_a or venue_b, instrument):

    both books usable (no status flag, both sides present, age <= max_age_ns at the record's ts)
    spread_bps = (best bid of one venue - best ask of the other) / that best ask * 1e4
    spread_bps >= trigger_bps   -> size with basis_core.kernels.sizing.size_two_leg_nb, bounds
                                   buy_bound = best ask * (1 + bound_bps/1e4),
                                   sell_bound = best bid * (1 - bound_bps/1e4)
    sized (reason NONE)         -> two ORDER_NEW records: leg 0 buys (IOC, ENTRY), leg 1 sells
                                   (IOC, HEDGE, depends_on = leg 0's coid); coid = make_coid(opp, leg)
    not sized                   -> counted under its RejectReason, no order
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..kernels.sizing import lot_units

# int64 vector
I_VENUE_A = 0
I_VENUE_B = 1
I_INSTRUMENT = 2
I_MAX_AGE_NS = 3
I_LOT_A = 4  # lot sizes in sizing.QTY_UNIT
I_LOT_B = 5
I_SOURCE = 6  # `source` stamped on the ORDER_NEW records
N_I = 7

# float64 vector
F_TRIGGER_BPS = 0
F_MIN_EDGE_BPS = 1
F_BOUND_BPS = 2
F_TICK_A = 3
F_TICK_B = 4
F_MIN_NOTIONAL_A = 5
F_MIN_NOTIONAL_B = 6
F_FEE_A = 7  # taker fee, bps
F_FEE_B = 8
F_SLIP_A = 9  # slippage cap from the best level, bps
F_SLIP_B = 10
F_BASE_AVAIL = 11
F_QUOTE_AVAIL = 12
F_CAPITAL_FREE = 13
F_NOTIONAL_CAP = 14
N_F = 15


@dataclass(frozen=True)
class HotParams:
    venue_a: int = 1
    venue_b: int = 2
    instrument: int = 1
    trigger_bps: float = 5.0
    min_edge_bps: float = 1.0
    bound_bps: float = 10.0
    lot: tuple[float, float] = (0.001, 0.001)
    tick: tuple[float, float] = (0.01, 0.01)
    min_notional: tuple[float, float] = (5.0, 5.0)
    fee_bps: tuple[float, float] = (1.0, 1.0)
    slip_bps: tuple[float, float] = (20.0, 20.0)
    base_avail: float = 10.0
    quote_avail: float = 1_000_000.0
    capital_free: float = 1_000_000.0
    notional_cap: float = 250_000.0
    max_age_ns: int = 1_000_000_000
    source: int = 1
    n_venues: int = 2
    n_instruments: int = 1
    depth: int = 10

    def __post_init__(self):
        def bad(field, why):
            raise ConfigError(f"hotloop.{field}", f"{why}, got {getattr(self, field)!r}")

        for f in ("venue_a", "venue_b"):
            if not 1 <= getattr(self, f) <= self.n_venues:
                bad(f, f"must be a venue id in 1..n_venues ({self.n_venues})")
        if self.venue_a == self.venue_b:
            bad("venue_b", "must differ from venue_a")
        if not 1 <= self.instrument <= self.n_instruments:
            bad("instrument", f"must be an instrument id in 1..n_instruments ({self.n_instruments})")
        for f in ("trigger_bps", "min_edge_bps"):
            if not math.isfinite(getattr(self, f)):
                bad(f, "must be finite")
        for f in ("bound_bps", "base_avail", "quote_avail", "capital_free", "notional_cap"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                bad(f, "must be a finite number >= 0")
        for f, positive in (
            ("tick", True),
            ("min_notional", False),
            ("fee_bps", False),
            ("slip_bps", False),
            ("lot", True),
        ):
            pair = getattr(self, f)
            if len(pair) != 2 or not all(
                isinstance(x, (int, float)) and math.isfinite(x) and (x > 0 if positive else x >= 0)
                for x in pair
            ):
                bad(f, f"must be two finite numbers {'> 0' if positive else '>= 0'}")
        for x in self.lot:
            try:
                lot_units(x)
            except ValueError as exc:
                raise ConfigError("hotloop.lot", str(exc)) from None
        if not self.max_age_ns > 0:
            bad("max_age_ns", "must be > 0")
        if not 0 <= self.source <= 255:
            bad("source", "must fit a byte")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(int64[N_I], float64[N_F]) for the compiled loop."""
        ip = np.zeros(N_I, np.int64)
        ip[I_VENUE_A], ip[I_VENUE_B], ip[I_INSTRUMENT] = self.venue_a, self.venue_b, self.instrument
        ip[I_MAX_AGE_NS], ip[I_SOURCE] = self.max_age_ns, self.source
        ip[I_LOT_A], ip[I_LOT_B] = lot_units(self.lot[0]), lot_units(self.lot[1])
        fp = np.zeros(N_F, np.float64)
        fp[F_TRIGGER_BPS], fp[F_MIN_EDGE_BPS], fp[F_BOUND_BPS] = (
            self.trigger_bps,
            self.min_edge_bps,
            self.bound_bps,
        )
        fp[F_TICK_A], fp[F_TICK_B] = self.tick
        fp[F_MIN_NOTIONAL_A], fp[F_MIN_NOTIONAL_B] = self.min_notional
        fp[F_FEE_A], fp[F_FEE_B] = self.fee_bps
        fp[F_SLIP_A], fp[F_SLIP_B] = self.slip_bps
        fp[F_BASE_AVAIL], fp[F_QUOTE_AVAIL] = self.base_avail, self.quote_avail
        fp[F_CAPITAL_FREE], fp[F_NOTIONAL_CAP] = self.capital_free, self.notional_cap
        return ip, fp
