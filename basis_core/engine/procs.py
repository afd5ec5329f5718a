"""The pinned two-process layout: an io process and an engine process joined by rings.

    io process (this one, core [cpu].io)            engine process (core [cpu].engine)
    venues, router, ledger, reconciliation           rings -> EngineCore.step -> order ring
      md records   ── md ring ──────────────────▶      journal: inputs first, then commands
      exec records ── exec ring ────────────────▶
      commands     ◀────────────── order ring ──

The engine process is the only one that decides and the only writer of the journal. The io
process keeps a *shadow* of the engine state by following the journal and stepping its own
EngineCore over the same batches (the engine is deterministic, so the shadow is the engine, a
few milliseconds late): reconciliation, the ledger's attributions and the report read it.

If the engine process dies, the io process (whose venues live on) starts a new one with
`resume`: it rebuilds its state from the newest usable checkpoint (checkpoint.py, written every
[journal].checkpoint_every_records) and the journal after it, closes a half-written last batch,
journals a RECOVERED control (reconcile, verify every order in flight by client order id, no new
exposure until the venues agree) and goes on from there. A standby engine process (interpreter
and kernels loaded, waiting on a pipe, on the io core) takes over when there is one, so the
restart costs the replay of the journal's tail rather than a fresh start; a new standby starts once the
engine is up again.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np
from numba import njit

from .. import schema as S
from ..config import Config, from_dict
from ..cpu import Placement, apply
from ..errors import ConsumerGone, RingError
from ..journal import JournalReader, JournalWriter
from ..registry import Registry
from ..results.stats import LatencyHistogram
from ..rings import CONSUMER, PRODUCER, Ring
from ..rings import kernels as ring_kernels
from ..rings.layout import OWN
from ..rings.wait import BackoffSleep, BusySpin, Yield
from .build import fixed_marks_of, policy_of, rules_of
from .checkpoint import Checkpointer
from .core import EngineCore
from .replay import replay
from .runner import Runner

MD_KINDS = (S.Kind.BOOK_LEVEL, S.Kind.TOP_OF_BOOK, S.Kind.TRADE, S.Kind.FUNDING)
BATCH = 4096
#: how often an idle engine loop checks that its io process is alive (a system call: not on
#: every poll of a spinning engine)
PARENT_CHECK_NS = 1_000_000
# a ring end of this layout that found the ring full
_RING_FULL = BackoffSleep(min_us=100, max_us=100)


def engine_wait(name: str) -> BusySpin | Yield | BackoffSleep:
    """What the engine loop does when neither input ring holds a record before its next timer
    tick, by `[rings] wait`: "spin" polls the exec ring for about a microsecond and goes round
    again (so the md ring is looked at within a microsecond too; burns the core), "yield" gives
    the core to any other runnable thread, "sleep" sleeps 10 us doubling to 200 us while the
    rings stay empty."""
    if name == "spin":
        return BusySpin(spin_us=1.0)
    if name == "yield":
        return Yield()
    if name == "sleep":
        return BackoffSleep(min_us=10.0, max_us=200.0)
    raise ValueError(f"unknown wait strategy {name!r} (spin, yield or sleep)")


def engine_main(spec: dict) -> None:
    """Entry point of the engine process (multiprocessing 'spawn')."""
    from ..kernels.warmup import warm_up

    _ignore_stop_signals()
    _PARENT[0] = os.getppid()
    placement = Placement("engine", spec["core"], spec.get("core_note", ""))
    print("  " + apply(placement, realtime=spec.get("realtime", False)), flush=True)
    warm_up()  # compile or load every kernel before the first record
    run_dir = Path(spec["run_dir"])
    cfg = from_dict(spec["config"])
    reg = Registry.from_dict(spec["registry"])
    md = Ring.attach(spec["md"], CONSUMER)
    ex = Ring.attach(spec["exec"], CONSUMER)
    orders = Ring.attach(spec["orders"], PRODUCER)
    tick_ns = int(spec.get("tick_ms", 5.0) * 1e6)
    idle, empty_polls = engine_wait(cfg.rings.wait), 0
    try:
        if spec["resume"]:
            core, journal, (seen_md, seen_ex), since = resume(run_dir, cfg, orders)
        else:
            core = EngineCore(
                reg,
                rules_of(cfg),
                policy_of(cfg),
                {},
                spec["start_ns"],
                fixed_marks=fixed_marks_of(cfg),
                builtin_signals=cfg.signals.builtin,
            )
            journal = JournalWriter(run_dir / "journal", cfg.journal)
            seen_md = seen_ex = since = 0
        replayed = np.asarray(core.counters.decision_ns.counts, dtype=np.int64)  # timed while resuming
        checkpoints = Checkpointer(
            run_dir, cfg.journal.checkpoint_every_records, cfg.journal.checkpoint_keep, since, _log
        )
        _push(orders, S.control_record(time.time_ns(), S.ControlCommand.READY))
        buf_md, buf_ex = S.aligned_empty(BATCH), S.aligned_empty(BATCH)
        words_md, words_ex = buf_md.view(np.uint64).reshape(-1, 8), buf_ex.view(np.uint64).reshape(-1, 8)
        last = time.time_ns()
        parent, parent_checked_ns = os.getppid(), 0
        exiting = False
        while not exiting:
            # read without releasing: a slot goes back to the io process only once its record
            # is in the journal, so an engine killed in between loses nothing (the next one
            # reads it again and drops what its journal already holds, by sequence number)
            n_ex = int(_peek(ex.header, ex.slots, ex.local, words_ex, BATCH))
            n_md = int(_peek(md.header, md.slots, md.local, words_md, BATCH))
            now = time.time_ns()
            if n_ex + n_md == 0 and now - last < tick_ns:
                empty_polls += 1
                idle.idle(ex, empty_polls)
                if now - parent_checked_ns >= PARENT_CHECK_NS:
                    parent_checked_ns = now
                    if os.getppid() != parent:
                        break  # the io process is gone: nothing can carry our commands
                continue
            last, empty_polls = now, 0
            new_ex = buf_ex[:n_ex][buf_ex["seq"][:n_ex] > seen_ex]
            new_md = buf_md[:n_md][buf_md["seq"][:n_md] > seen_md]
            if len(new_ex):
                seen_ex = int(new_ex["seq"].max())
            if len(new_md):
                seen_md = int(new_md["seq"].max())
            batch = np.concatenate([new_ex, new_md, S.timer_record(now)]).view(S.GENERIC)
            journal.append(batch)
            ring_kernels.read_release(ex.header, ex.local, n_ex)
            ring_kernels.read_release(md.header, md.local, n_md)
            cmds = _emit(core, batch, journal, orders)
            checkpoints.after_batch(
                core, journal.position, cmds if len(cmds) else batch, {"seen": (seen_md, seen_ex)}
            )
            exiting = bool(
                np.any((batch["kind"] == S.Kind.CONTROL) & (batch["sub"] == S.ControlCommand.EXIT))
            )
        journal.close()
        # the decisions this process took live (not those it replayed while resuming)
        lat = np.asarray(core.counters.decision_ns.counts, dtype=np.int64) - replayed
        (run_dir / "engine-latency.npy").write_bytes(lat.tobytes())
    except ConsumerGone as exc:
        print(f"  engine: {exc}; stopping", flush=True)
    finally:
        for ring in (md, ex, orders):
            ring.close()


def resume(
    run_dir: Path, cfg: Config, orders: Ring | None, log: Callable[[str], None] | None = None
) -> tuple[EngineCore, JournalWriter, tuple[int, int], int]:
    """A restarted engine's state: the newest usable checkpoint and the journal after it replayed
    (the whole journal without one), a half-written last batch closed, a RECOVERED control
    journaled and decided (its commands pushed to `orders`). Returns the core, the journal open
    for appending, the last md / exec ring sequences journaled, and the position of the
    checkpoint it started from (0 without one)."""
    log = log or _log
    res = replay(run_dir, from_checkpoint=True, log=log)
    core = res.core
    log(
        f"state from the checkpoint at journal position {res.start:,}, then {res.records:,} records replayed"
        if res.start
        else f"state from the whole journal ({res.records:,} records replayed)"
    )
    journal = JournalWriter(run_dir / "journal", cfg.journal)
    if res.unlogged is not None:
        # decided just before the crash and never sent: logged as decided, not sent now
        # (the RECOVERED step below verifies them and they end as never placed)
        journal.append(res.unlogged)
    tail = _unfinished_batch(res.replayed)
    if len(tail):
        # inputs journaled just before the crash but never decided: close their batch
        closing = S.timer_record(time.time_ns())
        journal.append(closing)
        _emit(core, np.concatenate([tail, closing]).view(S.GENERIC), journal, orders)
    batch = np.concatenate(
        [S.control_record(time.time_ns(), S.ControlCommand.RECOVERED), S.timer_record(time.time_ns())]
    ).view(S.GENERIC)
    journal.append(batch)
    _emit(core, batch, journal, orders)
    return core, journal, _journaled_seqs(res.replayed, res.extra.get("seen", (0, 0))), res.start


def _log(line: str) -> None:
    print(f"  engine: {line}", flush=True)


def standby_main(conn) -> None:
    """Entry point of a standby engine process: imports and kernels loaded, it waits for the
    spec of an engine to replace (None: not needed). The io process keeps one ready so a dead
    engine's restart costs the journal replay, not a fresh interpreter and kernel load."""
    from ..kernels.warmup import warm_up

    _ignore_stop_signals()
    warm_up()
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return  # the io process is gone
    finally:
        conn.close()
    if spec is not None:
        engine_main(spec)


