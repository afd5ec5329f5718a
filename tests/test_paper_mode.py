"""`basis run --paper`: two Binance-spot exchange emulators and a USDⓈ-M one on loopback play a
moving market with dislocations between them; a paper run follows their public books (alpha by
REST snapshots, beta and the perp venue gamma through ccxt.pro's websocket books, gamma's
funding by its premium index) with no credentials, and its orders fill in the simulated
matching engine at the emulators' live prices. The emulators must see public requests only."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from adapters.emulator import Emulator, EmulatorThread
from adapters.emulator.futures import FuturesEmulator
from adapters.emulator.harness import BTC
from adapters.sim.matching import Spec
from basis_core.errors import ConfigError

PUBLIC = {"/api/v3/exchangeInfo", "/api/v3/depth", "/api/v3/ping", "/api/v3/time"} | {
    f"/fapi/v1/{p}" for p in ("exchangeInfo", "depth", "ping", "time", "premiumIndex", "fundingRate")
}
PERP = Spec("BTCUSDT", "BTC", "USDT", tick=0.1, lot=0.001, min_notional=5.0)

CONFIG = """
[run]
name = "paper"
duration_s = 5.0
clock = "real"

[journal]
fsync = "never"

[rings]
wait = "yield"

[venues.alpha]
kind = "ccxt"
taker_fee_bps = 10.0
maker_fee_bps = 2.0
balances = {{ USDT = 100000.0, BTC = 2.0 }}
latency = {{ request_ms = 4.0, response_ms = 4.0, fill_ms = 2.0, balance_lag_ms = 100.0 }}
[venues.alpha.ccxt]
exchange = "binance"
base_url = "http://127.0.0.1:{alpha}"
market_data = "rest"

[venues.beta]
kind = "ccxt"
taker_fee_bps = 7.5
maker_fee_bps = 1.0
balances = {{ USDT = 100000.0, BTC = 2.0 }}
latency = {{ request_ms = 6.0, response_ms = 6.0, fill_ms = 2.0, balance_lag_ms = 100.0 }}
[venues.beta.ccxt]
exchange = "binance"
base_url = "http://127.0.0.1:{beta}"
market_data = "ws"

[venues.gamma]
kind = "ccxt"
taker_fee_bps = 5.0
maker_fee_bps = 2.0
balances = {{ USDT = 100000.0 }}
latency = {{ request_ms = 5.0, response_ms = 5.0, fill_ms = 2.0, balance_lag_ms = 100.0 }}
[venues.gamma.ccxt]
exchange = "binanceusdm"
base_url = "http://127.0.0.1:{gamma}"
market_data = "ws"

