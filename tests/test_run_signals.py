"""`basis run` stopped by a signal: the first SIGINT / SIGTERM settles, cancels, reconciles and
writes the report (exit 0); a second one stops at once (exit 130) and leaves a journal that
`basis replay` reads. Each run is a real `basis run` process on the real clock (io process,
engine process, standby), signalled once it trades."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from basis_core.engine.replay import replay
from basis_core.scenarios import DEFAULT

BASIS = [sys.executable, "-m", "basis_core"]
_SEEN: dict[int, list[str]] = {}  # what each started run printed before it was signalled


def _real_clock_config(tmp_path: Path, clock: str = "real") -> Path:
    """The default scenario without its scheduled faults, dislocations often enough that a few
    seconds trade, a minute long (it is stopped long before)."""
    text = Path(DEFAULT).read_text()
    text = text[: text.index("# One of each family of fault")]
    text = text.replace('clock = "virtual"', f'clock = "{clock}"')
    text = text.replace("dislocations_per_min = 6.0", "dislocations_per_min = 30.0")
    if clock == "virtual":
        text = text.replace("duration_s = 60.0", "duration_s = 3000.0")
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def _start(config: Path, run_dir: Path) -> subprocess.Popen:
    """`basis run` in a session of its own (so a signal to its group is a terminal's Ctrl-C),
    returned once it has printed its first progress line (it trades)."""
    proc = subprocess.Popen(
        [*BASIS, "run", str(config), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.lstrip().startswith("t="):
            _SEEN[proc.pid] = seen
            return proc
    proc.kill()
    raise AssertionError("basis run printed no progress line:\n" + "".join(seen))


def _finish(proc: subprocess.Popen, timeout_s: float = 90) -> tuple[int, str, float]:
    """Exit status, the whole output and how long the process took to exit from now."""
    t0 = time.monotonic()
    out, _ = proc.communicate(timeout=timeout_s)
    return proc.returncode, "".join(_SEEN.pop(proc.pid)) + out, time.monotonic() - t0


def _engine_processes(pgid: int) -> list[str]:
    """Processes of the run's session still running (the engine, its standby); an exited one
    not yet reaped by init (a zombie) has ended."""
    out = subprocess.run(
        ["ps", "-o", "stat=,pid=,cmd=", "-g", str(pgid)], capture_output=True, text=True
    ).stdout
    return [line for line in out.splitlines() if line.strip() and not line.lstrip().startswith("Z")]


def _assert_stopped_in_order(run_dir: Path, code: int, out: str, sig: str) -> None:
    assert code == 0, out
    assert f"stopping ({sig}): no new entries, settling" in out, out
    assert f"stopped ({sig}): 0 position(s) and 0 order(s) left unsettled; last reconciliation clean" in out
    report = orjson.loads((run_dir / "report.json").read_bytes())
    assert (run_dir / "results.sqlite").stat().st_size > 0 and (run_dir / "report.html").exists()
    assert report["orders_filled"] > 0, "the run was stopped before it traded"
    assert report["reconciliation"] == {"balance": 0, "order": 0, "position": 0, "reporting": 0}
    assert not report["open_positions"]
    assert report["order_states"].keys() <= {"FILLED", "CANCELED", "EXPIRED", "REJECTED"}, report
    # the engine was told through journaled records: SHUTDOWN then HALT, as `basis ctl halt`
    assert report["final_engine_state"] == "HALTED"
    res = replay(run_dir)
    assert res.identical and res.digest == report["decision_digest"]
    log = [orjson.loads(line) for line in (run_dir / "log.jsonl").read_bytes().splitlines()]
    assert any(e["event"] == "stopped" and e["signal"] == sig for e in log)


def test_ctrl_c_to_the_process_group_settles_reconciles_and_writes_the_report(tmp_path):
    """SIGINT to the whole group, as a terminal's Ctrl-C sends it: the engine process and the
    standby leave it to the io process, which stops the run in order."""
    run_dir = tmp_path / "run"
    proc = _start(_real_clock_config(tmp_path), run_dir)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    code, out, _ = _finish(proc)
    _assert_stopped_in_order(run_dir, code, out, "SIGINT")
    assert not _engine_processes(proc.pid), "a process of the run outlived it"


def test_sigterm_settles_reconciles_and_writes_the_report(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(_real_clock_config(tmp_path), run_dir)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    code, out, _ = _finish(proc)
    _assert_stopped_in_order(run_dir, code, out, "SIGTERM")
    assert not _engine_processes(proc.pid)


def test_second_sigint_stops_at_once_and_leaves_a_replayable_journal(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(_real_clock_config(tmp_path), run_dir)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    code, out, took = _finish(proc)
    assert code == 130, out
    assert "stopping at once (SIGINT)" in out and "no report was written" in out
    assert took < 10, f"a second SIGINT took {took:.1f} s to stop the run"
    assert not (run_dir / "report.json").exists()
    assert not _engine_processes(proc.pid)
    res = replay(run_dir)  # scenario.json, registry.json and a journal of whole records
    assert res.identical and res.batches > 0


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_virtual_clock_run_stops_in_order_too(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = _start(_real_clock_config(tmp_path, clock="virtual"), run_dir)
    proc.send_signal(sig)
    code, out, _ = _finish(proc)
    assert code == 0, out
    assert "stopping (SIGINT): no new entries" in out
    report = orjson.loads((run_dir / "report.json").read_bytes())
    assert report["final_engine_state"] == "HALTED" and not report["open_positions"]
    assert replay(run_dir).digest == report["decision_digest"]


def test_a_stop_request_while_the_run_settles_cancels_entries_without_cutting_the_settle_short(tmp_path):
    """A signal after the duration, while the run settles: no busy loop, the settle goes on (on
    the virtual clock a loop that never yields would never end), the entries are halted."""
    import threading

    from orchestration import run, scenario

    outcome: dict = {}

    async def after_start(runner):
        settle = runner.settle

        async def settle_after_a_stop_request(*args, **kw):
            runner.request_stop("SIGTERM")
            await settle(*args, **kw)

        runner.settle = settle_after_a_stop_request

    def go():
        outcome["runner"], _, outcome["found"] = run(
            scenario(duration_s=6.0), tmp_path, after_start=after_start
        )

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the run did not end: a stop request while settling hung it"
    runner = outcome["runner"]
    assert runner.stop_requested == "SIGTERM"
    assert runner.core.engine.state.name == "HALTED" and runner.settled()
    assert any(cmd == "halt" for _, cmd, _ in runner.core.operator_log)
