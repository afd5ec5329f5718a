"""Venue faults injected into the emulators while the orchestrator trades through real ccxt.

Each case runs examples/ccxt-local.toml for a few seconds with one fault on venue "west" and
checks the failure mode the design asks for, from the engine's state timeline and from what
actually reached the emulator.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path

import pytest
from soak import SOAK

from adapters.ccxt.local import LocalCcxtWorld
from basis_core.config import load
from basis_core.engine.scenario import run_scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ccxt-local.toml"


def run_with(fault, tmp_path):
    """Run the example with `fault(emulator, loop)` applied to west when the market starts."""
    cfg = load(EXAMPLE)
    cfg = replace(cfg, run=replace(cfg.run, duration_s=8.0 if SOAK == "short" else 30.0))
    world = LocalCcxtWorld.from_config(cfg)
    west = world.emulators["west"]
    start_market = world.start_market

    def start(**kw):
        fault(west, asyncio.get_running_loop())
        return start_market(**kw)

    world.start_market = start

    async def bounded():
        task = asyncio.ensure_future(
            run_scenario(cfg, tmp_path, world, progress=lambda line: None, settle_s=1.0)
        )
        done, _ = await asyncio.wait({task}, timeout=cfg.run.duration_s + 60)
        if not done:  # name what it waits for instead of hanging the suite
            stacks = io.StringIO()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.print_stack(limit=8, file=stacks)
            task.cancel()
            pytest.fail("the run did not finish; waiting tasks:\n" + stacks.getvalue())
        return task.result()

    runner = asyncio.run(bounded())
    moves = [
        (t["machine"], t["from"], t["to"])
        for t in runner.core.transitions_as_dicts()
        if not t["machine"].startswith("hedge")
    ]
    coids = [p.coid for p in west.placed]
    assert len(coids) == len(set(coids)), "a duplicate order reached the venue"
    return west, moves


@pytest.mark.slow
def test_maintenance_quarantines_the_venue_and_nothing_is_dispatched_until_it_answers(tmp_path):
    def fault(emu, loop):
        loop.call_later(2.5, setattr, emu.faults, "maintenance", "json")
        loop.call_later(4.5, setattr, emu.faults, "maintenance", "")

    west, moves = run_with(fault, tmp_path)
    assert ("venue:west", "UP", "QUARANTINED") in moves
    assert ("venue:west", "QUARANTINED", "SUSPECT") in moves
    assert ("POST", "/api/v3/order", 503) not in west.log  # no order sent into the outage


@pytest.mark.slow
def test_a_429_storm_throttles_the_venue_degrades_the_engine_and_never_reaches_a_ban(tmp_path):
    def fault(emu, loop):
        def burn():  # someone else spent our weight
            emu.exhaust_weight(window_s=2.0)

        loop.call_later(2.5, burn)

    # real time: the storm must meet the engine while it is trading normally; a run whose first
    # opportunities breached (PROTECTIVE, so nothing new is sent to west) is tried again
    for attempt in range(3):
        west, moves = run_with(fault, tmp_path / f"attempt{attempt}")
        if ("venue:west", "UP", "THROTTLED") in moves:
            break
    assert ("venue:west", "UP", "THROTTLED") in moves
    assert ("engine", "NORMAL", "DEGRADED") in moves
    assert west.limiter.counts[429] >= 1 and west.limiter.counts[418] == 0


@pytest.mark.slow
@pytest.mark.parametrize("fault_name", ["slow_submit", "empty_reply"])
def test_an_unknown_submit_outcome_makes_the_venue_suspect_until_verified_by_client_id(tmp_path, fault_name):
    def fault(emu, loop):
        setattr(emu.faults, fault_name, 2)
        emu.faults.slow_s = 3.0  # past the 2 s client timeout

    west, moves = run_with(fault, tmp_path)
    assert ("venue:west", "UP", "SUSPECT") in moves
    assert ("venue:west", "SUSPECT", "UP") in moves
    assert len(west.placed) >= 2  # the uncertain ones were placed once


@pytest.mark.slow
def test_insufficient_funds_on_the_hedge_leg_leads_to_protection_and_unwind(tmp_path):
    def fault(emu, loop):  # west refuses every order: whenever west holds the
        emu.faults.insufficient_balance = 10**6  # hedge leg, the first leg is left unhedged

    west, moves = run_with(fault, tmp_path)
    assert ("engine", "NORMAL", "PROTECTIVE") in moves
    assert ("engine", "PROTECTIVE", "UNWINDING") in moves
    assert any(m == ("POST", "/api/v3/order", 400) for m in west.log)
