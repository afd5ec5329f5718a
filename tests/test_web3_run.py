"""`basis run` with a web3 pool venue beside a simulated CEX, on a local chain from `basis devchain`.

The chain is made the way a newcomer makes it: `basis devchain --config examples/cex-dex-local.toml
--out FILE` as a subprocess (anvil, the contracts compiled from source and deployed, a new
account funded, FILE and its keystore written). Then `basis run` goes through the CLI's main on
that config, and the venue itself is driven into each refusal it can meet.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from eth_account import Account

from adapters.web3.auth import Signer
from adapters.web3.calldata import encode_call
from adapters.web3.client import EvmClient
from adapters.web3.config import load_table
from adapters.web3.devchain import free_port, rpc
from adapters.web3.revert import refusal_reason
from adapters.web3.venue import SWAP_TOPIC
from adapters.web3.world import ChainWorld
from basis_core.cli import main as cli_main
from basis_core.config import load
from basis_core.engine.scenario import simulated_only
from basis_core.errors import ChainRevert, ConfigError, OrderRejected
from basis_core.venue import Charge, OrderRequest, OrderType, Side

pytestmark = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cex-dex-local.toml"
PASSWORD_ENV = "BASIS_WEB3_KEYSTORE_PASSWORD"
PASSWORD = "local-test-password-7f3a"
E18 = 10**18


def _config_text(chain_file: Path, out_dir: Path, **web3) -> str:
    """The example config pointed at `chain_file`, writing under `out_dir`; `web3` keys are
    added to its [venues.dex.web3] table."""
    text = EXAMPLE.read_text()
    for old, new in (
        ('chain_file = "cex-dex-local.chain.toml"', f'chain_file = "{chain_file}"'),
        ('out_dir = "runs"', f'out_dir = "{out_dir}"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    head, table = text.split("[venues.dex.web3]\n", 1)
    for k, v in web3.items():  # a key the example sets is replaced, another one added
        line = f"{k} = {_toml(v)}"
        table, n = re.subn(rf"^{re.escape(k)} = .*$", line, table, count=1, flags=re.M)
        if not n:
            table = line + "\n" + table
    return head + "[venues.dex.web3]\n" + table


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """`basis devchain` running for this module: (config path, fragment path, rpc url, key hex)."""
    d = tmp_path_factory.mktemp("devchain")
    frag = d / "chain.toml"
    cfg = d / "cex-dex.toml"
    cfg.write_text(_config_text(frag, d / "runs"))
    port = free_port()
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    cmd = [sys.executable, "-m", "basis_core", "devchain", "--config", str(cfg), "--out", str(frag)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--for", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 45
    while proc.stdout is not None:
        line = proc.stdout.readline()
        lines.append(line)
        if "stop with Ctrl-C" in line or not line or time.monotonic() > deadline:
            break
    assert frag.is_file(), "basis devchain wrote nothing:\n" + "".join(lines)
    keystore = json.loads(Path(str(frag) + ".keystore.json").read_text())
    key_hex = Account.decrypt(keystore, PASSWORD).hex()
    url = f"http://127.0.0.1:{port}"
    yield cfg, frag, url, key_hex, "".join(lines)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    with pytest.raises(requests.exceptions.ConnectionError):  # the node went with it
        rpc(url, "eth_chainId")


def _client(cfg_path: Path, key_hex: str) -> EvmClient:
    cfg = load(cfg_path)
    table = load_table(cfg.venues["dex"].web3, "venues.dex.web3", cfg.base_dir)
    return EvmClient(table.client_config("dex"), Signer.from_hex(key_hex))


def _chain_balances(c: EvmClient, frag: Path) -> dict[str, int]:
    tokens = load_table({"chain_file": str(frag)}, "t").tokens
    out = {asset: c.erc20_balance(t.address, c.address) for asset, t in tokens.items()}
    out["ETH"] = c.eth_balance(c.address)
    return out


def test_devchain_writes_addresses_and_a_keystore_never_the_key(chain):
    cfg, frag, url, key_hex, printed = chain
    text = frag.read_text()
    assert f'rpc_url = "{url}"' in text and "chain_id = 31337" in text
    assert re.search(r'dex-BTCUSDT = "0x[0-9a-fA-F]{40}"', text)
    assert key_hex[-40:] not in text and key_hex[-40:] not in printed
    assert oct(Path(str(frag) + ".keystore.json").stat().st_mode & 0o777) == "0o600"
    c = _client(cfg, key_hex)
    bal = _chain_balances(c, frag)
    # the account holds what the config says the dex venue holds, nothing more
    assert bal == {"BTC": 0, "USDT": 30_000 * E18, "ETH": 10 * E18}


def test_basis_run_trades_the_pool_beside_the_cex_and_the_ledger_matches_the_chain(
    chain, tmp_path, monkeypatch, capsys
):
    cfg, frag, url, key_hex, _ = chain
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    c = _client(cfg, key_hex)
    before = _chain_balances(c, frag)
    run_dir = tmp_path / "run"
    assert cli_main(["run", str(cfg), "--duration", "4", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    report = json.loads((run_dir / "report.json").read_text())
    assert report["reconciliation"] == {"balance": 0, "order": 0, "position": 0, "reporting": 0}, out
    assert not report["open_positions"] and report["final_engine_state"] == "NORMAL"
    db = sqlite3.connect(run_dir / "results.sqlite")
    fills = db.execute("select side, qty, price, fee, fee_asset from fills where venue = 'dex'").fetchall()
    assert fills, "the pool leg never traded:\n" + out
    orders = db.execute("select status from orders where venue = 'dex'").fetchall()
    assert {s for (s,) in orders} <= {"FILLED", "REJECTED"}
    after = _chain_balances(c, frag)
    # the chain moved by exactly what the fills say: tokens by the trades, ETH by their gas
    btc = sum(q if side == "buy" else -q for side, q, _, _, _ in fills)
    usdt = sum(-q * p if side == "buy" else q * p for side, q, p, _, _ in fills)
    gas = sum(fee for *_, fee, asset in fills if asset == "ETH")
    assert gas > 0 and all(asset == "ETH" for *_, asset in fills)
    assert (after["BTC"] - before["BTC"]) / 1e18 == pytest.approx(btc, rel=1e-12)
    assert (after["USDT"] - before["USDT"]) / 1e18 == pytest.approx(usdt, rel=1e-9)
    assert (before["ETH"] - after["ETH"]) / 1e18 == pytest.approx(gas, rel=1e-9)
    # the CEX hedged what the pool bought: flat across the two venues
    cex = db.execute("select side, qty from fills where venue = 'cex'").fetchall()
    assert sum(q if s == "buy" else -q for s, q in cex) == pytest.approx(-btc, abs=1e-9)
    # the key is nowhere in the run directory: hex (either case, with or without 0x) or raw
    raw = bytes.fromhex(key_hex.removeprefix("0x"))
    for f in run_dir.rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            body = key_hex.removeprefix("0x")
            assert body.encode() not in blob.lower() and raw not in blob, f"key in {f}"
            assert PASSWORD.encode() not in blob, f"keystore password in {f}"


def _order(coid: str, side: Side, qty: float, price: float | None = None, kind=OrderType.MARKET):
    return OrderRequest(coid, "dex-BTCUSDT", side, kind, qty, price)


def test_pool_refusals_are_typed_and_a_mined_revert_charges_its_gas(chain, monkeypatch):
    cfg_path, frag, url, key_hex, _ = chain
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    snap = rpc(url, "evm_snapshot")
    base_fee = rpc(url, "eth_feeHistory", ["0x1", "latest", []])["baseFeePerGas"][-1]
    try:
        asyncio.run(_refusals(cfg_path, url, key_hex))
    finally:
        rpc(url, "evm_setAutomine", [True])
        assert rpc(url, "evm_revert", [snap]) is True
        rpc(url, "anvil_setNextBlockBaseFeePerGas", [base_fee])


async def _refusals(cfg_path: Path, url: str, key_hex: str) -> None:
    world = ChainWorld.from_run_config(load(cfg_path))
    venue = world.chain["dex"]
    await venue.start()
    c = venue.client
    events: list = []

    async def collect():
        async for ev in venue.user_events():
            events.append(ev)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0)

    async def refused(order) -> OrderRejected:
        with pytest.raises(OrderRejected) as err:
            await venue.submit(order)
        return err.value

    # more BTC than the account holds: the simulation reverts in the token, nothing is sent
    sent0 = c.nonce_counts()
    err = await refused(_order("1001", Side.SELL, 5.0))
    assert err.reason == "insufficient_funds" and c.nonce_counts() == sent0, err
    # the chain is dearer than the fee cap (200 gwei): not signed, not sent
    rpc(url, "anvil_setNextBlockBaseFeePerGas", [hex(500 * 10**9)])
    err = await refused(_order("1002", Side.BUY, 0.01))
    assert err.reason == "gas_cap" and c.nonce_counts() == sent0, err
    rpc(url, "anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
    rpc(url, "evm_mine")
    # a buy fills; then another holder of the key uses the next nonce behind our back
    assert (await venue.submit(_order("1003", Side.BUY, 0.01))).filled_qty == pytest.approx(0.01)

    def twin() -> EvmClient:  # another holder of the key, its own nonce manager fresh
        return EvmClient(c.cfg, Signer.from_hex(key_hex))

    t = twin()
    t.wait(t.send(t.address, b"", 0, 21_000))
    err = await refused(_order("1004", Side.BUY, 0.01))
    assert err.reason == "nonce_conflict", err
    # the manager re-read the node's nonce: the next order goes through
    assert (await venue.submit(_order("1005", Side.BUY, 0.01))).filled_qty == pytest.approx(0.01)
    # a mined revert: another account moves the pool in the block that holds our swap
    mover = Signer(Account.create())
    rpc(url, "anvil_setBalance", [mover.address, hex(10 * E18)])
    m = venue.markets["dex-BTCUSDT"]
    twin().transact(
        m.quote_token, "mint(address,uint256)", ["address", "uint256"], [mover.address, 10**6 * E18]
    )
    mc = EvmClient(c.cfg, mover)
    mc.transact(m.quote_token, "approve(address,uint256)", ["address", "uint256"], [m.pool, 10**30])
    c.nonces.sync(*c.nonce_counts())  # the twin's mint again: the venue's manager re-reads
    eth0 = c.eth_balance(c.address)
    rpc(url, "evm_setAutomine", [False])
    swap = asyncio.create_task(venue.submit(_order("1006", Side.BUY, 0.2)))
    for _ in range(400):
        pending = rpc(url, "txpool_content")["pending"]
        if c.address.lower() in {a.lower() for a in pending}:
            break
        await asyncio.sleep(0.005)
    else:
        raise AssertionError("the venue never sent its swap")
    data = encode_call(
        "swap(address,uint256,uint256,address)",
        ["address", "uint256", "uint256", "address"],
        [m.quote_token, 50_000 * E18, 0, mover.address],
    )
    fees = mc.gas.bump(mc.gas.bump(mc.quote_fees()))
    mc.send(m.pool, data, gas=200_000, fees=fees)
    rpc(url, "evm_mine")
    with pytest.raises(OrderRejected) as caught:
        await swap
    rpc(url, "evm_setAutomine", [True])
    assert caught.value.reason == "slippage", caught.value
    view = await venue.fetch_order("1006")
    rec = c.get_receipt(view.venue_order_id)
    assert rec.status == 0 and rec.gas_cost_wei > 0
    await asyncio.sleep(0.05)
    charges = [e for e in events if isinstance(e, Charge)]
    assert charges == [Charge("dex", charges[0].ts_ns, "ETH", rec.gas_cost_wei / 1e18, rec.tx_hash, "1006")]
    assert eth0 - c.eth_balance(c.address) == rec.gas_cost_wei  # the charge is all it cost
    # every refusal left its reason on the order's view
    reasons = {v.coid: v.reason.name for v in venue._orders.values() if v.status.name == "REJECTED"}
    assert reasons == {
        "1001": "INSUFFICIENT_FUNDS",
        "1002": "GAS_CAP",
        "1004": "NONCE_CONFLICT",
        "1006": "SLIPPAGE",
    }
    filled = c.get_receipt((await venue.fetch_order("1005")).venue_order_id)
    assert filled.status == 1 and any(log["topics"][0] == SWAP_TOPIC for log in filled.logs)
    await venue.close()
    await task


def test_config_checks_name_the_key(chain, tmp_path, monkeypatch):
    cfg_path, frag, url, key_hex, _ = chain
    monkeypatch.setenv("DEX_KEY", key_hex)
    keyed = {"keystore": "", "key_env": "DEX_KEY"}

    def cfg_with(**web3):
        p = tmp_path / f"c{len(list(tmp_path.iterdir()))}.toml"
        p.write_text(_config_text(frag, tmp_path / "runs", **{**keyed, **web3}))
        return load(p)

    with pytest.raises(ConfigError) as err:
        ChainWorld.from_run_config(cfg_with(chain_id=1))
    assert err.value.path == "venues.dex.web3.chain_id" and "31337" in err.value.message
    world = ChainWorld.from_run_config(cfg_with())
    assert world.chain["dex"].client.address == Signer.from_hex(key_hex).address
    # the config says BTC has 8 decimals; the token answers 18
    btc = load_table({"chain_file": str(frag)}, "t").tokens["BTC"].address
    world = ChainWorld.from_run_config(cfg_with(tokens={"BTC": {"address": btc, "decimals": 8}}))
    with pytest.raises(ConfigError) as err:
        asyncio.run(world.start())
    asyncio.run(world.close())
    assert err.value.path == "venues.dex.web3.tokens.BTC.decimals" and "18" in err.value.message
    # no key where the config says: the variable is named, never a value
    monkeypatch.delenv("DEX_KEY")
    with pytest.raises(ConfigError) as err:
        ChainWorld.from_run_config(cfg_with())
    assert err.value.path == "venues.dex.web3.key_env" and "DEX_KEY" in err.value.message
    monkeypatch.setenv("DEX_KEY", key_hex[:-2] + "zz")
    with pytest.raises(ConfigError) as err:
        ChainWorld.from_run_config(cfg_with())
    assert key_hex[2:30] not in str(err.value)
    # a virtual clock cannot drive a chain; a chain_file that is not there is named
    p = tmp_path / "virtual.toml"
    p.write_text(cfg_path.read_text().replace('clock = "real"', 'clock = "virtual"'))
    with pytest.raises(ConfigError, match=r"^run\.clock"):
        simulated_only(load(p))
    with pytest.raises(ConfigError, match=r"^run\.clock"):
        ChainWorld.from_run_config(load(p))
    p.write_text(cfg_path.read_text().replace(str(frag), str(tmp_path / "missing.toml")))
    with pytest.raises(ConfigError) as err:
        ChainWorld.from_run_config(load(p))
    assert err.value.path == "venues.dex.web3.chain_file"


def test_a_swap_is_a_fill_only_once_its_block_has_the_confirmations(chain, tmp_path, monkeypatch):
    cfg_path, frag, url, key_hex, _ = chain
    monkeypatch.setenv("DEX_KEY", key_hex)
    p = tmp_path / "confirm.toml"
    p.write_text(_config_text(frag, tmp_path / "runs", keystore="", key_env="DEX_KEY", confirmations=2))
    snap = rpc(url, "evm_snapshot")
    try:
        asyncio.run(_two_confirmations(load(p), url))
    finally:
        assert rpc(url, "evm_revert", [snap]) is True


async def _two_confirmations(cfg, url: str) -> None:
    venue = ChainWorld.from_run_config(cfg).chain["dex"]
    await venue.start()
    c = venue.client
    mined0 = c.nonce_counts()[0]
    swap = asyncio.create_task(venue.submit(_order("2001", Side.BUY, 0.01)))
    for _ in range(400):  # anvil mines the swap at once; nothing mines the block after it
        if c.nonce_counts()[0] > mined0:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)
    assert not swap.done(), "a swap one block deep was reported before its second confirmation"
    rpc(url, "evm_mine")
    view = await asyncio.wait_for(swap, 5)
    assert view.status.name == "FILLED" and view.filled_qty == pytest.approx(0.01)
    rec = c.get_receipt(view.venue_order_id)
    assert c.block_number() == rec.block_number + 1
    await venue.close()


@pytest.mark.parametrize(
    "name,args,reason",
    [
        ("InsufficientOutput", (1, 2), "slippage"),
        ("LegBelowMin", (0, 1, 2), "slippage"),
        ("ProfitBelowMin", (1, 1, 1), "slippage"),
        ("Expired", (1, 2), "expired"),
        ("Error", ("TestToken: balance",), "insufficient_funds"),
        ("ERC20InsufficientBalance", ("0x" + "1" * 40, 1, 2), "insufficient_funds"),
        ("Error", ("TestToken: allowance",), "venue_reject"),
        ("Panic", (0x11,), "venue_reject"),
        ("NotOwner", (), "venue_reject"),
        ("empty", (), "venue_reject"),
    ],
)
def test_each_revert_has_its_refusal_reason(name, args, reason):
    assert refusal_reason(ChainRevert("dex", name, args)) == reason
