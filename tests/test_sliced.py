"""`[policy] execution = "sliced"`: an opportunity split into slices, each completed before the
next, each small enough that one leg filled alone stays within max_residual_usdt."""

from __future__ import annotations

import pytest

from basis_core.engine.replay import replay
from basis_core.engine.report import build_report, shortfall_rows
from basis_core.state.tables import OrderState
from tests.orchestration import config_error, invariants, run, scenario

DURATION_S = 15.0


@pytest.fixture(scope="module")
def taker(tmp_path_factory):
    """The taker style without its residual cap (taker_residual_cap = false)."""
    policy = {"taker_residual_cap": False}
    return run(scenario(duration_s=DURATION_S, policy=policy), tmp_path_factory.mktemp("taker"))


@pytest.fixture(scope="module")
def sliced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sliced")
    runner, world, problems = run(scenario(duration_s=DURATION_S, policy={"execution": "sliced"}), tmp)
    return runner, world, problems, tmp


def test_uncapped_taker_puts_more_than_the_residual_limit_in_flight(taker):
    runner, _, problems = taker
    assert problems == []
    limit = runner.core.policy.max_residual_usdt
    assert build_report(runner, 1.0)["max_residual_exposure_usdt"] > limit


def test_sliced_keeps_the_residual_under_the_limit_and_ends_within_policy(sliced):
    runner, _, problems, _ = sliced
    core, policy = runner.core, runner.core.policy
    assert problems == []  # every order terminal and agreed with its venue
    assert invariants(runner) == []
    report = build_report(runner, 1.0)
    assert 0 < report["max_residual_exposure_usdt"] <= policy.max_residual_usdt
    assert report["open_positions"] == []
    assert report["asymmetric_episodes"] == 0
    ex = report["execution"]
    assert ex["style"] == "sliced" and ex["slices"] > ex["sliced_opportunities"] > 0
    assert sum(ex["slicing_ended"].values()) == ex["sliced_opportunities"]
    assert not core.slicing  # every parent ended: nothing held after the run


def test_slices_are_sequential_capped_and_keep_their_parents_id(sliced):
    runner, _, _, _ = sliced
    core, policy = runner.core, runner.core.policy
    book = core.orders.orders
    parents: dict[int, list] = {}
    for pos in sorted(core.positions.values(), key=lambda p: p.opp_id):
        assert pos.parent, f"opportunity {pos.opp_id} is not a slice"
        parents.setdefault(pos.parent, []).append(pos)
    assert any(len(s) > 1 for s in parents.values())
    for parent_id, slices in parents.items():
        first = slices[0]
        assert first.opp_id == parent_id  # the parent keeps its id: its first slice's
        assert first.planned_qty >= sum(p.qty for p in slices) - 1e-9
        for prev, nxt in zip(slices, slices[1:], strict=False):
            done = max(o.machine.since_ns for o in prev.orders(book))
            assert all(o.terminal for o in prev.orders(book))
            assert done <= nxt.created_ns  # each slice completed before the next was sent
            assert nxt.created_ns - prev.created_ns >= policy.slice_interval_ms * 1e6
        for pos in slices:
            # one leg filled alone stays inside the limit (the slice was sized against it)
            assert pos.qty * pos.buy.signal_px <= policy.max_residual_usdt * policy.slice_residual_fraction
            entry = book[pos.buy.coid]
            assert entry.state in (OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED)
    # shortfall: one row per parent, against the parent's first mids and its planned quantity
    rows = {r.opportunity_id: r for r in shortfall_rows(core, runner.ledger)}
    assert set(rows) == set(parents)
    for parent_id, slices in parents.items():
        assert rows[parent_id].slices == len(slices)
        assert rows[parent_id].qty == slices[0].planned_qty
        assert rows[parent_id].mid_buy == slices[0].mid_buy


def test_primary_then_hedge_slices_keep_the_primary_within_the_limit(tmp_path):
    data = scenario(duration_s=DURATION_S, policy={"execution": "sliced", "dispatch": "primary_then_hedge"})
    runner, _, problems = run(data, tmp_path)
    assert problems == [] and invariants(runner) == []
    report = build_report(runner, 1.0)
    assert report["execution"]["slices"] > report["execution"]["sliced_opportunities"] > 0
    assert 0 < report["max_residual_exposure_usdt"] <= runner.core.policy.max_residual_usdt
    assert report["open_positions"] == []


def test_a_sliced_run_replays_to_the_same_decisions(sliced):
    runner, _, _, tmp = sliced
    res = replay(tmp / "run")
    assert res.identical and res.commands > 0
    assert res.digest == runner.core.digest
    assert res.core.slice_ends == runner.core.slice_ends


def test_sliced_settings_are_checked(tmp_path):
    err = config_error(tmp_path, '[policy]\nexecution = "iceberg"\n')
    assert "policy.execution" in str(err)
    err = config_error(tmp_path, "[policy]\nslice_residual_fraction = 0.0\n")
    assert "policy.slice_residual_fraction" in str(err)
    err = config_error(tmp_path, "[policy]\nmax_slices = 0\n")
    assert "policy.max_slices" in str(err)


def test_basis_styles_prints_the_styles_side_by_side(tmp_path, capsys):
    from basis_core.cli import main
    from basis_core.engine.styles import with_style
    from basis_core.errors import ConfigError

    assert main(["styles", "--duration", "6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()}
    for style in ("taker", "sliced", "maker_taker"):
        assert len(rows[style]) >= 7
        assert (tmp_path / style / "report.json").is_file()
    with pytest.raises(ConfigError, match="iceberg"):
        with_style(None, "iceberg")  # type: ignore[arg-type]
