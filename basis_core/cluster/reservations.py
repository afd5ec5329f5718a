"""Global limits shared by several engines, in a NATS JetStream key-value bucket.

Not yet on the decision path: no engine reserves through this module during `basis run` (a
config with `[cluster]` is refused). This is the store and its protocol, tested against a real
nats-server.

One key per limit, its value the whole table of that limit (JSON):

    capital.alpha.USDT -> {"v": 1, "limit": "100000",
                           "holds": {"tokyo-1": {"amount": "25000", "lease_until_ns": ...,
                                                 "incarnation": "9f0c..."}, ...}}

Every change is a compare-and-set: read the table and its revision, compute the new table, write
it with `update(key, value, last=revision)`; a write that lost the race (another engine wrote
in between) is retried on the fresh table. A table is only written when the sum of its holds
stays within its limit, so the invariant sum(holds) <= limit holds at every revision of the key.

An engine (`Reserver`) reserves capacity in chunks ahead of need, spends it locally with no
round trip (`spend`, `unspend`), and gives back what it does not use. Its hold names it and
carries a lease renewed by each of its writes (`heartbeat` when it has nothing else to write);
a hold whose lease ran out is listed as silent (`Table.silent`) but still counts: nobody takes a
silent engine's capacity while its positions are unknown. It is freed only by an operator
(`LimitsBucket.release`, refused while the lease is live unless forced) or by the engine itself
when its reconciliation confirms what its positions still need (`Reserver.reconcile`, which a
restarted engine must call before it reserves again: `NotReconciled`).

When the server does not answer, every call raises `ClusterDegraded` and nothing new is
reserved; what an engine holds stays its own to spend. An engine never believes it holds more
than the server has recorded for it: its local figure rises only on a confirmed write and drops
before a give-back is sent (a give-back lost in an outage leaves the server holding more for it,
which it adopts again on its next write).

Amounts are Decimals (exact sums), in the limit's own unit (USDT, an asset's units).
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ..errors import ClusterDegraded, ClusterError, NotReconciled
from .config import NAME_RE, ClusterConfig

VERSION = 1
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3}$")
MAX_HOLDERS = 256  # engines holding one limit: a table stays small (one KV value)
MAX_ATTEMPTS = 500  # compare-and-set rounds before a call gives up (ClusterError)
HISTORY = 8  # revisions the bucket keeps per key
RESIDUAL_KEY = "residual"
HALT_KEY = "halt"  # the cluster-wide halt: who, why, when (JSON); deleted by an operator to lift it
ZERO = Decimal(0)

#: what the nats client raises when the server is not there to answer
_UNREACHABLE: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    asyncio.TimeoutError,
    OSError,
)


def capital_key(venue: str, asset: str) -> str:
    """The key of the capital limit of one asset on one venue."""
    return check_key(f"capital.{venue}.{asset}")


def position_key(instrument: str) -> str:
    """The key of the maximum position of one instrument (USDT notional) across engines."""
    return check_key(f"position.{instrument}")


def check_key(key: str) -> str:
    if not KEY_RE.match(key):
        raise ClusterError(key[:80], "not a limit key (dot-separated names of letters, digits, - or _)")
    return key


def _amount(value: Any, key: str, what: str) -> Decimal:
    try:
        out = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError):
        raise ClusterError(key, f"{what} is not a number") from None
    if not out.is_finite() or out < 0:
        raise ClusterError(key, f"{what} must be finite and not negative")
    return out


@dataclass(frozen=True)
class Hold:
    """What one engine holds of one limit."""

    amount: Decimal
    lease_until_ns: int
    incarnation: str


@dataclass(frozen=True)
class Table:
    """One limit and every engine's hold of it, as read at `revision` of its key."""

    key: str
    limit: Decimal
    holds: Mapping[str, Hold]
    revision: int = 0

    def held(self) -> Decimal:
        return sum((h.amount for h in self.holds.values()), ZERO)

    def free(self) -> Decimal:
        return self.limit - self.held()

    def silent(self, now_ns: int) -> list[str]:
        """Engines whose lease ran out: they still hold what they hold."""
        return sorted(e for e, h in self.holds.items() if h.lease_until_ns < now_ns)

    def with_hold(self, engine_id: str, hold: Hold | None) -> Table:
        holds = dict(self.holds)
        if hold is None or hold.amount == 0:
            holds.pop(engine_id, None)
        else:
            if engine_id not in holds and len(holds) >= MAX_HOLDERS:
                raise ClusterError(self.key, f"more than {MAX_HOLDERS} engines hold this limit")
            holds[engine_id] = hold
        return replace(self, holds=MappingProxyType(holds))

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": VERSION,
                "limit": str(self.limit),
                "holds": {
                    e: {
                        "amount": str(h.amount),
                        "lease_until_ns": h.lease_until_ns,
                        "incarnation": h.incarnation,
                    }
                    for e, h in sorted(self.holds.items())
                },
            }
        )

    @classmethod
    def decode(cls, key: str, data: bytes, revision: int) -> Table:
        try:
            doc = orjson.loads(data)
            if doc.get("v") != VERSION:
                raise ClusterError(key, f"table version {doc.get('v')!r}, this engine reads {VERSION}")
            holds = {
                str(e): Hold(
                    _amount(h["amount"], key, f"holds.{e}.amount"),
                    int(h["lease_until_ns"]),
                    str(h["incarnation"]),
                )
                for e, h in doc["holds"].items()
            }
            limit = _amount(doc["limit"], key, "limit")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            raise ClusterError(key, f"revision {revision} is not a limits table") from None
        return cls(key, limit, MappingProxyType(holds), revision)


