"""Metrics and the live status page of a running engine ([observe]): scraped during a run and
held against report.json at its end; the page opened in headless Chromium with every network
route but 127.0.0.1 dead; the run's log one JSON object per line."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from basis_core.config import ObserveConfig, load
from basis_core.errors import ConfigError
from basis_core.scenarios import DEFAULT

sys.path.insert(0, str(Path(__file__).parent))
from browser import CHROMIUM, chromium_command, count_colour, read_png

ROOT = Path(__file__).resolve().parents[1]
DIGEST = "76cfd906f0325be0bdded5ece8509a77"  # the default scenario's decisions (test_checkpoints)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def observed_config(metrics_port: int, status_port: int, sample_ms: float = 100.0):
    cfg = load(DEFAULT)
    return replace(cfg, observe=ObserveConfig(metrics_port, status_port, sample_ms))


def test_metrics_scraped_during_a_run_agree_with_its_report_and_counters_never_decrease(tmp_path):
    from adapters.sim.world import SimWorld
    from basis_core.engine.report import write_run
    from basis_core.engine.scenario import run_scenario

    port = free_port()
    cfg = observed_config(port, 0)
    world = SimWorld.from_config(cfg)
    scrapes: list[dict] = []
    done = threading.Event()

    def scraper():
        while not done.is_set():
            try:
                scrapes.append(scrape(port))
            except OSError:
                pass  # not serving yet
            time.sleep(0.05)

    final: dict = {}

    async def before_close(runner):
        final.update(scrape(port))  # the server's thread answers; the run's loop waits

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    try:
        runner = world.clock.run(run_scenario(cfg, tmp_path, world, progress=None, before_close=before_close))
    finally:
        done.set()
        thread.join(5)
    report = write_run(runner, cfg, tmp_path, 1.0, world.digest())
    assert report["decision_digest"] == DIGEST  # serving metrics changed no decision

    live = [s for s in scrapes if ("basis_events_total", ()) in s]
    events = [s[("basis_events_total", ())] for s in live]
    assert len(live) >= 5 and events[-1] > events[0], "scraped while the run went on"
    for (name, labels), _ in final.items():
        if name.endswith("_total") or name.endswith("_bucket") or name.endswith("_count"):
            series = [s[(name, labels)] for s in live if (name, labels) in s]
            assert series == sorted(series), f"{name}{labels} decreased"

    def one(name, **labels):
        return final[(name, tuple(sorted(labels.items())))]

    for key, name in (
        ("events_processed", "basis_events_total"),
        ("signals_seen", "basis_signals_seen_total"),
        ("orders_submitted", "basis_orders_submitted_total"),
        ("orders_filled", "basis_orders_filled_total"),
        ("hedges_completed", "basis_hedges_completed_total"),
        ("asymmetric_episodes", "basis_asymmetric_episodes_total"),
        ("unwinds", "basis_unwinds_total"),
    ):
        assert one(name) == report[key], name
    rejected = {
        dict(lab)["reason"]: v for (n, lab), v in final.items() if n == "basis_signals_rejected_total"
    }
    assert rejected == report["signals_rejected"]
    recon = {
        dict(lab)["layer"]: v for (n, lab), v in final.items() if n == "basis_reconciliation_mismatches_total"
    }
    assert recon == report["reconciliation"]
    assert one("basis_realized_pnl_usdt") == pytest.approx(report["realized_pnl_usdt"], abs=1e-6)
    assert one("basis_fees_usdt") == pytest.approx(report["fees_usdt"], abs=1e-6)
    assert one("basis_max_residual_exposure_usdt") == pytest.approx(report["max_residual_exposure_usdt"])
    assert one("basis_engine_state", state=report["final_engine_state"]) == 1.0
    for venue, state in report["venue_states"].items():
        assert one("basis_venue_state", venue=venue, state=state) == 1.0
    positions = {dict(lab)["state"]: v for (n, lab), v in final.items() if n == "basis_positions" and v}
    assert positions == report["position_states"]
    orders: dict[str, float] = {}
    for (n, lab), v in final.items():
        if n == "basis_orders":
            state = dict(lab)["state"].upper()
            orders[state] = orders.get(state, 0) + v
    assert orders == report["order_states"]
    # the histogram holds every decision the report's percentiles were taken from
    assert one("basis_decision_latency_seconds_count") == one("basis_decisions_total") > 0
    assert one("basis_decision_latency_seconds_bucket", le="+Inf") == one("basis_decisions_total")
    assert ("basis_engine_lag_seconds", ()) in final


def test_observe_keys_are_checked_with_their_path():
    for kwargs, path in (
        ({"metrics_port": 70000}, "observe.metrics_port"),
        ({"status_port": -1}, "observe.status_port"),
        ({"metrics_port": 9100, "status_port": 9100}, "observe.status_port"),
        ({"sample_ms": 0.0}, "observe.sample_ms"),
    ):
        with pytest.raises(ConfigError) as err:
            ObserveConfig(**kwargs)._validate("observe")
        assert err.value.path == path


def test_a_taken_port_stops_the_run_before_it_starts_naming_the_key():
    from basis_core.observe.server import Observer

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        obs = Observer(port, 0, "r")
        with pytest.raises(ConfigError) as err:
            obs.start()
        assert err.value.path == "observe.metrics_port"


def _start_run(tmp_path: Path, metrics_port: int, status_port: int, duration_s: float, env=None):
    scenario = tmp_path / "observed.toml"
    scenario.write_text(
        Path(DEFAULT).read_text()
        + f"\n[observe]\nmetrics_port = {metrics_port}\nstatus_port = {status_port}\nsample_ms = 100\n"
    )
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "basis_core", "run", str(scenario), "--duration", str(duration_s)]
    proc = subprocess.Popen(
        [*cmd, "--run-dir", str(run_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{status_port or metrics_port}/{'state.json' if status_port else 'metrics'}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            body = get(url)
            if body != b"null":
                return proc, run_dir
        except OSError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the run never served its first sample")


async def _open_in_chromium(tmp_path: Path, url: str, looks: int, every_s: float) -> tuple[list[dict], bytes]:
    """Open `url` in headless Chromium (every route but loopback dead) and, through its DevTools
    socket, read the page `looks` times `every_s` apart (engine state, event count, samples
    received over /events), then take a screenshot."""
    import base64

    import aiohttp

    devtools = free_port()
    cmd = chromium_command(
        tmp_path / "profile", f"--remote-debugging-port={devtools}", "--window-size=1200,1400", url
    )
    browser = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    read = (
        "({state: document.getElementById('engine-state').textContent,"
        " events: document.getElementById('c-events') && document.getElementById('c-events').textContent,"
        " updates: +document.getElementById('updates').textContent,"
        " venues: document.getElementById('venues').textContent})"
    )
    try:
        async with aiohttp.ClientSession() as http:
            targets: list = []
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{devtools}/json/list") as r:
                        targets = [t for t in await r.json() if t["type"] == "page"]
                    if targets:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 1000))

                async def call(method: str, **params):
                    n = next(ids)
                    await ws.send_json({"id": n, "method": method, "params": params})
                    async for msg in ws:
                        data = msg.json()
                        if data.get("id") == n:
                            return data["result"]
                    raise AssertionError("the DevTools socket closed")

                seen = []
                for _ in range(looks):
                    await asyncio.sleep(every_s)
                    res = await call("Runtime.evaluate", expression=read, returnByValue=True)
                    seen.append(res["result"]["value"])
                shot = await call(  # half scale: a quarter of the pixels to decode
                    "Page.captureScreenshot",
                    format="png",
                    clip={"x": 0, "y": 0, "width": 1200, "height": 1400, "scale": 0.5},
                )
                return seen, base64.b64decode(shot["data"])
    finally:
        browser.kill()
        browser.wait(10)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_status_page_renders_live_in_headless_chromium_with_no_network(tmp_path):
    port = free_port()
    proc, run_dir = _start_run(tmp_path, 0, port, duration_s=900)
    try:
        seen, png = asyncio.run(
            _open_in_chromium(tmp_path, f"http://127.0.0.1:{port}/", looks=2, every_s=2.0)
        )
    finally:
        proc.kill()
        proc.wait(10)
    shot = tmp_path / "status.png"
    shot.write_bytes(png)
    states = ("NORMAL", "DEGRADED", "PROTECTIVE", "UNWINDING", "RECONCILING", "HALTED")
    for look in seen:
        assert look["state"] in states
        assert all(name in look["venues"] for name in ("alpha", "beta", "gamma"))
    assert 3 <= seen[0]["updates"] < seen[1]["updates"], "samples arrive over /events"
    counts = [int(look["events"].replace(",", "")) for look in seen]
    assert 0 < counts[0] < counts[1], "the event count moves while the run goes on"
    img = read_png(shot)
    assert img.shape[:2] == (700, 600)
    # the state timeline and badges (green), PnL (blue) and fees (orange) lines drew
    for colour, least in (("#2ca02c", 3_000), ("#1f77b4", 80), ("#ff7f0e", 80)):
        assert count_colour(img, colour) >= least, colour


def test_the_run_log_is_json_lines_with_progress_and_transitions(tmp_path):
    from basis_core.engine.scenario import run_simulated

    cfg = load(DEFAULT)
    shown: list[str] = []
    report = run_simulated(cfg, tmp_path, progress=shown.append)
    lines = [orjson.loads(x) for x in (tmp_path / "log.jsonl").read_bytes().splitlines()]
    assert all({"ts", "run", "component", "level", "event"} <= line.keys() for line in lines)
    assert {line["run"] for line in lines} == {tmp_path.name}
    progress = [
        line["msg"] for line in lines if line["event"] == "progress" and line["component"] == "runner"
    ]
    assert progress and all(any(p in s for s in shown) for p in progress)  # the terminal's lines too
    changes = [line for line in lines if line["event"] == "transition"]
    engine = [c for c in changes if c["machine"] == "engine"]
    assert len(engine) == sum(1 for t in report["state_transitions"] if t["machine"] == "engine")
    assert lines[-1]["event"] == "end" and lines[-1]["decision_digest"] == report["decision_digest"]


#: what a live deployment puts in the environment: ccxt API credentials (adapters/ccxt/auth.py) and
#: an EVM signing key (adapters/web3/auth.py); distinctive values, so any copy is found
SECRETS = {
    "BINANCE_API_KEY": "apikey-7f3c9e21d4b84a6f9c0e5b1a2d3f4e5a",
    "BINANCE_SECRET": "apisecret-c4d5e6f708192a3b4c5d6e7f8091a2b3",
    "BINANCE_PASSWORD": "passphrase-91b2c3d4e5f60718",
    "WEB3_PRIVATE_KEY": "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
}


def test_no_secret_of_the_environment_reaches_a_file_a_log_line_a_metric_or_the_page(tmp_path):
    import os

    metrics, status = free_port(), free_port()
    env = {**os.environ, **SECRETS}
    proc, run_dir = _start_run(tmp_path, metrics, status, duration_s=300, env=env)
    served: list[bytes] = []
    try:
        while proc.poll() is None:  # every page, again and again, while the run goes on
            for url in (f"{metrics}/metrics", f"{status}/", f"{status}/state.json", f"{status}/events"):
                chunks: list[bytes] = []
                try:  # (the event stream: what arrives in 0.3 s)
                    with urllib.request.urlopen(f"http://127.0.0.1:{url}", timeout=0.3) as r:
                        until = time.monotonic() + 0.3
                        while time.monotonic() < until and (chunk := r.read1(65536)):
                            chunks.append(chunk)
                except OSError:
                    pass
                served.append(b"".join(chunks))
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert sum(1 for b in served if b) >= 8
    assert any(b.startswith(b"retry") and b"event: sample" in b for b in served)
    assert proc.returncode == 0, out.decode()[-3000:]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"log.jsonl", "report.json", "results.sqlite", "report.html"} <= names
    assert any(p.suffix == ".journal" for p in files)
    blobs = [(str(p), p.read_bytes()) for p in files]
    blobs += [("terminal", out)] + [(f"served {i}", b) for i, b in enumerate(served)]
    for secret in SECRETS.values():
        forms = {secret.encode(), secret.encode("utf-16-le"), secret.removeprefix("0x").encode()}
        if secret.startswith("0x"):
            forms.add(bytes.fromhex(secret[2:]))  # the raw key
        for where, data in blobs:
            assert not any(f in data for f in forms), f"{secret[:8]}... found in {where}"


def test_the_readme_observe_example_is_a_valid_config(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = text.split("```toml\n[observe]", 1)[1].split("```", 1)[0]
    scenario = tmp_path / "observed.toml"
    scenario.write_text(Path(DEFAULT).read_text() + "\n[observe]" + block)
    assert load(scenario).observe == ObserveConfig(metrics_port=9464, status_port=8787, sample_ms=500.0)
