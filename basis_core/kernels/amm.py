"""Constant-product pool math (Uniswap V2), exact in integers.

The pool contract computes

    amountOut = (amountIn * fee_num * reserveOut) // (reserveIn * fee_den + amountIn * fee_num)

with fee_num/fee_den = 997/1000, in uint256 with floor division. The products overflow 64 bits
for ordinary reserves, so this module never multiplies two unbounded int64 values directly:

* `amount_out_nb` (numba, for the engine loop) takes int64 inputs and forms the numerator and
  denominator as 128-bit values split into two uint64 halves, then divides exactly. If an
  intermediate would not fit in 128 bits it returns AMM_OVERFLOW (-2); invalid inputs return
  AMM_BAD_INPUT (-1). It never returns a wrapped value.
* `amount_out` (the Python-callable wrapper) validates its arguments, uses the kernel when every
  input fits int64 and the kernel answers, and otherwise computes the same formula in Python
  ints (arbitrary precision, so uint256 reserves are exact too). Both paths are exact; the
  parity tests hold them equal.

`optimal_two_pool_input` and `optimal_cex_dex_input` solve the arbitrage size in closed form
(float64 and integer square root respectively) and then search the integer neighbourhood with the exact pool math, so
the amount returned is the best integer in that neighbourhood as the contract would compute it.
The floors make the integer profit a plateau with sporadic +1 spikes, or, when one output unit
costs many input units, a sawtooth; the search covers both (see `_search`), and the result is
within 2 smallest units of the global integer optimum (tested by brute force on small pools).
`min_out_with_slippage` gives the minimum output bound an executor contract enforces.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

AMM_BAD_INPUT = -1
AMM_OVERFLOW = -2

INT64_MAX = (1 << 63) - 1
#: fee_den at most this, so amount*fee and reserve*fee stay below 2**96 in the kernel
FEE_DEN_MAX = 1 << 32
#: half-width of the integer neighbourhood searched around the closed-form optimum
SEARCH_RADIUS = 16
#: how many times the search window may move while the best input sits on its edge
MAX_PASSES = 64

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S63 = np.uint64(63)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


# -- 128-bit helpers (hi, lo) as uint64 pairs ---------------------------------------------


@njit(cache=True)
def _mul64(a, b):
    """Full 128-bit product of two uint64: (hi, lo)."""
    a0 = a & _M32
    a1 = a >> _S32
    b0 = b & _M32
    b1 = b >> _S32
    p0 = a0 * b0
    p1 = a0 * b1
    p2 = a1 * b0
    p3 = a1 * b1
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)
    lo = (p0 & _M32) | (mid << _S32)
    hi = p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)
    return hi, lo


@njit(cache=True)
def _div128(nh, nl, dh, dl):
    """floor((nh:nl) / (dh:dl)) for a quotient known to be < 2**64 (restoring division)."""
    if nh == _ZERO and dh == _ZERO:
        return nl // dl
    q = _ZERO
    rh = _ZERO
    rl = _ZERO
    for i in range(127, -1, -1):
        carry = rh >> _S63
        rh = (rh << _ONE) | (rl >> _S63)
        rl = rl << _ONE
        if i >= 64:
            rl |= (nh >> np.uint64(i - 64)) & _ONE
        else:
            rl |= (nl >> np.uint64(i)) & _ONE
        if carry != _ZERO or rh > dh or (rh == dh and rl >= dl):
            borrow = _ONE if rl < dl else _ZERO
            rl = rl - dl
            rh = rh - dh - borrow
            if i < 64:
                q |= _ONE << np.uint64(i)
    return q


@njit("int64(int64, int64, int64, int64, int64)", cache=True)
def amount_out_nb(amount_in, reserve_in, reserve_out, fee_num, fee_den):
    """Exact pool output; AMM_BAD_INPUT / AMM_OVERFLOW (negative) instead of a wrong value.

    amount_in 0 gives 0 (the contract would revert; the size search needs "trade nothing")."""
    if amount_in < 0 or reserve_in <= 0 or reserve_out <= 0:
        return AMM_BAD_INPUT
    if fee_den <= 0 or fee_num <= 0 or fee_num > fee_den or fee_den > FEE_DEN_MAX:
        return AMM_BAD_INPUT
    if amount_in == 0:
        return 0
    th, tl = _mul64(np.uint64(amount_in), np.uint64(fee_num))  # amount_in * fee_num < 2**95
    ro = np.uint64(reserve_out)
    h2, l2 = _mul64(tl, ro)
    if th != _ZERO:
        if ro > np.uint64(0xFFFFFFFFFFFFFFFF) // th:
            return AMM_OVERFLOW
        top = th * ro
        nh = h2 + top
        if nh < h2:
            return AMM_OVERFLOW
    else:
        nh = h2
    nl = l2
    dh1, dl1 = _mul64(np.uint64(reserve_in), np.uint64(fee_den))  # < 2**95
    dl = dl1 + tl
    dh = dh1 + th + (_ONE if dl < dl1 else _ZERO)  # sum < 2**96, no wrap
    return np.int64(_div128(nh, nl, dh, dl))


@njit("int64(int64, int64, int64, int64, int64)", cache=True)
def amount_in_min_nb(amount_out, reserve_in, reserve_out, fee_num, fee_den):
    """Smallest input whose pool output is >= amount_out; AMM_BAD_INPUT when amount_out >=
    reserve_out (unreachable), AMM_OVERFLOW when it does not fit the 128-bit path."""
    if amount_out <= 0:
        return 0
    if amount_out >= reserve_out or reserve_in <= 0:
        return AMM_BAD_INPUT
    th, tl = _mul64(np.uint64(reserve_in), np.uint64(fee_den))
    yy = np.uint64(amount_out)
    h2, l2 = _mul64(tl, yy)
    if th != _ZERO:
        if yy > np.uint64(0xFFFFFFFFFFFFFFFF) // th:
            return AMM_OVERFLOW
        nh = h2 + th * yy
        if nh < h2:
            return AMM_OVERFLOW
    else:
        nh = h2
    dh, dl = _mul64(np.uint64(reserve_out - amount_out), np.uint64(fee_num))
    qf = (float(nh) * 18446744073709551616.0 + float(l2)) / (float(dh) * 18446744073709551616.0 + float(dl))
    if qf > 4.0e18:
        return AMM_OVERFLOW
    x = np.int64(_div128(nh, l2, dh, dl))
    while True:  # the formula is exact to +-1: settle it
        out = amount_out_nb(x, reserve_in, reserve_out, fee_num, fee_den)
        if out < 0:
            return AMM_OVERFLOW
        if out >= amount_out:
            break
        x += 1
    while x > 0 and amount_out_nb(x - 1, reserve_in, reserve_out, fee_num, fee_den) >= amount_out:
        x -= 1
    return x


@njit(cache=True, inline="always")
def _keep_better_nb(p, x, best_p, best_x):
    """(best profit, best input) once input x of profit p is looked at. The search's rule: a
    greater profit, or the same positive profit for a smaller input."""
    if p > best_p or (p == best_p and p > 0 and x < best_x):
        return p, x
    return best_p, best_x


@njit("int64(int64, int64, int64, int64, int64, int64, int64)", cache=True)
def _two_pool_profit_nb(x, ra_in, ra_out, rb_in, rb_out, fee_num, fee_den):
    y = amount_out_nb(x, ra_in, ra_out, fee_num, fee_den)
    if y < 0:
        return -INT64_MAX
    z = amount_out_nb(y, rb_in, rb_out, fee_num, fee_den)
    if z < 0:
        return -INT64_MAX
    return z - x


@njit("int64(int64, int64, int64, int64, int64, int64)", cache=True)
def optimal_two_pool_input_nb(ra_in, ra_out, rb_in, rb_out, fee_num, fee_den):
    """Best integer input of X into pool A (X->Y) then B (Y->X); 0 when no profit; <0 on error.

    Same closed form (float64) and the same integer search as `optimal_two_pool_input`."""
    if ra_in <= 0 or ra_out <= 0 or rb_in <= 0 or rb_out <= 0:
        return AMM_BAD_INPUT
    if fee_den <= 0 or fee_num <= 0 or fee_num > fee_den or fee_den > FEE_DEN_MAX:
        return AMM_BAD_INPUT
    g = fee_num / fee_den
    root = math.sqrt(float(ra_in) * float(ra_out)) * math.sqrt(float(rb_in) * float(rb_out))
    x0f = (g * root - float(ra_in) * float(rb_in)) / (g * float(rb_in) + g * g * float(ra_out))
    if not x0f > 0.0:
        x0f = 0.0
    if x0f > 4.0e18:
        return AMM_OVERFLOW
    x0 = int(x0f)  # int64 in the kernel, as every argument
    lo = max(x0 - SEARCH_RADIUS, 0)
    best_x = 0
    best_p = 0
    for npass in range(MAX_PASSES):
        before = best_p
        for x in range(lo, lo + 2 * SEARCH_RADIUS + 1):
            p = _two_pool_profit_nb(x, ra_in, ra_out, rb_in, rb_out, fee_num, fee_den)
            if p == -INT64_MAX:
                return AMM_OVERFLOW
            best_p, best_x = _keep_better_nb(p, x, best_p, best_x)
        if npass > 0 and best_p == before:
            break
        if best_x == lo + 2 * SEARCH_RADIUS:
            lo = best_x
        elif best_x == lo and lo > 0:
            lo = max(best_x - 2 * SEARCH_RADIUS, 0)
        else:
            break
    y0 = amount_out_nb(x0, ra_in, ra_out, fee_num, fee_den)
    for y in range(max(y0 - SEARCH_RADIUS, 1), y0 + SEARCH_RADIUS + 1):
        if y >= ra_out:
            break
        x = amount_in_min_nb(y, ra_in, ra_out, fee_num, fee_den)
        if x < 0:
            return AMM_OVERFLOW
        p = _two_pool_profit_nb(x, ra_in, ra_out, rb_in, rb_out, fee_num, fee_den)
        if p == -INT64_MAX:
            return AMM_OVERFLOW
        best_p, best_x = _keep_better_nb(p, x, best_p, best_x)
    return best_x


# -- Python-callable wrappers (arbitrary-size ints) ---------------------------------------


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _check_fee(fee_num: int, fee_den: int) -> tuple[int, int]:
    fee_num, fee_den = _check_int("fee_num", fee_num), _check_int("fee_den", fee_den)
    if not 0 < fee_num <= fee_den <= FEE_DEN_MAX:
        raise ValueError(f"fee {fee_num}/{fee_den}: need 0 < fee_num <= fee_den <= 2**32")
    return fee_num, fee_den


def amount_out_exact(
    amount_in: int, reserve_in: int, reserve_out: int, fee_num: int = 997, fee_den: int = 1000
) -> int:
    """The contract formula in Python ints (no range limit). Arguments are assumed checked."""
    if amount_in == 0:
        return 0
    fee_in = amount_in * fee_num
    return (fee_in * reserve_out) // (reserve_in * fee_den + fee_in)


def amount_out(
    amount_in: int, reserve_in: int, reserve_out: int, fee_num: int = 997, fee_den: int = 1000
) -> int:
    """Uniswap-V2 getAmountOut, exact. Raises ValueError for negative amounts or empty reserves.

    Uses the 128-bit numba kernel when every input fits int64 and the intermediates fit 128
    bits; otherwise computes in Python ints. Both give the contract's result."""
    amount_in = _check_int("amount_in", amount_in)
    reserve_in = _check_int("reserve_in", reserve_in)
    reserve_out = _check_int("reserve_out", reserve_out)
    fee_num, fee_den = _check_fee(fee_num, fee_den)
    if amount_in < 0:
        raise ValueError(f"amount_in must be >= 0, got {amount_in}")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError(f"reserves must be > 0, got {reserve_in}, {reserve_out}")
    if amount_in <= INT64_MAX and reserve_in <= INT64_MAX and reserve_out <= INT64_MAX:
        out = amount_out_nb(amount_in, reserve_in, reserve_out, fee_num, fee_den)
        if out >= 0:
            return int(out)
    return amount_out_exact(amount_in, reserve_in, reserve_out, fee_num, fee_den)


