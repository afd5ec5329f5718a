"""`basis ctl`: a running engine steered through its control socket, in both layouts.

Every command is sent while the run goes on; the venues show its effect (nothing submitted to a
paused venue, no entry after a halt, nothing left open after cancel-all and flatten), the
engine's own answers refuse what they must, and `basis replay` of the steered run re-decides it
byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys

import orjson
import pytest
from orchestration import invariants, run, scenario, venue_agreement

from adapters.sim.world import SimWorld
from basis_core.cli.ctl import ask
from basis_core.config import from_dict
from basis_core.engine.control import ControlServer, socket_path
from basis_core.engine.replay import replay
from basis_core.engine.scenario import run_scenario
from basis_core.venue import coid_from_wire


async def _ask(run_dir, command: str, *args: str) -> dict:
    """One request on the run's own loop (on the virtual clock, at a known simulated time)."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path(run_dir)))
    writer.write(orjson.dumps({"cmd": command, "args": list(args)}) + b"\n")
    line = await reader.readline()
    writer.close()
    return orjson.loads(line)


def _record_submits(world, submits: list) -> None:
    """Every order each venue is asked to place, with the time it was asked."""
    for name, venue in world.venues.items():

        def wrap(submit, name=name):
            async def submit_logged(order):
                submits.append((world.clock.now_ns(), name, order.coid))
                return await submit(order)

            return submit_logged

        venue.submit = wrap(venue.submit)


async def _steer(runner, run_dir, sleep, marks: dict, answers: dict) -> None:
    """Every command, in an order that lets each one's effect be seen."""
    now = runner.now_ns
    await sleep(2.0)
    answers["status"] = await _ask(run_dir, "status")
    answers["resume-normal"] = await _ask(run_dir, "resume")
    answers["unknown-venue"] = await _ask(run_dir, "pause-venue", "nowhere")
    answers["loosen"] = await _ask(run_dir, "set-limit", "max_order_usdt", "1e9")
    answers["lower-edge"] = await _ask(run_dir, "set-limit", "min_edge_bps", "1")
    answers["unknown-limit"] = await _ask(run_dir, "set-limit", "max_leverage", "2")
    answers["unknown-command"] = await _ask(run_dir, "explode")
    answers["not-paused"] = await _ask(run_dir, "resume-venue", "alpha")
    answers["set-limit"] = await _ask(run_dir, "set-limit", "max_order_usdt", "800")
    marks["limit"] = now()
    answers["pause"] = await _ask(run_dir, "pause-venue", "alpha")
    marks["pause"] = now()
    await sleep(2.5)
    marks["resume-venue"] = now()
    answers["resume-venue"] = await _ask(run_dir, "resume-venue", "alpha")
    await sleep(1.5)
    answers["cancel-all"] = await _ask(run_dir, "cancel-all")
    answers["halt"] = await _ask(run_dir, "halt")
    marks["halt"] = now()
    await sleep(1.5)
    answers["flatten"] = await _ask(run_dir, "flatten")
    await sleep(2.0)
    marks["flat"] = now()
    answers["flat"] = await _ask(run_dir, "status")
    answers["open"] = {n: len(await v.open_orders()) for n, v in runner.venues.items()}
    marks["resume"] = now()
    for _ in range(40):  # resume is refused until a reconciliation pass has been clean
        answers["resume"] = await _ask(run_dir, "resume")
        if answers["resume"]["ok"]:
            break
        await sleep(0.25)
    marks["resumed"] = now()


