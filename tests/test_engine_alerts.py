"""[alerts]: a command hook told of a venue DOWN, rate-limited per kind so a flapping venue
sends one alert per interval; the ones held back are counted into the next."""

from __future__ import annotations

import asyncio
import http.server
import threading

import orjson
import pytest
from orchestration import config_error, run, scenario

from basis_core import schema as S
from basis_core.config import AlertsConfig
from basis_core.engine.alerts import Alerts, webhook_url
from basis_core.errors import ConfigError

FLAPS = 10


def _status(runner, venue: str, report: S.VenueReport) -> None:
    rec = S.empty(S.Kind.VENUE_STATUS)
    rec["ts_ns"], rec["source"], rec["sub"] = runner.now_ns(), S.Source.VENUE, int(report)
    rec["venue"] = runner.reg.venue(venue)
    runner.send_control(rec.view(S.GENERIC))


def test_a_flapping_venue_sends_one_alert_per_interval_to_the_command(tmp_path):
    out = tmp_path / "alerts.jsonl"
    hook = tmp_path / "hook.sh"
    hook.write_text('#!/bin/sh\ncat >> "$1"\n')
    hook.chmod(0o755)
    data = scenario(duration_s=14.0, alerts={"command": f"{hook} {out}", "min_interval_s": 4.0})

    async def flap(runner):
        await asyncio.sleep(1.0)
        for _ in range(FLAPS):  # down and back every second
            _status(runner, "beta", S.VenueReport.DISCONNECTED)
            await asyncio.sleep(0.5)
            _status(runner, "beta", S.VenueReport.OK)
            await asyncio.sleep(0.5)

    async def after_start(runner):
        runner.supervisor.spawn(flap(runner))

    runner, world, found = run(data, tmp_path, after_start=after_start)
    downs = [
        c for c in runner.core.transitions if c.machine == "venue" and c.key == "beta" and c.dst == "DOWN"
    ]
    assert len(downs) == FLAPS
    alerts = [orjson.loads(line) for line in out.read_text().splitlines()]
    down_alerts = [a for a in alerts if a["kind"] == "venue_down"]
    # 10 flaps in 10 s, at most one alert per 4 s: the first, then one at each 4 s boundary
    assert 2 <= len(down_alerts) <= 3, down_alerts
    assert all("beta" in a["what"] and a["run"] == data["run"]["name"] for a in down_alerts)
    gaps = [b["t_ns"] - a["t_ns"] for a, b in zip(down_alerts, down_alerts[1:], strict=False)]
    assert all(g >= 4e9 for g in gaps)
    # every flap is accounted for: sent, or held back and counted into the next alert
    assert len(down_alerts) + sum(a["held_back"] for a in down_alerts[1:]) <= FLAPS
    assert sum(a["held_back"] for a in down_alerts) >= FLAPS - len(down_alerts) - 3


def test_the_rate_limit_is_per_kind():
    sent: list = []
    alerts = Alerts(AlertsConfig(min_interval_s=10.0), "r", lambda: None, None, lambda: 0)
    alerts._queue.put_nowait = sent.append  # type: ignore[method-assign]
    assert alerts.fire("venue_down", 0, "a")
    assert not alerts.fire("venue_down", 5 * 10**9, "b")
    assert alerts.fire("halted", 5 * 10**9, "c")  # another kind is not held back by it
    assert alerts.fire("venue_down", 10 * 10**9, "d")
    assert [(a["kind"], a["held_back"]) for a in sent] == [
        ("venue_down", 0),
        ("halted", 0),
        ("venue_down", 1),
    ]
    alerts.close(1.0)


@pytest.mark.parametrize(
    "body, path",
    [
        ('[alerts]\ncommand = "x"\nwebhook_env = "HOOK"\n', "alerts.webhook_env"),
        ('[alerts]\nwebhook_env = "not a name"\n', "alerts.webhook_env"),
        ("[alerts]\nmin_interval_s = -1\n", "alerts.min_interval_s"),
    ],
)
def test_a_bad_alerts_table_names_its_key(tmp_path, body, path):
    assert config_error(tmp_path, body).path == path


def test_the_webhook_url_comes_from_the_environment_and_is_posted_to(monkeypatch):
    got: list[tuple[str, bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "T0KEN-s3cret-path"
    monkeypatch.setenv("BASIS_TEST_HOOK", f"http://127.0.0.1:{server.server_port}/{token}")
    cfg = AlertsConfig(webhook_env="BASIS_TEST_HOOK", min_interval_s=0.0)

    class Stats:
        reconcile_mismatches: dict = {}

    alerts = Alerts(cfg, "run-1", lambda: None, Stats(), lambda: 0)
    assert alerts.fire("halted", 5, "engine: NORMAL -> HALTED (operator)")
    alerts.close()
    server.shutdown()
    assert alerts.delivered == 1 and got and got[0][0] == f"/{token}"
    body = orjson.loads(got[0][1])
    assert body["kind"] == "halted" and token not in got[0][1].decode()


def test_a_webhook_variable_that_is_unset_or_not_a_url_is_a_config_error(monkeypatch):
    cfg = AlertsConfig(webhook_env="BASIS_TEST_HOOK_UNSET")
    monkeypatch.delenv("BASIS_TEST_HOOK_UNSET", raising=False)
    with pytest.raises(ConfigError, match="BASIS_TEST_HOOK_UNSET is not set") as err:
        webhook_url(cfg)
    assert err.value.path == "alerts.webhook_env"
    monkeypatch.setenv("BASIS_TEST_HOOK_UNSET", "ftp://nope/")
    with pytest.raises(ConfigError, match="does not hold an http"):
        webhook_url(cfg)
