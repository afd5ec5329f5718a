"""Config of one EVM venue: endpoint, chain, key source and fee caps (frozen, validated).

`ChainTableConfig` (below) is the run config's `[venues.NAME.web3]` table: the venue's chain,
its contracts and tokens; `client_config()` gives the client's `Web3VenueConfig` from it.

Web3VenueConfig is loaded with basis_core.configio.build from a TOML table such as

    [venues.anvil]           # kind = "web3" in the run config
    rpc_url = "http://127.0.0.1:8545"
    chain_id = 31337
    key_env = "BASIS_WEB3_KEY"          # hex private key in this environment variable, or
    keystore = "/path/key.json"         # an encrypted eth_account keystore file ...
    keystore_password_env = "BASIS_WEB3_KEYSTORE_PASSWORD"   # ... and its password's variable
    max_fee_gwei = 200.0
    max_priority_fee_gwei = 3.0

The config holds the *names* of the environment variables, never a key or a password. The
endpoint URL is left out of its repr, since hosted endpoints carry an API key in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from basis_core.configio import build, load_toml, require
from basis_core.errors import ConfigError


@dataclass(frozen=True)
class Web3VenueConfig:
    #: kept out of repr: hosted endpoints carry API keys in the URL (see auth.safe_url)
    rpc_url: str = field(default="http://127.0.0.1:8545", repr=False)
    chain_id: int = 31337
    name: str = "evm"
    key_env: str = "BASIS_WEB3_KEY"
    keystore: str = ""
    keystore_password_env: str = "BASIS_WEB3_KEYSTORE_PASSWORD"
    #: hard caps: a transaction needing more is refused with GasCapExceeded
    max_fee_gwei: float = 200.0
    max_priority_fee_gwei: float = 3.0
    #: priority fee asked for when the node suggests none
    default_priority_fee_gwei: float = 1.0
    #: maxFeePerGas = base_fee * base_fee_multiplier + priority
    base_fee_multiplier: int = 2
    #: gas limit = estimate * gas_margin_pct / 100, and never above max_gas
    gas_margin_pct: int = 125
    max_gas: int = 3_000_000
    request_timeout_s: float = 10.0
    receipt_timeout_s: float = 30.0
    poll_interval_s: float = 0.005
    #: seconds added to the latest block time for the executor's deadline
    deadline_s: int = 60

    def _validate(self, path):
        p = f"{path}." if path else ""
        require(
            self.rpc_url.startswith(("http://", "https://", "ws://", "wss://")),
            f"{p}rpc_url",
            "must be an http(s):// or ws(s):// URL",
        )
        require(self.chain_id > 0, f"{p}chain_id", "must be > 0")
        require(self.max_fee_gwei > 0, f"{p}max_fee_gwei", "must be > 0")
        require(
            0 <= self.max_priority_fee_gwei <= self.max_fee_gwei,
            f"{p}max_priority_fee_gwei",
            "must be in [0, max_fee_gwei]",
        )
        require(
            0 <= self.default_priority_fee_gwei <= self.max_priority_fee_gwei,
            f"{p}default_priority_fee_gwei",
            "must be in [0, max_priority_fee_gwei]",
        )
        require(1 <= self.base_fee_multiplier <= 10, f"{p}base_fee_multiplier", "must be in [1, 10]")
        require(100 <= self.gas_margin_pct <= 300, f"{p}gas_margin_pct", "must be in [100, 300]")
        require(21_000 <= self.max_gas <= 30_000_000, f"{p}max_gas", "must be in [21000, 30000000]")
        for name in ("request_timeout_s", "receipt_timeout_s", "poll_interval_s"):
            require(getattr(self, name) > 0, f"{p}{name}", "must be > 0")
        require(self.deadline_s > 0, f"{p}deadline_s", "must be > 0")
        require(bool(self.key_env) or bool(self.keystore), f"{p}key_env", "need key_env or keystore")


def load(data: dict, path: str = "") -> Web3VenueConfig:
    """Build a Web3VenueConfig from a TOML table (ConfigError names the bad key path)."""
    return build(Web3VenueConfig, data, path)


# -- the run config's `[venues.NAME.web3]` table ------------------------------------------------


@dataclass(frozen=True)
class TokenConfig:
    """One ERC-20 of a web3 venue, named by its asset (`[venues.NAME.web3.tokens.BTC]`)."""

    address: str
    #: what the token's decimals() must answer (checked against the chain at start)
    decimals: int = 18

    def _validate(self, path):
        require(0 <= self.decimals <= 36, f"{path}.decimals", "must be in [0, 36]")


@dataclass(frozen=True)
class ChainTableConfig:
    """`[venues.NAME.web3]` of a `kind = "web3"` venue in the run config:

        [venues.dex.web3]
        chain_file = "local-chain.toml"   # optional: a fragment (`basis devchain` writes one)
                                          # giving the keys below that this table leaves out
        rpc_url = "http://127.0.0.1:8545"
        ws_url = ""                       # optional; when set the venue's requests go through it,
                                          # and new heads and the pools' Sync logs come by
                                          # eth_subscribe on it (otherwise polled every poll_ms)
        chain_id = 31337                  # checked against eth_chainId at start
        executor = "0x..."                # the AtomicExecutor (optional: pool venues need none)
        pools = { dex-BTCUSDT = "0x..." } # instrument -> its pool
        tokens.BTC = { address = "0x...", decimals = 18 }   # asset -> ERC-20 (decimals checked)
        key_env = "BASIS_WEB3_KEY"        # or keystore + keystore_password_env
        max_fee_gwei = 200.0              # gas policy: hard fee cap and tip cap
        max_priority_fee_gwei = 3.0
        confirmations = 1                 # blocks a swap waits for before it is a fill
        head_timeout_s = 0.0              # no new head for this long: the pools' books are
                                          # stale (0: never; anvil mines only on a transaction,
                                          # a real chain: a few block times, e.g. 60)
        receipt_timeout_s = 30.0          # how long a submit waits for the swap's receipt
        deadline_s = 60                   # a swap unmined this long after it was sent is
                                          # replaced by a cancel at its nonce
        relay_url = ""                    # optional: a bundle relay (http(s)); swaps are then
                                          # simulated with eth_callBundle and sent with
                                          # eth_sendBundle, never to the public mempool
        bundle_blocks = 3                 # the next blocks each bundle is sent for; none
                                          # including it: the order EXPIRED, its nonce reused

    The key itself is never in the config: only the name of its environment variable, or a
    keystore file and the variable holding its password.
    """

    chain_file: str = ""
    rpc_url: str = field(default="", repr=False)
    ws_url: str = field(default="", repr=False)
    chain_id: int = 0
    executor: str = ""
    pools: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tokens: Mapping[str, TokenConfig] = field(default_factory=lambda: MappingProxyType({}))
    key_env: str = "BASIS_WEB3_KEY"
    keystore: str = ""
    keystore_password_env: str = "BASIS_WEB3_KEYSTORE_PASSWORD"
    max_fee_gwei: float = 200.0
    max_priority_fee_gwei: float = 3.0
    default_priority_fee_gwei: float = 1.0
    max_gas: int = 3_000_000
    confirmations: int = 1
    slippage_bps: int = 50
    poll_ms: float = 50.0
    head_timeout_s: float = 0.0
    request_timeout_s: float = 10.0
    receipt_timeout_s: float = 30.0
    deadline_s: int = 60
    #: kept out of repr: hosted relays may carry a key in the URL
    relay_url: str = field(default="", repr=False)
    bundle_blocks: int = 3

    def _validate(self, path):
        p = f"{path}." if path else ""
        require(bool(self.rpc_url), f"{p}rpc_url", "required (here or in chain_file)")
        require(
            not self.relay_url or self.relay_url.startswith(("http://", "https://")),
            f"{p}relay_url",
            "must be an http(s):// URL",
        )
        require(1 <= self.bundle_blocks <= 25, f"{p}bundle_blocks", "must be in [1, 25]")
        require(self.chain_id > 0, f"{p}chain_id", "required, > 0 (here or in chain_file)")
        require(
            not self.ws_url or self.ws_url.startswith(("ws://", "wss://")),
            f"{p}ws_url",
            "must be a ws(s):// URL",
        )
        require(1 <= self.confirmations <= 64, f"{p}confirmations", "must be in [1, 64]")
        require(0 <= self.slippage_bps < 10_000, f"{p}slippage_bps", "must be in [0, 10000)")
        require(self.poll_ms > 0, f"{p}poll_ms", "must be > 0")
        require(self.head_timeout_s >= 0, f"{p}head_timeout_s", "must be >= 0 (0: never stale)")
        for inst, pool in self.pools.items():
            require(_is_address(pool), f"{p}pools.{inst}", "must be a 0x-prefixed 20-byte address")
        for asset, tok in self.tokens.items():
            require(_is_address(tok.address), f"{p}tokens.{asset}.address", "must be a 20-byte address")
        require(not self.executor or _is_address(self.executor), f"{p}executor", "must be a 20-byte address")
        self.client_config("check", path)  # the endpoint, key source and gas policy

    def client_config(self, venue: str, path: str = "") -> Web3VenueConfig:
        """The EVM client's config for venue `venue` (ConfigError paths under `path`)."""
        data = {
            "rpc_url": self.ws_url or self.rpc_url,
            "chain_id": self.chain_id,
            "name": venue,
            "key_env": self.key_env,
            "keystore": self.keystore,
            "keystore_password_env": self.keystore_password_env,
            "max_fee_gwei": self.max_fee_gwei,
            "max_priority_fee_gwei": self.max_priority_fee_gwei,
            "default_priority_fee_gwei": min(self.default_priority_fee_gwei, self.max_priority_fee_gwei),
            "max_gas": self.max_gas,
            "request_timeout_s": self.request_timeout_s,
            "receipt_timeout_s": self.receipt_timeout_s,
            "deadline_s": self.deadline_s,
        }
        return build(Web3VenueConfig, data, path)