async def connect(
    cfg: ClusterConfig, environ: Mapping[str, str] | None = None, reconnect_wait_s: float = 0.25
) -> Client:
    """A NATS connection as `cfg` says (credentials from the environment), reconnecting for ever
    in the background. A server that cannot be reached at all is ClusterDegraded."""

    async def quiet(*_args: Any) -> None:  # the client's own error log would print every retry
        return None

    options = cfg.connect_options(environ)
    try:
        # reconnecting for ever, the client would also retry its first connection for ever
        return await asyncio.wait_for(
            nats.connect(
                **options,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=reconnect_wait_s,
                error_cb=quiet,
                disconnected_cb=quiet,
                reconnected_cb=quiet,
            ),
            options["connect_timeout"] * 2,
        )
    except _UNREACHABLE as exc:
        raise ClusterDegraded("", f"cannot reach a NATS server ({type(exc).__name__})") from None


class LimitsBucket:
    """The bucket of global limits: reads, compare-and-set writes, and the operator's calls
    (`set_limit`, `release`). `on_write(previous_revision, table)` hears every write made here."""

    def __init__(self, nc: Client, kv: KeyValue, timeout_s: float):
        self.nc, self.kv, self.timeout_s = nc, kv, timeout_s
        self.conflicts = 0  # compare-and-set rounds lost to another writer, retried
        self.on_write: Callable[[int, Table], None] | None = None

    @classmethod
    async def open(
        cls, nc: Client, bucket: str, timeout_s: float = 1.0, create: bool = False
    ) -> LimitsBucket:
        """The bucket named `bucket`; with `create`, made (file storage) when missing."""
        if not NAME_RE.match(bucket):
            raise ClusterError("", "a bucket name is 1-64 letters, digits, - or _")
        js = nc.jetstream(timeout=timeout_s)
        try:
            try:
                kv = await js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                if not create:
                    raise ClusterError("", f"no limits bucket {bucket!r} on the server") from None
                kv = await js.create_key_value(
                    KeyValueConfig(bucket=bucket, history=HISTORY, storage=StorageType.FILE)
                )
        except _UNREACHABLE as exc:
            raise ClusterDegraded("", f"the NATS server did not answer ({type(exc).__name__})") from None
        return cls(nc, kv, timeout_s)

    async def _io(self, key: str, call: Coroutine[Any, Any, Any]) -> Any:
        """Await one request to the server; no connection or no answer in time is ClusterDegraded."""
        if not self.nc.is_connected:
            call.close()
            raise ClusterDegraded(key, "not connected to the NATS server")
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except _UNREACHABLE as exc:
            raise ClusterDegraded(key, f"the NATS server did not answer ({type(exc).__name__})") from None

    async def read(self, key: str) -> Table:
        check_key(key)
        try:
            entry = await self._io(key, self.kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            raise ClusterError(key, "no such limit (an operator sets it first)") from None
        return Table.decode(key, entry.value or b"", entry.revision or 0)

    async def find(self, key: str) -> Table | None:
        """The table of `key`, or None when no operator has set that limit."""
        check_key(key)
        try:
            entry = await self._io(key, self.kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        return Table.decode(key, entry.value or b"", entry.revision or 0)

    async def halt(self, by: str, reason: str, now_ns: int | None = None) -> str:
        """Halt every engine of the cluster (they read HALT_KEY); the halt's id."""
        at = time.time_ns() if now_ns is None else now_ns
        doc = {"v": VERSION, "id": f"{by}:{at}", "by": by, "reason": reason[:200], "at_ns": at}
        await self._io(HALT_KEY, self.kv.put(HALT_KEY, orjson.dumps(doc)))
        return str(doc["id"])

    async def read_halt(self) -> dict | None:
        """The cluster-wide halt in force, or None."""
        try:
            entry = await self._io(HALT_KEY, self.kv.get(HALT_KEY))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if not entry.value:
            return None
        try:
            doc = orjson.loads(entry.value)
            return {"id": str(doc["id"]), "by": str(doc["by"]), "reason": str(doc["reason"])}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ClusterError(HALT_KEY, f"revision {entry.revision} is not a halt") from None

    async def lift_halt(self) -> None:
        """An operator lifts the cluster-wide halt (each engine is resumed on its own: `basis ctl
        RUN_DIR resume`)."""
        try:
            await self._io(HALT_KEY, self.kv.delete(HALT_KEY))
        except nats.js.errors.KeyNotFoundError:
            pass

    async def change(self, key: str, step: Callable[[Table], Table | None]) -> Table:
        """Apply `step` to the table by compare-and-set until a write wins. `step` returns the
        new table (checked: holds within the limit), or None to write nothing (the read table
        is returned). Lost rounds are retried after a short random pause."""
        for attempt in range(MAX_ATTEMPTS):
            table = await self.read(key)
            new = step(table)
            if new is None:
                return table
            if new.held() > new.limit:
                raise ClusterError(key, "a write would hold more than the limit")  # a bug if reached
            data = new.encode()
            try:
                revision = await self._io(key, self.kv.update(key, data, last=table.revision))
            except nats.js.errors.KeyWrongLastSequenceError:
                self.conflicts += 1
                await asyncio.sleep(random.random() * 0.0005 * min(attempt + 1, 8))
                continue
            new = replace(new, revision=revision)
            if self.on_write is not None:
                self.on_write(table.revision, new)
            return new
        raise ClusterError(key, f"no write won in {MAX_ATTEMPTS} compare-and-set rounds")

    async def set_limit(self, key: str, limit: Decimal | int | str) -> Table:
        """Set (or make) a limit. Lowering it below what engines hold is refused: they give
        back first."""
        value = _amount(limit, check_key(key), "limit")
        try:
            table = Table(key, value, MappingProxyType({}))
            revision = await self._io(key, self.kv.create(key, table.encode()))
            return replace(table, revision=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # the key exists

        def step(t: Table) -> Table:
            if t.held() > value:
                raise ClusterError(key, f"engines hold {t.held()}, more than the new limit {value}")
            return replace(t, limit=value)

        return await self.change(key, step)

    async def release(
        self, key: str, engine_id: str, now_ns: int | None = None, force: bool = False
    ) -> Decimal:
        """An operator frees what `engine_id` holds of `key` (its positions are known flat or
        hedged) and returns the amount. Refused while its lease is live unless `force`: a live
        engine releases through its own reconciliation."""
        now = time.time_ns() if now_ns is None else now_ns
        freed = ZERO

        def step(t: Table) -> Table | None:
            nonlocal freed
            hold = t.holds.get(engine_id)
            if hold is None:
                freed = ZERO
                return None
            if hold.lease_until_ns >= now and not force:
                raise ClusterError(
                    key, f"engine {engine_id}'s lease is live: it is not silent (force to release)"
                )
            freed = hold.amount
            return t.with_hold(engine_id, None)

        await self.change(key, step)
        return freed


class Reserver:
    """One engine's side: reserves in chunks by compare-and-set, spends locally.

    `spend` and `unspend` never touch the network (they are what the decision path would call);
    `reserve`, `give_back`, `top_up`, `heartbeat` and `reconcile` are the slow side's calls."""

    def __init__(
        self, bucket: LimitsBucket, engine_id: str, lease_s: float, clock: Callable[[], int] = time.time_ns
    ):
        if not NAME_RE.match(engine_id):
            raise ClusterError("", "an engine id is 1-64 letters, digits, - or _")
        self.bucket, self.engine_id, self.clock = bucket, engine_id, clock
        self.lease_ns = int(lease_s * 1e9)
        self.incarnation = secrets.token_hex(8)
        self._held: dict[str, Decimal] = {}  # confirmed by the server for this incarnation
        self._used: dict[str, Decimal] = {}

    # local: the decision path's side
    def held(self, key: str) -> Decimal:
        return self._held.get(key, ZERO)

    def used(self, key: str) -> Decimal:
        return self._used.get(key, ZERO)

    def available(self, key: str) -> Decimal:
        return max(self.held(key) - self.used(key), ZERO)

    def spend(self, key: str, amount: Decimal) -> bool:
        """Take `amount` of what this engine holds; False (nothing taken) when it holds too little."""
        if amount < 0 or self.used(key) + amount > self.held(key):
            return False
        self._used[key] = self.used(key) + amount
        return True

    def note_used(self, key: str, amount: Decimal) -> None:
        """What this engine's positions use of `key` now, as its own decision path counts it
        (a clustered run's engine core keeps the figure; the io side copies it here)."""
        self._used[key] = max(_amount(amount, key, "used"), ZERO)

    def unspend(self, key: str, amount: Decimal) -> None:
        """A position closed: `amount` is free again locally (still held of the cluster)."""
        self._used[key] = max(self.used(key) - amount, ZERO)

    # the server's side
    def _hold(self, amount: Decimal) -> Hold:
        return Hold(amount, self.clock() + self.lease_ns, self.incarnation)

    def _mine(self, t: Table) -> Decimal:
        hold = t.holds.get(self.engine_id)
        if hold is None:
            return ZERO
        if hold.incarnation != self.incarnation:
            raise NotReconciled(
                t.key, f"engine {self.engine_id} holds {hold.amount} from an earlier run: reconcile first"
            )
        return hold.amount

    async def reserve(self, key: str, amount: Decimal) -> Decimal:
        """Reserve `amount` more of `key`, all or nothing: the amount granted (0: no room)."""
        amount = _amount(amount, key, "amount")
        granted = ZERO

        def step(t: Table) -> Table | None:
            nonlocal granted
            mine = self._mine(t)
            if amount == 0 or t.free() < amount:
                granted = ZERO
                self._held[key] = mine
                return None
            granted = amount
            return t.with_hold(self.engine_id, self._hold(mine + amount))

        new = await self.bucket.change(key, step)
        self._held[key] = self._mine(new)
        return granted

    async def give_back(self, key: str, amount: Decimal | None = None) -> Decimal:
        """Return `amount` (default: all) of what is held and not spent; the amount returned.
        Local capacity drops before the write is sent."""
        back = (
            self.available(key)
            if amount is None
            else min(_amount(amount, key, "amount"), self.available(key))
        )
        if back == 0:
            return ZERO
        self._held[key] = self.held(key) - back

        def step(t: Table) -> Table | None:
            mine = self._mine(t)
            return t.with_hold(self.engine_id, self._hold(max(mine - back, ZERO)))

        new = await self.bucket.change(key, step)
        self._held[key] = self._mine(new)
        return back

    async def top_up(self, key: str, chunk: Decimal) -> Decimal:
        """Reserve one more `chunk` when less than half a chunk is left to spend; the amount granted."""
        if self.available(key) * 2 >= chunk:
            return ZERO
        return await self.reserve(key, chunk)

    async def heartbeat(self) -> None:
        """Renew the lease on every limit this engine holds (nothing else changes)."""
        for key in [k for k, v in self._held.items() if v > 0]:

            def step(t: Table, key: str = key) -> Table | None:
                mine = self._mine(t)
                return t.with_hold(self.engine_id, self._hold(mine)) if mine > 0 else None

            new = await self.bucket.change(key, step)
            self._held[key] = self._mine(new)

    async def reconcile(self, key: str, confirmed: Decimal) -> Decimal:
        """This engine's reconciliation confirmed that its open positions need `confirmed` of
        `key`: its hold (from any earlier incarnation) becomes exactly that, spent; the rest goes
        back. Needing more than it held takes the difference from the limit's free room, or
        fails (ClusterError). Returns the amount given back."""
        confirmed = _amount(confirmed, key, "confirmed")
        returned = ZERO

        def step(t: Table) -> Table:
            nonlocal returned
            hold = t.holds.get(self.engine_id)
            old = hold.amount if hold is not None else ZERO
            if confirmed > old and t.free() < confirmed - old:
                raise ClusterError(
                    key, f"positions need {confirmed}, {confirmed - old} more than held and free"
                )
            returned = max(old - confirmed, ZERO)
            return t.with_hold(self.engine_id, self._hold(confirmed))

        new = await self.bucket.change(key, step)
        self._held[key] = self._mine(new)
        self._used[key] = confirmed
        return returned
