"""Config of one EVM venue: endpoint, chain, key source and fee caps (frozen, validated).

Loaded with basis_core.configio.build from a TOML table such as

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

from dataclasses import dataclass, field

from basis_core.configio import build, require


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
