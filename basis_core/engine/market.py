"""What the engine knows about markets: books (numba kernel state), marks, volatility, pairs.

Books live in `kernels.book.BookState` arrays; marks, volatility levels and the changed
instruments live in `kernels.scan.ScanState` arrays. `step` runs one compiled call per batch
(`kernels.scan.market_step_nb`): it applies the batch's market data to the books, marks the
instruments that changed, updates each touched base asset's mark and volatility, and scans the
pairs touching changed books for the best touch-to-touch edge net of both taker fees; the
caller takes that candidate (`take_candidate`) and handles the batch's other records.

A book is usable only when the kernel says so (complete snapshot, not crossed, no bad record
since) and it is not older than the policy's `stale_book_ms`. Marks (USDT per unit of an asset)
are the median mid of the usable spot books of that asset, or of its perp books when no spot
book is usable. Volatility is an EWMA of squared log returns of each asset's mark, in bps per
sqrt(second), mapped to the policy's levels: 0 normal, 1 tighten, 2 reduce, 3 protect, 4 halt.
"""

from __future__ import annotations

import math

import numpy as np

from .. import schema as S
from ..errors import BasisError
from ..kernels import scan, sizing
from ..kernels.book import BookState
from ..registry import Registry
from ..units import MS
from .policy import PolicyConfig


class NoMark(BasisError):
    """No usable book gives a price for this asset right now."""


#: a sized two-leg opportunity: (qty, buy limit, sell limit, buy slip, sell slip, buy touch, sell touch)
Sized = tuple[float, float, float, float, float, float, float]