def amount_in_min(
    amount_out: int, reserve_in: int, reserve_out: int, fee_num: int = 997, fee_den: int = 1000
) -> int | None:
    """Smallest input whose pool output is >= amount_out (None if amount_out >= reserve_out)."""
    if amount_out <= 0:
        return 0
    if amount_out >= reserve_out:
        return None
    x = (reserve_in * fee_den * amount_out) // ((reserve_out - amount_out) * fee_num)
    while amount_out_exact(x, reserve_in, reserve_out, fee_num, fee_den) < amount_out:
        x += 1
    while x > 0 and amount_out_exact(x - 1, reserve_in, reserve_out, fee_num, fee_den) >= amount_out:
        x -= 1
    return x


def _search(profit, x0: int, first_out, reserve_out: int, in_for_out) -> int:
    """Best integer input near the closed-form x0. Ties go to the smaller input; an input with
    profit <= 0 is never chosen (0 = do nothing).

    Two candidate sets: inputs in a window around x0 (moved while a strict improvement sits on
    its edge, at most MAX_PASSES times), and the smallest input reaching each first-pool output
    within SEARCH_RADIUS of first_out(x0). The second set matters when one output unit costs
    many input units: the profit is then a sawtooth whose teeth start at those inputs."""
    lo = max(x0 - SEARCH_RADIUS, 0)
    best_x, best_p = 0, 0

    def better(p: int, x: int) -> bool:
        return p > best_p or (p == best_p and p > 0 and x < best_x)

    for npass in range(MAX_PASSES):
        before = best_p
        for x in range(lo, lo + 2 * SEARCH_RADIUS + 1):
            p = profit(x)
            if better(p, x):
                best_x, best_p = x, p
        if npass > 0 and best_p == before:
            break  # a plateau does not move the window
        if best_x == lo + 2 * SEARCH_RADIUS:
            lo = best_x
        elif best_x == lo and lo > 0:
            lo = max(best_x - 2 * SEARCH_RADIUS, 0)
        else:
            break
    y0 = first_out(x0)
    for y in range(max(y0 - SEARCH_RADIUS, 1), y0 + SEARCH_RADIUS + 1):
        if y >= reserve_out:
            break
        x = in_for_out(y)
        p = profit(x)
        if better(p, x):
            best_x, best_p = x, p
    return best_x


