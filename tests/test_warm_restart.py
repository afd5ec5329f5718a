"""Warm restart of `basis run` (basis_core/engine/resume.py): every process of a run on two
emulated exchanges is SIGKILLed while it trades, and `basis run --resume` on the same run
directory takes it up: nothing is sent twice, what was hedged stays hedged, the order in flight
is resolved as the venue reports it, the ledger matches the venues, reconciliation is clean.
Also the rule for a run directory: an unfinished run is never silently appended to."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from adapters.emulator.harness import binance_client
from basis_core import schema as S
from basis_core.cli import main as cli
from basis_core.config import JournalConfig
from basis_core.engine.replay import replay
from basis_core.engine.resume import FINISHED, NEW, UNFINISHED, check_run_dir, clear_finished, state_of
from basis_core.errors import ConfigError
from basis_core.journal import JournalReader, JournalWriter
from basis_core.state.tables import HedgeState
from basis_core.venue import coid_from_wire

#: two spot venues on `basis emulator`s, as examples/live-local.toml ran them before its beta became
#: a USDⓈ-M venue; a dislocation a second on average, so orders come within seconds of the start
CONFIG = """
[run]
name = "live-local"
seed = 11
duration_s = 60.0
out_dir = "runs"
clock = "real"

[venues.alpha]
kind = "ccxt"
taker_fee_bps = 10.0
maker_fee_bps = 2.0
balances = { USDT = 200000.0, BTC = 4.0 }

[venues.alpha.ccxt]
exchange = "binance"
base_url = "{alpha}"
timeout_ms = 2000
market_data = "ws"
credentials = { secrets_file = "alpha.secrets.toml" }

[venues.beta]
kind = "ccxt"
taker_fee_bps = 7.5
maker_fee_bps = 1.0
balances = { USDT = 200000.0, BTC = 4.0 }

[venues.beta.ccxt]
exchange = "binance"
base_url = "{beta}"
timeout_ms = 2000
market_data = "ws"
credentials = { secrets_file = "beta.secrets.toml" }

[instruments.alpha-BTCUSDT]
venue = "alpha"
symbol = "BTC/USDT"
base = "BTC"
tick = 0.01
lot = 0.00001
min_notional = 5.0

[instruments.beta-BTCUSDT]
venue = "beta"
symbol = "BTC/USDT"
base = "BTC"
tick = 0.01
lot = 0.00001
min_notional = 5.0

[limits]
max_order_usdt = 5000.0
max_position_usdt = 20000.0
max_residual_usdt = 2000.0
hedge_window_s = 2.0
unwind_window_s = 10.0
max_slippage_bps = 10.0
min_edge_bps = 5.0

[policy]
balance_lag_ms = 5000.0

