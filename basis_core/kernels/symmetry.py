"""Hedge symmetry per hedged pair: fill ratios, residual exposure, time in the hedge window.

For pair k with target quantity T, fills fa (primary) and fb (hedge), mark price m (USDT per
coin), first fill time t0 (0 = nothing filled yet) and hedge completion window W:

    ratio_a = fa / T, ratio_b = fb / T, imbalance = |ratio_a - ratio_b|
    residual_usdt = |fa - fb| * m
    elapsed = now - t0 (0 while nothing filled)

Escalation by policy thresholds (ratio_degrade <= ratio_breach, resid_degrade <= resid_breach):

    SYM_BREACH   imbalance > ratio_breach or residual > resid_breach,
                 or the pair is still imbalanced (> 0) once the window has passed
    SYM_DEGRADE  imbalance > ratio_degrade or residual > resid_degrade
    SYM_OK       otherwise
    SYM_BAD      NaN/inf/negative inputs or T <= 0: the caller treats it as a breach
"""

from __future__ import annotations

import math

from numba import njit

SYM_OK = 0
SYM_DEGRADE = 1
SYM_BREACH = 2
SYM_BAD = 3


@njit(cache=True)
def symmetry_nb(
    target,
    filled_a,
    filled_b,
    mark,
    first_fill_ns,
    window_ns,
    now_ns,
    ratio_degrade,
    ratio_breach,
    resid_degrade,
    resid_breach,
    out_ratio_a,
    out_ratio_b,
    out_resid,
    out_elapsed,
    out_signal,
):
    """Evaluate every pair into the preallocated out_* arrays; returns the count of breaches
    (SYM_BREACH or SYM_BAD)."""
    breaches = 0
    for k in range(target.shape[0]):
        t = target[k]
        fa = filled_a[k]
        fb = filled_b[k]
        m = mark[k]
        ok = (
            math.isfinite(t)
            and t > 0.0
            and math.isfinite(fa)
            and fa >= 0.0
            and math.isfinite(fb)
            and fb >= 0.0
            and math.isfinite(m)
            and m > 0.0
            and window_ns[k] >= 0
            and first_fill_ns[k] >= 0
        )
        if not ok:
            out_ratio_a[k] = 0.0
            out_ratio_b[k] = 0.0
            out_resid[k] = 0.0
            out_elapsed[k] = 0
            out_signal[k] = SYM_BAD
            breaches += 1
            continue
        ra = fa / t
        rb = fb / t
        imb = abs(ra - rb)
        resid = abs(fa - fb) * m
        elapsed = now_ns - first_fill_ns[k] if first_fill_ns[k] > 0 else 0
        out_ratio_a[k] = ra
        out_ratio_b[k] = rb
        out_resid[k] = resid
        out_elapsed[k] = elapsed
        if imb > ratio_breach or resid > resid_breach or (imb > 0.0 and elapsed > window_ns[k]):
            out_signal[k] = SYM_BREACH
            breaches += 1
        elif imb > ratio_degrade or resid > resid_degrade:
            out_signal[k] = SYM_DEGRADE
        else:
            out_signal[k] = SYM_OK
    return breaches
