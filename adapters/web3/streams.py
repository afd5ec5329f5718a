"""New heads and the pools' reserve changes: an `eth_subscribe` websocket, HTTP polling as fallback.

A pool venue keeps its pools' reserves live from two kinds of event:

* `Head(number, seen_ns)`: a new block. The venue re-derives every pool's book on each one, and
  a node that sends none for `head_timeout_s` is silent (its books are stale).
* `Reserves(pool, reserve0, reserve1, block_number, log_index)`: a pool's reserves after a
  `Sync(uint256,uint256)` log (every swap and every liquidity change emits one), or after a
  full read of the pool (`log_index = END_OF_BLOCK`: the state at the end of that block).
  A venue applies a `Reserves` only when its (block, log index) is past the one it holds, so
  the same change seen twice (the subscription and our own receipt) is applied once.
  `force` marks a re-read after a reorg removed a log: it replaces whatever is held.

`ws_events(url, pools, read, ...)` subscribes to `newHeads` and to the pools' `Sync` logs on
one websocket (anvil, geth and hosted nodes serve them on their ws endpoint), then reads every
pool once (`read(block)`, so nothing that happened before the subscription is missed) and
yields what the node sends. `poll_events(block_number, read, poll_s)` is the fallback when no
ws_url is configured: one `eth_blockNumber` per `poll_s`, and a read of every pool at each new
block. A dropped or refused connection raises VenueUnavailable (the endpoint's secrets never in
the message); the io side reports it and subscribes again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from eth_utils import keccak
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from basis_core.errors import VenueError, VenueUnavailable

from .arbitrage import PoolState
from .auth import safe_url

SYNC_TOPIC = "0x" + keccak(text="Sync(uint256,uint256)").hex()
#: the log index of a state read at the end of a block (after every log of that block)
END_OF_BLOCK = 1 << 62


@dataclass(frozen=True)
class Head:
    number: int
    seen_ns: int


@dataclass(frozen=True)
class Reserves:
    pool: str  # lower-case address
    reserve0: int
    reserve1: int
    block_number: int
    log_index: int
    force: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return self.block_number, self.log_index


#: reads every watched pool at a block number (None: the latest); the venue's own reader
Reader = Callable[[int | None], Awaitable[list[PoolState]]]


def _int(x) -> int:
    return int(x, 16) if isinstance(x, str) else int(x)


def reserves_of(states: list[PoolState], force: bool = False) -> list[Reserves]:
    return [
        Reserves(s.pool.lower(), s.reserve0, s.reserve1, s.block_number, END_OF_BLOCK, force) for s in states
    ]


def sync_from_log(log: dict) -> Reserves | None:
    """The reserves a `Sync` log states (None for any other log)."""
    topics = log.get("topics") or ()
    if not topics or str(topics[0]).lower() != SYNC_TOPIC:
        return None
    data = bytes.fromhex(str(log["data"])[2:])
    if len(data) < 64:
        return None
    return Reserves(
        str(log["address"]).lower(),
        int.from_bytes(data[:32], "big"),
        int.from_bytes(data[32:64], "big"),
        _int(log["blockNumber"]),
        _int(log["logIndex"]),
    )


async def ws_events(
    venue: str, url: str, pools: list[str], read: Reader, timeout_s: float
) -> AsyncIterator[Head | Reserves]:
    """Heads and Sync logs of `pools` through one websocket (see the module docstring)."""
    where = safe_url(url)
    try:
        async with connect(url, open_timeout=timeout_s, max_size=None, compression=None, proxy=None) as ws:
            requests_: dict[int, list[object]] = {
                1: ["newHeads"],
                2: ["logs", {"address": pools, "topics": [SYNC_TOPIC]}],
            }
            for rid, sub in requests_.items():
                await ws.send(
                    json.dumps({"jsonrpc": "2.0", "id": rid, "method": "eth_subscribe", "params": sub})
                )
            subs: dict[str, str] = {}
            while len(subs) < len(requests_):
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
                if msg.get("id") in requests_:
                    if "error" in msg:
                        raise VenueError(
                            venue, "subscribe", f"eth_subscribe refused by {where}: {msg['error']}"
                        )
                    subs[str(msg["result"])] = str(requests_[msg["id"]][0])
            for r in reserves_of(await read(None)):  # what happened before the subscriptions
                yield r
            async for raw in ws:
                note = json.loads(raw)
                params = note.get("params") or {}
                kind = subs.get(str(params.get("subscription")))
                result = params.get("result")
                if kind == "newHeads" and isinstance(result, dict):
                    yield Head(_int(result["number"]), time.time_ns())
                elif kind == "logs" and isinstance(result, dict):
                    if result.get("removed"):  # a reorg took this change back: read again
                        for r in reserves_of(await read(None), force=True):
                            yield r
                        continue
                    sync = sync_from_log(result)
                    if sync is not None:
                        yield sync
    except (OSError, WebSocketException, TimeoutError, ValueError) as exc:
        raise VenueUnavailable(
            venue, "feed", f"head/log subscription on {where} failed ({type(exc).__name__})"
        ) from None
    raise VenueUnavailable(venue, "feed", f"{where} closed the head/log subscription")


async def poll_events(
    block_number: Callable[[], Awaitable[int]], read: Reader, poll_s: float
) -> AsyncIterator[Head | Reserves]:
    """The fallback without a ws_url: a new block number is a head, and every pool is read at it."""
    last = -1
    while True:
        n = await block_number()
        if n != last:
            for r in reserves_of(await read(n), force=n < last):
                yield r
            yield Head(n, time.time_ns())
            last = n
        await asyncio.sleep(poll_s)