[market]
source = "synthetic"
start_price = 50000.0
step_s = 0.2
dislocations_per_min = 60.0
"""
BASIS = [str(Path(sys.executable).with_name("basis"))]
VENUES = ("alpha", "beta")
HEDGED = (HedgeState.COMPLETE, HedgeState.RECONCILED)


def _emulator(config: Path, venue: str) -> tuple[subprocess.Popen, str]:
    """`basis emulator` as the README starts it, with its order log; its URL once it listens."""
    proc = subprocess.Popen(
        [*BASIS, "emulator", "--kind", "spot", "--port", "0", "--config", str(config), "--venue", venue]
        + ["--secrets-out", str(config.parent / f"{venue}.secrets.toml")]
        + ["--order-log", str(config.parent / f"{venue}.orders.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    match = re.fullmatch(rf"emulator {venue} spot listening on (http://127\.0\.0\.1:\d+)\n", line)
    if match is None:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r}")
    return proc, match.group(1)


def _posts(tmp: Path) -> list[tuple[str, str, int]]:
    """(venue, client order id, HTTP status) of every order submitted to the emulators so far;
    the id as the engine writes it (without the run's prefix, RUN_DIR/coid_prefix, if any)."""
    marker = tmp / "run" / "coid_prefix"
    prefix = marker.read_text().strip() if marker.exists() else ""
    out = []
    for venue in VENUES:
        path = tmp / f"{venue}.orders.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row["method"] == "POST":
                    coid = row["coid"]
                    if prefix and coid.startswith(prefix):
                        coid = coid[len(prefix) :]
                    out.append((venue, coid, row["status"]))
    return out


async def _venue_trades(urls: dict, secrets_dir: Path) -> dict[str, tuple[list, list]]:
    out = {}
    for venue, url in urls.items():
        keys = tomllib.loads((secrets_dir / f"{venue}.secrets.toml").read_text())
        ex = binance_client(url, keys["api_key"], keys["secret"], timeout_ms=5000)
        try:
            await ex.load_markets()
            out[venue] = (
                await ex.fetch_my_trades("BTC/USDT", params={"limit": 1000}),
                await ex.fetch_open_orders("BTC/USDT"),
            )
        finally:
            await ex.close()
    return out


def _opp(coid: str) -> int:
    num = coid_from_wire(coid)
    assert num is not None, coid
    return S.opportunity_of(num)


def test_a_killed_run_resumes_without_sending_twice_or_flattening_what_was_hedged(tmp_path):
    config = tmp_path / "live.toml"
    # the first life is killed long before its 60 s, the resumed one runs 5 s more (--duration)
    config.write_text(CONFIG.replace("{alpha}", "http://127.0.0.1:1").replace("{beta}", "http://127.0.0.1:2"))
    emulators, urls = {}, {}
    run = None
    try:
        for venue in VENUES:
            emulators[venue], urls[venue] = _emulator(config, venue)
        config.write_text(CONFIG.replace("{alpha}", urls["alpha"]).replace("{beta}", urls["beta"]))
        run_dir = tmp_path / "run"
        out1 = (tmp_path / "run1.out").open("w")
        # its own process group: the io process, the engine and the standby die together
        run = subprocess.Popen(
            [*BASIS, "run", str(config), "--run-dir", str(run_dir)],
            stdout=out1,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # wait for two hedged opportunities' worth of orders, then kill right after the next
        # submit leaves: that order's answer is then most likely not journaled yet
        deadline = time.monotonic() + 60
        while len(_posts(tmp_path)) < 4:
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "run1.out").read_text()
            time.sleep(0.05)
        seen = len(_posts(tmp_path))
        while len(_posts(tmp_path)) == seen:
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "run1.out").read_text()
            time.sleep(0.002)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(10)
        out1.close()
        time.sleep(0.3)  # requests already on the wire reach the emulators' logs
        before = _posts(tmp_path)
        assert not (run_dir / "report.json").exists()

        # what the journal knew when everything died
        killed = replay(run_dir)
        assert killed.identical
        hedged = {p.opp_id for p in killed.core.positions.values() if p.state in HEDGED}
        assert hedged, "no hedged position when the run was killed"
        in_flight = [c for _, c, _ in before if coid_from_wire(c) not in killed.core.orders.orders]
        assert not in_flight  # the engine journals a command before the io side sends it
        unanswered = [
            c for _, c, _ in before if killed.core.orders.orders[coid_from_wire(c)].state.name == "SUBMITTED"
        ]
        # journaled as decided, never reached a venue: the engine declares them not placed
        never_sent = [
            o.wire
            for o in killed.core.orders.working()
            if o.wire not in {c for _, c, _ in before} and o.state.name in ("NEW", "SUBMITTED")
        ]

        # without --resume the unfinished run is refused and left as it is
        refused = subprocess.run(
            [*BASIS, "run", str(config), "--run-dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "--run-dir" in refused.stderr and "--resume" in refused.stderr
        assert JournalReader(run_dir / "journal").end() == killed.records

        t0 = time.monotonic()
        done = subprocess.run(
            [*BASIS, "run", str(config), "--run-dir", str(run_dir), "--resume", "--duration", "5"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        (tmp_path / "run2.out").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "resuming its unfinished run" in done.stdout and "5 s to go" in done.stdout
        print(
            f"resumed in {time.monotonic() - t0:.1f} s; at the kill {len(unanswered)} order(s) sent but "
            f"unanswered in the journal, {len(never_sent)} decided and never sent, "
            f"{len(hedged)} hedged position(s)"
        )

        # nothing was sent twice, and nothing after the restart for what was already hedged
        earlier = Counter(v for v, _, _ in before)
        after = [p for v in VENUES for p in [q for q in _posts(tmp_path) if q[0] == v][earlier[v] :]]
        for venue in VENUES:
            sent = Counter(c for v, c, _ in _posts(tmp_path) if v == venue)
            assert sent and max(sent.values()) == 1, [c for c, n in sent.items() if n > 1]
        assert all(status == 200 for _, _, status in _posts(tmp_path))
        assert not {_opp(c) for _, c, _ in after} & hedged

        report = json.loads((run_dir / "report.json").read_text())
        db = sqlite3.connect(run_dir / "results.sqlite")
        found = db.execute("SELECT layer, key, ours, theirs, cause FROM recon_exceptions").fetchall()
        assert report["reconciliation"] == dict.fromkeys(("order", "position", "balance", "reporting"), 0), (
            found
        )
        assert report["final_engine_state"] == "NORMAL", report["state_transitions"][-5:]
        assert report["open_positions"] == []
        assert report["inventory_booked"] is True

        # the whole run (both lives) replays identically, with one RECOVERED control, and every
        # position hedged at the kill is hedged still (never unwound)
        whole = replay(run_dir)
        assert whole.identical and whole.digest == report["decision_digest"]
        recs = JournalReader(run_dir / "journal").read()
        ctl = recs[recs["kind"] == S.Kind.CONTROL]
        assert int(np.count_nonzero(ctl["sub"] == S.ControlCommand.RECOVERED)) == 1
        for opp in hedged:
            assert whole.core.positions[opp].state in HEDGED, whole.core.positions[opp].state
        # every order sent before the kill ended as the venue says (the order layer is clean),
        # none working at the venue, and the ledger holds every venue trade once
        statuses = dict(db.execute("SELECT coid, status FROM orders").fetchall())
        assert all(statuses.get(c) in ("FILLED", "CANCELED", "EXPIRED", "REJECTED") for _, c, _ in before)
        assert all(statuses.get(c) == "REJECTED" for c in never_sent), [statuses.get(c) for c in never_sent]
        venue_side = asyncio.run(_venue_trades(urls, tmp_path))
        for venue, (trades, still_open) in venue_side.items():
            booked = sorted(
                (str(fid), round(qty, 8))
                for fid, qty in db.execute("SELECT fill_id, qty FROM fills WHERE venue = ?", (venue,))
            )
            assert sorted((str(t["id"]), round(t["amount"], 8)) for t in trades) == booked
            assert still_open == []
    finally:
        if run is not None and run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
        for proc in emulators.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _journal(run_dir: Path, n: int) -> None:
    w = JournalWriter(run_dir / "journal", JournalConfig())
    try:
        for i in range(n):
            w.append(S.timer_record(1_000 + i))
    finally:
        w.close()


def test_the_run_directory_rule_new_unfinished_finished(tmp_path):
    d = tmp_path / "run"
    assert state_of(d) == NEW and check_run_dir(d, resume=False) == NEW
    with pytest.raises(ConfigError, match="--resume.*holds no journal"):
        check_run_dir(d, resume=True)
    _journal(d, 3)
    assert state_of(d) == UNFINISHED
    with pytest.raises(ConfigError, match="--run-dir.*unfinished run.*--resume"):
        check_run_dir(d, resume=False)
    assert check_run_dir(d, resume=True) == UNFINISHED
    (d / "report.json").write_text("{}")
    (d / "notes.txt").write_text("mine")  # not a run's file: kept
    assert state_of(d) == FINISHED and check_run_dir(d, resume=False) == FINISHED
    with pytest.raises(ConfigError, match="--resume.*finished run"):
        check_run_dir(d, resume=True)
    assert clear_finished(d) == ["journal", "report.json"]
    assert state_of(d) == NEW and (d / "notes.txt").exists()


def test_basis_run_refuses_an_unfinished_run_dir_and_resuming_simulated_venues(tmp_path, capsys):
    d = tmp_path / "run"
    _journal(d, 2)
    size = {p.name: p.read_bytes() for p in (d / "journal").iterdir()}
    assert cli(["run", "--run-dir", str(d), "--duration", "1"]) == 1
    assert "--run-dir" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (d / "journal").iterdir()} == size  # untouched
    (d / "scenario.json").write_text("{}")
    assert cli(["run", "--run-dir", str(d), "--resume"]) == 1  # the default scenario: sim venues
    err = capsys.readouterr().err
    assert "venues." in err and "died with the run" in err
    assert cli(["run", "--resume"]) == 1
    assert "--run-dir" in capsys.readouterr().err
