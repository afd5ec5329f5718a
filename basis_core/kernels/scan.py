"""The engine's per-batch market work in one compiled call: books, changed instruments, marks,
volatility levels, and the best touch-to-touch opportunity among the pairs whose books changed.

`market_step_nb` takes one batch of 64-byte records (two views of the same memory, BOOK_LEVEL
and TOP_OF_BOOK dtypes) and the engine's clock before it, and, in order:

1. Per record. BOOK_LEVEL / TOP_OF_BOOK go through the book kernel's per-record code
   (kernels/book.py: a NaN/inf/non-positive price or a NaN/inf/negative quantity never enters
   the book, it is counted bad and marks the book BAD); the record's instrument id is marked
   changed and its base touched, even when the record was refused. TRADE / FUNDING are counted
   as ignored by the book. A TIMER only moves the time (the engine core does nothing else with
   one). The index of any other record is written to `rare` (the caller handles those in
   Python, in batch order). The batch's time, `now`, is the latest of the clock before it and
   every record's ts_ns; it goes to ctl[C_STEP_NOW].
2. When the batch held market data: the market clock moves to `now` (and the start time is
   set to the first market record's ts when it was 0), and every touched base gets its mark:
   the median of the mids `0.5 * (bid + ask)` of its usable spot books, else of its usable perp
   books (none usable: the base keeps its mark, volatility and last-mark time). When the base
   had a mark at an earlier time, the EWMA of squared log returns (bps^2 per second) moves:

       dt = (now - last) / 1e9     r = ln(mark / last mark) * 1e4
       alpha = 1 - exp(-dt * ln 2 / (halflife_ms / 1e3))
       var = (1 - alpha) * var + alpha * (r * r / max(dt, 1e-3))

   and the level is the highest of 4 halt, 3 protect, 2 reduce, 1 tighten whose threshold
   sqrt(var) reaches, else 0; ctl[C_LEVEL_MAX] keeps the highest level of all bases.
3. When `scan` is set: every pair of the table (buy rule, sell rule), in table order, with
   either instrument changed since the last take and both books usable at the market clock,
   gives edge = (sell bid - buy ask) / buy ask * 1e4 - buy fee - sell fee (bps). The first pair
   with the greatest edge not below min_edge is the candidate: ctl[C_FOUND] = 1, ctl[C_BUY],
   ctl[C_SELL] = its rule indexes, par[P_EDGE] = its edge. The changed flags stay set: the
   caller clears them when it takes the candidate (`ScanState.take`).

Returns the number of rare records. `ScanState` owns the tables and state arrays; its `step`
is the thin wrapper (it grows `rare` to the batch). Float operations follow the plain-Python
reference (`reference.RefMarket`) operation for operation, so both agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import schema
from . import book

# rules table columns (int64[K, N_RULE])
R_VENUE, R_INST, R_BASE, R_SPOT = 0, 1, 2, 3
N_RULE = 4
# per-instrument-id table columns (int64[I, N_INST])
I_BASE, I_CHANGED = 0, 1
N_INST = 2
# per-base float state (float64[B, N_F])
F_MARK, F_VAR, F_LAST_MARK = 0, 1, 2
N_F = 3
# per-base int state (int64[B, N_S])
S_HAS_MARK, S_LEVEL, S_LAST_NS, S_HAS_LAST, S_TOUCHED = 0, 1, 2, 3, 4
N_S = 5
# int64 control slots: market clock, start time, staleness limit, candidate (out), highest level
C_NOW, C_START, C_MAX_AGE, C_FOUND, C_BUY, C_SELL, C_LEVEL_MAX, C_STEP_NOW = 0, 1, 2, 3, 4, 5, 6, 7
N_CTL = 8
# float64 parameters; the taker fee of rule k sits at par[N_PAR + k]
P_MIN_EDGE, P_HALFLIFE_MS, P_TIGHTEN, P_REDUCE, P_PROTECT, P_HALT, P_EDGE = 0, 1, 2, 3, 4, 5, 6
N_PAR = 7

LN2 = math.log(2)
_LEVEL = int(schema.Kind.BOOK_LEVEL)
_TOB = int(schema.Kind.TOP_OF_BOOK)
_TRADE = int(schema.Kind.TRADE)
_FUNDING = int(schema.Kind.FUNDING)
_TIMER = int(schema.Kind.TIMER)


@njit(cache=True, inline="always")
def _median(x, n):
    """Median of x[:n] (n >= 1), sorting x[:n] in place; an even count averages the middle two."""
    for a in range(1, n):
        v = x[a]
        b = a - 1
        while b >= 0 and x[b] > v:
            x[b + 1] = x[b]
            b -= 1
        x[b + 1] = v
    m = n // 2
    if n % 2:
        return x[m]
    return (x[m - 1] + x[m]) / 2.0


@njit(cache=True, inline="always")
def _level_of(vol, par):
    if vol >= par[P_HALT]:
        return 4
    if vol >= par[P_PROTECT]:
        return 3
    if vol >= par[P_REDUCE]:
        return 2
    if vol >= par[P_TIGHTEN]:
        return 1
    return 0


@njit(cache=True)
def market_step_nb(
    levels,
    tops,
    px,
    qty,
    cnt,
    ts,
    status,
    counters,
    rules,
    pairs,
    inst,
    fstate,
    istate,
    ctl,
    par,
    rare,
    clock_ns,
    scan,
):
    """One batch of market work (module docstring); returns the number of rare records."""
    n_rare = 0
    n_md = 0
    ni = inst.shape[0]
    now_ns = clock_ns
    for r in range(levels.shape[0]):
        kind = levels[r].kind
        if levels[r].ts_ns > now_ns:
            now_ns = levels[r].ts_ns
        if kind == _LEVEL or kind == _TOB:
            book.apply_record_nb(levels, tops, r, px, qty, cnt, ts, status, counters)
            i = np.int64(levels[r].instrument)
            if i < ni:
                inst[i, I_CHANGED] = 1
                b = inst[i, I_BASE]
                if b >= 0:
                    istate[b, S_TOUCHED] = 1
        elif kind == _TRADE or kind == _FUNDING:
            counters[book.EV_IGNORED] += 1
        elif kind == _TIMER:
            continue
        else:
            rare[n_rare] = r
            n_rare += 1
            continue
        if n_md == 0 and ctl[C_START] == 0:
            ctl[C_START] = levels[r].ts_ns
        n_md += 1

    ctl[C_STEP_NOW] = now_ns
    max_age = ctl[C_MAX_AGE]
    if n_md > 0:
        ctl[C_NOW] = now_ns
        n_rules = rules.shape[0]
        spot = np.empty(n_rules)
        perp = np.empty(n_rules)
        for b in range(istate.shape[0]):
            if istate[b, S_TOUCHED] == 0:
                continue
            istate[b, S_TOUCHED] = 0
            n_spot = 0
            n_perp = 0
            for k in range(n_rules):
                if rules[k, R_BASE] != b:
                    continue
                v, i = rules[k, R_VENUE], rules[k, R_INST]
                if not book.usable_nb(cnt, ts, status, v, i, now_ns, max_age):
                    continue
                mid = 0.5 * (px[v, i, 0, 0] + px[v, i, 1, 0])
                if rules[k, R_SPOT]:
                    spot[n_spot] = mid
                    n_spot += 1
                else:
                    perp[n_perp] = mid
                    n_perp += 1
            if n_spot:
                mark = _median(spot, n_spot)
            elif n_perp:
                mark = _median(perp, n_perp)
            else:
                continue
            fstate[b, F_MARK] = mark
            istate[b, S_HAS_MARK] = 1
            if istate[b, S_HAS_LAST] and now_ns > istate[b, S_LAST_NS]:
                dt_s = (now_ns - istate[b, S_LAST_NS]) / 1e9
                r_bps = math.log(mark / fstate[b, F_LAST_MARK]) * 1e4
                alpha = 1.0 - math.exp(-dt_s * LN2 / (par[P_HALFLIFE_MS] / 1e3))
                var = (1 - alpha) * fstate[b, F_VAR] + alpha * (r_bps * r_bps / max(dt_s, 1e-3))
                fstate[b, F_VAR] = var
                istate[b, S_LEVEL] = _level_of(math.sqrt(var), par)
            istate[b, S_LAST_NS] = now_ns
            fstate[b, F_LAST_MARK] = mark
            istate[b, S_HAS_LAST] = 1
        top = 0
        for b in range(istate.shape[0]):
            top = max(top, istate[b, S_LEVEL])
        ctl[C_LEVEL_MAX] = top

    ctl[C_FOUND] = 0
    if scan:
        t = ctl[C_NOW]
        min_edge = par[P_MIN_EDGE]
        found = False
        best = 0.0
        for p in range(pairs.shape[0]):
            kb, ks = pairs[p, 0], pairs[p, 1]
            bv, bi = rules[kb, R_VENUE], rules[kb, R_INST]
            sv, si = rules[ks, R_VENUE], rules[ks, R_INST]
            if inst[bi, I_CHANGED] == 0 and inst[si, I_CHANGED] == 0:
                continue
            if not (
                book.usable_nb(cnt, ts, status, bv, bi, t, max_age)
                and book.usable_nb(cnt, ts, status, sv, si, t, max_age)
            ):
                continue
            ask = px[bv, bi, 1, 0]
            bid = px[sv, si, 0, 0]
            edge = (bid - ask) / ask * 1e4 - par[N_PAR + kb] - par[N_PAR + ks]
            if edge < min_edge:
                continue
            if not found or edge > best:
                found = True
                best = edge
                ctl[C_BUY] = kb
                ctl[C_SELL] = ks
        if found:
            ctl[C_FOUND] = 1
            par[P_EDGE] = best
    return n_rare


class ScanState:
    """The tables and state arrays of `market_step_nb` for one set of instrument rules.

    `rules` lists (venue id, instrument id, base, is_spot, taker fee bps) per rule, in rule order;
    `pairs` the (buy, sell) rule indexes in scan order; `n_instruments` the size of the
    instrument id space (ids index directly)."""

    def __init__(
        self,
        rules: list[tuple[int, int, str, bool, float]],
        pairs: list[tuple[int, int]],
        n_instruments: int,
        *,
        min_edge_bps: float,
        vol_halflife_ms: float,
        vol_thresholds: tuple[float, float, float, float],
        max_age_ns: int,
        start_ns: int = 0,
    ):
        self.bases: list[str] = list(dict.fromkeys(r[2] for r in rules))
        self.base_index = {b: k for k, b in enumerate(self.bases)}
        self.rules = np.zeros((len(rules), N_RULE), dtype=np.int64)
        self.inst = np.zeros((n_instruments, N_INST), dtype=np.int64)
        self.inst[:, I_BASE] = -1
        self.par = np.zeros(N_PAR + len(rules), dtype=np.float64)
        for k, (v, i, base, is_spot, fee) in enumerate(rules):
            if not 0 < i < n_instruments:
                raise ValueError(f"instrument id {i} outside 1..{n_instruments - 1}")
            self.rules[k] = (v, i, self.base_index[base], 1 if is_spot else 0)
            self.inst[i, I_BASE] = self.base_index[base]
            self.par[N_PAR + k] = fee
        self.pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        nb = max(len(self.bases), 1)
        self.fstate = np.zeros((nb, N_F), dtype=np.float64)
        self.istate = np.zeros((nb, N_S), dtype=np.int64)
        self.ctl = np.zeros(N_CTL, dtype=np.int64)
        self.ctl[C_NOW], self.ctl[C_START], self.ctl[C_MAX_AGE] = start_ns, start_ns, max_age_ns
        self.par[P_MIN_EDGE], self.par[P_HALFLIFE_MS] = min_edge_bps, vol_halflife_ms
        self.par[P_TIGHTEN : P_HALT + 1] = vol_thresholds
        self.rare = np.zeros(256, dtype=np.int64)

    def step(self, records: np.ndarray, books: book.BookState, clock_ns: int, scan: bool) -> np.ndarray:
        """Run `market_step_nb` on one batch of 64-byte records (C-contiguous) after the engine
        clock `clock_ns`; returns the indices of the records it left to the caller (a view valid
        until the next step). The batch's time is then `ctl[C_STEP_NOW]`."""
        n = len(records)
        if n > len(self.rare):
            self.rare = np.zeros(2 * n, dtype=np.int64)
        n_rare = market_step_nb(
            records.view(schema.BOOK_LEVEL),
            records.view(schema.TOP_OF_BOOK),
            books.px,
            books.qty,
            books.cnt,
            books.ts,
            books.status,
            books.counters,
            self.rules,
            self.pairs,
            self.inst,
            self.fstate,
            self.istate,
            self.ctl,
            self.par,
            self.rare,
            clock_ns,
            scan,
        )
        return self.rare[:n_rare]

    def candidate(self) -> tuple[float, int, int] | None:
        """(edge bps, buy rule, sell rule) found by the last step, or None."""
        if not self.ctl[C_FOUND]:
            return None
        return float(self.par[P_EDGE]), int(self.ctl[C_BUY]), int(self.ctl[C_SELL])

    def take(self) -> tuple[float, int, int] | None:
        """The last step's candidate; clears the changed flags (the next scan starts afresh)."""
        self.inst[:, I_CHANGED] = 0
        return self.candidate()

    def changed(self) -> set[int]:
        return {int(i) for i in np.flatnonzero(self.inst[:, I_CHANGED])}