class MarketState:
    def __init__(
        self,
        registry: Registry,
        rules: dict,
        depth: int,
        policy: PolicyConfig,
        start_ns: int = 0,
        fixed_marks: dict[str, float] | None = None,
    ):
        self.reg = registry
        self.rules = rules
        self.policy = policy
        self.books = BookState(
            max(len(registry.venues), 1), max(len(registry.instruments), 1), max(depth, 10)
        )
        self.max_age_ns = int(policy.stale_book_ms * MS)
        self.ids = {name: (registry.venue(r.venue), registry.instrument(name)) for name, r in rules.items()}
        self.by_base: dict[str, list[str]] = {}
        for name, r in rules.items():
            self.by_base.setdefault(r.base, []).append(name)
        #: rule index (the kernel's) -> instrument name, in rules order
        self.names = list(rules)
        #: the compiled market step's tables and state (marks, volatility, changed books)
        index = {name: k for k, name in enumerate(self.names)}
        pairs = [
            (index[buy], index[sell])
            for names in self.by_base.values()
            for buy in names
            for sell in names
            if buy != sell
        ]
        self.scanner = scan.ScanState(
            [(*self.ids[name], r.base, r.kind == "spot", r.taker_fee_bps) for name, r in rules.items()],
            pairs,
            self.books.px.shape[1],
            min_edge_bps=policy.min_edge_bps,
            vol_halflife_ms=policy.vol_halflife_ms,
            vol_thresholds=(
                policy.vol_tighten_bps,
                policy.vol_reduce_bps,
                policy.vol_protect_bps,
                policy.vol_halt_bps,
            ),
            max_age_ns=self.max_age_ns,
            start_ns=start_ns,
        )
        # assets with no book of their own (a fee token) are valued at a configured price
        self._fixed_marks: dict[str, float] = {"USDT": 1.0, **(fixed_marks or {})}
        self._lots = {name: sizing.lot_units(r.lot) for name, r in rules.items()}
        self._out = np.zeros(sizing.N_OUT, dtype=np.float64)

    @property
    def now(self) -> int:
        """The market clock: the ingest time of the last batch that held market data."""
        return int(self.scanner.ctl[scan.C_NOW])

    @now.setter
    def now(self, value: int) -> None:
        self.scanner.ctl[scan.C_NOW] = value

    @property
    def start_ns(self) -> int:
        """When the run started (the first market record's time when it was not given)."""
        return int(self.scanner.ctl[scan.C_START])

    @start_ns.setter
    def start_ns(self, value: int) -> None:
        self.scanner.ctl[scan.C_START] = value

    def set_min_edge(self, bps: float) -> None:
        """The edge below which the market step finds no candidate (an operator's set-limit)."""
        self.scanner.par[scan.P_MIN_EDGE] = bps

    def warm_up(self) -> None:
        """Compile (or load from cache) the kernels on this state now, not on the first signal.
        Leaves the state as it was: an empty batch changes nothing."""
        self.scanner.step(S.aligned_empty(0), self.books, self.now, True)
        self.books.usable(1, 1, 0, self.max_age_ns)
        b = self.books
        for buy in self.rules:
            for sell in self.rules:
                if buy != sell:
                    (bv, bi), (sv, si) = self.ids[buy], self.ids[sell]
                    sizing.size_two_leg_nb(
                        b.px,
                        b.qty,
                        b.cnt,
                        bv,
                        bi,
                        sv,
                        si,
                        self._lots[buy],
                        self._lots[sell],
                        1.0,
                        1.0,
                        0.0,
                        0.0,
                        1.0,
                        1.0,
                        1.0,
                        1.0,
                        1.0,
                        1.0,
                        0.0,
                        0.0,
                        0.0,
                        0.0,
                        0.0,
                        self._out,
                    )
                    return

    # -- updates -----------------------------------------------------------------------------

    def step(self, records: np.ndarray, clock_ns: int, scan_pairs: bool = True) -> tuple[int, np.ndarray]:
        """One compiled call on a batch of records (any 64-byte record dtype, C-contiguous) that
        arrives after the engine clock `clock_ns`: market data applied, marks and volatility
        updated, and (with `scan_pairs`) the best candidate among the pairs touching changed
        books kept for `take_candidate`. Returns the batch's time (the latest of `clock_ns` and
        every record's ts_ns) and the indices of its other records, in order (valid until the
        next step)."""
        rare = self.scanner.step(records, self.books, clock_ns, scan_pairs)
        return int(self.scanner.ctl[scan.C_STEP_NOW]), rare

    def take_candidate(self) -> tuple[float, str, str] | None:
        """(edge bps, buy instrument, sell instrument) of the best pair the last `step` found
        among the books changed since the previous take, or None; clears the changed books."""
        cand = self.scanner.take()
        if cand is None:
            return None
        edge, kb, ks = cand
        return edge, self.names[kb], self.names[ks]

    # -- reads -------------------------------------------------------------------------------

    def top(self, venue: int, instrument: int) -> tuple[float, float, float, float] | None:
        """(bid, bid qty, ask, ask qty) of a usable book, else None."""
        b = self.books
        if not b.usable(venue, instrument, self.now, self.max_age_ns):
            return None
        return (
            float(b.px[venue, instrument, 0, 0]),
            float(b.qty[venue, instrument, 0, 0]),
            float(b.px[venue, instrument, 1, 0]),
            float(b.qty[venue, instrument, 1, 0]),
        )

    def usable(self, venue: int, instrument: int, now_ns: int) -> bool:
        return self.books.usable(venue, instrument, now_ns, self.max_age_ns)

    def mark(self, asset: str) -> float:
        b = self.scanner.base_index.get(asset)
        if b is not None and self.scanner.istate[b, scan.S_HAS_MARK]:
            return float(self.scanner.fstate[b, scan.F_MARK])
        try:
            return self._fixed_marks[asset]
        except KeyError:
            raise NoMark(f"no mark for {asset} yet") from None

    def volatility_bps(self, base: str) -> float:
        b = self.scanner.base_index.get(base)
        return 0.0 if b is None else math.sqrt(float(self.scanner.fstate[b, scan.F_VAR]))

    def vol_level(self, base: str) -> int:
        b = self.scanner.base_index.get(base)
        return 0 if b is None else int(self.scanner.istate[b, scan.S_LEVEL])

    def vol_level_max(self) -> int:
        return int(self.scanner.ctl[scan.C_LEVEL_MAX])

    def size_pair(
        self,
        buy: str,
        sell: str,
        *,
        slip_bps: float,
        min_edge_bps: float,
        base_avail: float,
        quote_avail: float,
        capital_free: float,
        notional_cap: float,
    ) -> tuple[Sized | None, S.RejectReason]:
        """Size a two-leg opportunity with the sizing kernel on the live book arrays.

        Returns ((qty, buy limit, sell limit, buy slip, sell slip, buy touch, sell touch), reason)."""
        bv, bi = self.ids[buy]
        sv, si = self.ids[sell]
        rb, rs = self.rules[buy], self.rules[sell]
        b = self.books
        if b.cnt[bv, bi, 1] == 0 or b.cnt[sv, si, 0] == 0:
            return None, S.RejectReason.BOOK_UNUSABLE
        touch_buy, touch_sell = float(b.px[bv, bi, 1, 0]), float(b.px[sv, si, 0, 0])
        out = self._out
        reason = sizing.size_two_leg_nb(
            b.px,
            b.qty,
            b.cnt,
            bv,
            bi,
            sv,
            si,
            self._lots[buy],
            self._lots[sell],
            rb.tick,
            rs.tick,
            rb.min_notional,
            rs.min_notional,
            rb.taker_fee_bps,
            rs.taker_fee_bps,
            slip_bps,
            slip_bps,
            touch_buy * (1 + slip_bps / 1e4),
            touch_sell * (1 - slip_bps / 1e4),
            min_edge_bps,
            max(base_avail, 0.0),
            max(quote_avail, 0.0),
            max(capital_free, 0.0),
            max(notional_cap, 0.0),
            out,
        )
        if reason != 0:
            return None, S.RejectReason(reason)
        return (
            (
                float(out[sizing.O_QTY]),
                float(out[sizing.O_BUY_LIMIT]),
                float(out[sizing.O_SELL_LIMIT]),
                slip_bps,
                slip_bps,
                touch_buy,
                touch_sell,
            ),
            S.RejectReason.NONE,
        )