def _check(runner, run_dir, submits, marks, answers) -> None:
    refused = {
        "resume-normal": "not HALTED",
        "unknown-venue": "unknown venue",
        "loosen": "outside the bounds",
        "lower-edge": "outside the bounds",
        "unknown-limit": "unknown limit",
        "unknown-command": "unknown command",
        "not-paused": "not paused",
    }
    for key, reason in refused.items():
        assert not answers[key]["ok"] and reason in answers[key]["error"], (key, answers[key])
    for key in ("status", "set-limit", "pause", "resume-venue", "cancel-all", "halt", "flatten", "resume"):
        assert answers[key]["ok"], (key, answers[key])
    assert answers["status"]["status"]["engine"]["state"] == "NORMAL"
    assert answers["pause"]["status"]["venues"]["alpha"]["paused"]
    assert answers["set-limit"]["status"]["limits"]["max_order_usdt"] == 800
    # a paused venue is sent nothing; entries stop at the halt and come back only after resume
    orders = runner.core.orders
    assert not [s for s in submits if s[1] == "alpha" and marks["pause"] <= s[0] < marks["resume-venue"]]
    entries = [
        (t, orders.get(coid_from_wire(coid)))
        for t, _, coid in submits
        if orders.get(coid_from_wire(coid)).purpose == "entry"
    ]
    assert entries and not [o for t, o in entries if marks["halt"] <= t < marks["resumed"]]
    # entries after set-limit stay under the new notional cap
    assert all(o.qty * o.price <= 800 * 1.01 for t, o in entries if t > marks["limit"])
    # nothing working after cancel-all and flatten: every position flat or hedged
    flat = answers["flat"]["status"]
    assert not flat["working_orders"] and answers["open"] == {n: 0 for n in runner.venues}
    assert flat["residual_usdt"] < runner.core.policy.residual_tolerance_usdt * len(flat["positions"] or [1])
    assert flat["engine"]["state"] == "HALTED"
    assert answers["resume"]["status"]["engine"]["state"] in ("RECONCILING", "NORMAL")
    steered = {c for _, c, a in runner.core.operator_log if a.startswith("accepted")}
    assert steered == {"halt", "resume", "flatten", "cancel_all", "pause_venue", "resume_venue", "set_limit"}
    res = replay(run_dir)
    assert res.identical and res.digest == runner.core.digest
    assert not socket_path(run_dir).exists()  # removed when the run ended


def test_every_ctl_command_steers_a_virtual_clock_run(tmp_path):
    submits: list = []
    marks: dict = {}
    answers: dict = {}
    run_dir = tmp_path / "run"

    async def after_start(runner):
        runner.supervisor.spawn(_steer(runner, run_dir, asyncio.sleep, marks, answers))

    runner, world, found = run(
        scenario(duration_s=16.0),
        tmp_path,
        after_start=after_start,
        setup=lambda w: _record_submits(w, submits),
    )
    assert not found + invariants(runner), found + invariants(runner)
    _check(runner, run_dir, submits, marks, answers)


def test_every_ctl_command_steers_a_real_clock_engine_process(tmp_path):
    data = scenario(duration_s=16.0)
    data["run"]["clock"] = "real"
    data["cpu"] = {"engine": 1, "io": 0}
    data["market"]["dislocations_per_min"] = 30.0
    cfg = from_dict(data)
    world = SimWorld.from_config(cfg)
    submits: list = []
    marks: dict = {}
    answers: dict = {}
    found: list = []
    run_dir = tmp_path / "run"
    _record_submits(world, submits)

    async def after_start(runner):
        runner.supervisor.spawn(_steer(runner, run_dir, asyncio.sleep, marks, answers))

    async def before_close(runner):
        found.extend(await venue_agreement(runner))
        # `basis ctl` itself, as a person runs it
        cli = [sys.executable, "-m", "basis_core", "ctl", str(run_dir)]
        for args, code, out in (
            (["status"], 0, '"engine"'),
            (["pause-venue", "nowhere"], 1, "unknown venue"),
        ):
            done = await asyncio.to_thread(subprocess.run, [*cli, *args], capture_output=True, text=True)
            assert done.returncode == code and out in done.stdout + done.stderr, done

    runner = asyncio.run(
        run_scenario(
            cfg,
            run_dir,
            world,
            progress=lambda line: None,
            layout="processes",
            before_close=before_close,
            after_start=after_start,
        )
    )
    assert not found + invariants(runner), found + invariants(runner)
    _check(runner, run_dir, submits, marks, answers)


def test_ctl_with_no_engine_listening_exits_non_zero(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "basis_core", "ctl", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "no engine listens" in out.stderr


def test_the_socket_is_0600_and_another_uid_is_refused(tmp_path):
    path = tmp_path / "ctl.sock"

    async def main():
        server = await ControlServer(None, path, uid=os.getuid() + 1).open()  # type: ignore[arg-type]
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            answer = await asyncio.to_thread(ask, str(tmp_path), "status", [])
        finally:
            server.close()
        return answer

    answer = asyncio.run(main())
    assert not answer["ok"] and f"uid {os.getuid()} may not steer" in answer["error"]


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_another_user_cannot_even_connect(tmp_path):
    path = tmp_path / "ctl.sock"
    os.chmod(tmp_path, 0o755)

    async def main():
        server = await ControlServer(None, path).open()  # type: ignore[arg-type]
        try:
            return await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", _AS_NOBODY, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            server.close()

    out = asyncio.run(main())
    assert out.stdout.strip() == "PermissionError", out


_AS_NOBODY = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""
