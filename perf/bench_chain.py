"""The on-chain path on a local anvil: an order handed to the pool venue → its swap broadcast,
the pre-trade eth_call simulation's round trip, and how often that simulation refuses a
decision in a short CEX-DEX run.

Topology (one process, anvil in its own, loopback HTTP JSON-RPC, automine: a block per
transaction):

    Web3Venue.submit(order) (t0) ─▶ worker thread: read_pools (one batch request)
        → _size (amounts, min-out) → calldata → EvmClient.call (eth_call: the simulation, ts..te)
        → EvmClient.send (nonce, fees, gas estimate, sign, eth_sendRawTransaction: t1)
        → receipt polled → fill published

The venue, client and contracts are the product's own, built from source and deployed by
`adapters/web3/devchain.py` as `basis devchain` does (the config is examples/cex-dex-local.toml).
The timestamps are taken by wrapping the venue's own client's `call` and `send` (the wrapper
reads the clock around the product's call, nothing else); the orders are the venue's, one at a
time, alternately a market BUY and SELL of 0.001 BTC so the pool stays where it was.

    ChainBroadcastLatency[anvil].p50 / .p99   t1 - t0: decision handed to the venue → swap
                                              broadcast (sizing, calldata, the simulation,
                                              signing, send; the node's answer included)
    ChainSimulationLatency[anvil].p50 / .p99  te - ts: the eth_call simulation round trip
    ChainSimPassedShare[cex-dex,run=S s]      NOT a time: the share of the pool venue's
                                              swaps passed by their simulation in a CEX-DEX
                                              run of S seconds (`run_scenario`, the engine on
                                              the real clock, simultaneous dispatch) while
                                              another account moves the pool every 50-250 ms
                                              (1 - Web3Venue.simulations_refused / simulations:
                                              the share refused is 100 % minus this; pyperf
                                              takes no value of 0, so the passed share is kept)
    ChainSentShare[cex-dex,run=S s]           NOT a time: in the same kind of run, the share of
                                              the pool venue's orders sent (not refused before
                                              anything was sent: a bound broken at the latest
                                              reserves, or the simulation); the venue sizes each swap at
                                              the latest block and simulates at that block, so
                                              a move between the engine's book and the swap
                                              shows here, rarely in the simulation's share

Each latency sample checks that every order was filled. `--fast` takes fewer orders per value
and a shorter run.

    .venv/bin/python perf/bench_chain.py --fast        (pyperf options apply)
"""

from __future__ import annotations

import asyncio
import atexit
import random
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import pyperf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.web3.auth import Signer  # noqa: E402
from adapters.web3.client import EvmClient  # noqa: E402
from adapters.web3.compile import compile_contracts  # noqa: E402
from adapters.web3.config import Web3VenueConfig  # noqa: E402
from adapters.web3.devchain import deploy, rpc, start_anvil  # noqa: E402
from adapters.web3.revert import RevertDecoder  # noqa: E402
from adapters.web3.venue import PoolMarket, Web3Venue  # noqa: E402
from adapters.web3.world import ChainWorld, PoolAddresses  # noqa: E402
from basis_core.config import from_dict  # noqa: E402
from basis_core.results.stats import percentile  # noqa: E402
from basis_core.venue import OrderRequest, OrderStatus, OrderType, Side  # noqa: E402

FAST = "--fast" in sys.argv
ORDERS = 40 if FAST else 200  # orders per latency value
RUN_S = 5.0 if FAST else 15.0  # the CEX-DEX run of the refusal share
INSTRUMENT = "dex-BTCUSDT"
E18 = 10**18


def example_data(duration_s: float, out_dir: str) -> dict:
    """examples/cex-dex-local.toml as data, `duration_s` long, simultaneous dispatch."""
    data = tomllib.loads((ROOT / "examples" / "cex-dex-local.toml").read_text())
    data["run"].update(duration_s=duration_s, out_dir=out_dir)
    data["policy"]["dispatch"] = "simultaneous"
    data["venues"]["dex"].pop("web3")  # the chain is this bench's own (from_config below)
    return data


class Chain:
    """anvil with the example's token, pool and executor, and the venue's account funded."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-chain-")
        self.cfg = from_dict(example_data(RUN_S, self.tmp.name))
        self.decoder = RevertDecoder([a.abi for a in compile_contracts().values()], "dex")
        self.anvil = start_anvil()
        self.dev = deploy(self.anvil.url, self.cfg)
        self.addresses = PoolAddresses(
            self.dev.pools[INSTRUMENT], self.dev.tokens["BTC"], self.dev.tokens["USDT"]
        )

    def client(self, **cfg) -> EvmClient:
        ccfg = Web3VenueConfig(rpc_url=self.anvil.url, chain_id=31337, name="dex", **cfg)
        return EvmClient(ccfg, self.dev.signer, self.decoder)

    def close(self) -> None:
        self.anvil.stop()
        self.tmp.cleanup()


class Timed:
    """The venue's own client, its `call` and `send` timed (perf_counter_ns around each)."""

    def __init__(self, client: EvmClient):
        self.sims: list[int] = []
        self.sent_at: list[int] = []
        call, send = client.call, client.send

        def timed_call(*a, **kw):
            t = time.perf_counter_ns()
            try:
                return call(*a, **kw)
            finally:
                self.sims.append(time.perf_counter_ns() - t)

        def timed_send(*a, **kw):
            out = send(*a, **kw)
            self.sent_at.append(time.perf_counter_ns())
            return out

        client.call, client.send = timed_call, timed_send  # type: ignore[method-assign]


