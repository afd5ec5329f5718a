"""What the engine knows about markets: books (numba kernel state), marks, volatility, pairs.

Books live in `kernels.book.BookState` arrays and are updated a batch at a time. A book is
usable only when the kernel says so (complete snapshot, not crossed, no bad record since) and
it is not older than the policy's `stale_book_ms`. Marks (USDT per unit of an asset) are the
mid of the usable spot books of that asset, or a perp mid when no spot book is usable.
Volatility is an EWMA of squared log returns of each asset's mark, in bps per sqrt(second),
mapped to the policy's levels: 0 normal, 1 tighten, 2 reduce, 3 protect, 4 halt.
"""
from __future__ import annotations

import math

import numpy as np

from .. import schema as S
from ..errors import BasisError
from ..kernels import sizing
from ..kernels.book import BookState
from ..registry import Registry
from .policy import PolicyConfig

MS = 1_000_000


class NoMark(BasisError):
    """No usable book gives a price for this asset right now."""


class MarketState:
    def __init__(self, registry: Registry, rules: dict, depth: int, policy: PolicyConfig, start_ns: int = 0,
                 fixed_marks: dict[str, float] | None = None):
        self.reg = registry
        self.rules = rules
        self.policy = policy
        self.start_ns = start_ns
        self.books = BookState(max(len(registry.venues), 1), max(len(registry.instruments), 1), max(depth, 10))
        self.max_age_ns = int(policy.stale_book_ms * MS)
        self.ids = {name: (registry.venue(r.venue), registry.instrument(name)) for name, r in rules.items()}
        self.name_of = {iid: name for name, (_, iid) in self.ids.items()}
        self.by_base: dict[str, list[str]] = {}
        for name, r in rules.items():
            self.by_base.setdefault(r.base, []).append(name)
        self.now = start_ns
        self._changed: set[int] = set()
        # assets with no book of their own (a fee token) are valued at a configured price
        self._marks: dict[str, float] = {"USDT": 1.0, **(fixed_marks or {})}
        self._last_mark: dict[str, tuple[int, float]] = {}
        self._var: dict[str, float] = {}
        self._level: dict[str, int] = {}
        self._lots = {name: sizing.lot_units(r.lot) for name, r in rules.items()}
        self._out = np.zeros(sizing.N_OUT, dtype=np.float64)

    def warm_up(self) -> None:
        """Compile (or load from cache) the kernels on this state now, not on the first signal."""
        self.books.apply(S.empty(S.Kind.BOOK_LEVEL, 0))
        self.books.usable(1, 1, 0, self.max_age_ns)
        b = self.books
        for buy in self.rules:
            for sell in self.rules:
                if buy != sell:
                    (bv, bi), (sv, si) = self.ids[buy], self.ids[sell]
                    sizing.size_two_leg_nb(b.px, b.qty, b.cnt, bv, bi, sv, si, self._lots[buy], self._lots[sell],
                                           1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                           self._out)
                    return

    # -- updates -----------------------------------------------------------------------------

    def apply(self, records: np.ndarray, now_ns: int) -> None:
        if not self.start_ns:
            self.start_ns = int(records["ts_ns"][0])
        self.now = now_ns
        self.books.apply(records)
        kinds = records["kind"]
        touched = np.unique(records["instrument"][(kinds == S.Kind.BOOK_LEVEL) | (kinds == S.Kind.TOP_OF_BOOK)])
        self._changed.update(int(i) for i in touched)
        for base in {self.rules[self.name_of[i]].base for i in touched if int(i) in self.name_of}:
            self._update_mark(base, now_ns)

    def _update_mark(self, base: str, now_ns: int) -> None:
        mids, perp_mids = [], []
        for name in self.by_base[base]:
            top = self.top(*self.ids[name])
            if top is None:
                continue
            mid = 0.5 * (top[0] + top[2])
            (mids if self.rules[name].kind == "spot" else perp_mids).append(mid)
        chosen = mids or perp_mids
        if not chosen:
            return
        mark = float(np.median(chosen))
        self._marks[base] = mark
        last = self._last_mark.get(base)
        if last is not None and now_ns > last[0]:
            dt_s = (now_ns - last[0]) / 1e9
            r_bps = math.log(mark / last[1]) * 1e4
            alpha = 1.0 - math.exp(-dt_s * math.log(2) / (self.policy.vol_halflife_ms / 1e3))
            var = self._var.get(base, 0.0)
            # per-second variance: a squared return over dt_s seconds, scaled to one second
            var = (1 - alpha) * var + alpha * (r_bps * r_bps / max(dt_s, 1e-3))
            self._var[base] = var
            self._level[base] = self._vol_to_level(math.sqrt(var))
        self._last_mark[base] = (now_ns, mark)

    def _vol_to_level(self, vol_bps: float) -> int:
        p = self.policy
        for level, threshold in ((4, p.vol_halt_bps), (3, p.vol_protect_bps), (2, p.vol_reduce_bps), (1, p.vol_tighten_bps)):
            if vol_bps >= threshold:
                return level
        return 0

    # -- reads -------------------------------------------------------------------------------

    def take_changed(self) -> set[int]:
        out, self._changed = self._changed, set()
        return out

    def top(self, venue: int, instrument: int) -> tuple[float, float, float, float] | None:
        """(bid, bid qty, ask, ask qty) of a usable book, else None."""
        b = self.books
        if not b.usable(venue, instrument, self.now, self.max_age_ns):
            return None
        return (float(b.px[venue, instrument, 0, 0]), float(b.qty[venue, instrument, 0, 0]),
                float(b.px[venue, instrument, 1, 0]), float(b.qty[venue, instrument, 1, 0]))

    def usable(self, venue: int, instrument: int, now_ns: int) -> bool:
        return self.books.usable(venue, instrument, now_ns, self.max_age_ns)

    def mark(self, asset: str) -> float:
        try:
            return self._marks[asset]
        except KeyError:
            raise NoMark(f"no mark for {asset} yet") from None

    def volatility_bps(self, base: str) -> float:
        return math.sqrt(self._var.get(base, 0.0))

    def vol_level(self, base: str) -> int:
        return self._level.get(base, 0)

    def vol_level_max(self) -> int:
        return max(self._level.values(), default=0)

    def pairs_touching(self, changed: set[int]):
        for base, names in self.by_base.items():
            for buy in names:
                for sell in names:
                    if buy == sell:
                        continue
                    if self.ids[buy][1] in changed or self.ids[sell][1] in changed:
                        yield buy, sell

    def quick_edge_bps(self, buy: str, sell: str) -> float | None:
        """Touch-to-touch edge of buying `buy` and selling `sell`, net of both taker fees."""
        tb, ts = self.top(*self.ids[buy]), self.top(*self.ids[sell])
        if tb is None or ts is None:
            return None
        ask, bid = tb[2], ts[0]
        return (bid - ask) / ask * 1e4 - self.rules[buy].taker_fee_bps - self.rules[sell].taker_fee_bps

    def size_pair(self, buy: str, sell: str, *, slip_bps: float, min_edge_bps: float, base_avail: float,
                  quote_avail: float, capital_free: float, notional_cap: float):
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
            b.px, b.qty, b.cnt, bv, bi, sv, si, self._lots[buy], self._lots[sell], rb.tick, rs.tick,
            rb.min_notional, rs.min_notional, rb.taker_fee_bps, rs.taker_fee_bps, slip_bps, slip_bps,
            touch_buy * (1 + slip_bps / 1e4), touch_sell * (1 - slip_bps / 1e4), min_edge_bps,
            max(base_avail, 0.0), max(quote_avail, 0.0), max(capital_free, 0.0), max(notional_cap, 0.0), out)
        if reason != 0:
            return None, S.RejectReason(reason)
        return ((float(out[sizing.O_QTY]), float(out[sizing.O_BUY_LIMIT]), float(out[sizing.O_SELL_LIMIT]),
                 slip_bps, slip_bps, touch_buy, touch_sell), S.RejectReason.NONE)
