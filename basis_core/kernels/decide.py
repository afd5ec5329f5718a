"""The engine's dispatch-time decision on one signal in one compiled call: the gate with every
reason the Python path (engine/decisions.py `_gate`) has, in the same order, then inventory,
capital and exposure headroom and sizing (`_size`), over array state the engine keeps.

`gate_size_nb` decides, in order (each with its RejectReason):

    STALE             ttl_us == 0, or now - created_ns > ttl_us * 1000
    RISK_STATE        the engine allows no new exposure (flag F_NO_NEW)
    VENUE_UNHEALTHY   either venue may not take new orders now (flag F_NO_DISPATCH)
    FEE_ASSET_EXHAUSTED  stop on an exhausted fee asset at either venue (flag F_FEE_STOP)
    BOOK_UNUSABLE     either book unusable at `now` (kernels/book.py usable_nb)
    RISK_STATE        the buy base's volatility level >= 3
    TRANSFER_PENDING  a transfer toward a leg's venue is in flight and nothing is there yet
    then headroom and the sizing kernel (kernels/sizing.py size_two_leg_nb) exactly as `_size`
    computes them: slippage halved from level 1, quote left after working buys, base (spot) or
    margin (perp) left after working sells, halved from level 2, capped by the qty hint; the
    strategy budget less the capital of open positions at their marks; the order notional and
    each venue's exposure headroom.

Every sum runs over the same items in the same order as the Python path (working orders in
creation order, open positions in the engine's order), so both agree bit for bit. The inputs
that many places of the engine write (inventory, transfers, venue health, the engine state,
exhausted fee assets) come in as scalars read by the caller; the working orders and the open
positions are tables kept here (`WorkingOrders`, `OpenPositions`).

Returns a RejectReason code (0: sized, `out` holds qty, buy limit, sell limit, slip, buy touch,
sell touch) or FALLBACK when an asset has no mark: the caller then takes the Python path, which
raises NoMark as it always did.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..schema import RejectReason as R
from ..schema import Side
from .book import usable_nb
from .scan import F_MARK, S_HAS_MARK, S_LEVEL
from .sizing import N_OUT, O_BUY_LIMIT, O_QTY, O_SELL_LIMIT, size_two_leg_nb

# rules table (int64[K, N_RI]), in MarketState.names order
RI_VENUE, RI_INST, RI_BASE, RI_SPOT, RI_LOT = 0, 1, 2, 3, 4
N_RI = 5
# rules table (float64[K, N_RF])
RF_TICK, RF_MIN_NOTIONAL, RF_FEE, RF_LEVERAGE = 0, 1, 2, 3
N_RF = 4
# policy (float64[N_PAR])
P_MAX_SLIP, P_MIN_EDGE, P_BUDGET, P_MAX_ORDER, P_MAX_EXPOSURE, P_MAX_AGE_NS = 0, 1, 2, 3, 4, 5
N_PAR = 6
# flags
F_NO_NEW, F_NO_DISPATCH, F_FEE_STOP = 1, 2, 4
# working orders (int64[cap, N_WI], float64[cap, N_WF])
WI_VENUE, WI_INST, WI_SIDE = 0, 1, 2
N_WI = 3
WF_QTY, WF_PRICE, WF_FILLED = 0, 1, 2
N_WF = 3
# outputs (float64[N_DOUT])
D_QTY, D_BUY_LIMIT, D_SELL_LIMIT, D_SLIP, D_TOUCH_BUY, D_TOUCH_SELL = 0, 1, 2, 3, 4, 5
N_DOUT = 6 + N_OUT  # the sizing kernel's scratch after the outputs

FALLBACK = -1
SIDE_BUY, SIDE_SELL = int(Side.BUY), int(Side.SELL)

_STALE = int(R.STALE)
_RISK_STATE = int(R.RISK_STATE)
_VENUE_UNHEALTHY = int(R.VENUE_UNHEALTHY)
_FEE = int(R.FEE_ASSET_EXHAUSTED)
_BOOK_UNUSABLE = int(R.BOOK_UNUSABLE)
_TRANSFER_PENDING = int(R.TRANSFER_PENDING)


@njit(cache=True, inline="always")
def _mark(fstate, istate, base_fixed, b):
    """MarketState.mark of scanner base b; NaN when it has none (the Python path raises)."""
    if istate[b, S_HAS_MARK]:
        return fstate[b, F_MARK]
    return base_fixed[b]


@njit(cache=True, inline="always")
def _pmin(a, b):
    """Python's min(a, b): a unless b < a."""
    return b if b < a else a


