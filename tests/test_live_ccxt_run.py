"""`basis run` on live ccxt venues: two exchange emulators started by the documented command
(`basis emulator`: alpha Binance spot, beta Binance USDⓈ-M), traded through real ccxt over
loopback (examples/live-local.toml)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import select
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import ccxt.async_support as ccxt_async
import pytest

from adapters.ccxt.client import rewrite_urls
from adapters.ccxt.emulate import serve_venue, write_secrets
from adapters.ccxt.world import CcxtWorld, check_fees, check_rules
from adapters.emulator.harness import binance_client
from basis_core.config import load
from basis_core.engine.scenario import simulated_only
from basis_core.errors import ConfigError
from basis_core.venue import InstrumentInfo

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "live-local.toml"
BASIS = [str(Path(sys.executable).with_name("basis"))]
VENUES = ("alpha", "beta")
#: the example's venues: emulator kind, ccxt exchange id, unified symbol
KINDS = {"alpha": ("spot", "binance", "BTC/USDT"), "beta": ("usdm", "binanceusdm", "BTC/USDT:USDT")}


def _start_emulator(config: Path, venue: str, kind: str = "spot") -> subprocess.Popen:
    """`basis emulator ...` as the README starts it."""
    return subprocess.Popen(
        [*BASIS, "emulator", "--kind", kind, "--port", "0", "--config", str(config)]
        + ["--venue", venue, "--secrets-out", str(config.parent / f"{venue}.secrets.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _listening(proc: subprocess.Popen, venue: str, kind: str = "spot") -> str:
    """The URL of the emulator's one line once it listens."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    match = re.fullmatch(rf"emulator {venue} {kind} listening on (http://127\.0\.0\.1:\d+)\n", line)
    if match is None:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return match.group(1)


@contextlib.contextmanager
def _served(cfg, venue: str, secrets_out: Path):
    """The venue's emulator (what `basis emulator` runs) on a loop of its own thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = serve_venue(cfg, venue, KINDS[venue][0])
    asyncio.run_coroutine_threadsafe(served.start(), loop).result(30)
    write_secrets(secrets_out, served.key, served.secret)
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(served.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture
def emulated(tmp_path):
    """A copy of live-local.toml (short run) and two emulators serving its venues: alpha spot,
    beta USDⓈ-M."""
    config = tmp_path / "live.toml"
    config.write_text(EXAMPLE.read_text().replace("duration_s = 60.0", "duration_s = 12.0"))
    procs, urls = {}, {}
    try:
        for venue in VENUES:  # both start at once
            procs[venue] = _start_emulator(config, venue, KINDS[venue][0])
        for venue in VENUES:
            urls[venue] = _listening(procs[venue], venue, KINDS[venue][0])
        text = config.read_text()
        for venue, port in (("alpha", 8701), ("beta", 8702)):
            text = text.replace(f"http://127.0.0.1:{port}", urls[venue])
        config.write_text(text)
        yield config, procs, urls
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _client(venue: str, url: str, secrets_dir: Path):
    """A real ccxt client of the venue's exchange on its emulator, with the written keys."""
    keys = tomllib.loads((secrets_dir / f"{venue}.secrets.toml").read_text())
    if KINDS[venue][1] == "binance":
        return binance_client(url, keys["api_key"], keys["secret"], timeout_ms=5000)
    options = {"fetchCurrencies": False, "fetchMargins": False}
    ex = ccxt_async.binanceusdm(
        {"apiKey": keys["api_key"], "secret": keys["secret"], "timeout": 5000, "options": options}
    )
    ex.urls["api"] = rewrite_urls(ex.urls["api"], url)
    return ex


async def _venue_side(urls: dict, secrets_dir: Path) -> dict[str, tuple[list, list, float]]:
    """Our trades, open orders and perp position (0 on spot) on each emulator, through ccxt."""
    out = {}
    for venue, url in urls.items():
        symbol = KINDS[venue][2]
        ex = _client(venue, url, secrets_dir)
        try:
            await ex.load_markets()
            position = 0.0
            if KINDS[venue][0] == "usdm":
                for p in await ex.fetch_positions([symbol]):
                    position += float(p["info"]["positionAmt"])
            out[venue] = (
                await ex.fetch_my_trades(symbol, params={"limit": 1000}),
                await ex.fetch_open_orders(symbol),
                position,
            )
        finally:
            await ex.close()
    return out


