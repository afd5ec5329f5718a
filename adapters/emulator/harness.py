"""Ready-made emulator set-ups for the tests and perf/bench_ccxt_emulator.py.

`standard_emulator` builds a venue with BTCUSDT and ETHUSDT (Binance-like filters), one funded
account per key and a two-sided book; `binance_client` points a real ccxt async Binance client
at an emulator (spot only, no currency/margin endpoints, ccxt's limiter off).
"""

from __future__ import annotations

import ccxt.async_support as ccxt_async

from adapters.sim.matching import Spec

from .limits import RateLimitsConfig
from .server import Emulator

BTC = Spec("BTCUSDT", "BTC", "USDT", tick=0.01, lot=0.00001, min_notional=5.0)
ETH = Spec("ETHUSDT", "ETH", "USDT", tick=0.01, lot=0.0001, min_notional=5.0)
CCXT_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}


def standard_emulator(
    keys: dict[str, tuple[str, str]],
    *,
    name: str = "emulator",
    limits: RateLimitsConfig | None = None,
    usdt: float = 100_000.0,
    btc: float = 2.0,
    eth: float = 20.0,
) -> Emulator:
    """BTCUSDT + ETHUSDT, every owner funded, books around 50 000 and 3 000."""
    emu = Emulator([BTC, ETH], keys, name=name, limits=limits)
    for _, owner in keys.values():
        emu.deposit(owner, "USDT", usdt)
        emu.deposit(owner, "BTC", btc)
        emu.deposit(owner, "ETH", eth)
    emu.set_book("BTCUSDT", [(50_000.00, 0.5), (49_999.00, 1.0)], [(50_000.01, 0.3), (50_001.00, 1.0)])
    emu.set_book("ETHUSDT", [(3_000.00, 5.0), (2_999.00, 10.0)], [(3_000.01, 5.0), (3_001.00, 10.0)])
    return emu


def binance_client(url: str, api_key: str, secret: str, timeout_ms: int = 1000):
    """A real ccxt.async_support.binance speaking to the emulator at `url`."""
    ex = ccxt_async.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "options": dict(CCXT_OPTIONS),
            "timeout": timeout_ms,
            "enableRateLimit": False,
        }
    )
    ex.urls["api"] = {
        name: url.rstrip("/") + "/" + u.split("://", 1)[1].split("/", 1)[1]
        for name, u in ex.urls["api"].items()
        if isinstance(u, str)
    }
    return ex
