"""Why the web3 venue's chain I/O stays in a worker thread: the synchronous client in a thread
against an async client on the event loop, measured on a local anvil (loopback HTTP, automine).

Run by hand (a few tens of seconds, one core mostly idle):

    .venv/bin/python perf/web3_client_io.py [--n 300] [--rounds 3]

The chain is the one the web3 tests use (tests/web3_local.py: anvil from the npm package
@foundry-rs/anvil-linux-amd64, the contracts built from source and deployed, a pool seeded).
Each option is run `--n` times in a row, the options interleaved, `--rounds` times over; the
figures pool the rounds. Every call is made one at a time from a coroutine on one asyncio loop,
as the io process makes them:

(a) one JSON-RPC round trip, `eth_call` (the pool's reserve0()) and `eth_blockNumber`:
    thread      the product's path: `Web3Venue._run(EvmClient.call / .block_number)`
                (asyncio.Lock + asyncio.to_thread, web3's sync HTTPProvider, requests)
    sync-on-loop  EvmClient.call made on the loop itself, blocking it (no thread hop): the
                thread's own share of `thread` is the difference
    thread-httpclient  the worker thread as now, the request through the standard library's
                http.client on one kept-alive connection instead of web3's HTTPProvider
    async-raw   web3's AsyncHTTPProvider.make_request on the loop (what an async EvmClient
                would use: raw requests, its own answer mapping, as the sync client does)
    async-eth   AsyncWeb3.eth.call / .block_number on the loop (web3's full request path)
    aiohttp     a bare JSON-RPC POST through one aiohttp.ClientSession on the loop
(b) a 21000-gas ETH transfer signed and sent (fixed gas and fees, so it is the signature and
    eth_sendRawTransaction only; anvil answers once the transfer is mined):
    thread      `Web3Venue._run(EvmClient.send, ...)` (sign + send in the worker thread)
    async-raw   the product's Signer.sign on the loop, then AsyncHTTPProvider.make_request
    async+sign-thread  the signature in asyncio.to_thread, the send on the loop
(c) the loop's stall: a ticker task sleeps 1 ms at a time throughout; for each call the largest
    lateness of a tick that woke during it (wake time - the time it asked for) is one sample.
    `idle` is the ticker alone (the floor). `sign` is Signer.sign timed by itself: how long one
    signature holds the loop (and, in a thread, the GIL) when made there.

Times in microseconds, p50 / p99 of all rounds' samples. One run, and what it says about the
venue's worker thread: perf/results/web3-client-io-20261202T095928Z.txt, README.md ("Chain I/O in
a worker thread, measured").
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from web3_local import local_chain, rpc  # noqa: E402

from adapters.web3.auth import Signer  # noqa: E402
from adapters.web3.calldata import encode_call  # noqa: E402
from adapters.web3.gas import Fees  # noqa: E402
from basis_core.results.stats import percentile  # noqa: E402

GWEI = 10**9
FEES = Fees(20 * GWEI, 1 * GWEI)


class Ticker:
    """A task waking every 1 ms; `lateness()` the worst lateness of the ticks since the last call."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            want = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - want)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def lateness(self) -> float:
        w, self.worst = self.worst, 0.0
        return w


async def timed(n: int, fn: Callable[[], Awaitable], ticker: Ticker) -> tuple[list[float], list[float]]:
    """`n` calls of `fn` one after another: each one's time and the loop's worst stall during it (s)."""
    times, stalls = [], []
    for _ in range(n):
        await asyncio.sleep(0.002)  # a tick or two between calls; the stall is the call's own
        ticker.lateness()
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
        await asyncio.sleep(0)  # a tick due at the call's end gets its turn
        stalls.append(ticker.lateness())
    return times, stalls