def _is_address(text: str) -> bool:
    body = text[2:] if text[:2] in ("0x", "0X") else ""
    return len(body) == 40 and all(c in "0123456789abcdefABCDEF" for c in body)


def _plain(value):
    """A table as read by the run config (read-only mappings, tuples) as TOML-shaped data."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def load_table(table, path: str, base_dir: str = "") -> ChainTableConfig:
    """Build the `[venues.NAME.web3]` table `table` (found at key `path`). Its `chain_file`, a
    TOML file relative to `base_dir`, gives the keys the table leaves out (the table's pools
    and tokens are added to the file's). ConfigError names the key path (for a key from the
    file, the file and the key)."""
    data = _plain(table)
    name = data.get("chain_file", "")
    if name:
        if not isinstance(name, str):
            raise ConfigError(f"{path}.chain_file", f"expected a string, got {name!r}")
        file = Path(name) if Path(name).is_absolute() or not base_dir else Path(base_dir) / name
        try:
            fragment = load_toml(file)
        except ConfigError as exc:
            raise ConfigError(f"{path}.chain_file", exc.message) from None
        merged = {**fragment, **data}
        for key in ("pools", "tokens"):
            if isinstance(fragment.get(key), dict) and isinstance(data.get(key), dict):
                merged[key] = {**fragment[key], **data[key]}
        data = merged
    return build(ChainTableConfig, data, path)