def _ignore_stop_signals() -> None:
    """The engine and standby processes leave SIGINT and SIGTERM to the io process, which stops
    the run in order (a Ctrl-C reaches the whole process group): the engine exits on the EXIT
    record it is sent, or by itself once its io process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@njit(cache=True, nogil=True)
def _peek(header, slots, local, out, n):
    """Consumer: copy up to `n` ready records into `out` without releasing their slots
    (ordering as in rings.kernels.read_claim: acquire load of the producer's cursor)."""
    k = ring_kernels.read_claim(header, slots, local, n)
    mask = slots.shape[0] - 1
    tail = local[OWN]
    for i in range(k):
        s = (tail + i) & mask
        for w in range(8):
            out[i, w] = slots[s, w]
    return k


def _journaled_seqs(records: np.ndarray, before: tuple[int, int]) -> tuple[int, int]:
    """The last io sequence numbers the journal holds for the md ring and the exec ring:
    `before` (those of the journal up to a checkpoint) or the highest in `records` (the rest)."""
    io = records[records["source"] != S.Source.ENGINE]
    is_md = np.isin(io["kind"], MD_KINDS)
    seq_md = int(io["seq"][is_md].max()) if is_md.any() else 0
    seq_ex = int(io["seq"][~is_md].max()) if (~is_md).any() else 0
    return max(seq_md, int(before[0])), max(seq_ex, int(before[1]))


def _emit(core: EngineCore, batch: np.ndarray, journal: JournalWriter, orders: Ring | None) -> np.ndarray:
    """Decide `batch`, journal the commands and push them to `orders`; returns them."""
    cmds = core.step(batch)
    if len(cmds):
        journal.append(cmds)
        if orders is not None:
            _push(orders, cmds)
    return cmds


def _push(ring: Ring, records: np.ndarray, consumer_is_parent: bool = True) -> None:
    """Push every record, waiting while the ring is full. With `consumer_is_parent` (the engine
    pushing to the io process): ConsumerGone if the io process dies meanwhile, instead of
    waiting forever."""
    done = attempt = 0
    while done < len(records):
        done += ring.push_batch(records[done:])
        if done < len(records):
            attempt += 1
            _RING_FULL.idle(ring, attempt)
            if consumer_is_parent and os.getppid() != _PARENT[0]:
                raise ConsumerGone("the io process is gone: nothing consumes the order ring")


_PARENT = [os.getppid()]  # set again by engine_main in the engine process


def _unfinished_batch(records: np.ndarray) -> np.ndarray:
    """Input records after the last closed batch of `records` (the journal's end, from a batch
    boundary): a crash between journaling and deciding."""
    ends = S.batch_ends(records)
    tail = records[(ends[-1] + 1) if len(ends) else 0 :]
    return tail[tail["source"] != S.Source.ENGINE]


class ProcessRunner(Runner):
    """The io process's side of the two-process layout (see module docstring)."""

    def __init__(self, *, cfg, run_dir: Path, placements: dict[str, Placement], **kw):
        super().__init__(journal=None, **kw)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.placements = placements
        self.engine_proc: BaseProcess | None = None
        self.restarts = 0
        #: (noticed dead at ns, ns until the restarted engine was ready) per restart
        self.downtimes: list[tuple[int, int]] = []
        self._down_since: int | None = None
        self._standby: tuple[BaseProcess, Connection] | None = None  # the standby engine, its pipe
        self.standby_takeovers = 0
        self._follow_pos = 0
        self._pending: list[np.ndarray] = []
        self._exiting = False
        self.engine_ready = False
        tag = f"{os.getpid()}-{int(time.time() * 1000) % 100000}"
        self.names = {"md": f"md-{tag}", "exec": f"exec-{tag}", "orders": f"orders-{tag}"}
        r = cfg.rings
        self.md = Ring.create(self.names["md"], r.md_slots, PRODUCER)
        self.ex = Ring.create(self.names["exec"], r.exec_slots, PRODUCER)
        self.orders = Ring.create(self.names["orders"], r.order_slots, CONSUMER)
        self._buf = S.aligned_empty(BATCH)
        self._ring_seq = {self.md.name: 0, self.ex.name: 0}

    # records go to the engine through the rings; the shadow core sees them in the journal
    def _sink(self, rec: np.ndarray) -> None:
        kinds = rec["kind"]
        is_md = np.isin(kinds, MD_KINDS)
        for ring, part in ((self.md, rec[is_md]), (self.ex, rec[~is_md])):
            if len(part):
                # one increasing sequence per ring: a restarted engine drops what it already has
                part = part.copy()
                part["seq"] = np.arange(
                    self._ring_seq[ring.name] + 1, self._ring_seq[ring.name] + 1 + len(part)
                )
                self._ring_seq[ring.name] += len(part)
            _push(ring, part, consumer_is_parent=False)

    def pump(self) -> None:
        self._commands()
        self._follow()

    def spawn_engine(self, resume: bool) -> None:
        from ..configio import to_plain

        p = self.placements["engine"]
        spec = {
            "run_dir": str(self.run_dir),
            "config": to_plain(self.cfg),
            "registry": self.reg.as_dict(),
            "md": self.names["md"],
            "exec": self.names["exec"],
            "orders": self.names["orders"],
            "start_ns": self.core.market.start_ns or self.now_ns(),
            "resume": resume,
            "core": p.core,
            "core_note": p.note,
            "realtime": self.cfg.cpu.realtime,
        }
        self.engine_ready = False
        standby, self._standby = self._standby, None
        if resume and standby is not None and standby[0].is_alive():
            try:
                standby[1].send(spec)
                standby[1].close()
                self.engine_proc = standby[0]
                self.standby_takeovers += 1
                return
            except OSError:
                pass  # it died meanwhile: start a fresh one
        self._retire(standby)
        self.engine_proc = proc = mp.get_context("spawn").Process(
            target=engine_main, args=(spec,), name="basis-engine"
        )
        proc.start()

    def _spawn_standby(self) -> None:
        """Start the standby engine (see standby_main) on the io core, once the engine is up."""
        if self._standby is not None or self._exiting:
            return
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=standby_main, args=(theirs,), name="basis-engine-standby")
        proc.start()
        theirs.close()
        self._standby = (proc, ours)

    @staticmethod
    def _retire(standby: tuple[BaseProcess, Connection] | None) -> None:
        if standby is None:
            return
        proc, conn = standby
        try:
            conn.send(None)
        except OSError:
            pass  # closed already, or the standby is gone
        conn.close()
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)

    async def start(self, ready_timeout_s: float = 300.0) -> None:
        if self.resumed is not None:  # a warm restart (resume.py): go on from the journal's end
            self._follow_pos = self.resumed.position
            self._pending = [self.resumed.pending] if len(self.resumed.pending) else []
            self._ring_seq[self.md.name], self._ring_seq[self.ex.name] = self.resumed.seen
        await super().start()
        self.spawn_engine(resume=self.resumed is not None)
        # the run starts when the engine can take records (its kernels may be compiling)
        deadline = time.monotonic() + ready_timeout_s
        while not self.engine_ready:
            self._commands()
            if not self.engine_alive():
                code = self.engine_proc.exitcode if self.engine_proc else None
                raise RingError(f"the engine process exited before it was ready (exit code {code})")
            if time.monotonic() > deadline:
                raise RingError(f"the engine process was not ready after {ready_timeout_s:g} s")
            await asyncio.sleep(0.01)

    def _commands(self) -> None:
        while True:
            n = self.orders.pop_batch(self._buf)
            if n == 0:
                return
            cmds = self._buf[:n].copy()
            ready = (cmds["kind"] == S.Kind.CONTROL) & (cmds["sub"] == S.ControlCommand.READY)
            if ready.any():
                self.engine_ready = True
                if self.resumed is not None:  # a warm restart's engine is up (resume.py)
                    self.resumed.engine_ready(self)
                cmds = cmds[~ready]
                if self._down_since is not None:
                    down = self.now_ns() - self._down_since
                    self.downtimes.append((self._down_since, down))
                    self._down_since = None
                    if self.progress:
                        self.progress(f"engine process back after {down / 1e9:.2f} s")
                self._spawn_standby()
            self.route(cmds)

    def _follow(self) -> None:
        """Step the shadow core over the batches the engine has journaled since the last call."""
        jdir = self.run_dir / "journal"
        if not (jdir / "LOCK").exists() and not any(jdir.glob("*.journal")):
            return
        try:
            reader = JournalReader(jdir)
            parts = [b for _, b in reader.batches(self._follow_pos)]
        except Exception:
            return  # the engine is between segments or restarting: read again next time
        if not parts:
            return
        recs = np.concatenate(parts).view(S.GENERIC)
        self._follow_pos += len(recs)
        recs = recs[recs["source"] != S.Source.ENGINE]
        self._pending.append(recs)
        pending = np.concatenate(self._pending).view(S.GENERIC)
        ends = S.batch_ends(pending)
        start = 0
        for end in ends:
            batch = S.aligned_empty(end + 1 - start)
            batch[:] = pending[start : end + 1]
            self.note_order_news(batch)
            self.core.step(batch)
            start = end + 1
        self._pending = [pending[start:]] if start < len(pending) else []

    def _ask_exit(self) -> bool:
        """Put an EXIT record on the exec ring if it has room (never waits); whether it did."""
        rec = S.control_record(self.now_ns(), S.ControlCommand.EXIT).copy()
        rec["seq"] = self._ring_seq[self.ex.name] + 1
        if self.ex.push_batch(rec) != 1:
            return False
        self._ring_seq[self.ex.name] += 1
        return True

    def engine_alive(self) -> bool:
        return self.engine_proc is not None and self.engine_proc.is_alive()

    def deciding(self) -> bool:
        return self.engine_alive() and self.engine_ready

    async def run_for(self, duration_s: float) -> None:
        t_end = self.now_ns() + int(duration_s * 1e9)
        while self.now_ns() < t_end and not self._cut_short:
            if not self.engine_alive() and not self._exiting:
                code = self.engine_proc.exitcode if self.engine_proc else None
                if self.progress:
                    self.progress(f"engine process exited ({code}); restarting from its journal")
                self._commands()
                self._follow()
                self.restarts += 1
                if self._down_since is None:  # (not yet back from an earlier restart)
                    self._down_since = self.now_ns()
                self.spawn_engine(resume=True)
            await super().run_for(min(0.25, max(0.0, (t_end - self.now_ns()) / 1e9)))

    async def finish(self, settle_s: float = 2.0) -> None:
        self._stop_entries()
        await self.settle(settle_s)
        await self.cancel_leftovers(settle_s)
        await self.final_reconcile()
        await asyncio.sleep(0.05)
        self._exiting = True
        self._retire(self._standby)
        self._standby = None
        self._sink(S.control_record(self.now_ns(), S.ControlCommand.EXIT))
        deadline = time.monotonic() + 10
        while self.engine_alive() and time.monotonic() < deadline:
            self._commands()
            await asyncio.sleep(0.01)
        self._commands()
        self._follow()
        lat = self.run_dir / "engine-latency.npy"
        if lat.exists():
            self.core.counters.decision_ns = LatencyHistogram(np.frombuffer(lat.read_bytes(), dtype=np.int64))
        await self.io.stop()

    def close(self, exit_wait_s: float = 3.0) -> None:
        self._retire(self._standby)
        self._standby = None
        proc = self.engine_proc
        if proc is not None and proc.is_alive() and self._ask_exit():
            # stopped without finishing (a second signal, an error): the engine ends its step
            # and closes its journal at a whole record
            proc.join(exit_wait_s)
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join(5)
        for ring in (self.md, self.ex, self.orders):
            ring.close()
