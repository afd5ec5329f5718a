"""A pool venue's live books: the pools' reserves as the chain reports them, and their subscribers.

`PoolBooks` holds each pool's latest reserves (`streams.Reserves`, applied in (block, log
index) order, so a change seen twice is applied once) and turns them into `BookUpdate`s for the
venue's market-data subscribers:

* on every new head, every pool's book is derived again (stamped now, `update_id` = the block);
* on every reserve change (a `Sync` log, a pool read, or our own swap's receipt), that pool's
  book at once;
* when no head has come for `head_timeout_s` (0: never), the node is silent: each subscriber
  gets a `VenueStatus` DISCONNECTED and an empty snapshot per pool (an empty book is not
  usable: the engine neither prices nor trades on it) until the next head, which brings a
  `VenueStatus` OK and the books again.

Each item handed out carries a sequence number; `delivered(seq)` waits (bounded) until every
subscriber has taken it, i.e. until the io side has passed it on to the engine. The venue uses
that to put the book its own swap left in front of the swap's fill.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

from basis_core.venue import BookUpdate, VenueReport, VenueStatus

from .arbitrage import PoolState
from .streams import Head, Reserves

if TYPE_CHECKING:
    from .venue import PoolMarket

#: a subscriber's queue ends with this
END = object()


class PoolBooks:
    def __init__(
        self,
        venue: str,
        markets: dict[str, PoolMarket],
        decimals: dict[str, int],
        levels: int,
        step: float,
        head_timeout_s: float,
    ):
        self.venue = venue
        self.markets = markets
        self.decimals = decimals  # the venue's: token -> decimals(), filled at start
        self.levels, self.step = levels, step
        self.head_timeout_s = head_timeout_s
        self.tokens: dict[str, tuple[str, str]] = {}  # pool (lower case) -> (token0, token1)
        self.reserves: dict[str, Reserves] = {}  # pool (lower case) -> latest applied
        #: pool (lower case) -> (reserve0, reserve1, block, sequence) of its latest book
        self._shown: dict[str, tuple[int, int, int, int]] = {}
        self.head: Head | None = None
        self.stale = False
        self._head_at = time.monotonic()
        self._subs: list[asyncio.Queue] = []
        self._seq = 0
        self._seen: dict[int, int] = {}  # id(queue) -> highest sequence taken
        self._taken = asyncio.Event()

    # -- state ----------------------------------------------------------------------------------

    def set_pools(self, states: list[PoolState]) -> None:
        """Tokens and first reserves of each pool (the venue's start)."""
        for s in states:
            key = s.pool.lower()
            self.tokens[key] = (s.token0, s.token1)
            self.reserves.setdefault(key, Reserves(key, s.reserve0, s.reserve1, s.block_number, -1))

    def state(self, m: PoolMarket) -> PoolState | None:
        key = m.pool.lower()
        r, toks = self.reserves.get(key), self.tokens.get(key)
        if r is None or toks is None:
            return None
        return PoolState(m.pool, toks[0], toks[1], r.reserve0, r.reserve1, r.block_number)

    def apply(self, r: Reserves) -> int:
        """Take `r` if it is newer than what is held (or forced) and publish the pool's book if
        its reserves changed. The sequence number of the latest book showing the pool at least
        as of `r` (0: none published yet, or the books are stale)."""
        held = self.reserves.get(r.pool)
        if held is None or r.force or r.key > held.key:
            self.reserves[r.pool] = r
            shown = self._shown.get(r.pool)
            if not self.stale and (shown is None or shown[:2] != (r.reserve0, r.reserve1)):
                for m in self.markets.values():
                    if m.pool.lower() == r.pool:
                        self._publish_book(m)
        return 0 if self.stale else self._shown.get(r.pool, (0, 0, 0, 0))[3]

    def on_head(self, head: Head) -> None:
        """A new block: every book not yet derived at this block, again (and the end of a
        silence)."""
        if self.head is None or head.number >= self.head.number:
            self.head = head
        self._head_at = time.monotonic()
        if self.stale:
            self.stale = False
            self._shown.clear()
            self._push(VenueStatus(self.venue, VenueReport.OK, message=f"head {head.number}"))
        for m in self.markets.values():
            shown = self._shown.get(m.pool.lower())
            if shown is None or shown[2] < head.number:
                self._publish_book(m)

    def republish(self) -> None:
        """Every pool's book again, as held (a new subscriber beside a running feed)."""
        if not self.stale:
            self._shown.clear()
            for m in self.markets.values():
                self._publish_book(m)

    def started(self) -> None:
        """A feed (re)started: the silence is measured from now."""
        self._head_at = time.monotonic()

    def check_silence(self) -> None:
        """Mark the books stale when no head came for head_timeout_s (see the module docstring)."""
        if not self.head_timeout_s or self.stale or not self._subs:
            return
        quiet = time.monotonic() - self._head_at
        if quiet < self.head_timeout_s:
            return
        self.stale = True
        self._shown.clear()
        self._push(VenueStatus(self.venue, VenueReport.DISCONNECTED, message=self.silence()))
        now = time.time_ns()
        for m in self.markets.values():
            self._push(BookUpdate(self.venue, m.name, now, (), (), snapshot=True))

    def silence(self) -> str:
        return f"no new head for {time.monotonic() - self._head_at:.1f} s"

    # -- books ----------------------------------------------------------------------------------

    def book(self, m: PoolMarket, s: PoolState, ts_ns: int) -> BookUpdate:
        """The pool's curve as a ladder: level k spans marginal prices p0*(1±step)^(k-1..k);
        its quantity is the base the pool gives (asks) or takes (bids) over that span; its price
        is the far end, with the pool fee applied (what a taker pays or gets there)."""
        bdec, qdec = self.decimals.get(m.base_token, 18), self.decimals.get(m.quote_token, 18)
        rb, rq = s.reserves_for(m.base_token)
        x0, k = rb / 10**bdec, (rb / 10**bdec) * (rq / 10**qdec)
        p0 = (rq / 10**qdec) / x0
        asks, bids = [], []
        for i in range(1, self.levels + 1):
            pa_prev, pa = p0 * (1 + self.step) ** (i - 1), p0 * (1 + self.step) ** i
            pb_prev, pb = p0 * (1 - self.step) ** (i - 1), p0 * (1 - self.step) ** i
            asks.append((pa / 0.997, math.sqrt(k / pa_prev) - math.sqrt(k / pa)))
            bids.append((pb * 0.997, math.sqrt(k / pb) - math.sqrt(k / pb_prev)))
        block = max(s.block_number, self.head.number if self.head else 0)
        return BookUpdate(self.venue, m.name, ts_ns, tuple(bids), tuple(asks), snapshot=True, update_id=block)

    def _publish_book(self, m: PoolMarket) -> int:
        s = self.state(m)
        if s is None or s.reserve0 == 0 or s.reserve1 == 0:
            return 0
        b = self.book(m, s, time.time_ns())
        seq = self._push(b)
        self._shown[m.pool.lower()] = (s.reserve0, s.reserve1, b.update_id, seq)
        return seq

    # -- subscribers ----------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue:
        """A queue of (sequence, item) for one subscriber: every item (it keeps the instruments
        it follows and marks the others taken too)."""
        q: asyncio.Queue = asyncio.Queue()
        self._subs.append(q)
        self._seen[id(q)] = self._seq
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subs = [s for s in self._subs if s is not q]
        self._seen.pop(id(q), None)
        self._taken.set()

    @property
    def subscribed(self) -> bool:
        return bool(self._subs)

    def _push(self, item) -> int:
        self._seq += 1
        for q in self._subs:
            q.put_nowait((self._seq, item))
        return self._seq

    def fail(self, exc: BaseException) -> None:
        """The feed failed: every subscriber raises `exc`."""
        for q in self._subs:
            q.put_nowait((0, exc))

    def end(self) -> None:
        for q in self._subs:
            q.put_nowait((0, END))

    def taken(self, q: asyncio.Queue, seq: int) -> None:
        """Subscriber `q` handed on everything up to `seq`."""
        if seq > self._seen.get(id(q), 0):
            self._seen[id(q)] = seq
            self._taken.set()

    async def delivered(self, seq: int, timeout_s: float) -> bool:
        """Wait until every subscriber has handed on item `seq` (at most `timeout_s`)."""
        end = time.monotonic() + timeout_s
        while any(self._seen.get(id(q), 0) < seq for q in self._subs):
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._taken.clear()
            try:
                await asyncio.wait_for(self._taken.wait(), left)
            except TimeoutError:
                return False
        return True
