"""Input checks shared by the compiled kernels (inlined where they are called): a NaN or an
infinity fails both, so a kernel that checks its inputs with them rejects them all."""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, inline="always")
def finite_pos(x):
    """x is finite and > 0 (a price, a tick, a bound)."""
    return math.isfinite(x) and x > 0.0


@njit(cache=True, inline="always")
def finite_nonneg(x):
    """x is finite and >= 0 (a quantity, a fee, a cap)."""
    return math.isfinite(x) and x >= 0.0