def test_basis_run_trades_spot_against_a_perp_on_two_emulated_exchanges_ends_normal_and_reconciled(
    emulated,
):
    config, procs, urls = emulated
    for venue in VENUES:
        mode = (config.parent / f"{venue}.secrets.toml").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    run_dir = config.parent / "run"
    t0 = time.monotonic()
    done = subprocess.run(
        [*BASIS, "run", str(config), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.monotonic() - t0 >= 12.0  # the real clock: the run took its duration
    report = json.loads((run_dir / "report.json").read_text())
    db = sqlite3.connect(run_dir / "results.sqlite")
    found = db.execute("SELECT layer, key, ours, theirs, cause FROM recon_exceptions").fetchall()
    assert report["reconciliation"] == dict.fromkeys(("order", "position", "balance", "reporting"), 0), found
    assert report["final_engine_state"] == "NORMAL", report["state_transitions"][-5:]
    assert report["open_positions"] == []
    assert report["orders_submitted"] >= 2 and report["orders_filled"] >= 2, report.get("signals_rejected")
    assert report["hedges_completed"] >= 1
    # basis trades: spot on alpha against the perp on beta, each one filled on both venues
    traded = db.execute(
        "SELECT o.opportunity_id FROM opportunities o WHERE o.strategy = 'basis' AND"
        " (SELECT COUNT(DISTINCT f.venue) FROM fills f WHERE f.opportunity_id = o.opportunity_id) = 2"
    ).fetchall()
    assert traded, db.execute(
        "SELECT strategy, outcome, COUNT(*) FROM opportunities GROUP BY 1, 2"
    ).fetchall()
    # what the venues say: every fill the run booked is a trade on the emulator, and the other
    # way round; nothing is left working there; the perp position is the one the fills booked
    venue_side = asyncio.run(_venue_side(urls, config.parent))
    for venue, (trades, still_open, position) in venue_side.items():
        booked = sorted(
            (str(fid), round(qty, 8))
            for fid, qty in db.execute("SELECT fill_id, qty FROM fills WHERE venue = ?", (venue,))
        )
        assert sorted((str(t["id"]), round(t["amount"], 8)) for t in trades) == booked
        assert still_open == []
    ((ledger_perp,),) = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN LOWER(side) = 'buy' THEN qty ELSE -qty END), 0) FROM fills"
        " WHERE venue = 'beta' AND instrument = 'beta-BTCUSDT'"
    ).fetchall()
    assert venue_side["beta"][2] == pytest.approx(ledger_perp, abs=1e-8)
    for key in ("api_key", "secret"):  # the written credentials are in no file of the run
        value = tomllib.loads((config.parent / "alpha.secrets.toml").read_text())[key]
        for path in run_dir.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".jsonl", ".html", ".sqlite"):
                assert value.encode() not in path.read_bytes(), path
    assert _stop(procs["alpha"]) == 0  # SIGTERM ends an emulator cleanly, and so does SIGINT
    assert _stop(procs["beta"], signal.SIGINT) == 0


def test_a_filter_the_venue_does_not_share_is_a_start_up_error_naming_the_key(tmp_path, capsys):
    from basis_core.cli import main

    served_cfg = tmp_path / "served.toml"
    served_cfg.write_text(EXAMPLE.read_text())
    with _served(load(served_cfg), "alpha", tmp_path / "alpha.secrets.toml") as alpha:
        write_secrets(tmp_path / "beta.secrets.toml", "unused-key", "unused-secret")  # never reached
        config = tmp_path / "live.toml"
        text = EXAMPLE.read_text().replace("http://127.0.0.1:8701", alpha.url)
        config.write_text(text.replace("tick = 0.01\nlot = 0.00001", "tick = 0.1\nlot = 0.00001", 1))
        run_dir = tmp_path / "run"
        assert main(["run", str(config), "--run-dir", str(run_dir)]) == 1
        placed = list(alpha.emulator.placed)
    err = capsys.readouterr().err
    assert "instruments.alpha-BTCUSDT.tick: venue says 0.01, config says 0.1" in err
    assert not (run_dir / "report.json").exists() and placed == []