def optimal_two_pool_input(
    rA_in: int, rA_out: int, rB_in: int, rB_out: int, fee_num: int = 997, fee_den: int = 1000
) -> int:
    """Input of token X into pool A (X->Y) whose output Y goes into pool B (Y->X), maximizing
    the X profit `out_B(out_A(x)) - x` under the contracts' integer math; 0 if no input profits.

    Closed form of the composed pools, x* = (g*sqrt(Ai*Ao*Bi*Bo) - Ai*Bi) / (g*Bi + g^2*Ao) with
    g = fee_num/fee_den, taken in float64 (its error only moves where the search starts), then an
    exact integer search around it with the contracts' math."""
    ra_in, ra_out = _check_int("rA_in", rA_in), _check_int("rA_out", rA_out)
    rb_in, rb_out = _check_int("rB_in", rB_in), _check_int("rB_out", rB_out)
    fn, fd = _check_fee(fee_num, fee_den)
    if min(ra_in, ra_out, rb_in, rb_out) <= 0:
        raise ValueError("reserves must be > 0")
    # the closed form only places the search; it is taken in float64 exactly as the kernel
    # takes it, so the wrapper and optimal_two_pool_input_nb pick the same integer
    g = fn / fd
    root = math.sqrt(float(ra_in) * float(ra_out)) * math.sqrt(float(rb_in) * float(rb_out))
    x0f = (g * root - float(ra_in) * float(rb_in)) / (g * float(rb_in) + g * g * float(ra_out))
    if math.isfinite(x0f):
        x0 = int(x0f) if x0f > 0.0 else 0
    else:  # reserves beyond float64 range: integer roots
        root_i = math.isqrt(fn * fn * fd * fd * ra_in * ra_out * rb_in * rb_out)
        x0 = max((root_i - fd * fd * ra_in * rb_in) // (fn * fd * rb_in + fn * fn * ra_out), 0)

    def profit(x: int) -> int:
        return amount_out_exact(amount_out_exact(x, ra_in, ra_out, fn, fd), rb_in, rb_out, fn, fd) - x

    return _search(
        profit,
        x0,
        lambda x: amount_out_exact(x, ra_in, ra_out, fn, fd),
        ra_out,
        lambda y: amount_in_min(y, ra_in, ra_out, fn, fd),
    )


def optimal_cex_dex_input(
    reserve_in: int, reserve_out: int, px_num: int, px_den: int, fee_num: int = 997, fee_den: int = 1000
) -> int:
    """Input of token X into a pool (X->Y) when the Y received is sold on a CEX for
    px_num/px_den X per Y (net of the CEX taker fee). Maximizes floor(out(x)*px_num/px_den) - x;
    0 if no input profits. For the opposite direction pass the pool reversed and the
    inverse price.

    Closed form: x* = (sqrt(k*g*Ro*Ri) - Ri) / g with k = px_num/px_den, g = fee_num/fee_den."""
    ri, ro = _check_int("reserve_in", reserve_in), _check_int("reserve_out", reserve_out)
    pn, pd = _check_int("px_num", px_num), _check_int("px_den", px_den)
    fn, fd = _check_fee(fee_num, fee_den)
    if ri <= 0 or ro <= 0:
        raise ValueError("reserves must be > 0")
    if pn <= 0 or pd <= 0:
        raise ValueError(f"price {pn}/{pd} must be > 0")
    root = math.isqrt((pn * fn * fd * ro * ri) // pd)
    x0 = max((root - fd * ri) // fn, 0)

    def profit(x: int) -> int:
        return (amount_out_exact(x, ri, ro, fn, fd) * pn) // pd - x

    return _search(
        profit,
        x0,
        lambda x: amount_out_exact(x, ri, ro, fn, fd),
        ro,
        lambda y: amount_in_min(y, ri, ro, fn, fd),
    )


def min_out_with_slippage(expected_out: int, slippage_bps: int) -> int:
    """Minimum acceptable output for a slippage cap: floor(expected * (10000 - bps) / 10000)."""
    expected_out = _check_int("expected_out", expected_out)
    slippage_bps = _check_int("slippage_bps", slippage_bps)
    if expected_out < 0:
        raise ValueError(f"expected_out must be >= 0, got {expected_out}")
    if not 0 <= slippage_bps <= 10_000:
        raise ValueError(f"slippage_bps must be in [0, 10000], got {slippage_bps}")
    return expected_out * (10_000 - slippage_bps) // 10_000
