"""Nonce allocation for one account: no gaps, no reuse, recovery after a dropped transaction.

The manager is pure bookkeeping (no I/O); the client feeds it what the node says.

* `sync(latest, pending)` adopts the node's counts: `latest` = mined transactions,
  `pending` = mined + queued in the node's pool. The next nonce is max(ours, pending).
* `allocate()` hands out the next nonce. `sent(nonce, ...)` records a transaction that reached
  the node; `release(nonce)` returns a nonce whose send never reached the node: the highest
  one is simply reused, a lower one becomes a hole that must be filled (`holes`).
* `mined(latest)` forgets every in-flight nonce below the node's mined count.
* `gaps(in_pool)` lists the nonces at or above `latest` that we consider used but whose
  transaction is not in the node's pool (dropped, evicted, or never sent): each must be filled
  (re-broadcast or a cancel) before any later nonce can be mined.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .gas import Fees


@dataclass
class InFlight:
    """A transaction we sent and have not yet seen mined."""

    nonce: int
    tx_hash: str
    raw: bytes = field(repr=False)
    fees: Fees | None = None
    kind: str = "trade"  # "trade", "replacement", "cancel"


class NonceManager:
    def __init__(self):
        self._lock = threading.Lock()
        self._next: int | None = None
        self._latest = 0
        self._inflight: dict[int, InFlight] = {}
        self._holes: set[int] = set()

    @property
    def synced(self) -> bool:
        return self._next is not None

    @property
    def next_nonce(self) -> int | None:
        return self._next

    def sync(self, latest: int, pending: int) -> None:
        with self._lock:
            self._latest = max(self._latest, latest)
            if self._next is None or pending > self._next:
                self._next = pending
            self._forget_below(self._latest)

    def allocate(self) -> int:
        with self._lock:
            if self._next is None:
                raise RuntimeError("NonceManager.allocate before sync")
            if self._holes:
                n = min(self._holes)
                self._holes.discard(n)
                return n
            n = self._next
            self._next += 1
            return n

    def sent(
        self, nonce: int, tx_hash: str, raw: bytes, fees: Fees | None = None, kind: str = "trade"
    ) -> None:
        with self._lock:
            self._inflight[nonce] = InFlight(nonce, tx_hash, raw, fees, kind)
            self._holes.discard(nonce)

    def release(self, nonce: int) -> None:
        """The send with `nonce` did not reach the node."""
        with self._lock:
            if nonce in self._inflight:
                return  # an earlier send with this nonce did reach it
            if self._next is not None and nonce == self._next - 1:
                self._next -= 1
            elif nonce >= self._latest:
                self._holes.add(nonce)

    def mined(self, latest: int) -> None:
        with self._lock:
            self._latest = max(self._latest, latest)
            self._forget_below(self._latest)
            if self._next is not None and self._next < self._latest:
                self._next = self._latest

    def unmined(self, nonce: int) -> None:
        """A reorg took back the transaction at `nonce`: the node's mined count is below it
        again (it is sent again, or its nonce filled, before any later one can be mined)."""
        with self._lock:
            self._latest = min(self._latest, nonce)

    def inflight(self) -> list[InFlight]:
        with self._lock:
            return [self._inflight[n] for n in sorted(self._inflight)]

    def get(self, nonce: int) -> InFlight | None:
        return self._inflight.get(nonce)

    @property
    def holes(self) -> list[int]:
        return sorted(self._holes)

    def gaps(self, in_pool: set[str]) -> list[int]:
        """Nonces in [latest, next) that hold no transaction the node still knows about."""
        with self._lock:
            if self._next is None:
                return []
            out = []
            for n in range(self._latest, self._next):
                f = self._inflight.get(n)
                if f is None or f.tx_hash not in in_pool:
                    out.append(n)
            return out

    def _forget_below(self, latest: int) -> None:
        for n in [n for n in self._inflight if n < latest]:
            del self._inflight[n]
        self._holes = {n for n in self._holes if n >= latest}
