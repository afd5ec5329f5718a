"""Two-leg CEX sizing: the largest common quantity that every bound allows.

The buy leg walks the asks of (vb, ib), the sell leg the bids of (vs, is). Quantities are whole
multiples of the common lot: lots are given in integer units of QTY_UNIT (1e-9 coin) and the
common lot is their lcm, so both legs carry exactly the same quantity (no rounding residual).

Each leg's limit price is its price bound rounded to tick in the safe direction (buy: the largest
tick price <= bound; sell: the smallest tick price >= bound). The walk only uses levels inside
the limit, so every fill the order can get is within the bound, and the limit always covers the
walk. For n lots to be feasible:

    depth inside the limits covers q on both books                     else SLIPPAGE
    each leg's VWAP is within its slippage cap of that side's best     else SLIPPAGE
    net edge (sell VWAP*(1-fee_s) - buy VWAP*(1+fee_b)) / buy VWAP     else EDGE_GONE
        >= min_edge_bps
    buy cost incl. fee <= quote available                              else NO_INVENTORY
    buy notional <= capital free                                       else CAPITAL
    buy notional <= per-order cap and exposure headroom                else EXPOSURE_LIMIT

All are monotone in q, so a binary search over n finds the largest feasible n. If n is 0 the
reason is the first check failing at one lot; if the result is below either leg's min notional
the opportunity is rejected with MIN_NOTIONAL. Every input is validated in `size_two_leg_nb`
itself (it is called from the decision kernel with raw state): a NaN, inf or non-positive value
yields BAD_INPUT, never a size.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..schema import RejectReason as R
from .finite import finite_nonneg, finite_pos

QTY_UNIT = 1e-9
QTY_SCALE = 1_000_000_000

# columns of the float output row
O_QTY = 0
O_BUY_LIMIT = 1
O_SELL_LIMIT = 2
O_BUY_VWAP = 3
O_SELL_VWAP = 4
O_EDGE_BPS = 5
O_NOTIONAL = 6
O_LOTS = 7
N_OUT = 8

_OK = int(R.NONE)
_BAD = int(R.BAD_INPUT)
_SLIP = int(R.SLIPPAGE)
_EDGE = int(R.EDGE_GONE)
_INV = int(R.NO_INVENTORY)
_CAP = int(R.CAPITAL)
_EXPO = int(R.EXPOSURE_LIMIT)
_LOT = int(R.LOT_SIZE)
_MINN = int(R.MIN_NOTIONAL)
_UNUSABLE = int(R.BOOK_UNUSABLE)

_LCM_MAX = 1 << 62
#: a price may be at most this many ticks (k stays an exact integer in float64)
MAX_TICKS = 1e15


@njit(cache=True, inline="always")
def floor_to_tick(price, tick):
    """Largest k*tick <= price (exact float comparison, so the result never exceeds price).
    Needs price / tick < MAX_TICKS (checked by the callers)."""
    k = np.floor(price / tick)
    while k * tick > price:
        k -= 1
    while (k + 1) * tick <= price:
        k += 1
    return k * tick


@njit(cache=True, inline="always")
def ceil_to_tick(price, tick):
    """Smallest k*tick >= price."""
    k = np.ceil(price / tick)
    while k * tick < price:
        k += 1
    while (k - 1) * tick >= price:
        k -= 1
    return k * tick


@njit(cache=True, inline="always")
def common_lot(a, b):
    """lcm of two positive lot sizes in QTY_UNITs; 0 if it does not fit (reject LOT_SIZE)."""
    if a <= 0 or b <= 0:
        return 0
    x, y = a, b
    while y:
        x, y = y, x % y
    m = a // x
    if m > _LCM_MAX // b:
        return 0
    return m * b


@njit(cache=True, inline="always")
def walk_nb(px, qty, cnt, v, i, side, q, limit):
    """Cost of taking q from one side, using only levels inside `limit`; -1.0 if depth is short."""
    left = q
    cost = 0.0
    for k in range(cnt[v, i, side]):
        p = px[v, i, side, k]
        if (side == 1 and p > limit) or (side == 0 and p < limit):
            break
        take = qty[v, i, side, k] if qty[v, i, side, k] < left else left
        cost += take * p
        left -= take
        if left <= 0.0:
            return cost
    return -1.0


@njit(cache=True, inline="always")
def depth_inside_nb(px, qty, cnt, v, i, side, limit):
    total = 0.0
    for k in range(cnt[v, i, side]):
        p = px[v, i, side, k]
        if (side == 1 and p > limit) or (side == 0 and p < limit):
            break
        total += qty[v, i, side, k]
    return total


@njit(cache=True, inline="always")
def check_lots_nb(
    px,
    qty,
    cnt,
    vb,
    ib,
    vs,
    is_,
    n,
    lot,
    buy_limit,
    sell_limit,
    fee_b,
    fee_s,
    slip_b,
    slip_s,
    min_edge_bps,
    quote_avail,
    capital_free,
    notional_cap,
    out,
):
    """Reason code for n lots (0 = feasible); fills out[O_QTY..O_NOTIONAL] when feasible."""
    q = (n * lot) / QTY_SCALE
    cost = walk_nb(px, qty, cnt, vb, ib, 1, q, buy_limit)
    rev = walk_nb(px, qty, cnt, vs, is_, 0, q, sell_limit)
    if cost < 0.0 or rev < 0.0:
        return _SLIP
    vwap_b = cost / q
    vwap_s = rev / q
    if (vwap_b / px[vb, ib, 1, 0] - 1.0) * 1e4 > slip_b or (1.0 - vwap_s / px[vs, is_, 0, 0]) * 1e4 > slip_s:
        return _SLIP
    edge = (rev * (1.0 - fee_s * 1e-4) - cost * (1.0 + fee_b * 1e-4)) / cost * 1e4
    if not edge >= min_edge_bps:
        return _EDGE
    if cost * (1.0 + fee_b * 1e-4) > quote_avail:
        return _INV
    if cost > capital_free:
        return _CAP
    if cost > notional_cap:
        return _EXPO
    out[O_QTY] = q
    out[O_BUY_VWAP] = vwap_b
    out[O_SELL_VWAP] = vwap_s
    out[O_EDGE_BPS] = edge
    out[O_NOTIONAL] = cost
    return _OK


@njit(cache=True)
def size_two_leg_nb(
    px,
    qty,
    cnt,
    vb,
    ib,
    vs,
    is_,
    lot_b,
    lot_s,
    tick_b,
    tick_s,
    min_not_b,
    min_not_s,
    fee_b,
    fee_s,
    slip_b,
    slip_s,
    buy_bound,
    sell_bound,
    min_edge_bps,
    base_avail,
    quote_avail,
    capital_free,
    notional_cap,
    out,
):
    """Size one two-leg opportunity into `out` (float64[N_OUT]); returns a RejectReason code.

    base_avail caps the quantity (sell-leg inventory, already scaled by risk); quote_avail caps
    the buy cost incl. fee; capital_free and notional_cap cap the buy notional."""
    for k in range(N_OUT):
        out[k] = 0.0
    if not (finite_pos(tick_b) and finite_pos(tick_s) and finite_pos(buy_bound) and finite_pos(sell_bound)):
        return _BAD
    if not (
        finite_nonneg(min_not_b)
        and finite_nonneg(min_not_s)
        and finite_nonneg(fee_b)
        and finite_nonneg(fee_s)
        and finite_nonneg(slip_b)
        and finite_nonneg(slip_s)
    ):
        return _BAD
    if not (
        math.isfinite(min_edge_bps)
        and finite_nonneg(base_avail)
        and finite_nonneg(quote_avail)
        and finite_nonneg(capital_free)
        and finite_nonneg(notional_cap)
    ):
        return _BAD
    if buy_bound / tick_b >= MAX_TICKS or sell_bound / tick_s >= MAX_TICKS:
        return _BAD
    if cnt[vb, ib, 1] == 0 or cnt[vs, is_, 0] == 0:
        return _UNUSABLE
    lot = common_lot(lot_b, lot_s)
    if lot == 0:
        return _LOT
    buy_limit = floor_to_tick(buy_bound, tick_b)
    sell_limit = ceil_to_tick(sell_bound, tick_s)
    if buy_limit < px[vb, ib, 1, 0] or sell_limit > px[vs, is_, 0, 0]:
        return _SLIP  # the bound excludes even the best level
    depth = min(
        depth_inside_nb(px, qty, cnt, vb, ib, 1, buy_limit),
        depth_inside_nb(px, qty, cnt, vs, is_, 0, sell_limit),
    )
    hi_q = min(depth, base_avail)
    n_f = hi_q * QTY_SCALE / lot * (1.0 + 1e-12)  # a hair above: the search settles the edge
    if n_f > 4e18:
        n_f = 4e18
    hi = np.int64(math.floor(n_f))
    if hi < 1:
        return _INV if base_avail * QTY_SCALE < lot else _SLIP
    # One lot first (if it fails, its check is the reason), then hi (all the depth), then
    # bisection between the largest feasible count found (lo) and the smallest failing one (hi).
    # Only a feasible check writes `out`, so it ends holding the figures of lo.
    lo = np.int64(0)
    n = np.int64(1)
    while True:
        r = check_lots_nb(
            px,
            qty,
            cnt,
            vb,
            ib,
            vs,
            is_,
            n,
            lot,
            buy_limit,
            sell_limit,
            fee_b,
            fee_s,
            slip_b,
            slip_s,
            min_edge_bps,
            quote_avail,
            capital_free,
            notional_cap,
            out,
        )
        if r == _OK:
            lo = n
        elif lo == 0:
            return r
        else:
            hi = n
        if n == 1 and hi > 1:
            n = hi
        elif hi - lo > 1:
            n = lo + (hi - lo) // 2
        else:
            break
    if out[O_NOTIONAL] < min_not_b or out[O_QTY] * out[O_SELL_VWAP] < min_not_s:
        for k in range(N_OUT):
            out[k] = 0.0
        return _MINN
    out[O_BUY_LIMIT] = buy_limit
    out[O_SELL_LIMIT] = sell_limit
    out[O_LOTS] = lo
    return _OK


def lot_units(lot: float) -> int:
    """A venue lot size in QTY_UNITs; ValueError if it is not a positive multiple of 1e-9."""
    if not (isinstance(lot, (int, float)) and math.isfinite(lot) and lot > 0):
        raise ValueError(f"lot size must be a positive finite number, got {lot!r}")
    units = round(lot * QTY_SCALE)
    if units < 1 or abs(units / QTY_SCALE - lot) > 1e-12 * max(lot, 1.0):
        raise ValueError(f"lot size {lot!r} is not a whole number of {QTY_UNIT:g} units")
    return units
