"""A local chain for a config's web3 venue: anvil, the contracts built from source, pools seeded.

`start_anvil(port)` starts the anvil binary that scripts/bootstrap installs (npm package
@foundry-rs/anvil-linux-amd64 in tools/node_modules; $BASIS_ANVIL overrides the path) on
127.0.0.1 and waits until it answers eth_chainId. `deploy(url, cfg)` then, for the config's
one web3 venue:

* creates a fresh account (eth_account) and gives it ETH (anvil_setBalance);
* from that account compiles (compile.py) and deploys one TestToken per asset the venue's
  instruments trade, one ConstantProductPool per instrument seeded with `pool_base` of its
  base at `market.start_price` moved by `offset_bps` (a negative offset: the pool sells below
  the simulated venues, an opportunity to take), and an AtomicExecutor it owns;
* mints the venue's `balances` of each token to the account and sets its ETH balance to the
  venue's ETH balance (10 ETH when the config gives none), so the chain holds what the config
  says the venue holds.

Two-pool configs (the venue has two or more instruments on one base/quote pair, e.g.
examples/two-pool-local.toml): the pools of that pair are seeded alternately at `offset_bps`
and `-offset_bps` (one sells below the market, the next above: an opportunity between them),
and half of the venue's quote balance is minted to the executor instead of the account (the
executor trades out of its own inventory; the venue counts both as its balance).

`DevChain.fragment()` is the TOML the venue's `[venues.NAME.web3] chain_file` names: RPC URL,
chain id, executor, pools, tokens (with decimals) and the keystore file holding the account's
key, encrypted with the password in an environment variable (`write_keystore`). The key is
never printed and never in the fragment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from eth_account import Account

from basis_core.config import Config
from basis_core.errors import ConfigError, ToolMissing, VenueUnavailable

from .auth import Signer
from .client import EvmClient
from .compile import BOOTSTRAP_HINT, REPO_ROOT, compile_contracts
from .config import Web3VenueConfig
from .revert import RevertDecoder

E18 = 10**18
MAX_UINT = (1 << 256) - 1
ANVIL_CHAIN_ID = 31337


def anvil_path() -> Path:
    """The anvil binary ($BASIS_ANVIL, else tools/node_modules); ToolMissing if absent."""
    path = Path(
        os.environ.get("BASIS_ANVIL")
        or REPO_ROOT / "tools" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    )
    if not path.is_file():
        raise ToolMissing(f"anvil not found at {path}: {BOOTSTRAP_HINT}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    """A running anvil node (ours: `stop()` ends it)."""

    proc: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_anvil(port: int = 0, timeout_s: float = 20.0) -> Anvil:
    """Start anvil on 127.0.0.1:`port` (0: a free port); VenueUnavailable if it does not answer."""
    port = port or free_port()
    proc = subprocess.Popen(
        [str(anvil_path()), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rpc(url, "eth_chainId")
            return Anvil(proc, url)
        except requests.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-500:]
                raise VenueUnavailable(
                    "anvil", "unreachable", f"anvil did not answer on {url}: {err}"
                ) from None
            time.sleep(0.05)


def rpc(url: str, method: str, params=()):
    """One raw JSON-RPC request (node controls such as anvil_setBalance)."""
    r = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    )
    body = r.json()
    if "error" in body:
        raise VenueUnavailable("anvil", "rpc_error", f"{method}: {body['error'].get('message', '')}")
    return body["result"]


@dataclass
class DevChain:
    """What `deploy` made: addresses by name, the account, and its signer (key inside)."""

    url: str
    venue: str
    account: str
    executor: str
    tokens: dict[str, str] = field(default_factory=dict)  # asset -> token
    pools: dict[str, str] = field(default_factory=dict)  # instrument -> pool
    signer: Signer | None = field(default=None, repr=False)

    def fragment(self, keystore: str, password_env: str) -> str:
        """The TOML a `[venues.NAME.web3] chain_file` names (no key: the keystore's path)."""
        lines = [
            f"# written by `basis devchain` for venue {self.venue}: anvil at {self.url}",
            f'rpc_url = "{self.url}"',
            f"chain_id = {ANVIL_CHAIN_ID}",
            f'executor = "{self.executor}"',
            f'keystore = "{keystore}"',
            f'keystore_password_env = "{password_env}"',
            "",
            "[pools]",
            *(f'{inst} = "{addr}"' for inst, addr in self.pools.items()),
            "",
        ]
        for asset, addr in self.tokens.items():
            lines += [f"[tokens.{asset}]", f'address = "{addr}"', "decimals = 18", ""]
        return "\n".join(lines)


def web3_venue(cfg: Config) -> str:
    """The config's one web3 venue (ConfigError when it has none or several)."""
    names = [n for n, v in cfg.venues.items() if v.kind == "web3"]
    if len(names) != 1:
        raise ConfigError(
            "venues", f"a local chain is made for exactly one web3 venue, the config has {len(names)}"
        )
    return names[0]


def deploy(url: str, cfg: Config, pool_base: float = 100.0, offset_bps: float = -80.0) -> DevChain:
    """Deploy and seed the contracts for `cfg`'s web3 venue on the node at `url` (see the
    module docstring)."""
    venue = web3_venue(cfg)
    vcfg = cfg.venues[venue]
    insts = {n: i for n, i in cfg.instruments.items() if i.venue == venue}
    if not insts:
        raise ConfigError(f"venues.{venue}", "a web3 venue needs at least one instrument")
    arts = compile_contracts()
    signer = Signer(Account.create())
    ccfg = Web3VenueConfig(rpc_url=url, chain_id=ANVIL_CHAIN_ID, name=venue)
    client = EvmClient(ccfg, signer, RevertDecoder([a.abi for a in arts.values()], venue))
    rpc(url, "anvil_setBalance", [signer.address, hex(1000 * E18)])
    out = DevChain(url, venue, signer.address, "", signer=signer)
    for inst in insts.values():
        for asset in (inst.base, inst.quote):
            if asset not in out.tokens:
                out.tokens[asset] = client.deploy(
                    arts["TestToken"], ["string", "string"], [f"Test {asset}", asset]
                )
    seen: dict[tuple[str, str], int] = {}  # (base, quote) -> pools seeded for it so far
    for name, inst in insts.items():
        k = seen[(inst.base, inst.quote)] = seen.get((inst.base, inst.quote), -1) + 1
        price = cfg.market.start_price * (1 + (offset_bps if k % 2 == 0 else -offset_bps) / 1e4)
        base, quote = out.tokens[inst.base], out.tokens[inst.quote]
        pool = client.deploy(arts["ConstantProductPool"], ["address", "address"], [base, quote])
        amount_b, amount_q = int(pool_base * E18), int(pool_base * price * E18)
        for token, amount in ((base, amount_b), (quote, amount_q)):
            _tx(client, token, "mint(address,uint256)", ["address", "uint256"], [signer.address, amount])
            _tx(client, token, "approve(address,uint256)", ["address", "uint256"], [pool, MAX_UINT])
        _tx(client, pool, "addLiquidity(uint256,uint256)", ["uint256", "uint256"], [amount_b, amount_q])
        out.pools[name] = pool
    out.executor = client.deploy(arts["AtomicExecutor"])
    two_pool = {quote for (_, quote), n in seen.items() if n >= 1}  # quotes of two-pool pairs
    for asset, token in out.tokens.items():
        amount = round(vcfg.balances.get(asset, 0.0) * 1e6) * 10**12  # whole micro-units
        held = amount // 2 if asset in two_pool else 0  # the executor's inventory
        if amount - held:
            _tx(
                client,
                token,
                "mint(address,uint256)",
                ["address", "uint256"],
                [signer.address, amount - held],
            )
        if held:
            _tx(client, token, "mint(address,uint256)", ["address", "uint256"], [out.executor, held])
    eth = vcfg.balances.get("ETH", 10.0)
    rpc(url, "anvil_setBalance", [signer.address, hex(round(eth * 1e6) * 10**12)])
    return out


def mine_every(url: str, seconds: int) -> None:
    """From now on the node at `url` builds a block every `seconds` (holding the transactions
    sent meanwhile, as a chain does) instead of one per transaction at once."""
    if seconds < 1:
        raise ConfigError("block_time", f"must be >= 1 second, got {seconds}")
    rpc(url, "evm_setIntervalMining", [int(seconds)])


def _tx(client: EvmClient, to: str, sig: str, types: list[str], args: list) -> None:
    client.transact(to, sig, types, args)


def write_keystore(signer: Signer, path: Path, password: str, iterations: int | None = None) -> None:
    """The signer's key as an eth_account keystore file (mode 0600), encrypted with
    `password`. `iterations` lowers the KDF's work (tests only)."""
    blob = signer.keystore(password, iterations)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(blob, fh)