def test_the_venue_rules_and_fees_are_held_against_the_config():
    cfg = load(EXAMPLE)
    info = InstrumentInfo("alpha-BTCUSDT", "BTC/USDT", "BTC", "USDT", "spot", 0.01, 0.00001, 5.0, 9e6)
    check_rules(cfg, "alpha", {"alpha-BTCUSDT": info})
    for key, value, said in (("lot", 0.001, "0.001"), ("min_notional", 10.0, "10"), ("kind", "perp", "perp")):
        with pytest.raises(
            ConfigError, match=rf"instruments\.alpha-BTCUSDT\.{key}: venue says {said}, config"
        ):
            check_rules(cfg, "alpha", {"alpha-BTCUSDT": replace(info, **{key: value})})
    with pytest.raises(ConfigError, match="alpha-BTCUSDT: venue 'alpha' did not list it"):
        check_rules(cfg, "alpha", {})
    check_fees(cfg, "alpha", {"alpha-BTCUSDT": (2.0, 10.0)})
    with pytest.raises(ConfigError, match=r"venues\.alpha\.taker_fee_bps: venue says 7\.5 for alpha-BTCUSDT"):
        check_fees(cfg, "alpha", {"alpha-BTCUSDT": (2.0, 7.5)})


def test_a_live_world_needs_the_real_clock_a_ccxt_table_and_credentials(tmp_path):
    (tmp_path / "live.toml").write_text(EXAMPLE.read_text())
    cfg = load(tmp_path / "live.toml")
    with pytest.raises(ConfigError, match="run.clock"):
        simulated_only(replace(cfg, run=replace(cfg.run, clock="virtual")))
    with pytest.raises(ConfigError, match="run.clock"):
        CcxtWorld.from_config(replace(cfg, run=replace(cfg.run, clock="virtual")))
    with pytest.raises(
        ConfigError, match=r"venues\.alpha\.ccxt\.credentials\.secrets_file: secrets file not found"
    ):
        CcxtWorld.from_config(cfg)  # the emulators have not written them
    venues = dict(cfg.venues)
    venues["alpha"] = replace(venues["alpha"], ccxt={})
    with pytest.raises(ConfigError, match=r"venues\.alpha\.ccxt: a ccxt venue needs its table"):
        CcxtWorld.from_config(replace(cfg, venues=venues))
    venues["alpha"] = replace(
        cfg.venues["alpha"],
        ccxt={"exchange": "binance", "credentials": {"api_key_env": "K_ALPHA", "secret_env": "S_ALPHA"}},
    )
    with pytest.raises(
        ConfigError, match=r"credentials\.api_key_env: environment variable K_ALPHA is not set"
    ):
        CcxtWorld.from_config(replace(cfg, venues=venues), env={})
    world = CcxtWorld.from_config(
        replace(
            cfg,
            venues={"alpha": venues["alpha"]},
            instruments={"alpha-BTCUSDT": cfg.instruments["alpha-BTCUSDT"]},
        ),
        env={"K_ALPHA": "key-value-1", "S_ALPHA": "secret-value-1"},
    )
    assert set(world.venues) == {"alpha"} and world.live["alpha"].config.instruments == {
        "alpha-BTCUSDT": "BTC/USDT"
    }
    assert world.live["alpha"].config.max_attempts == 1 and not world.live["alpha"].config.verify_submits


def test_basis_run_builds_a_run_mixing_ccxt_and_web3_venues_from_their_tables(tmp_path, capsys):
    """ccxt and web3 venues in one run (tests/test_cex_dex_failures.py runs one): each is built
    from its table, so a missing one is named before anything runs."""
    from basis_core.cli import main

    config = tmp_path / "mixed.toml"
    config.write_text('[run]\nclock = "real"\n[venues.cex]\nkind = "ccxt"\n[venues.dex]\nkind = "web3"\n')
    assert main(["run", str(config), "--run-dir", str(tmp_path / "run")]) == 1
    assert "venues.cex.ccxt: a ccxt venue needs its table" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_emulator_command_refuses_what_it_cannot_serve(tmp_path, capsys):
    from basis_core.cli import main

    out = tmp_path / "s.toml"
    base = ["emulator", "--config", str(EXAMPLE), "--secrets-out", str(out)]
    assert main([*base, "--kind", "usdm", "--venue", "alpha"]) == 1
    assert (
        "instruments.alpha-BTCUSDT.kind: the usdm emulator lists perp instruments only"
        in capsys.readouterr().err
    )
    assert main([*base, "--kind", "spot", "--venue", "beta"]) == 1
    assert (
        "instruments.beta-BTCUSDT.kind: the spot emulator lists spot instruments only"
        in capsys.readouterr().err
    )
    assert main([*base, "--venue", "gamma"]) == 1
    assert "venue: 'gamma' is not in [venues]" in capsys.readouterr().err
    assert main([*base, "--kind", "coinm", "--venue", "alpha"]) == 1
    assert "kind: must be one of spot, usdm" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main([*base, "--venue", "alpha", "--port", port]) == 1
    assert f"--port: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not out.exists()
    nowhere = ["--secrets-out", str(tmp_path / "missing" / "s.toml")]
    assert main(["emulator", "--config", str(EXAMPLE), "--venue", "alpha", *nowhere]) == 1
    assert "--secrets-out: cannot write" in capsys.readouterr().err