async def measure(n: int, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    chain = local_chain()
    try:
        return await _measure(chain, n, rounds)
    finally:
        chain.stop()


async def _measure(chain, n: int, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    venue = chain.venue(ws=False)
    client = venue.client
    pool = chain.pool
    data = encode_call("reserve0()", [], [])
    call_params = [{"to": pool, "data": "0x" + data.hex()}, "latest"]
    sink = Account.create().address

    w3 = AsyncWeb3(AsyncHTTPProvider(chain.url, exception_retry_configuration=None))
    provider = w3.provider
    session = aiohttp.ClientSession()
    signer = Signer(Account.create())
    rpc(chain.url, "anvil_setBalance", [signer.address, hex(1000 * 10**18)])
    nonce = int(rpc(chain.url, "eth_getTransactionCount", [signer.address, "pending"]), 16)

    async def post(method: str, params: list):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with session.post(chain.url, json=body) as r:
            answer = await r.json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def raw(method: str, params: list):
        answer = await provider.make_request(method, params)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def transfer(n_: int) -> dict:
        return {"type": 2, "chainId": 31337, "nonce": n_, "to": sink, "value": 1, "data": b"", "gas": 21000}

    async def send_async(sign_in_thread: bool) -> None:
        nonlocal nonce
        tx = {**transfer(nonce), **FEES.as_tx()}
        raw_tx = await asyncio.to_thread(signer.sign, tx) if sign_in_thread else signer.sign(tx)
        await raw("eth_sendRawTransaction", ["0x" + raw_tx.hex()])
        nonce += 1

    host, port = chain.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def plain(method: str, params: list):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def blocking(fn, *a):
        return fn(*a)

    async def sign_only() -> None:
        signer.sign({**transfer(10**6), **FEES.as_tx()})

    options: dict[str, Callable[[], Awaitable]] = {
        "idle": lambda: asyncio.sleep(0.001),
        "eth_call thread": lambda: venue._run(client.call, pool, data),
        "eth_call sync-on-loop": lambda: blocking(client.call, pool, data),
        "eth_call thread-httpclient": lambda: asyncio.to_thread(plain, "eth_call", call_params),
        "eth_call async-raw": lambda: raw("eth_call", call_params),
        "eth_call async-eth": lambda: w3.eth.call(call_params[0], "latest"),
        "eth_call aiohttp": lambda: post("eth_call", call_params),
        "eth_blockNumber thread": lambda: venue._run(client.block_number),
        "eth_blockNumber thread-httpclient": lambda: asyncio.to_thread(plain, "eth_blockNumber", []),
        "eth_blockNumber async-raw": lambda: raw("eth_blockNumber", []),
        "eth_blockNumber async-eth": lambda: w3.eth.block_number,  # type: ignore[return-value,arg-type]
        "eth_blockNumber aiohttp": lambda: post("eth_blockNumber", []),
        "sign+send thread": lambda: venue._run(client.send, sink, b"", 1, 21000, FEES, None, "transfer"),
        "sign+send async-raw": lambda: send_async(False),
        "sign+send async+sign-thread": lambda: send_async(True),
        "sign on loop": sign_only,
    }
    ticker = Ticker()
    ticker.start()
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in options}
    try:
        for name, fn in options.items():  # warm-up: connections, caches
            await timed(20, fn, ticker)
        for r in range(rounds):
            for name, fn in options.items():
                t, s = await timed(n, fn, ticker)
                out[name][0].extend(t)
                out[name][1].extend(s)
                print(f"round {r + 1} {name:30s} p50 {statistics.median(t) * 1e6:8.0f} us", file=sys.stderr)
    finally:
        assert ticker.task is not None
        ticker.task.cancel()
        await session.close()
        conn.close()
        await provider.disconnect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    out = asyncio.run(measure(args.n, args.rounds))
    print(f"{'option':32s} {'n':>5s} {'time p50':>9s} {'p99':>7s}   {'stall p50':>9s} {'p99':>7s}  (us)")
    for name, (t, s) in out.items():
        p = [percentile(x, q) * 1e6 for x in (t, s) for q in (50, 99)]
        print(f"{name:32s} {len(t):5d} {p[0]:9.0f} {p[1]:7.0f}   {p[2]:9.0f} {p[3]:7.0f}")


if __name__ == "__main__":
    main()
