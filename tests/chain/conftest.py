"""Fixtures for the on-chain tests: one anvil node and one compile per session, a fresh
snapshot per test.

The node is the anvil binary that scripts/bootstrap --test installs from the npm registry
into tools/node_modules; it listens on a free loopback port and is stopped at teardown. The
session deploys two test tokens, two constant-product pools at different prices and an
AtomicExecutor owned by anvil's account 0. Every test runs between evm_snapshot and
evm_revert, with automining restored, and gets clients built after the snapshot (a revert
rewinds account nonces, so nonce managers must not outlive a test).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from chainkit import E18, World, approve, make_client, mint, rpc

from adapters.web3.compile import compile_contracts
from adapters.web3.revert import RevertDecoder

ROOT = Path(__file__).resolve().parents[2]
#: the anvil binary; BASIS_ANVIL overrides it (the missing-tool test points it nowhere)
ANVIL = Path(
    os.environ.get("BASIS_ANVIL")
    or ROOT / "tools" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def anvil_url():
    if not ANVIL.is_file():
        pytest.fail(
            f"anvil is not installed at {ANVIL}: run scripts/bootstrap --test "
            "(it installs @foundry-rs/anvil-linux-amd64 and solc into tools/node_modules)",
            pytrace=False,
        )
    port = _free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            rpc(url, "eth_chainId")
            break
        except (requests.exceptions.ConnectionError, RuntimeError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode(errors="replace")[-2000:]
                pytest.fail(f"anvil did not answer eth_chainId on {url}: {err}", pytrace=False)
            time.sleep(0.05)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def artifacts():
    return compile_contracts()


@pytest.fixture(scope="session")
def decoder(artifacts):
    return RevertDecoder([a.abi for a in artifacts.values()], "anvil")


@pytest.fixture(scope="session")
def world(anvil_url, artifacts, decoder):
    owner = make_client(anvil_url, decoder, 0)
    other = make_client(anvil_url, decoder, 1)
    tok, pool, ex = artifacts["TestToken"], artifacts["ConstantProductPool"], artifacts["AtomicExecutor"]
    x = owner.deploy(tok, ["string", "string"], ["Wrapped Ether", "WETH"])
    y = owner.deploy(tok, ["string", "string"], ["Test Dollar", "TUSD"])
    pool_a = owner.deploy(pool, ["address", "address"], [x, y])
    pool_b = owner.deploy(pool, ["address", "address"], [y, x])  # reversed token order on purpose
    executor = owner.deploy(ex)
    for token in (x, y):
        mint(owner, token, owner.address, 10_000 * 2100 * E18)
        mint(owner, token, other.address, 10_000 * 2100 * E18)
        for p in (pool_a, pool_b):
            approve(owner, token, p)
            approve(other, token, p)
    owner.transact(
        pool_a, "addLiquidity(uint256,uint256)", ["uint256", "uint256"], [100 * E18, 200_000 * E18]
    )
    owner.transact(
        pool_b, "addLiquidity(uint256,uint256)", ["uint256", "uint256"], [210_000 * E18, 100 * E18]
    )
    funds = 50_000 * E18
    mint(owner, y, executor, funds)
    return World(anvil_url, x, y, pool_a, pool_b, executor, owner.address, other.address, funds)


@pytest.fixture(autouse=True)
def chain_snapshot(request):
    """evm_snapshot before each chain test; after it evm_revert with automine back on and the
    next block's base fee restored."""
    if "world" not in request.fixturenames and "anvil_url" not in request.fixturenames:
        yield
        return
    url = request.getfixturevalue("anvil_url")
    request.getfixturevalue("world") if "world" in request.fixturenames else None
    base_fee = rpc(url, "eth_feeHistory", ["0x1", "latest", []])["baseFeePerGas"][-1]
    snap = rpc(url, "evm_snapshot")
    yield
    rpc(url, "evm_setAutomine", [True])
    assert rpc(url, "evm_revert", [snap]) is True
    rpc(url, "anvil_setNextBlockBaseFeePerGas", [base_fee])  # evm_revert keeps the fee state


@pytest.fixture
def owner(world, decoder, chain_snapshot):
    return make_client(world.url, decoder, 0)


@pytest.fixture
def other(world, decoder, chain_snapshot):
    return make_client(world.url, decoder, 1)
