"""Configuration of one ccxt venue: which exchange, where, with which credentials and limits.

A `[venues.NAME.ccxt]`-shaped table (loaded with `basis_core.configio.build`):

    exchange = "binance"            # a ccxt exchange id
    base_url = ""                   # e.g. "http://127.0.0.1:8765": every REST base is rewritten
                                    # to this host, keeping its path prefix (local emulator)
    sandbox = false                 # ccxt's sandbox/testnet endpoints (set_sandbox_mode)
    timeout_ms = 1000
    recv_window_ms = 5000
    market_data = "rest"            # "rest": polled snapshots; "ws": ccxt.pro watch_order_book
    ws_url = ""                     # websocket base for "ws" (default: the venue's, or derived
                                    # from base_url as ws://HOST:PORT/ws)
    book_stale_ms = 1000            # "ws": a book with no message for this long is marked stale
    user_data = "auto"              # "ws": order updates and fills pushed on the venue's user
                                    # stream, REST the backstop; "rest": fills polled; "auto":
                                    # "ws" when market_data is "ws" on binance or binanceusdm, else "rest"
    ws_api_url = ""                 # WebSocket API base for the user stream (default: the
                                    # venue's, or ws://HOST:PORT/ws-api/v3 from base_url)
    instruments = { BTCUSDT = "BTC/USDT" }   # our instrument name -> ccxt unified symbol
                                    # (a perpetual: "BTC/USDT:USDT", exchange "binanceusdm")
    leverage = { BTCPERP = 5 }      # perps: leverage set at start (default DEFAULT_LEVERAGE)
    mark_poll_s = 1.0               # perps: premium index (mark, funding rate) read this often
    funding_poll_s = 60.0           # perps: funding income read this often (and after each
                                    # funding time the premium index announced)
    [credentials]                   # env variable NAMES, or a secrets file; never the values
    api_key_env = "BASIS_BINANCE_KEY"
    secret_env = "BASIS_BINANCE_SECRET"
    # secrets_file = "/run/secrets/binance.toml"   (api_key = ..., secret = ...; mode 0600)
    [pools.weight_1m]               # the venue's limits, see basis_ext.throttle
    limit = 5400
    window_s = 60.0
    [endpoints]                     # weight drawn from each pool per endpoint
    order = { weight_1m = 1, orders_10s = 1, orders_1d = 1 }

Pools and endpoints default to Binance spot's published limits at 90 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from basis_core.configio import build, require

from .constants import BINANCE_ENDPOINTS, BINANCE_POOLS, ENDPOINT_NAMES


@dataclass(frozen=True)
class CredentialsConfig:
    """Where the API key and secret come from: two environment variables or one file."""

    api_key_env: str = ""
    secret_env: str = ""
    password_env: str = ""
    secrets_file: str = ""

    def _validate(self, path):
        by_env = bool(self.api_key_env or self.secret_env)
        require(
            not (by_env and self.secrets_file),
            path,
            "name either api_key_env/secret_env or secrets_file, not both",
        )
        if by_env:
            require(
                bool(self.api_key_env and self.secret_env), path, "api_key_env and secret_env go together"
            )


@dataclass(frozen=True)
class PoolConfig:
    limit: float
    window_s: float
    burst: float = 0.25

    def _validate(self, path):
        require(self.limit > 0, f"{_at(path)}limit", "must be > 0")
        require(self.window_s > 0, f"{_at(path)}window_s", "must be > 0")
        require(0 < self.burst <= 1, f"{_at(path)}burst", "must be in (0, 1]")


def _at(path: str) -> str:
    """`path` as a key prefix ("" at the top level)."""
    return f"{path}." if path else ""


def _pools() -> Mapping[str, PoolConfig]:
    return MappingProxyType({k: PoolConfig(*v) for k, v in BINANCE_POOLS.items()})


def _endpoints() -> Mapping[str, Mapping[str, float]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in BINANCE_ENDPOINTS.items()})


@dataclass(frozen=True)
class CcxtVenueConfig:
    exchange: str = "binance"
    base_url: str = ""
    sandbox: bool = False
    timeout_ms: int = 1000
    recv_window_ms: int = 5000
    market_data: Literal["rest", "ws"] = "rest"
    ws_url: str = ""
    book_stale_ms: int = 1000
    user_data: Literal["auto", "rest", "ws"] = "auto"
    ws_api_url: str = ""
    instruments: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    leverage: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    mark_poll_s: float = 1.0
    funding_poll_s: float = 60.0
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    pools: Mapping[str, PoolConfig] = field(default_factory=_pools)
    endpoints: Mapping[str, Mapping[str, float]] = field(default_factory=_endpoints)
    max_attempts: int = 3
    #: look a submit with an unknown outcome up by client id and adopt or resend it here; false
    #: when the caller (the orchestrator, with its own SUSPECT/verify machinery) does that itself
    verify_submits: bool = True
    backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    #: routing rate while the engine is DEGRADED (fraction of the pools' refill rates)
    degraded_rate: float = 0.5

    def _validate(self, path):
        require(bool(self.exchange), f"{_at(path)}exchange", "must name a ccxt exchange id")
        require(
            not self.base_url or self.base_url.startswith(("http://", "https://")),
            f"{_at(path)}base_url",
            "must start with http:// or https://",
        )
        require(
            not (self.base_url and self.sandbox),
            f"{_at(path)}sandbox",
            "sandbox and base_url exclude each other",
        )
        require(50 <= self.timeout_ms <= 120_000, f"{_at(path)}timeout_ms", "must be in [50, 120000]")
        require(
            not self.ws_url or self.ws_url.startswith(("ws://", "wss://")),
            f"{_at(path)}ws_url",
            "must start with ws:// or wss://",
        )
        require(
            not self.ws_api_url or self.ws_api_url.startswith(("ws://", "wss://")),
            f"{_at(path)}ws_api_url",
            "must start with ws:// or wss://",
        )
        require(10 <= self.book_stale_ms <= 600_000, f"{_at(path)}book_stale_ms", "must be in [10, 600000]")
        require(
            self.user_data != "ws" or self.exchange in USER_STREAM_EXCHANGES,
            f"{_at(path)}user_data",
            f"not yet: the websocket user stream is implemented for {', '.join(USER_STREAM_EXCHANGES)}",
        )
        require(0 < self.recv_window_ms <= 60_000, f"{_at(path)}recv_window_ms", "must be in (0, 60000]")
        require(self.max_attempts >= 1, f"{_at(path)}max_attempts", "must be >= 1")
        require(
            0 <= self.backoff_s <= self.max_backoff_s,
            f"{_at(path)}backoff_s",
            "must be in [0, max_backoff_s]",
        )
        require(0 < self.degraded_rate <= 1, f"{_at(path)}degraded_rate", "must be in (0, 1]")
        for name, symbol in self.instruments.items():
            require(
                "/" in symbol,
                f"{_at(path)}instruments.{name}",
                f"{symbol!r} is not a ccxt unified symbol (BASE/QUOTE)",
            )
        for name, lev in self.leverage.items():
            require(
                name in self.instruments, f"{_at(path)}leverage.{name}", "names no instrument of this venue"
            )
            require(
                lev == int(lev) and 1 <= lev <= 125,
                f"{_at(path)}leverage.{name}",
                "must be a whole number in 1..125",
            )
        require(0 < self.mark_poll_s <= 3600, f"{_at(path)}mark_poll_s", "must be in (0, 3600]")
        require(0 < self.funding_poll_s <= 86_400, f"{_at(path)}funding_poll_s", "must be in (0, 86400]")
        for name in ENDPOINT_NAMES:
            require(
                name in self.endpoints,
                f"{_at(path)}endpoints.{name}",
                "missing: every endpoint needs weights",
            )
        for name, weights in self.endpoints.items():
            require(len(weights) > 0, f"{_at(path)}endpoints.{name}", "needs at least one pool")
            for pool, w in weights.items():
                require(pool in self.pools, f"{_at(path)}endpoints.{name}.{pool}", "names an undeclared pool")
                require(w > 0, f"{_at(path)}endpoints.{name}.{pool}", "must be > 0")

    @property
    def user_data_mode(self) -> str:
        """The user-data path, "ws" or "rest": `user_data` with "auto" decided."""
        if self.user_data != "auto":
            return self.user_data
        return "ws" if self.market_data == "ws" and self.exchange in USER_STREAM_EXCHANGES else "rest"


#: exchanges whose websocket user stream the adapter follows (adapters/ccxt/streams.py)
USER_STREAM_EXCHANGES = ("binance", "binanceusdm")


def from_dict(data: dict, path: str = "") -> CcxtVenueConfig:
    """Build and validate a CcxtVenueConfig (ConfigError names the bad key path)."""
    return build(CcxtVenueConfig, data, path)
