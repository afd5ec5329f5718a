"""A local chain for the web3 live-state and CEX-DEX failure tests: anvil, the contracts from
source, a pool venue's account funded (adapters/web3/devchain.py, what `basis devchain` does),
and a second account that moves the pool the way another trader would."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from eth_account import Account
from orchestration import scenario

from adapters.web3.auth import Signer
from adapters.web3.client import EvmClient
from adapters.web3.compile import compile_contracts
from adapters.web3.config import Web3VenueConfig, load_table
from adapters.web3.devchain import Anvil, DevChain, deploy, start_anvil
from adapters.web3.revert import RevertDecoder
from adapters.web3.venue import PoolMarket, Web3Venue
from adapters.web3.world import PoolAddresses
from basis_core.config import Config, from_dict

E18 = 10**18
CEX_PX = 50_000.0
INSTRUMENT = "dex-BTCUSDT"


def rpc(url: str, method: str, params=()):
    body = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    ).json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def cex_dex_data(duration_s: float = 2.0, faults=(), **policy) -> dict:
    """A simulated CEX beside one pool venue (the pool sells BTC under the CEX), real clock."""
    data = scenario(duration_s=duration_s, faults=list(faults))
    data["run"].update(clock="real", name="cex-dex")
    data["venues"] = {
        "cex": {
            "kind": "sim",
            "taker_fee_bps": 10.0,
            "maker_fee_bps": 2.0,
            "balances": {"USDT": 50_000.0, "BTC": 1.0},
            "latency": {"request_ms": 3.0, "response_ms": 3.0, "fill_ms": 1.0, "balance_lag_ms": 100.0},
        },
        "dex": {
            "kind": "web3",
            "taker_fee_bps": 0.0,
            "maker_fee_bps": 0.0,
            "fee_asset": "ETH",
            "fee_asset_price": 3000.0,
            "balances": {"USDT": 30_000.0, "ETH": 10.0},
        },
    }
    data["instruments"] = {
        "cex-BTCUSDT": {"venue": "cex", "symbol": "BTC/USDT", "base": "BTC"},
        INSTRUMENT: {
            "venue": "dex",
            "symbol": "BTC/USDT",
            "base": "BTC",
            "tick": 0.01,
            "lot": 1e-5,
            "min_notional": 5.0,
        },
    }
    data["market"].update(
        start_price=CEX_PX,
        dislocations_per_min=0.0,
        basis_jumps_per_min=0.0,
        vol_bps=1.0,
        noise_bps=0.5,
        trades_per_s=1.0,
    )
    data["limits"].update(hedge_window_s=0.5, unwind_window_s=3.0)
    data["policy"] = {
        "dispatch": "primary_then_hedge",
        "stale_book_ms": 30_000.0,
        "healthy_window_ms": 300.0,
        "reconcile_interval_ms": 250.0,
        "balance_lag_ms": 600.0,
        **policy,
    }
    return data


@dataclass
class LocalChain:
    anvil: Anvil
    dev: DevChain
    decoder: RevertDecoder

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def ws_url(self) -> str:  # anvil serves websockets on its HTTP port
        return "ws://" + self.anvil.url.removeprefix("http://")

    @property
    def pool(self) -> str:
        return self.dev.pools[INSTRUMENT]

    def addresses(self) -> PoolAddresses:
        return PoolAddresses(self.pool, self.dev.tokens["BTC"], self.dev.tokens["USDT"])

    def client(self, **cfg) -> EvmClient:
        """A client of the venue's account (its own nonce manager)."""
        ccfg = Web3VenueConfig(rpc_url=self.url, chain_id=31337, name="dex", **cfg)
        return EvmClient(ccfg, self.dev.signer, self.decoder)

    def venue(self, ws: bool = True, client_cfg=None, **kw) -> Web3Venue:
        a = self.addresses()
        market = PoolMarket(INSTRUMENT, a.pool, a.base_token, a.quote_token, "BTC", "USDT")
        return Web3Venue(self.client(**(client_cfg or {})), [market], ws_url=self.ws_url if ws else "", **kw)

    def table(self, **keys):
        """A `[venues.dex.web3]` table for this chain (for ChainWorld.from_config)."""
        return load_table({"rpc_url": self.url, "chain_id": 31337, **keys}, "venues.dex.web3")

    def mover(self) -> EvmClient:
        """Another account holding plenty of both tokens, the pool approved."""
        signer = Signer(Account.create())
        rpc(self.url, "anvil_setBalance", [signer.address, hex(100 * E18)])
        c = EvmClient(Web3VenueConfig(rpc_url=self.url, chain_id=31337, name="mover"), signer, self.decoder)
        minter = self.client()  # the tokens' deployer
        for token in self.dev.tokens.values():
            minter.transact(token, "mint(address,uint256)", ["address", "uint256"], [c.address, 10**7 * E18])
            c.transact(token, "approve(address,uint256)", ["address", "uint256"], [self.pool, (1 << 256) - 1])
        return c

    def stop(self) -> None:
        self.anvil.stop()


def local_chain(cfg: Config | None = None) -> LocalChain:
    cfg = cfg or from_dict(cex_dex_data())
    arts = compile_contracts()
    anvil = start_anvil()
    try:
        dev = deploy(anvil.url, cfg)
    except BaseException:
        anvil.stop()
        raise
    return LocalChain(anvil, dev, RevertDecoder([a.abi for a in arts.values()], "dex"))


def swap_data(token_in: str, amount_in: int, to: str, min_out: int = 0) -> bytes:
    from adapters.web3.calldata import encode_call

    return encode_call(
        "swap(address,uint256,uint256,address)",
        ["address", "uint256", "uint256", "address"],
        [token_in, amount_in, min_out, to],
    )