def _usdm_config(tmp_path: Path, taker_bps: float = 4.0):
    """live-local.toml (beta a USDⓈ-M venue: one BTCUSDT perp, 5x) with beta's taker fee."""
    text = EXAMPLE.read_text()
    old = "taker_fee_bps = 4.0\nmaker_fee_bps = 2.0"
    assert text.count(old) == 1
    text = text.replace(old, f"taker_fee_bps = {taker_bps}\nmaker_fee_bps = 2.0")
    path = tmp_path / f"usdm-{taker_bps:g}.toml"
    path.write_text(text)
    return load(path)


def test_a_usdm_emulator_serves_the_perps_whose_rules_and_fees_a_live_world_checks(tmp_path):
    async def scenario():
        served = serve_venue(_usdm_config(tmp_path), "beta", "usdm")
        await served.start()
        try:
            write_secrets(tmp_path / "beta.secrets.toml", served.key, served.secret)
            for taker, error in (
                (4.0, None),
                (4.5, r"venues\.beta\.taker_fee_bps: venue says 4 for beta-BTCUSDT"),
            ):
                cfg = _usdm_config(tmp_path, taker)
                cfg = replace(cfg, venues={"beta": cfg.venues["beta"]})
                venues = dict(cfg.venues)
                secrets = {"secrets_file": str(tmp_path / "beta.secrets.toml")}  # replace() drops base_dir
                table = dict(venues["beta"].ccxt, base_url=served.url, credentials=secrets)
                venues["beta"] = replace(venues["beta"], ccxt=table)
                inst = {"beta-BTCUSDT": cfg.instruments["beta-BTCUSDT"]}
                world = CcxtWorld.from_config(replace(cfg, venues=venues, instruments=inst))
                try:
                    if error is None:
                        await world.start()
                        info = world.venues["beta"].instruments()["beta-BTCUSDT"]
                        assert (info.kind, info.tick, info.lot) == ("perp", 0.01, 0.00001)
                        positions = await world.venues["beta"].positions()
                        assert all(p.qty == 0 for p in positions.values())
                    else:
                        with pytest.raises(ConfigError, match=error):
                            await world.start()
                finally:
                    await world.close()
        finally:
            await served.stop()

    asyncio.run(scenario())


