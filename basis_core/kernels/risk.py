"""Realized volatility of mid prices (time-decayed EWMA) and the risk level it sets.

Per instrument: last mid, last time, and the EWMA of the variance rate r^2/dt (r = log return,
dt in seconds), weighted by alpha = 1 - exp(-dt / tau). Volatility is reported in bps per
sqrt(second): vol_bps = 1e4 * sqrt(var). The first mid only seeds the state. A NaN, inf or
non-positive mid, or a time that does not move forward, is counted as bad and leaves the state
unchanged (it never lowers the risk level).

Levels from policy thresholds t1 < t2 < t3 (bps per sqrt(s)):

    LEVEL_NORMAL  vol <  t1     nothing changes
    LEVEL_TIGHTEN vol >= t1     price bounds tightened (bound scale of the level)
    LEVEL_REDUCE  vol >= t2     bounds tightened and size reduced (size scale of the level)
    LEVEL_HALT    vol >= t3     no new exposure on the instrument (RISK_STATE)

The scale per level lives in the decision policy (see gate.P_BOUND_SCALE / P_SIZE_SCALE).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LEVEL_NORMAL = 0
LEVEL_TIGHTEN = 1
LEVEL_REDUCE = 2
LEVEL_HALT = 3


@njit(cache=True)
def level_for_nb(vol_bps, t1, t2, t3):
    if vol_bps >= t3:
        return LEVEL_HALT
    if vol_bps >= t2:
        return LEVEL_REDUCE
    if vol_bps >= t1:
        return LEVEL_TIGHTEN
    return LEVEL_NORMAL


@njit(cache=True)
def ewma_update_nb(inst, mids, ts_ns, last_mid, last_ts, var, level, tau_s, t1, t2, t3):
    """Fold a batch of (instrument, mid, ts) observations into the state; returns bad count.

    `level` (int64[I]) is rewritten for each instrument that got a valid observation."""
    bad = 0
    n_inst = last_mid.shape[0]
    for k in range(inst.shape[0]):
        i = inst[k]
        m = mids[k]
        t = ts_ns[k]
        if i <= 0 or i >= n_inst or not (math.isfinite(m) and m > 0.0):
            bad += 1
            continue
        if last_mid[i] <= 0.0:
            last_mid[i] = m
            last_ts[i] = t
            continue
        if t <= last_ts[i]:
            bad += 1
            continue
        dt = (t - last_ts[i]) * 1e-9
        r = math.log(m / last_mid[i])
        alpha = 1.0 - math.exp(-dt / tau_s)
        var[i] += alpha * (r * r / dt - var[i])
        last_mid[i] = m
        last_ts[i] = t
        level[i] = level_for_nb(1e4 * math.sqrt(var[i]), t1, t2, t3)
    return bad


class VolState:
    """Preallocated EWMA state for n_instruments (ids 1..n) with policy thresholds."""

    def __init__(
        self,
        n_instruments: int,
        tau_s: float = 60.0,
        thresholds_bps: tuple[float, float, float] = (5.0, 10.0, 20.0),
    ):
        t1, t2, t3 = thresholds_bps
        if not (tau_s > 0 and 0 < t1 < t2 < t3 and all(math.isfinite(x) for x in (tau_s, t1, t2, t3))):
            raise ValueError(f"need tau_s > 0 and 0 < t1 < t2 < t3, got {tau_s}, {thresholds_bps}")
        n = n_instruments + 1
        self.tau_s = float(tau_s)
        self.thresholds = (float(t1), float(t2), float(t3))
        self.last_mid = np.zeros(n)
        self.last_ts = np.zeros(n, dtype=np.int64)
        self.var = np.zeros(n)
        self.level = np.zeros(n, dtype=np.int64)
        self.bad = 0

    def update(self, inst: np.ndarray, mids: np.ndarray, ts_ns: np.ndarray) -> int:
        if not (len(inst) == len(mids) == len(ts_ns)):
            raise ValueError("inst, mids and ts_ns must have the same length")
        bad = ewma_update_nb(
            np.asarray(inst, np.int64),
            np.asarray(mids, np.float64),
            np.asarray(ts_ns, np.int64),
            self.last_mid,
            self.last_ts,
            self.var,
            self.level,
            self.tau_s,
            *self.thresholds,
        )
        self.bad += int(bad)
        return int(bad)

    def vol_bps(self, instrument: int) -> float:
        return 1e4 * math.sqrt(self.var[instrument])
