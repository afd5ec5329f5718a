"""Round-trip latency of create_order via the real ccxt client against the exchange emulator.

Topology (loopback HTTP, keep-alive):

    client loop (this thread)                      emulator loop (its own thread)
    CcxtVenue.submit ─▶ Gate ─▶ ccxt create_order ──HTTP──▶ aiohttp ─▶ sign check ─▶ matching
    raw ccxt create_order ──────────────────────────HTTP──▶ (same)

Each sample is one resting limit buy (never fills) with a fresh client order id; the book and
balances are large enough for every sample, and the adapter's pools are unbounded (the
throttle's waiting is not what is measured here). Printed as JSON: p50/p90/p99/max in microseconds
for the adapter (gate + ccxt + parsing) and for raw ccxt, after a correctness check that every
order reached the emulator exactly once.

    .venv/bin/python perf/bench_ccxt_emulator.py [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator import EmulatorThread, RateLimitsConfig
from adapters.emulator.harness import binance_client, standard_emulator
from basis_core.results.stats import percentile
from basis_core.schema import OrderType, Side
from basis_core.venue import OrderRequest

KEY, SECRET = "bench-key", "bench-secret"


def percentiles(samples: list[float]) -> dict:
    """Latency figures in µs of samples in seconds, by the one percentile method of the project."""
    pick = lambda q: round(percentile(samples, q) * 1e6, 1)
    return {
        "n": len(samples),
        "p50_us": pick(50.0),
        "p90_us": pick(90.0),
        "p99_us": pick(99.0),
        "max_us": round(max(samples) * 1e6, 1),
    }


async def measure(url: str, n: int) -> dict:
    huge = {"limit": 1e9, "window_s": 1.0}  # measure the path, not the waiting
    cfg = from_dict(
        {
            "base_url": url,
            "timeout_ms": 5000,
            "instruments": {"BTCUSDT": "BTC/USDT"},
            "pools": {"weight_1m": huge, "orders_10s": huge, "orders_1d": huge},
        }
    )
    venue = CcxtVenue("bench", cfg, Credentials(KEY, SECRET))
    ex = binance_client(url, KEY, SECRET, 5000)
    await venue.start()
    await ex.load_markets()
    adapter, raw = [], []
    try:
        for i in range(20):  # warm connections and caches
            await venue.submit(
                OrderRequest(str(900_000 + i), "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, 30000.0)
            )
        for i in range(n):
            t0 = time.perf_counter()
            await venue.submit(
                OrderRequest(str(100_000 + i), "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, 30000.0)
            )
            adapter.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await ex.create_order(
                "BTC/USDT", "limit", "buy", 0.001, 30000.0, {"clientOrderId": str(500_000 + i)}
            )
            raw.append(time.perf_counter() - t0)
    finally:
        await venue.close()
        await ex.close()
    return {"adapter_submit": percentiles(adapter), "raw_ccxt_create_order": percentiles(raw)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    big = RateLimitsConfig(weight_limit=10**9, orders_limit=10**9, orders_day_limit=10**9)
    emu = standard_emulator({KEY: (SECRET, "bench")}, limits=big, usdt=10**9)
    with EmulatorThread(emu):
        result = asyncio.run(measure(emu.url, n))
    coids = [p.coid for p in emu.orders_of("bench")]
    assert len(coids) == len(set(coids)) == 2 * n + 20, "an order was lost or duplicated"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
