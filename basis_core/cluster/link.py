"""A clustered run's io-side link to NATS: reservations made ahead of need, off the decision path.

A thread of its own runs an asyncio loop on the real clock (a virtual-clock run's loop jumps
in time and must not time network calls) holding the NATS connection and this engine's
`Reserver`. It talks to the run only through two thread-safe hand-overs:

- `note_usage(used)`: what the engine's positions use of each limit now (the runner copies the
  engine core's figure after each step, engine/clustered.py);
- `drain()`: what the run must do: `Grant(limit, total)` (tell the engine it holds `total`, a
  CLUSTER_GRANT record), `Notice(level, event, line, fields)` (a progress line and a log event).

At `open` (blocking, before the run's first batch) every limit the run can draw on is looked
up: a key no operator has set is not limited by the cluster (said once); a hold this engine id
left from an earlier run is taken over by `Reserver.reconcile` with 0 (a new run starts flat)
and one chunk (`chunk_fraction` of the limit) is reserved. Every `interval_s` the link reserves
one more chunk of a limit whose unused part fell under half a chunk (all or nothing; when less
is free, what is free), and renews its lease every third of `lease_s`. When more than three
chunks lie unused it first lowers the engine's grant (a CLUSTER_GRANT record) and gives back
only once the engine has stepped it, so the engine never spends what is being returned. At
`close` it returns what the engine's positions do not use; what backs a position neither flat
nor hedged stays held.

NATS unreachable: ClusterDegraded on every call; the engine keeps spending what it holds and
no more (nothing new is granted), a notice says so once, another when the server answers
again. If it was unreachable at `open`, every limit is granted 0 (no exposure at all) until it
answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats.js.errors
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from ..errors import ClusterDegraded, ClusterError
from .config import ClusterConfig
from .limits import LimitId
from .reservations import _UNREACHABLE, LimitsBucket, Reserver, connect

#: what `drain` hands over, at most (a run that stopped reading does not grow it without bound)
MAX_PENDING = 4096
#: the JetStream stream every engine's results go to, subjects RESULTS_SUBJECT.ENGINE.STREAM
RESULTS_STREAM, RESULTS_SUBJECT = "basis_results", "basis.results"
RESULTS_MAX_BYTES = 1 << 30  # the stream drops its oldest messages beyond this
DEDUP_WINDOW_S = 600.0  # a message id seen within this window is stored once
READ_CHUNK = 1 << 20  # bytes of a results file read per tick
ZERO = Decimal(0)


@dataclass(frozen=True)
class Grant:
    limit: LimitId
    total: float


@dataclass(frozen=True)
class Halt:
    """A cluster-wide halt this engine has not obeyed yet."""

    id: str
    by: str
    reason: str


@dataclass(frozen=True)
class Notice:
    level: str
    event: str
    line: str
    fields: dict[str, Any] = field(default_factory=dict)


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x))) if x > 0 else ZERO


def _ceil(x: Decimal) -> Decimal:
    """Rounded up to 1e-8: never a hair under what positions use."""
    return x.quantize(Decimal("0.00000001"), rounding="ROUND_CEILING")


class ClusterLink:
    def __init__(
        self,
        cfg: ClusterConfig,
        limits: list[LimitId],
        environ: Mapping[str, str] | None = None,
        interval_s: float = 0.02,
        results_dir: Path | None = None,
        run_id: str = "",
    ):
        self.cfg, self.limits, self.environ, self.interval_s = cfg, list(limits), environ, interval_s
        self._lock = threading.Lock()
        self._out: deque[Grant | Notice | Halt] = deque(maxlen=MAX_PENDING)
        self._halts: deque[str] = deque(maxlen=16)  # reasons this engine halts the cluster for
        self._halt_seen = ""  # the id of the last cluster halt seen
        self._used: dict[str, float] = {}
        self._granted: dict[str, float] = {}
        self._lowering: dict[str, float] = {}  # key -> the lower grant sent, until the engine steps it
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reserver: Reserver | None = None
        self.limited: dict[str, Decimal] = {}  # key -> its limit, for the keys an operator set
        self.unlimited: list[str] = []
        self.degraded = False
        self.reserve_calls = 0
        self.returned: dict[str, Decimal] = {}  # key -> given back at close
        self.kept: dict[str, Decimal] = {}  # key -> still held after close (positions, or unreachable)
        self._nc: Any = None
        #: results: RUN_DIR/streams/*.jsonl published line by line, id RUN_ID/STREAM/LINE
        self.results_dir, self.run_id = results_dir, run_id
        self._sent: dict[str, tuple[int, int]] = {}  # stream -> (bytes acknowledged, lines acknowledged)
        self.published = 0
        self._ready = False  # limits looked up and first chunks reserved
        self._keep = False  # abort: return nothing at the end
        self._failed: ClusterError | None = None  # why the link could not start
        self._last_error = ""

    # -- the run's side ------------------------------------------------------------------------

    def open(self, timeout_s: float | None = None) -> None:
        """Start the thread; return once the first chunks are reserved or the server found
        unreachable (then every limit is granted 0)."""
        self._thread = threading.Thread(target=self._run, name="basis-cluster", daemon=True)
        self._thread.start()
        wait = timeout_s if timeout_s is not None else self.cfg.request_timeout_s * 8 + 5.0
        if not self._opened.wait(wait):
            raise ClusterError("", f"the cluster link did not start within {wait:g} s")
        if self._failed is not None:
            self._thread.join(wait)
            raise self._failed

    def note_usage(self, used: Mapping[str, float], granted: Mapping[str, float] | None = None) -> None:
        """What the engine's positions use now, and what the engine has been granted (the grants
        it has stepped: a lowered grant is in force once it shows here)."""
        with self._lock:
            self._used = dict(used)
            if granted is not None:
                self._granted = dict(granted)

    def publish_halt(self, reason: str) -> None:
        """Halt every engine of the cluster (sent from the link's thread, again until it is written)."""
        with self._lock:
            self._halts.append(reason)

    def drain(self) -> list[Grant | Notice | Halt]:
        with self._lock:
            out = list(self._out)
            self._out.clear()
        return out

    def close(self, used: Mapping[str, float], timeout_s: float = 10.0) -> None:
        """Return what `used` (the engine's final figures) leaves unused, then disconnect."""
        self.note_usage(used)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def abort(self, timeout_s: float = 2.0) -> None:
        """The run failed: disconnect and return nothing (what is held stays held, silent once
        its lease runs out, until this engine's next run reconciles or an operator releases it)."""
        self._keep = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # -- the thread ----------------------------------------------------------------------------

    def _post(self, item: Grant | Notice | Halt) -> None:
        with self._lock:
            self._out.append(item)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        try:
            await self._setup()
        except ClusterDegraded as exc:
            self._set_degraded(True, str(exc))
            for limit in self.limits:  # nothing known: no exposure until the server answers
                self._post(Grant(limit, 0.0))
        except ClusterError as exc:  # the run does not start
            self._failed = exc
            self._opened.set()
            if self._nc is not None:
                await self._nc.close()
            return
        self._opened.set()
        beat_every = self.cfg.lease_s / 3.0
        next_beat = time.monotonic() + beat_every
        while not self._stop.is_set():
            try:
                if not self._ready:
                    await self._setup()
                else:
                    await self._halt_io()
                    await self._top_up()
                    await self._publish_results()
                    if time.monotonic() >= next_beat:
                        assert self.reserver is not None
                        await self.reserver.heartbeat()
                        next_beat = time.monotonic() + beat_every
                self._set_degraded(False, "")
            except ClusterDegraded as exc:
                self._set_degraded(True, str(exc))
            except ClusterError as exc:
                if str(exc) != self._last_error:  # said once, not on every tick
                    self._last_error = str(exc)
                    self._post(Notice("error", "cluster_error", f"cluster: {exc}", {"key": exc.key}))
            await asyncio.sleep(self.interval_s)
        if not self._keep:
            await self._give_back()
            try:
                if self._ready:
                    await self._publish_results()  # what the run wrote last
            except ClusterError:
                pass  # unpublished: the files are whole in the run directory
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), self.cfg.request_timeout_s)
            except Exception:  # closing a connection to a server that is gone
                pass

    async def _setup(self) -> None:
        cfg = self.cfg
        if self._nc is None:
            self._nc = await connect(cfg, self.environ, reconnect_wait_s=0.1)
        bucket = await LimitsBucket.open(self._nc, cfg.bucket, timeout_s=cfg.request_timeout_s)
        r = self.reserver or Reserver(bucket, cfg.engine_id, cfg.lease_s)
        self.reserver = r
        for limit in self.limits:
            key = limit.key
            if key in self.limited or key in self.unlimited:
                continue
            table = await bucket.find(key)
            if table is None:
                self.unlimited.append(key)
                self._post(Grant(limit, float("inf")))
                self._post(
                    Notice(
                        "info", "unlimited", f"cluster: no shared limit {key} set: not limited", {"key": key}
                    )
                )
                continue
            held = table.holds.get(cfg.engine_id)
            if (
                held is not None
                and held.incarnation != r.incarnation
                and held.lease_until_ns >= time.time_ns()
            ):
                raise ClusterError(
                    key,
                    f"engine id {cfg.engine_id} holds {held.amount} with a live lease: another engine runs "
                    f"under this id, or this one stopped less than lease_s ago (wait for it to lapse)",
                )
            freed = await r.reconcile(key, ZERO)  # a new run starts flat: an earlier hold is returned
            if freed > 0:
                self._post(
                    Notice(
                        "info",
                        "reconciled",
                        f"cluster: {key}: {freed} held by an earlier run returned",
                        {"key": key},
                    )
                )
            self.limited[key] = table.limit
            await self._reserve(limit, self._chunk(key), first=True)
        await self._halt_io()  # a halt in force before this run: obeyed from its first batch
        if self.results_dir is not None:
            await self._results_stream()
        self._ready = True

    async def _halt_io(self) -> None:
        """Write the halts this engine asked for; read the one in force (obeyed once per id)."""
        r = self.reserver
        assert r is not None
        while self._halts:
            with self._lock:
                reason = self._halts[0]
            self._halt_seen = await r.bucket.halt(self.cfg.engine_id, reason)
            with self._lock:
                self._halts.popleft()
        halt = await r.bucket.read_halt()
        if halt is not None and halt["id"] != self._halt_seen:
            self._halt_seen = halt["id"]
            self._post(Halt(halt["id"], halt["by"], halt["reason"]))

    async def _results_stream(self) -> None:
        """The results stream, made when missing (file storage, bounded, deduplicating)."""
        js = self._nc.jetstream(timeout=self.cfg.request_timeout_s)
        try:
            try:
                await js.stream_info(RESULTS_STREAM)
            except nats.js.errors.NotFoundError:
                await js.add_stream(
                    StreamConfig(
                        name=RESULTS_STREAM,
                        subjects=[f"{RESULTS_SUBJECT}.>"],
                        storage=StorageType.FILE,
                        max_bytes=RESULTS_MAX_BYTES,
                        discard=DiscardPolicy.OLD,
                        duplicate_window=DEDUP_WINDOW_S,
                    )
                )
        except _UNREACHABLE as exc:
            raise ClusterDegraded("", f"the NATS server did not answer ({type(exc).__name__})") from None

    async def _publish_results(self) -> None:
        """Each whole line the run added to RUN_DIR/streams/NAME.jsonl, in order, as one message
        with Nats-Msg-Id RUN_ID/NAME/LINE: a line is counted sent only once acknowledged, and
        sent again after an outage under the same id, which the stream stores once."""
        if self.results_dir is None or not self.results_dir.is_dir():
            return
        js = self._nc.jetstream(timeout=self.cfg.request_timeout_s)
        for path in sorted(self.results_dir.glob("*.jsonl")):
            name = path.stem
            offset, line_no = self._sent.get(name, (0, 0))
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(READ_CHUNK)
            subject = f"{RESULTS_SUBJECT}.{self.cfg.engine_id}.{name}"
            for line in data.split(b"\n")[:-1]:  # whole lines only
                msg_id = f"{self.run_id}/{name}/{line_no + 1}"
                try:
                    await js.publish(subject, line, headers={"Nats-Msg-Id": msg_id})
                except _UNREACHABLE as exc:
                    raise ClusterDegraded(
                        "", f"the NATS server did not answer ({type(exc).__name__})"
                    ) from None
                offset, line_no = offset + len(line) + 1, line_no + 1
                self._sent[name] = (offset, line_no)
                self.published += 1

    def _chunk(self, key: str) -> Decimal:
        return self.limited[key] * Decimal(repr(self.cfg.chunk_fraction))

    async def _reserve(self, limit: LimitId, amount: Decimal, first: bool = False) -> None:
        r = self.reserver
        assert r is not None
        self.reserve_calls += 1
        got = await r.reserve(limit.key, amount)
        if got == 0:  # all or nothing: take what is free, when something is
            table = await r.bucket.read(limit.key)
            free = min(table.free(), amount)
            if free > 0:
                got = await r.reserve(limit.key, free)
        if got > 0 or first:
            self._post(Grant(limit, float(r.held(limit.key))))

    async def _top_up(self) -> None:
        """Per limit: one more chunk when less than half a chunk is left unused; when more than
        three are, the engine's grant is lowered to two chunks over its use, and once the engine
        has stepped that grant (it spends no more than it from then on) the rest goes back."""
        r = self.reserver
        assert r is not None
        with self._lock:
            used, granted = dict(self._used), dict(self._granted)
        for limit in self.limits:
            key = limit.key
            if key not in self.limited:
                continue
            chunk, in_use = self._chunk(key), _ceil(_dec(used.get(key, 0.0)))
            lower = self._lowering.get(key)
            if lower is not None:
                if granted.get(key) != lower:
                    continue  # not stepped yet: the engine may still spend up to its old grant
                keep = min(max(_dec(lower), in_use), r.held(key))
                r.note_used(key, keep)
                del self._lowering[key]
                await r.give_back(key)  # what is held beyond `keep`
                self._post(Grant(limit, float(r.held(key))))
                continue
            r.note_used(key, min(in_use, r.held(key)))
            if r.available(key) * 2 < chunk:
                await self._reserve(limit, chunk)
            elif r.available(key) > 3 * chunk:
                target = in_use + 2 * chunk
                self._lowering[key] = float(target)
                self._post(Grant(limit, float(target)))

    async def _give_back(self) -> None:
        r = self.reserver
        if r is None:
            return
        with self._lock:
            used = dict(self._used)
        for key in self.limited:
            r.note_used(key, min(_ceil(_dec(used.get(key, 0.0))), r.held(key)))
            try:
                self.returned[key] = await r.give_back(key)
            except ClusterError:  # unreachable: the hold stays, silent after its lease, until released
                self.returned[key] = ZERO
            self.kept[key] = r.held(key)

    def _set_degraded(self, on: bool, why: str) -> None:
        if on == self.degraded:
            return
        self.degraded = on
        if on:
            self._post(
                Notice(
                    "warning",
                    "degraded",
                    f"cluster: NATS unreachable ({why}): no new exposure beyond what is reserved",
                    {"reason": why},
                )
            )
        else:
            self._post(Notice("info", "resumed", "cluster: NATS answers again: reserving resumed", {}))
