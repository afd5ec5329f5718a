"""Bounded engine state: the streams a run only appends to (state transitions, residual
exposure, anomalies) are held as a window of the newest items plus a running count, and every
item goes to the run directory as it comes. A run with more of them than the window still has
every one in results.sqlite; cursors into them stay right after trimming; checkpoints and
replays rebuild the same windows and counts; decisions do not change."""

from __future__ import annotations

import pickle
import shutil
import sqlite3
import tomllib
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from basis_core.config import AlertsConfig, from_dict
from basis_core.engine import checkpoint as C
from basis_core.engine import core as core_mod
from basis_core.engine.alerts import Alerts
from basis_core.engine.replay import replay
from basis_core.engine.report import StreamFiles
from basis_core.engine.scenario import run_simulated
from basis_core.errors import ResultsError
from basis_core.results.stats import Spool
from basis_core.scenarios import DEFAULT
from basis_core.state.fsm import Change

DIGEST = "76cfd906f0325be0bdded5ece8509a77"
SMALL = {"TRANSITIONS_KEPT": 4, "RESIDUALS_KEPT": 8, "ANOMALIES_KEPT": 2}


# -- the spool --------------------------------------------------------------------------------


def test_a_spool_holds_the_newest_items_and_counts_all():
    s: Spool[int] = Spool(3)
    seen: list[int] = []
    s.sink = seen.append
    for i in range(10):
        s.append(i)
    assert list(s) == [7, 8, 9] and len(s) == 3 and s[-1] == 9 and s.count == 10 and s.first == 7
    assert seen == list(range(10))  # every item went to the sink as it came
    with pytest.raises(ResultsError, match="window"):
        Spool(0)


def test_a_cursor_stays_right_after_the_window_moves():
    s: Spool[int] = Spool(3)
    for i in range(4):
        s.append(i)
    items, missed, cursor = s.since(0)
    assert (items, missed, cursor) == ([1, 2, 3], 1, 4)  # item 0 left the window unseen
    s.append(4)
    s.append(5)
    assert s.since(cursor) == ([4, 5], 0, 6)  # a position, not an index into the window
    assert s.since(6) == ([], 0, 6)
    assert s.since(99) == ([3, 4, 5], 3, 6)  # a cursor from a longer, replaced stream: start over


def test_a_spool_pickles_its_window_and_count_and_not_its_sink():
    s: Spool[tuple[int, float]] = Spool(2)
    s.sink = print
    for i in range(5):
        s.append((i, float(i)))
    back = pickle.loads(pickle.dumps(s))
    assert back == s and back.count == 5 and list(back) == [(3, 3.0), (4, 4.0)]
    assert back.sink is None and back.window.maxlen == 2
    back.append((5, 5.0))
    assert back != s and back.count == 6


def test_alerts_follow_the_changes_by_position_once_the_window_moved():
    core = SimpleNamespace(transitions=Spool(2))
    stats = SimpleNamespace(reconcile_mismatches={})
    alerts = Alerts(AlertsConfig(min_interval_s=0.0), "r", lambda: core, stats, lambda: 0)
    try:
        for i, key in enumerate("abc"):
            core.transitions.append(Change(i, "venue", key, "UP", "DOWN", "DISCONNECTED", "x"))
        alerts.watch()  # a was dropped from the window before this watch: counted, not alerted
        assert alerts.queued == 2 and alerts.missed_changes == 1
        alerts.watch()
        assert alerts.queued == 2  # nothing new: the cursor did not go back into the window
        core.transitions.append(Change(5, "engine", "engine", "NORMAL", "HALTED", "X", "y"))
        alerts.watch()
        assert alerts.queued == 3 and alerts.missed_changes == 1
    finally:
        alerts.close(1.0)


# -- the stream files ---------------------------------------------------------------------------


def _holder(n_kept: int, n: int) -> SimpleNamespace:
    """What StreamFiles reads of a core: its three spools, `n` items each made."""
    core = SimpleNamespace(
        transitions=Spool(n_kept),
        residual_history=Spool(n_kept),
        counters=SimpleNamespace(anomalies=Spool(n_kept)),
    )
    for i in range(n):
        _add(core, i)
    return core


def _add(core: SimpleNamespace, i: int) -> None:
    core.transitions.append(Change(i, "venue", "a", "UP", "DOWN", "E", f"c{i}"))
    core.residual_history.append((i, float(i)))
    core.counters.anomalies.append(f"a{i}")


def test_stream_files_hold_every_item_and_a_restored_core_keeps_exactly_its_own(tmp_path):
    core = _holder(3, 0)
    files = StreamFiles(tmp_path, core)
    for i in range(10):
        _add(core, i)
    assert list(files.read("anomalies")) == [f"a{i}" for i in range(10)]
    assert list(files.read("residual")) == [(i, float(i)) for i in range(10)]
    assert [c.cause for c in files.read("transitions")] == [f"c{i}" for i in range(10)]
    files.close()
    # a core restored at 7 items (a checkpoint): the file's 3 items past them are made again
    restored = _holder(3, 7)
    again = StreamFiles(tmp_path, restored)
    assert list(again.read("anomalies")) == [f"a{i}" for i in range(7)] and not again.lost
    restored.counters.anomalies.append("next")
    assert list(again.read("anomalies"))[-2:] == ["a6", "next"]
    again.close()


