"""The run's structured log: one JSON object per line with the common fields, human lines on the
terminal, registered secrets never written."""

import orjson
import pytest

from basis_core.runlog import NULL_LOG, RunLog


def _lines(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_each_event_is_one_json_line_with_run_component_level_and_fields(tmp_path):
    log = RunLog(tmp_path / "log.jsonl", "run-1")
    log.event("io", "venue_error", "warning", venue="spot_a", coid=7)
    log.event("reconcile", "mismatch", layer="balance")
    log.close()
    first, second = _lines(tmp_path / "log.jsonl")
    assert {k: first[k] for k in ("run", "component", "level", "event", "venue", "coid")} == {
        "run": "run-1",
        "component": "io",
        "level": "warning",
        "event": "venue_error",
        "venue": "spot_a",
        "coid": 7,
    }
    assert isinstance(first["ts"], int) and second["ts"] >= first["ts"]
    assert second["level"] == "info" and second["layer"] == "balance"


def test_say_shows_the_message_on_the_terminal_and_writes_it_as_a_field(tmp_path):
    shown = []
    log = RunLog(tmp_path / "log.jsonl", "r", terminal=shown.append)
    log.progress("runner")("t=2.0s events=10")
    log.close()
    assert shown == ["t=2.0s events=10"]
    (line,) = _lines(tmp_path / "log.jsonl")
    assert (line["component"], line["event"], line["msg"]) == ("runner", "progress", "t=2.0s events=10")


def test_a_registered_secret_is_never_written_nor_shown(tmp_path):
    shown = []
    log = RunLog(tmp_path / "log.jsonl", "r", terminal=shown.append)
    log.redact("sk-live-0123456789", 'quo"te-secret')
    log.say("io", "error", "auth failed for key sk-live-0123456789", header='x quo"te-secret y')
    log.close()
    data = (tmp_path / "log.jsonl").read_bytes()
    assert b"sk-live-0123456789" not in data and b'quo\\"te-secret' not in data
    assert "sk-live" not in shown[0] and "***" in shown[0]
    assert _lines(tmp_path / "log.jsonl")[0]["header"] == "x *** y"


def test_an_unknown_level_is_refused_and_the_null_log_writes_nothing(tmp_path):
    log = RunLog(tmp_path / "log.jsonl", "r")
    with pytest.raises(ValueError, match="level"):
        log.event("io", "x", "loud")
    NULL_LOG.event("io", "x", "loud")  # no file: nothing checked, nothing written
    assert (tmp_path / "log.jsonl").read_bytes() == b""
