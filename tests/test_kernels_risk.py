"""EWMA volatility levels and the hedge symmetry escalation."""

import math

import numpy as np
import pytest

from basis_core.kernels import risk, symmetry
from basis_core.kernels.reference import ewma, symmetry_one

S = 10**9


def feed(vs, mids, step_s=1.0, inst=1, t0=S):
    n = len(mids)
    vs.update(
        np.full(n, inst), np.array(mids, dtype=float), t0 + (np.arange(n) * step_s * S).astype(np.int64)
    )


def test_calm_prices_stay_normal_and_a_spike_escalates_through_every_level():
    vs = risk.VolState(1, tau_s=10.0, thresholds_bps=(5.0, 10.0, 20.0))
    feed(vs, [100.0 * (1 + 1e-5 * (-1) ** k) for k in range(60)])  # ~2 bps moves: calm
    assert vs.level[1] == risk.LEVEL_NORMAL and vs.vol_bps(1) < 5
    seen = set()
    mid = 100.0
    for k in range(40):  # 30 bps moves per second
        mid *= 1.003 if k % 2 else 0.997
        vs.update(np.array([1]), np.array([mid]), np.array([S * (61 + k)]))
        seen.add(int(vs.level[1]))
    assert {risk.LEVEL_TIGHTEN, risk.LEVEL_REDUCE, risk.LEVEL_HALT} <= seen
    assert vs.level[1] == risk.LEVEL_HALT


def test_bad_mids_and_time_going_backwards_are_counted_and_change_nothing():
    vs = risk.VolState(2)
    feed(vs, [100.0, 100.1, 100.05])
    var, level = vs.var.copy(), vs.level.copy()
    bad = vs.update(
        np.array([1, 1, 1, 1, 9, 0, 1]),
        np.array([math.nan, math.inf, -5.0, 0.0, 100.0, 100.0, 100.2]),
        np.array([10 * S] * 6 + [S]),
    )
    assert bad == 7 and vs.bad == 7
    assert (vs.var == var).all() and (vs.level == level).all()


def test_ewma_kernel_equals_reference_on_a_random_walk():
    rng = np.random.default_rng(3)
    mids = 100 * np.exp(np.cumsum(rng.normal(0, 5e-4, 500)))
    ts = S + np.cumsum(rng.integers(1, S, 500))
    inst = rng.integers(1, 3, 500)
    vs = risk.VolState(2, 30.0, (5.0, 10.0, 20.0))
    vs.update(inst, mids, ts)
    var, level, bad = ewma(list(zip(inst.tolist(), mids.tolist(), ts.tolist())), 2, 30.0, 5.0, 10.0, 20.0)
    assert bad == 0
    for i in (1, 2):
        assert vs.var[i] == pytest.approx(var[i], rel=1e-12) and vs.level[i] == level[i]


def test_vol_state_refuses_bad_policy():
    with pytest.raises(ValueError):
        risk.VolState(1, tau_s=0.0)
    with pytest.raises(ValueError):
        risk.VolState(1, thresholds_bps=(10.0, 5.0, 20.0))


POLICY = (0.05, 0.2, 50.0, 500.0)  # ratio degrade/breach, residual USDT degrade/breach


def run_pairs(pairs, now):
    n = len(pairs)
    cols = list(zip(*pairs))
    out = [np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64)]
    breaches = symmetry.symmetry_nb(
        *[np.array(cols[k], float) for k in range(4)],
        np.array(cols[4], np.int64),
        np.array(cols[5], np.int64),
        now,
        *POLICY,
        *out,
    )
    return breaches, out


@pytest.mark.parametrize(
    "pair,expected",
    [
        ((1.0, 0.0, 0.0, 100.0, 0, S), symmetry.SYM_OK),  # nothing filled yet
        ((1.0, 1.0, 1.0, 100.0, 5 * S, S), symmetry.SYM_OK),  # complete hedge, window passed
        ((1.0, 0.5, 0.4, 100.0, 5 * S, 10 * S), symmetry.SYM_DEGRADE),  # 10% apart, within window
        ((1.0, 1.0, 0.5, 100.0, 5 * S, 10 * S), symmetry.SYM_BREACH),  # 50% apart
        ((1.0, 0.5, 0.48, 100.0, 5 * S, S // 2), symmetry.SYM_BREACH),  # small gap, window over
        ((100.0, 10.0, 9.0, 1000.0, 5 * S, 10 * S), symmetry.SYM_BREACH),  # 1% apart but 1000 USDT residual
        ((1.0, math.nan, 0.0, 100.0, 0, S), symmetry.SYM_BAD),
        ((0.0, 0.0, 0.0, 100.0, 0, S), symmetry.SYM_BAD),
        ((1.0, 0.5, 0.5, -1.0, 0, S), symmetry.SYM_BAD),
    ],
)
def test_symmetry_signal_follows_policy_and_matches_reference(pair, expected):
    now = 6 * S
    breaches, out = run_pairs([pair], now)
    assert out[4][0] == expected
    assert breaches == (expected in (symmetry.SYM_BREACH, symmetry.SYM_BAD))
    ref = symmetry_one(*pair, now, *POLICY)
    assert ref == (out[0][0], out[1][0], out[2][0], int(out[3][0]), int(out[4][0]))