[instruments.gamma-BTCUSDT-PERP]
venue = "gamma"
symbol = "BTC/USDT:USDT"
base = "BTC"
kind = "perp"
tick = 0.1
lot = 0.001
min_notional = 5.0

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
max_order_usdt = 2000.0
max_position_usdt = 10000.0
max_residual_usdt = 2000.0
hedge_window_s = 2.0
unwind_window_s = 5.0
max_slippage_bps = 10.0
min_edge_bps = 5.0
"""


class MovingMarket:
    """Moves both emulators' books every 0.1 s from a thread: a random-walking mid, beta
    dislocated from alpha by +-40 bps about a third of the time. Keeps every price it quoted."""

    def __init__(self, emulators: dict[str, Emulator]):
        self.emulators = emulators
        self.quoted: dict[str, set[float]] = {name: set() for name in emulators}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = random.Random(11)
        self.mid = 50_000.0
        self.step(0)

    def step(self, i: int) -> None:
        self.mid += self._rng.gauss(0, 3.0)
        skew = (0.0, 0.004, -0.004)[(i // 15) % 3]
        for name, emu in self.emulators.items():
            mid = self.mid * (1 + {"beta": skew, "gamma": -skew / 2}.get(name, 0.0))
            bid = round(mid - 0.5, 1)
            bids = [(round(bid - k, 2), round(0.2 + 0.1 * k, 3)) for k in range(5)]
            asks = [(round(bid + 1 + k, 2), round(0.2 + 0.1 * k, 3)) for k in range(5)]
            emu.set_book("BTCUSDT", bids, asks)
            self.quoted[name].update(p for p, _ in bids + asks)
            if isinstance(emu, FuturesEmulator):
                emu.update_funding("BTCUSDT", mid, self.mid, 0.0001)

    def _run(self) -> None:
        i = 1
        while not self._stop.wait(0.1):
            self.step(i)
            i += 1

    def __enter__(self) -> MovingMarket:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def emulators():
    emus = {name: Emulator([BTC], {}, name=name) for name in ("alpha", "beta")}
    emus["gamma"] = FuturesEmulator([PERP], {}, name="gamma")
    threads = {name: EmulatorThread(emu) for name, emu in emus.items()}
    ports = {name: t.start() for name, t in threads.items()}
    try:
        yield emus, ports
    finally:
        for t in threads.values():
            t.stop()


def test_paper_run_fills_against_the_live_books_without_private_requests(tmp_path, emulators):
    emus, ports = emulators
    config = tmp_path / "paper.toml"
    config.write_text(CONFIG.format(**ports))
    run_dir = tmp_path / "run"
    with MovingMarket(emus) as market:
        done = subprocess.run(
            [sys.executable, "-m", "basis_core", "run", "--paper", str(config), "--run-dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in __import__("os").environ.items() if not k.startswith("BASIS_")},
        )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "paper trading" in out
    report = orjson.loads((run_dir / "report.json").read_bytes())
    assert report["orders_filled"] >= 2 and report["hedges_completed"] >= 1, out
    assert not report["open_positions"]
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        fills = db.execute("SELECT venue, price, qty, coid FROM fills").fetchall()
        limits = dict(db.execute("SELECT coid, price FROM orders"))
    assert fills
    # every fill at a price one of the emulators quoted on that venue (a resting order of ours
    # that the live book moved through fills at its own limit price)
    for venue, price, qty, coid in fills:
        assert round(price, 2) in market.quoted[venue] or price == limits[coid], (venue, price, qty)
    assert sum(round(p, 2) in market.quoted[v] for v, p, _, _ in fills) >= len(fills) / 2
    # nothing private (signed) was ever asked: no account, order, open orders or trades
    for name, emu in emus.items():
        paths = {path for _, path, _ in emu.log}
        assert paths <= PUBLIC, f"{name} was asked {sorted(paths - PUBLIC)}"
        assert not emu.placed  # no order reached the live venue
    # alpha was followed by REST snapshots; beta by its depth stream (one REST snapshot to
    # start the book, one from ccxt.pro to seed its websocket book, few or none after)
    depth = {name: sum(path == "/api/v3/depth" for _, path, _ in emu.log) for name, emu in emus.items()}
    assert depth["alpha"] > 10 and depth["beta"] <= 4, depth
    assert {v for v, *_ in fills} == {"alpha", "beta", "gamma"}, fills
    assert any(path == "/fapi/v1/premiumIndex" for _, path, _ in emus["gamma"].log)  # funding


def test_paper_mode_holds_the_config_against_the_venue_and_needs_the_real_clock(tmp_path, emulators):
    import asyncio

    from adapters.paper.world import PaperWorld
    from basis_core.config import load

    _, ports = emulators
    config = tmp_path / "paper.toml"
    config.write_text(
        CONFIG.format(**ports).replace(
            "tick = 0.01\nlot = 0.00001\nmin_notional = 5.0\n\n[limits]",
            "tick = 0.1\nlot = 0.00001\nmin_notional = 5.0\n\n[limits]",
        )
    )
    world = PaperWorld.from_config(load(config))
    with pytest.raises(ConfigError, match=r"instruments\.beta-BTCUSDT\.tick"):
        asyncio.run(world.start())
    config.write_text(CONFIG.format(**ports).replace('clock = "real"', 'clock = "virtual"'))
    with pytest.raises(ConfigError, match="run.clock"):
        PaperWorld.from_config(load(config))


def test_paper_mode_refuses_a_config_without_ccxt_venues(tmp_path):
    from adapters.paper.world import PaperWorld
    from basis_core.config import load

    text = (Path(__file__).resolve().parents[1] / "basis_core/scenarios/default.toml").read_text()
    config = tmp_path / "sim.toml"
    config.write_text(text.replace('clock = "virtual"', 'clock = "real"'))
    with pytest.raises(ConfigError, match="venues"):
        PaperWorld.from_config(load(config))
