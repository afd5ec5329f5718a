"""A local exchange emulator speaking Binance spot REST (and its depth websocket) over the
simulated venues' matching engine: the test and demo counterpart of the ccxt adapter.

    server.py   Emulator (aiohttp app, endpoints, order wiring) and EmulatorThread
    auth.py     HMAC-SHA256 signature, timestamp and recvWindow verification
    limits.py   request weights, order counts, 429 then 418 with Retry-After
    faults.py   switchable faults (maintenance, slow answers, empty answers, races ...)
    wire.py     Binance JSON bodies from the engine's views
    stream.py   websocket depth diffs for ccxt.pro watch_order_book
    userstream.py  the user-data stream: listen keys, WebSocket API, executionReport events
    futures.py  FuturesEmulator: Binance USDⓈ-M futures REST (positions, margin, marks, funding)
    harness.py  ready-made emulator set-ups for the tests and perf/bench_ccxt_emulator.py
"""

from .faults import Faults
from .limits import RateLimitsConfig
from .server import Emulator, EmulatorThread, Placed

__all__ = ["Emulator", "EmulatorThread", "Faults", "Placed", "RateLimitsConfig"]