def test_basis_check_checks_each_ccxt_table_as_a_run_builds_it(tmp_path, capsys):
    from basis_core.cli import main

    assert main(["check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "venues.alpha.ccxt: binance at http://127.0.0.1:8701, 1 instrument(s), market data ws" in out
    assert f"credentials from secrets file {EXAMPLE.parent / 'beta.secrets.toml'}" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EXAMPLE.read_text().replace('base_url = "http://127.0.0.1:8702"', 'base_url = "127.0.0.1:8702"')
    )
    assert main(["check", str(bad)]) == 1
    assert "venues.beta.ccxt.base_url: must start with http:// or https://" in capsys.readouterr().err


def test_an_order_basis_did_not_place_is_found_at_start_and_left_alone(tmp_path):
    """Start-up reconciliation reads what the venue holds: a hand-placed order on the account is a
    mismatch (foreign order), nothing new is sent while it stands, and it is not touched."""
    from basis_core.cli import main

    config = tmp_path / "live.toml"
    config.write_text(EXAMPLE.read_text().replace("duration_s = 60.0", "duration_s = 4.0"))
    cfg = load(config)
    with (
        _served(cfg, "alpha", tmp_path / "alpha.secrets.toml") as alpha,
        _served(cfg, "beta", tmp_path / "beta.secrets.toml") as beta,
    ):
        text = config.read_text().replace("http://127.0.0.1:8701", alpha.url)
        config.write_text(text.replace("http://127.0.0.1:8702", beta.url))

        async def by_hand(action: str):
            keys = tomllib.loads((tmp_path / "alpha.secrets.toml").read_text())
            ex = binance_client(alpha.url, keys["api_key"], keys["secret"], timeout_ms=5000)
            try:
                await ex.load_markets()
                if action == "place":
                    return await ex.create_order(
                        "BTC/USDT", "limit", "buy", 0.001, 40_000.0, {"clientOrderId": "byhand1"}
                    )
                return await ex.fetch_open_orders("BTC/USDT")
            finally:
                await ex.close()

        asyncio.run(by_hand("place"))
        assert main(["run", str(config), "--run-dir", str(tmp_path / "run")]) == 0
        still_open = asyncio.run(by_hand("list"))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["reconciliation"]["order"] == 1 and report["orders_submitted"] == 0
    assert report["final_engine_state"] == "RECONCILING"  # never clean, so never NORMAL
    found = sqlite3.connect(tmp_path / "run" / "results.sqlite").execute(
        "SELECT key, cause FROM recon_exceptions"
    )
    assert found.fetchall() == [("alpha:byhand1", "foreign order at the venue (not placed by basis)")]
    assert [o["clientOrderId"] for o in still_open] == ["byhand1"]


@pytest.mark.parametrize(
    "exchange, host",
    [
        ("binance", "https://testnet.binance.vision/api/v3/"),
        ("binanceusdm", "https://testnet.binancefuture.com/fapi/"),
    ],
)
def test_sandbox_sends_every_request_to_the_binance_testnet(monkeypatch, exchange, host):
    """`sandbox = true` applies ccxt's set_sandbox_mode before the first request: what the client
    sends goes to the testnet (caught here before it leaves: this machine has no internet)."""
    from adapters.ccxt import CcxtVenue, Credentials
    from adapters.ccxt.config import from_dict
    from basis_core.errors import VenueError

    sent: list[str] = []

    async def fetch(self, url, method="GET", headers=None, body=None):
        sent.append(url)
        raise ccxt_async.NetworkError(f"{self.id} {method} {url}: no network in this test")

    monkeypatch.setattr(ccxt_async.Exchange, "fetch", fetch)
    config = from_dict({"exchange": exchange, "sandbox": True, "instruments": {"X": "BTC/USDT"}})
    venue = CcxtVenue("live", config, Credentials("key-for-the-testnet-1", "secret-for-the-testnet-1"))

    async def start():
        try:
            with pytest.raises(VenueError):  # typed, as any failed call
                await venue.start()
        finally:
            await venue.close()

    asyncio.run(start())
    assert sent and all(url.startswith(host) for url in sent), sent


def test_on_the_spot_testnet_the_fees_are_not_checked_and_elsewhere_a_failed_fee_call_is_typed(monkeypatch):
    """ccxt has no testnet URL for Binance spot's /sapi fee call: with `sandbox = true` the start
    gets no fees to hold against the config (rather than stopping on ccxt's NotSupported); off
    the testnet the call is made, and its failure is a typed venue error."""
    from adapters.ccxt import CcxtVenue, Credentials
    from adapters.ccxt.config import from_dict
    from basis_core.errors import VenueError

    async def fetch(self, url, method="GET", headers=None, body=None):
        raise ccxt_async.NetworkError(f"{self.id} {method} {url}: no network in this test")

    monkeypatch.setattr(ccxt_async.Exchange, "fetch", fetch)

    async def fees(sandbox: bool):
        cfg = from_dict({"exchange": "binance", "sandbox": sandbox, "instruments": {"X": "BTC/USDT"}})
        venue = CcxtVenue("live", cfg, Credentials("key-for-the-testnet-1", "secret-for-the-testnet-1"))
        ex = ccxt_async.binance({"apiKey": "key-for-the-testnet-1", "secret": "secret-for-the-testnet-1"})
        ex.set_sandbox_mode(sandbox)
        ex.set_markets([])  # start() loads them: not the call under test
        venue._ex = ex  # the client start() builds, without its network calls
        try:
            return await venue.trading_fees()
        finally:
            await ex.close()

    assert asyncio.run(fees(True)) == {}
    with pytest.raises(VenueError):
        asyncio.run(fees(False))
