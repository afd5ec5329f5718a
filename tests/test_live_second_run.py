"""A second `basis run` on exchanges an earlier run traded: the perp position the venue holds is
taken over as the new run's opening position (examples/live-local.toml, two emulators started by
the documented command)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import test_live_ccxt_run as live
from test_live_ccxt_run import BASIS, KINDS, _client
from test_run_signals import _finish, _start

emulated = live.emulated  # two emulators serving a short copy of examples/live-local.toml


async def _perp(url: str, secrets_dir) -> tuple[float, float]:
    """The account's position on the usdm emulator: (signed qty, entry price), through ccxt."""
    ex = _client("beta", url, secrets_dir)
    try:
        await ex.load_markets()
        qty = entry = 0.0
        for p in await ex.fetch_positions([KINDS["beta"][2]]):
            qty += float(p["info"]["positionAmt"])
            entry = float(p["info"]["entryPrice"]) or entry
        return qty, entry
    finally:
        await ex.close()


async def _open_short(url: str, secrets_dir, qty: float) -> None:
    """A position on the venue that no run of ours made (an operator's, say)."""
    ex = _client("beta", url, secrets_dir)
    try:
        await ex.load_markets()
        await ex.create_order(KINDS["beta"][2], "market", "sell", qty)
    finally:
        await ex.close()


def _run(config, run_dir, duration: float) -> tuple[dict, str]:
    done = subprocess.run(
        [*BASIS, "run", str(config), "--run-dir", str(run_dir), "--duration", str(duration)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    found = (
        sqlite3.connect(run_dir / "results.sqlite")
        .execute("SELECT layer, key, ours, theirs, cause FROM recon_exceptions")
        .fetchall()
    )
    assert report["reconciliation"] == dict.fromkeys(("order", "position", "balance", "reporting"), 0), found
    assert report["final_engine_state"] == "NORMAL", report["state_transitions"][-5:]
    return report, done.stdout


def test_a_second_run_takes_over_the_perp_position_the_first_left_and_reconciles_clean(emulated):
    config, procs, urls = emulated
    secrets = config.parent
    first, _ = _run(config, secrets / "run1", 6.0)
    assert first["adopted_positions"] == []  # fresh emulators: nothing to take over
    held, _ = asyncio.run(_perp(urls["beta"], secrets))
    if abs(held) < 1e-9:  # the first run ended flat on the perp: leave one there all the same
        asyncio.run(_open_short(urls["beta"], secrets, 0.01))
    held, entry = asyncio.run(_perp(urls["beta"], secrets))
    assert abs(held) > 1e-9 and entry > 0

    run2 = secrets / "run2"
    second, said = _run(config, run2, 6.0)
    assert f"adopted: beta holds {held:+g} beta-BTCUSDT" in said, said[-3000:]
    ((adopted),) = second["adopted_positions"]
    assert (adopted["venue"], adopted["instrument"]) == ("beta", "beta-BTCUSDT")
    assert abs(adopted["qty_at_start"] - held) < 1e-9
    assert abs(adopted["entry_price"] - entry) <= 1e-9 * entry
    # the ledger's position at the end is the venue's: the opening one plus the run's own fills
    now, _ = asyncio.run(_perp(urls["beta"], secrets))
    assert abs(adopted["qty_at_end"] - now) < 1e-9
    ((own,),) = (
        sqlite3.connect(run2 / "results.sqlite")
        .execute(
            "SELECT COALESCE(SUM(CASE WHEN LOWER(side) = 'buy' THEN qty ELSE -qty END), 0) FROM fills"
            " WHERE venue = 'beta' AND instrument = 'beta-BTCUSDT'"
        )
        .fetchall()
    )
    assert abs(held + own - now) < 1e-9
    # the run's log says what was taken over
    log = (run2 / "log.jsonl").read_text()
    assert '"position_adopted"' in log
    # the opening position is journaled before trading: a replay decides the same
    replayed = subprocess.run(
        [sys.executable, "-m", "basis_core", "replay", str(run2)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert second["decision_digest"] in replayed.stdout and "equal to the run's" in replayed.stdout

    # a third run on live venues stopped at once (a second Ctrl-C) says how to take it up again
    run3 = secrets / "run3"
    proc = _start(config, run3)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    code, out, _ = _finish(proc)
    assert code == 130, out[-3000:]
    assert f"take the run up again with `basis run --resume --run-dir {run3}`" in out, out[-3000:]
