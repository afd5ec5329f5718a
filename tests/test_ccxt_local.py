"""The full orchestrator over two emulator venues through real ccxt (examples/ccxt-local.toml)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from soak import SOAK

from adapters.ccxt.local import LocalCcxtWorld
from basis_core.config import load
from basis_core.engine.scenario import run_scenario
from basis_core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ccxt-local.toml"


@pytest.mark.slow
def test_hedged_round_trips_through_ccxt_and_the_emulators(tmp_path):
    cfg = load(EXAMPLE)
    cfg = replace(cfg, run=replace(cfg.run, duration_s=8.0 if SOAK == "short" else 30.0))
    world = LocalCcxtWorld.from_config(cfg)
    runner = asyncio.run(run_scenario(cfg, tmp_path, world, progress=lambda line: None, settle_s=1.0))
    counters = runner.core.counters
    placed = {name: [p.coid for p in emu.placed] for name, emu in world.emulators.items()}
    assert all(placed.values()), f"both venues must have traded: {placed}"
    for name, emu in world.emulators.items():
        coids = placed[name]
        assert len(coids) == len(set(coids))  # no duplicate order on any venue
        accepted = [s for m, path, s in emu.log if (m, path, s) == ("POST", "/api/v3/order", 200)]
        assert len(accepted) == len(coids)  # every accepted POST is one order
        assert emu.limiter.counts[418] == 0
    assert counters.orders_submitted >= sum(len(c) for c in placed.values())
    assert counters.hedges_completed >= 1 and counters.orders_filled >= 2


def test_the_local_world_refuses_what_the_emulator_cannot_do():
    cfg = load(EXAMPLE)
    with pytest.raises(ConfigError, match="run.clock"):
        LocalCcxtWorld.from_config(replace(cfg, run=replace(cfg.run, clock="virtual")))
    inst = dict(cfg.instruments)
    inst["east-BTCPERP"] = replace(inst["east-BTCUSDT"], kind="perp")  # one venue: spot or USDⓈ-M
    with pytest.raises(ConfigError, match="mixes spot and perps"):
        LocalCcxtWorld.from_config(replace(cfg, instruments=inst))
