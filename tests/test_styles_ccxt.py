"""The sliced style and the residual-capped taker through real ccxt against two loopback Binance
emulators (examples/ccxt-local.toml): what the simulated venues show holds on the emulated
exchange too (maker_taker's run is in test_maker_taker.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.ccxt.local import LocalCcxtWorld
from basis_core.config import load
from basis_core.engine.replay import replay
from basis_core.engine.report import build_report
from basis_core.engine.scenario import run_scenario

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "ccxt-local.toml"


def _run(tmp_path, **policy):
    cfg = load(CONFIG)
    cfg = replace(cfg, run=replace(cfg.run, duration_s=8.0), policy=replace(cfg.policy, **policy))
    world = LocalCcxtWorld.from_config(cfg)
    runner = asyncio.run(run_scenario(cfg, tmp_path, world, progress=lambda line: None, settle_s=1.0))
    return runner, build_report(runner, 1.0)


@pytest.mark.parametrize(
    "policy",
    [{"execution": "sliced"}, {"execution": "taker", "taker_residual_cap": True}],
    ids=["sliced", "taker-capped"],
)
def test_style_on_the_ccxt_emulators_stays_within_the_residual_limit_and_replays(tmp_path, policy):
    runner, report = _run(tmp_path, **policy)
    core = runner.core
    assert report["final_engine_state"] == "NORMAL" and report["open_positions"] == []
    assert report["reconciliation"] == dict.fromkeys(("order", "position", "balance", "reporting"), 0)
    assert 0 < report["max_residual_exposure_usdt"] <= core.policy.max_residual_usdt
    book = core.orders.orders
    assert sum(o.filled > 0 for o in book.values()) >= 2  # it traded on the emulators
    for o in book.values():
        assert o.terminal, (o.coid, o.state)
    if policy["execution"] == "sliced":
        ex = report["execution"]
        assert ex["style"] == "sliced" and ex["slices"] >= ex["sliced_opportunities"] > 0
    res = replay(tmp_path)
    assert res.identical and res.digest == core.digest
