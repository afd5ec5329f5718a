"""`basis run examples/two-pool-local.toml`: two pools of one pair on a local chain traded against
each other through the AtomicExecutor, one transaction per opportunity.

The chain is made as a newcomer makes it: `basis devchain --config ... --block-time 1` as a
subprocess (the two pools at -80 / +80 bps, the executor holding half of the USDT). Then
`basis run` through the CLI's main; and the venue alone, with a swap of another account
mined ahead of our executor call in the same block, so that the call reverts on chain.
"""

from __future__ import annotations

import asyncio
import json
import os
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
from adapters.web3.config import Web3VenueConfig, load_table
from adapters.web3.devchain import free_port, rpc
from adapters.web3.execution import EXECUTED_TOPIC
from adapters.web3.gas import Fees
from adapters.web3.world import ChainWorld
from basis_core.cli import main as cli_main
from basis_core.config import load
from basis_core.errors import OrderRejected
from basis_core.venue import Charge, Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side

pytestmark = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "two-pool-local.toml"
PASSWORD_ENV = "BASIS_WEB3_KEYSTORE_PASSWORD"
PASSWORD = "local-test-password-2p"
E18 = 10**18
A, B = "dexa-BTCUSDT", "dexb-BTCUSDT"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """`basis devchain --block-time 1` running for this module: (config, fragment, url, key hex)."""
    d = tmp_path_factory.mktemp("twopool")
    frag, cfg = d / "chain.toml", d / "two-pool.toml"
    text = EXAMPLE.read_text()
    for old, new in (
        ('chain_file = "two-pool-local.chain.toml"', f'chain_file = "{frag}"'),
        ('out_dir = "runs"', f'out_dir = "{d / "runs"}"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    cfg.write_text(text)
    port = free_port()
    cmd = [sys.executable, "-m", "basis_core", "devchain", "--config", str(cfg), "--out", str(frag)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--block-time", "1", "--for", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, PASSWORD_ENV: PASSWORD},
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
    key_hex = Account.decrypt(json.loads(Path(f"{frag}.keystore.json").read_text()), PASSWORD).hex()
    url = f"http://127.0.0.1:{port}"
    yield cfg, frag, url, key_hex
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        rpc(url, "eth_chainId")


def _holdings(cfg_path: Path, key_hex: str) -> tuple[EvmClient, dict[str, int]]:
    """The account's and the executor's tokens (summed) and the account's ETH, in base units."""
    cfg = load(cfg_path)
    table = load_table(cfg.venues["dex"].web3, "venues.dex.web3", cfg.base_dir)
    c = EvmClient(table.client_config("dex"), Signer.from_hex(key_hex))
    out = {
        a: c.erc20_balance(t.address, c.address) + c.erc20_balance(t.address, table.executor)
        for a, t in table.tokens.items()
    }
    out["ETH"] = c.eth_balance(c.address)
    return c, out


def test_basis_run_trades_the_two_pools_in_one_transaction_each(chain, tmp_path, monkeypatch, capsys):
    cfg, frag, url, key_hex = chain
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    c, before = _holdings(cfg, key_hex)
    assert before == {"BTC": E18 // 2, "USDT": 30_000 * E18, "ETH": 10 * E18}
    nonce0 = int(rpc(url, "eth_getTransactionCount", [c.address, "latest"]), 16)
    run_dir = tmp_path / "run"
    assert cli_main(["run", str(cfg), "--duration", "8", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    report = json.loads((run_dir / "report.json").read_text())
    assert report["reconciliation"] == {"balance": 0, "order": 0, "position": 0, "reporting": 0}, out
    assert not report["open_positions"] and report["final_engine_state"] == "NORMAL", out
    db = sqlite3.connect(run_dir / "results.sqlite")
    fills = db.execute("select instrument, side, qty, price, fee from fills order by ts_ns").fetchall()
    assert len(fills) >= 4, "fewer than two opportunities traded:\n" + out
    # every opportunity bought on the cheap pool and sold the same quantity on the dear one
    buys = [f for f in fills if f[1] == "buy"]
    sells = [f for f in fills if f[1] == "sell"]
    assert {f[0] for f in buys} == {A} and {f[0] for f in sells} == {B}
    assert sorted(f[2] for f in buys) == sorted(f[2] for f in sells)
    # ... in ONE transaction each: the account sent exactly one executor call per pair
    nonce1 = int(rpc(url, "eth_getTransactionCount", [c.address, "latest"]), 16)
    assert nonce1 - nonce0 == len(buys)
    c2, after = _holdings(cfg, key_hex)
    assert after["BTC"] == before["BTC"]  # both legs or neither: no base exposure on chain
    usdt = sum(q * p if s == "sell" else -q * p for _, s, q, p, _ in fills)
    assert usdt > 0 and (after["USDT"] - before["USDT"]) / 1e18 == pytest.approx(usdt, rel=1e-9)
    gas = sum(f[4] for f in fills)
    assert gas > 0 and (before["ETH"] - after["ETH"]) / 1e18 == pytest.approx(gas, rel=1e-9)


def _pair(qty: float, buy_px: float, sell_px: float, n: int) -> tuple[OrderRequest, OrderRequest]:
    return (
        OrderRequest(f"rb{n}", A, Side.BUY, OrderType.IOC, qty, buy_px),
        OrderRequest(f"rs{n}", B, Side.SELL, OrderType.IOC, qty, sell_px),
    )


def test_a_reverting_executor_call_fills_neither_leg_and_books_its_gas(chain, monkeypatch):
    cfg_path, frag, url, key_hex = chain
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    snap = rpc(url, "evm_snapshot")
    try:
        asyncio.run(_revert_case(cfg_path, url, key_hex))
    finally:
        assert rpc(url, "evm_revert", [snap]) is True
        rpc(url, "evm_setIntervalMining", [1])


async def _revert_case(cfg_path: Path, url: str, key_hex: str) -> None:
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
    # another trader, holding USDT with pool A approved, will buy most of pool A's cheap BTC
    # in our block, its higher tip putting its swap ahead of our executor call
    mover = Signer(Account.create())
    rpc(url, "anvil_setBalance", [mover.address, hex(100 * E18)])
    m = EvmClient(
        Web3VenueConfig(
            rpc_url=url, chain_id=31337, name="mover", max_fee_gwei=500.0, max_priority_fee_gwei=50.0
        ),
        mover,
    )
    pool_a, usdt = venue.markets[A].pool, venue.markets[A].quote_token
    c.transact(usdt, "mint(address,uint256)", ["address", "uint256"], [mover.address, 10**7 * E18])
    m.transact(usdt, "approve(address,uint256)", ["address", "uint256"], [pool_a, (1 << 256) - 1])
    _, before = _holdings(cfg_path, key_hex)
    rpc(url, "evm_setIntervalMining", [0])  # blocks only when asked (evm_mine)
    rpc(url, "evm_setAutomine", [False])
    buy, sell = _pair(0.04, 50_000.0, 49_000.0, 1)
    legs = [asyncio.create_task(venue.submit(o)) for o in (buy, sell)]
    for _ in range(400):  # our call simulated (it passes) and in the node's pool
        if venue.pairs_sent:
            break
        await asyncio.sleep(0.01)
    assert venue.pairs_sent == 1 and venue.pairs_refused == 0
    swap = encode_call(
        "swap(address,uint256,uint256,address)",
        ["address", "uint256", "uint256", "address"],
        [usdt, 2_000_000 * E18, 0, mover.address],
    )
    m.send(pool_a, swap, gas=300_000, fees=Fees(200 * 10**9, 40 * 10**9))
    rpc(url, "evm_mine")
    got = await asyncio.gather(*legs, return_exceptions=True)
    rpc(url, "evm_setAutomine", [True])
    assert all(isinstance(g, OrderRejected) and g.reason == "slippage" for g in got), got
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # neither leg filled; both refused; the mined revert's gas published once, as a Charge
    assert not [e for e in events if isinstance(e, Fill)]
    final = {e.order.coid: e.order.status for e in events if isinstance(e, OrderUpdate)}
    assert final == {buy.coid: OrderStatus.REJECTED, sell.coid: OrderStatus.REJECTED}
    charges = [e for e in events if isinstance(e, Charge)]
    assert len(charges) == 1 and charges[0].asset == "ETH" and charges[0].amount > 0
    rec = c.get_receipt(charges[0].ref)
    assert rec is not None and not rec.ok
    assert not [lg for lg in rec.logs if (lg.get("topics") or [""])[0].lower() == EXECUTED_TOPIC]
    _, after = _holdings(cfg_path, key_hex)
    assert after["BTC"] == before["BTC"] and after["USDT"] == before["USDT"]
    assert before["ETH"] - after["ETH"] == round(charges[0].amount * 1e18) == rec.gas_cost_wei
    await venue.close()


def test_a_leg_without_a_partner_is_a_single_swap_after_the_pair_window(chain, monkeypatch):
    cfg_path, frag, url, key_hex = chain
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    snap = rpc(url, "evm_snapshot")
    try:
        asyncio.run(_lone_leg(cfg_path, url))
    finally:
        assert rpc(url, "evm_revert", [snap]) is True


async def _lone_leg(cfg_path: Path, url: str) -> None:
    world = ChainWorld.from_run_config(load(cfg_path))
    venue = world.chain["dex"]
    await venue.start()
    assert venue.trader is not None and venue.twins == {A: (B,), B: (A,)}
    nonce0 = int(rpc(url, "eth_getTransactionCount", [venue.client.address, "latest"]), 16)
    t0 = time.monotonic()
    view = await venue.submit(OrderRequest("lone1", A, Side.BUY, OrderType.IOC, 0.01, 50_000.0))
    assert time.monotonic() - t0 >= venue.pair_window_s
    assert view.status == OrderStatus.FILLED and view.filled_qty == pytest.approx(0.01, rel=1e-12)
    assert venue.pairs_sent == 0 and venue.simulations == 1
    rec = venue.client.get_receipt(view.venue_order_id)
    tx = rpc(url, "eth_getTransactionByHash", [view.venue_order_id])
    assert rec is not None and rec.ok and tx["to"].lower() == venue.markets[A].pool.lower()
    assert int(rpc(url, "eth_getTransactionCount", [venue.client.address, "latest"]), 16) == nonce0 + 1
    # two legs of different quantities are not a pair either: each its own swap
    legs = await asyncio.gather(
        venue.submit(OrderRequest("lone2", A, Side.BUY, OrderType.IOC, 0.01, 50_000.0)),
        venue.submit(OrderRequest("lone3", B, Side.SELL, OrderType.IOC, 0.02, 49_000.0)),
    )
    assert [v.status for v in legs] == [OrderStatus.FILLED, OrderStatus.FILLED] and venue.pairs_sent == 0
    await venue.close()