_CHAIN: list[Chain] = []


def chain() -> Chain:
    if not _CHAIN:
        _CHAIN.append(Chain())
        atexit.register(_CHAIN[0].close)
    return _CHAIN[0]


def latency_sample(n: int) -> tuple[list[int], list[int]]:
    """n orders through Web3Venue.submit: (decision → broadcast ns, simulation ns) per order."""
    ch = chain()
    a = ch.addresses
    market = PoolMarket(INSTRUMENT, a.pool, a.base_token, a.quote_token, "BTC", "USDT")
    venue = Web3Venue(ch.client(), [market])
    timed = Timed(venue.client)

    async def run() -> tuple[list[int], list[int]]:
        await venue.start()
        broadcast, sims = [], []
        for k in range(n):
            side = Side.BUY if k % 2 == 0 else Side.SELL
            order = OrderRequest(f"b{time.time_ns()}-{k}", INSTRUMENT, side, OrderType.MARKET, 0.001)
            timed.sims.clear()
            timed.sent_at.clear()
            t0 = time.perf_counter_ns()
            view = await venue.submit(order)
            if view.status != OrderStatus.FILLED or len(timed.sent_at) != 1:
                raise AssertionError(f"order {k}: {view.status.name}, {len(timed.sent_at)} sends")
            broadcast.append(timed.sent_at[0] - t0)
            sims.append(timed.sims[-1])  # the swap's simulation (the last call before the send)
        await venue.close()
        return broadcast, sims

    return asyncio.run(run())


def latency(loops: int, pct: float, which: int) -> float:
    out: list[int] = []
    for _ in range(loops):
        out += latency_sample(ORDERS)[which]
    return percentile([x / 1e9 for x in out], pct) * loops


def _move_pool(ch: Chain, stop: threading.Event) -> None:
    """Another trader: a random swap of 0.02-0.2 BTC either way every 50-250 ms."""
    mover = Signer.from_hex("0x" + "11" * 32)
    rpc(ch.anvil.url, "anvil_setBalance", [mover.address, hex(100 * E18)])
    m = EvmClient(Web3VenueConfig(rpc_url=ch.anvil.url, chain_id=31337, name="mover"), mover, ch.decoder)
    minter = ch.client()
    a, rng = ch.addresses, random.Random(7)
    for token in (a.base_token, a.quote_token):
        minter.transact(token, "mint(address,uint256)", ["address", "uint256"], [m.address, 10**7 * E18])
        m.transact(token, "approve(address,uint256)", ["address", "uint256"], [a.pool, (1 << 256) - 1])
    types = ["address", "uint256", "uint256", "address"]
    while not stop.wait(rng.uniform(0.05, 0.25)):
        btc = rng.uniform(0.02, 0.2)
        if rng.random() < 0.5:
            args = [a.base_token, int(btc * E18), 0, m.address]
        else:
            args = [a.quote_token, int(btc * 50_000 * E18), 0, m.address]
        m.transact(a.pool, "swap(address,uint256,uint256,address)", types, args)


def refused_share(loops: int, which: str) -> float:
    from basis_core.engine.scenario import run_scenario

    total = 0.0
    for _ in range(loops):
        ch = Chain()  # a fresh chain: the run's account starts from the example's balances
        try:
            world = ChainWorld.from_config(
                ch.cfg, {"dex": ch.client(receipt_timeout_s=5.0)}, {INSTRUMENT: ch.addresses}
            )
            stop = threading.Event()
            mover = threading.Thread(target=_move_pool, args=(ch, stop), daemon=True)
            mover.start()
            try:
                asyncio.run(
                    run_scenario(ch.cfg, Path(ch.tmp.name) / "run", world, progress=None, settle_s=1.0)
                )
            finally:
                stop.set()
                mover.join(10)
            venue = world.chain["dex"]
            if not venue.simulations:
                raise AssertionError("the engine sent no swap to the pool in the run")
            if which == "simulation":
                total += 1 - venue.simulations_refused / venue.simulations
            else:  # every refusal before a send: bounds at the latest reserves, or the simulation
                views = venue._orders.values()
                refused = sum(1 for v in views if v.status == OrderStatus.REJECTED and not v.venue_order_id)
                total += 1 - refused / len(views)
        finally:
            ch.close()
    return total


def _worker_args(cmd: list[str], args) -> None:
    if args.fast:
        cmd.append("--fast")


def main() -> None:
    # a value is one sample: no calibration; --fast reaches the worker processes too
    runner = pyperf.Runner(processes=1, values=3, loops=1, add_cmdline_args=_worker_args)
    runner.metadata["chain_path"] = (
        "Web3Venue.submit -> read_pools -> size -> eth_call simulation -> EvmClient.send "
        "(nonce, fees, estimate, sign, eth_sendRawTransaction) on anvil over loopback HTTP"
    )
    for pct in (50, 99):
        runner.bench_time_func(f"ChainBroadcastLatency[anvil].p{pct}", latency, float(pct), 0)
        runner.bench_time_func(f"ChainSimulationLatency[anvil].p{pct}", latency, float(pct), 1)
    runner.bench_time_func(f"ChainSimPassedShare[cex-dex,run={RUN_S:g}s]", refused_share, "simulation")
    runner.bench_time_func(f"ChainSentShare[cex-dex,run={RUN_S:g}s]", refused_share, "unsent")


if __name__ == "__main__":
    main()