@njit(cache=True, inline="always")
def _pmax0(a):
    """Python's max(a, 0.0): a unless 0.0 > a (NaN stays NaN)."""
    return 0.0 if a < 0.0 else a


@njit(cache=True)
def gate_size_nb(
    px,
    qty,
    cnt,
    ts,
    status,
    fstate,
    istate,
    rule_i,
    rule_f,
    base_fixed,
    par,
    work_i,
    work_f,
    n_work,
    pos_q,
    pos_b,
    n_pos,
    kb,
    ks,
    now,
    created_ns,
    ttl_us,
    flags,
    inv_b,
    inv_s,
    transit_b,
    transit_s,
    qty_hint,
    out,
):
    """The gate and sizing of one signal on the pair (buy rule kb, sell rule ks); see module."""
    if ttl_us == 0 or now - created_ns > ttl_us * 1000:
        return _STALE
    if flags & F_NO_NEW:
        return _RISK_STATE
    if flags & F_NO_DISPATCH:
        return _VENUE_UNHEALTHY
    if flags & F_FEE_STOP:
        return _FEE
    bv, bi, bb = rule_i[kb, RI_VENUE], rule_i[kb, RI_INST], rule_i[kb, RI_BASE]
    sv, si = rule_i[ks, RI_VENUE], rule_i[ks, RI_INST]
    max_age = np.int64(par[P_MAX_AGE_NS])
    if not usable_nb(cnt, ts, status, bv, bi, now, max_age):
        return _BOOK_UNUSABLE
    if not usable_nb(cnt, ts, status, sv, si, now, max_age):
        return _BOOK_UNUSABLE
    level = istate[bb, S_LEVEL]
    if level >= 3:
        return _RISK_STATE
    if (transit_b > 0 and inv_b <= 0) or (transit_s > 0 and inv_s <= 0):
        return _TRANSFER_PENDING
    # headroom (decisions.py `_size`)
    slip = par[P_MAX_SLIP] / (2.0 if level >= 1 else 1.0)
    mark = _mark(fstate, istate, base_fixed, bb)
    if mark != mark:
        return FALLBACK
    notional_b = 0.0  # working buys' notional at the buy venue
    notional_s = 0.0  # ... at the sell venue (a perp's margin)
    sell_qty = 0.0  # working sells of the sell instrument at the sell venue
    exposure_b = 0.0
    exposure_s = 0.0
    for w in range(n_work):
        v = work_i[w, WI_VENUE]
        x = work_f[w, WF_QTY] * work_f[w, WF_PRICE]
        if v == bv:
            exposure_b += x
            if work_i[w, WI_SIDE] == SIDE_BUY:
                notional_b += x
        if v == sv:
            exposure_s += x
            if work_i[w, WI_SIDE] == SIDE_BUY:
                notional_s += x
            elif work_i[w, WI_SIDE] == SIDE_SELL and work_i[w, WI_INST] == si:
                sell_qty += work_f[w, WF_QTY] - work_f[w, WF_FILLED]
    quote_avail = (inv_b - notional_b) / (1.0 + 2.0 * slip / 1e4)
    if rule_i[ks, RI_SPOT]:
        base_avail = inv_s - sell_qty
    else:  # a perp short needs margin, not coins
        base_avail = (inv_s - notional_s) * rule_f[ks, RF_LEVERAGE] / (mark if mark > 1e-9 else 1e-9)
    if level >= 2:
        base_avail /= 2.0
    if qty_hint > 0:
        base_avail = _pmin(base_avail, qty_hint)
    used = 0.0
    for p in range(n_pos):
        m = _mark(fstate, istate, base_fixed, pos_b[p])
        if m != m:
            return FALLBACK
        used += pos_q[p] * m
    capital_free = par[P_BUDGET] - used
    notional_cap = _pmin(
        _pmin(par[P_MAX_ORDER], par[P_MAX_EXPOSURE] - exposure_b), par[P_MAX_EXPOSURE] - exposure_s
    )
    # sizing (market.py `size_pair`)
    if cnt[bv, bi, 1] == 0 or cnt[sv, si, 0] == 0:
        return _BOOK_UNUSABLE
    touch_buy, touch_sell = px[bv, bi, 1, 0], px[sv, si, 0, 0]
    scratch = out[6:]
    reason = size_two_leg_nb(
        px,
        qty,
        cnt,
        bv,
        bi,
        sv,
        si,
        rule_i[kb, RI_LOT],
        rule_i[ks, RI_LOT],
        rule_f[kb, RF_TICK],
        rule_f[ks, RF_TICK],
        rule_f[kb, RF_MIN_NOTIONAL],
        rule_f[ks, RF_MIN_NOTIONAL],
        rule_f[kb, RF_FEE],
        rule_f[ks, RF_FEE],
        slip,
        slip,
        touch_buy * (1 + slip / 1e4),
        touch_sell * (1 - slip / 1e4),
        par[P_MIN_EDGE],
        _pmax0(base_avail),
        _pmax0(quote_avail),
        _pmax0(capital_free),
        _pmax0(notional_cap),
        scratch,
    )
    if reason != 0:
        return reason
    out[D_QTY] = scratch[O_QTY]
    out[D_BUY_LIMIT] = scratch[O_BUY_LIMIT]
    out[D_SELL_LIMIT] = scratch[O_SELL_LIMIT]
    out[D_SLIP] = slip
    out[D_TOUCH_BUY] = touch_buy
    out[D_TOUCH_SELL] = touch_sell
    return 0


