"""The two-process layout on the real clock: engine process pinned, joined to the io process by
rings; the engine killed with SIGKILL mid-run comes back from its journal."""

import asyncio
import os
import signal

import pytest
from orchestration import invariants, real_time, run

from basis_core.engine.procs import engine_wait
from basis_core.engine.replay import replay
from basis_core.rings import leftovers


def _run(data, tmp_path, after_start=None):
    """Run `data` in the two-process layout; returns (runner, progress lines, problems found)."""
    lines: list[str] = []
    runner, _, found = run(data, tmp_path, after_start=after_start, layout="processes", progress=lines.append)
    return runner, lines, found


def test_engine_process_runs_pinned_and_its_journal_replays_identically(tmp_path):
    runner, lines, found = _run(real_time(5.0), tmp_path)
    assert not found + invariants(runner), found + invariants(runner)
    assert any(line.startswith("engine: core") for line in lines)
    assert runner.core.counters.events > 1000
    res = replay(tmp_path / "run")
    assert res.identical and res.digest == runner.core.digest
    ours = {f"basis-{name}" for name in runner.names.values()}
    assert ours and not ours & set(leftovers())  # the io process unlinked its rings


@pytest.mark.slow
def test_engine_killed_at_random_points_loses_no_order_and_reconciles(tmp_path):
    """SIGKILL the engine process at seeded random moments of a faulted scenario (10 kills in
    the CI form, 100 with BASIS_SOAK=full): every restart rebuilds from the journal."""
    import random

    from soak import SOAK

    kills = 10 if SOAK == "short" else 100
    rng = random.Random(5)
    faults = [
        {"kind": "timeout", "venue": "alpha", "on": "submit", "nth": 2, "reached": "random", "count": 3},
        {"kind": "rate_limit", "venue": "beta", "start_s": 4.0, "duration_s": 1.5, "retry_after_s": 0.5},
        {"kind": "ack_lost", "venue": "beta", "on": "submit", "nth": 3},
    ]
    duration = 6.0 + kills * 3.0

    async def kill_repeatedly(runner):
        async def killer():
            for _ in range(kills):
                while not (runner.engine_alive() and runner.engine_ready):
                    await asyncio.sleep(0.05)  # the new engine is up and deciding
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                os.kill(runner.engine_proc.pid, signal.SIGKILL)

        asyncio.get_running_loop().create_task(killer())

    runner, lines, found = _run(real_time(duration, faults=faults), tmp_path, after_start=kill_repeatedly)
    assert runner.restarts >= kills - 1 and runner.standby_takeovers >= 1
    assert not found + invariants(runner), found + invariants(runner)
    assert runner.reconciler.log.open() == [], runner.reconciler.log.open()
    assert runner.core.engine.state.name == "NORMAL"
    res = replay(tmp_path / "run")
    assert res.identical and res.digest == runner.core.digest


def test_engine_killed_mid_run_restarts_from_its_journal_and_reconciles(tmp_path):
    async def kill_later(runner):
        async def kill():
            await asyncio.sleep(3.0)
            os.kill(runner.engine_proc.pid, signal.SIGKILL)

        asyncio.get_running_loop().create_task(kill())

    runner, lines, found = _run(real_time(8.0), tmp_path, after_start=kill_later)
    assert runner.restarts == 1
    assert any("restarting from its journal" in line for line in lines)
    # the standby engine (started once the first was up) took over, and was back before the end
    assert runner.standby_takeovers == 1
    assert len(runner.downtimes) == 1 and any("engine process back after" in line for line in lines)
    # every order sent before or after the crash is terminal and agreed with the venue
    assert not found + invariants(runner), found + invariants(runner)
    engine = [t for t in runner.core.transitions_as_dicts() if t["machine"] == "engine"]
    assert any(t["cause"] == "engine restarted from its journal" for t in engine)
    # the journal across the crash still replays to the very same decisions
    res = replay(tmp_path / "run")
    assert res.identical and res.digest == runner.core.digest


def test_an_engine_whose_io_process_is_gone_stops_instead_of_waiting_on_a_full_order_ring(monkeypatch):
    """The order ring is full and its consumer (the engine's parent, the io process) is gone:
    pushing raises ConsumerGone (the engine process then stops) rather than spinning forever."""
    import numpy as np

    from basis_core import schema as S
    from basis_core.engine import procs
    from basis_core.errors import ConsumerGone
    from basis_core.rings import PRODUCER, Ring

    ring = Ring.create(f"gone-{os.getpid()}", 8, PRODUCER)
    try:
        records = S.aligned_empty(20)
        records[:] = np.frombuffer(S.empty(S.Kind.TIMER, 20).tobytes(), dtype=records.dtype)
        monkeypatch.setattr(procs, "_PARENT", [os.getppid()])
        procs._push(ring, records[:8])  # room for these: no wait, no check
        assert ring.published == 8
        monkeypatch.setattr(procs, "_PARENT", [-1])  # as if our parent had changed
        with pytest.raises(ConsumerGone, match="io process is gone"):
            procs._push(ring, records[8:])
        assert ring.published == 8  # nothing was lost or overwritten
    finally:
        ring.close()


def test_the_engine_loop_waits_as_configured():
    from basis_core.rings.wait import BackoffSleep, BusySpin, Yield

    assert isinstance(engine_wait("spin"), BusySpin) and engine_wait("spin").spin_us <= 1.0
    assert isinstance(engine_wait("yield"), Yield)
    sleep = engine_wait("sleep")
    assert isinstance(sleep, BackoffSleep) and sleep.max_us <= 200.0
    with pytest.raises(ValueError, match="unknown wait strategy"):
        engine_wait("nap")