def test_stream_files_fill_what_a_dead_writer_lost_from_the_window_and_count_the_rest(tmp_path):
    files = StreamFiles(tmp_path, _holder(3, 2))
    files.close()
    (tmp_path / "streams" / "anomalies.jsonl").open("ab").write(b'"half-writt')  # a torn last line
    later = _holder(3, 6)  # items 2 .. 5 never reached the file; the window holds 3 .. 5
    again = StreamFiles(tmp_path, later)
    assert list(again.read("anomalies")) == ["a0", "a1", "a3", "a4", "a5"]
    assert again.lost == {"transitions": 1, "residual": 1, "anomalies": 1}
    again.close()


# -- a whole run with small windows -------------------------------------------------------------


def _cfg():
    data = tomllib.loads(Path(DEFAULT).read_text())
    data["journal"]["checkpoint_every_records"] = 20_000
    data["journal"]["checkpoint_keep"] = 2
    return from_dict(data)


def _results(run_dir: Path) -> tuple[list[tuple], list[tuple]]:
    db = sqlite3.connect(run_dir / "results.sqlite")
    try:
        trs = db.execute(
            "SELECT t_ns, machine, key, from_state, to_state, cause FROM transitions ORDER BY seq"
        )
        series = db.execute("SELECT name, t_ns, value FROM series ORDER BY name, t_ns, rowid")
        return trs.fetchall(), series.fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The default scenario twice: with the usual windows, and with windows smaller than what
    it makes of each stream. (run dir, report) of each."""
    base = tmp_path_factory.mktemp("bounded")
    full = base / "full"
    report_full = run_simulated(_cfg(), full, progress=lambda line: None)
    mp = pytest.MonkeyPatch()
    try:
        for name, n in SMALL.items():
            mp.setattr(core_mod, name, n)
        small = base / "small"
        report_small = run_simulated(_cfg(), small, progress=lambda line: None)
    finally:
        mp.undo()
    return (full, report_full), (small, report_small)


def test_a_run_with_more_transitions_than_the_window_keeps_every_one_in_its_results(runs):
    (full, rep_full), (small, rep_small) = runs
    assert rep_full["decision_digest"] == rep_small["decision_digest"] == DIGEST  # decisions unchanged
    trs_full, series_full = _results(full)
    trs_small, series_small = _results(small)
    lines = (small / "streams" / "transitions.jsonl").read_bytes().splitlines()
    assert len(lines) > SMALL["TRANSITIONS_KEPT"]  # the run made more than the core held
    residual = (small / "streams" / "residual.jsonl").read_bytes().splitlines()
    assert len(residual) > SMALL["RESIDUALS_KEPT"]
    assert trs_small == trs_full and len(trs_small) == rep_small["state_transitions_total"]
    assert series_small == series_full  # the residual series whole, from the stream file
    # report.json: the newest the core held beside the run's total
    report = orjson.loads((small / "report.json").read_bytes())
    assert report["state_transitions_total"] == len(trs_full)
    assert len(report["state_transitions"]) < report["state_transitions_total"]
    assert report["state_transitions"][-1] == rep_full["state_transitions"][-1]
    assert report["anomalies_total"] == len(report["anomalies"]) == 0
    assert report["streams_incomplete"] == {}


def test_checkpoints_and_replays_rebuild_the_trimmed_state(runs, monkeypatch):
    _, (small, _) = runs
    for name, n in SMALL.items():
        monkeypatch.setattr(core_mod, name, n)
    whole = replay(small, log=lambda line: None)
    assert whole.identical and whole.digest == DIGEST
    assert whole.core.transitions.window.maxlen == SMALL["TRANSITIONS_KEPT"]
    part = replay(small, from_checkpoint=True, log=lambda line: None)
    assert part.start > 0 and part.identical and part.digest == DIGEST
    for attr in ("transitions", "residual_history"):
        a, b = getattr(whole.core, attr), getattr(part.core, attr)
        assert a == b and a.count > len(a)  # same window, same count, trimmed
    # a checkpoint's spools: trimmed, and the machines still record into them once restored
    restored = C.load_latest(small, lambda line: None)
    assert restored is not None
    spool = restored.core.transitions
    assert spool.count > len(spool) == SMALL["TRANSITIONS_KEPT"] and spool.sink is None
    assert restored.core.engine.on_change.__self__ is spool
    # the stream files a restored core attaches to keep exactly what it has made
    lines = (small / "streams" / "transitions.jsonl").read_bytes().splitlines()
    copy = small.parent / "restored"
    shutil.copytree(small / "streams", copy / "streams")
    files = StreamFiles(copy, restored.core)
    kept = (copy / "streams" / "transitions.jsonl").read_bytes().splitlines()
    assert kept == lines[: restored.core.transitions.count] and not files.lost
    files.close()