class WorkingOrders:
    """The orders not yet terminal, in creation order (the order of OrderManager's index), as
    arrays: venue id, instrument id, side; quantity, limit price (None: 0.0), filled. Grows by
    doubling; holds only working orders, so it is as large as the most ever working at once."""

    def __init__(self, capacity: int = 64):
        self.wi = np.zeros((capacity, N_WI), dtype=np.int64)
        self.wf = np.zeros((capacity, N_WF), dtype=np.float64)
        self.coids: list[int] = []

    @property
    def n(self) -> int:
        return len(self.coids)

    def add(self, coid: int, venue: int, instrument: int, side: int, qty: float, price: float | None) -> None:
        n = len(self.coids)
        if n == len(self.wi):
            self.wi = np.concatenate([self.wi, np.zeros_like(self.wi)])
            self.wf = np.concatenate([self.wf, np.zeros_like(self.wf)])
        wi, wf = self.wi, self.wf  # element by element: a tuple into a row costs ~1 µs more
        wi[n, WI_VENUE], wi[n, WI_INST], wi[n, WI_SIDE] = venue, instrument, side
        wf[n, WF_QTY], wf[n, WF_PRICE], wf[n, WF_FILLED] = qty, price or 0.0, 0.0
        self.coids.append(coid)

    def filled(self, coid: int, filled: float) -> None:
        try:
            self.wf[self.coids.index(coid), WF_FILLED] = filled
        except ValueError:  # terminal already: no longer counted
            pass

    def remove(self, coid: int) -> None:
        try:
            k = self.coids.index(coid)
        except ValueError:
            return
        n = len(self.coids)
        self.wi[k : n - 1] = self.wi[k + 1 : n]
        self.wf[k : n - 1] = self.wf[k + 1 : n]
        del self.coids[k]


class OpenPositions:
    """The open positions that hold capital (not COMPLETE, CLOSED or RECONCILED), in the
    engine's order: quantity and scanner base index. Rebuilt by the engine when a position
    changed state since the last decision (`dirty`)."""

    def __init__(self, capacity: int = 16):
        self.qty = np.zeros(capacity, dtype=np.float64)
        self.base = np.zeros(capacity, dtype=np.int64)
        self.n = 0
        self.dirty = True

    def rebuild(self, items: list[tuple[float, int]]) -> None:
        n = len(items)
        if n > len(self.qty):
            self.qty = np.zeros(2 * n, dtype=np.float64)
            self.base = np.zeros(2 * n, dtype=np.int64)
        for k, (q, b) in enumerate(items):
            self.qty[k] = q
            self.base[k] = b
        self.n = n
        self.dirty = False
