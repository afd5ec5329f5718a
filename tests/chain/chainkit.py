"""Helpers shared by the on-chain tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from adapters.web3.auth import Signer
from adapters.web3.client import EvmClient
from adapters.web3.config import Web3VenueConfig

E18 = 10**18
MAX_UINT = (1 << 256) - 1

#: anvil's built-in development accounts 0..2 (derived from its public test mnemonic)
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
)


def rpc(url: str, method: str, params=()):
    """One raw JSON-RPC request (test-node controls such as evm_mine); RuntimeError on error."""
    r = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    )
    body = r.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def make_client(url: str, decoder, key_index: int = 0, **cfg_overrides) -> EvmClient:
    cfg = Web3VenueConfig(rpc_url=url, chain_id=31337, name="anvil", **cfg_overrides)
    return EvmClient(cfg, Signer.from_hex(DEV_KEYS[key_index]), decoder)


@dataclass(frozen=True)
class World:
    """Addresses deployed once per session. Pool A sells token X (the 'ETH') for 2000 Y,
    pool B for 2100 Y; the executor holds `executor_funds` of Y."""

    url: str
    x: str
    y: str
    pool_a: str
    pool_b: str
    executor: str
    owner: str
    other: str
    executor_funds: int


def approve(c: EvmClient, token: str, spender: str, amount: int = MAX_UINT):
    c.transact(token, "approve(address,uint256)", ["address", "uint256"], [spender, amount])


def mint(c: EvmClient, token: str, to: str, amount: int):
    c.transact(token, "mint(address,uint256)", ["address", "uint256"], [to, amount])


def swap(c: EvmClient, pool: str, token_in: str, amount_in: int, **send_kw):
    """Send a direct pool swap from `c` (to move a pool's price); returns the SentTx."""
    from adapters.web3.calldata import encode_call

    data = encode_call(
        "swap(address,uint256,uint256,address)",
        ["address", "uint256", "uint256", "address"],
        [token_in, amount_in, 0, c.address],
    )
    return c.send(pool, data, **send_kw)
