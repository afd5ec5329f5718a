"""Execution styles within the residual limit (issue #19): `[policy] taker_residual_cap` sizes
each taker opportunity so that one leg filled alone stays inside max_residual_usdt."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from basis_core.engine.replay import replay
from basis_core.engine.report import build_report
from tests.orchestration import DEFAULT, config_error, invariants, run

#: long enough for the default scenario's timeout, 429 burst and gamma's maintenance
CAPPED_S = 32.0


def default_scenario(duration_s: float, **policy) -> dict:
    """The default scenario with its faults, shortened, with `policy` set."""
    data = tomllib.loads(Path(DEFAULT).read_text())
    data["run"]["duration_s"] = duration_s
    data.setdefault("policy", {}).update(policy)
    return data


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("capped")
    runner, world, problems = run(default_scenario(CAPPED_S, taker_residual_cap=True), tmp)
    return runner, world, problems, tmp


def test_capped_taker_keeps_the_residual_under_the_limit(capped):
    runner, world, problems, _ = capped
    core, policy = runner.core, runner.core.policy
    assert policy.execution == "taker" and policy.taker_residual_cap
    assert problems == [] and invariants(runner) == []
    assert {f.kind for f in world.faults.log} >= {"timeout", "rate_limit", "maintenance"}
    report = build_report(runner, 1.0)
    assert 0 < report["max_residual_exposure_usdt"] <= policy.max_residual_usdt
    assert report["open_positions"] == []
    book = core.orders.orders
    assert len(core.positions) > 10
    for pos in core.positions.values():
        assert not pos.parent and not pos.maker  # one pair of IOC legs per opportunity
        # sized so that either leg filled alone stays within the limit (at its limit price)
        for coid in (pos.buy.coid, pos.sell.coid):
            o = book[coid]
            assert o.qty * o.price <= policy.max_residual_usdt * policy.slice_residual_fraction + 1e-6
    # (tests/test_sliced.py: uncapped, the same market puts more than the limit in flight)


def test_a_capped_taker_run_replays_to_the_same_decisions(capped):
    runner, _, _, tmp = capped
    res = replay(tmp / "run")
    assert res.identical and res.commands > 0
    assert res.digest == runner.core.digest


def test_taker_residual_cap_is_a_bool(tmp_path):
    err = config_error(tmp_path, '[policy]\ntaker_residual_cap = "yes"\n')
    assert "policy.taker_residual_cap" in str(err)
