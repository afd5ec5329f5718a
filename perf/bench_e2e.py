"""End to end through the product's engine process: io side → md ring → engine → order ring → io side.

    io side (this pyperf worker, core 0)                engine process (core [cpu] engine = 1)
    ┌──────────────────────────────────────┐ md ring   ┌──────────────────────────────────────┐
    │ feed: BOOK_LEVEL records, seq + ts_ns│ ────────▶ │ basis_core.engine.procs.engine_main: │
    │ stamped (time.time_ns) at publish    │ exec ring │ the loop `basis run` runs with       │
    │ venue answers: ACK + fill per order, │ ────────▶ │ run.clock = "real": peek the rings,  │
    │ a clean RECONCILE pass every second  │           │ journal the batch, EngineCore.step   │
    │ consumer: reads and keeps every      │ ◀──────── │ (full gate, hedge monitoring), the   │
    │ command, answers it                  │ order ring│ commands journaled and pushed,       │
    └──────────────────────────────────────┘           │ checkpoints every N journal records  │
                                                       └──────────────────────────────────────┘

The engine process is the product's own: the worker spawns `procs.engine_main` with the spec
ProcessRunner.spawn_engine gives it (the default scenario's config with run.clock = "real" and
[cpu] engine = 1, the registry, the three ring names), so the figures are those of the code
`basis run` runs, journal and checkpoints on. The worker plays the io process: it publishes the
starting balances (as Runner.start does), the market data, the venues' answers and a clean
reconciliation pass every reconcile_interval_ms, as ProcessRunner would.

Workload (perf/workload.py BookMarket): the default scenario's three books (alpha, beta spot,
gamma perp) as BOOK_LEVEL snapshots and level updates (sizes change at every level, levels
behind the touch come and go). Opportunities are real cross-venue dislocations after fees and
min_edge: the perp's grid moves DISLOCATION_BPS (only the perp, so the BTC mark and the
volatility levels stay put). Unpaced, the perp is always dislocated, its direction flipping
every EVERY_K / 2 records, so an engine that takes thousands of records per batch still finds
one in most batches (it decides at most once per batch); paced, a move lasts PACED_HOLD records
every PACED_EVERY_K records. Fills come back at once (VenueAnswers), so positions complete and
the pair is free again.

Benchmarks (impl = engine: the product's engine process):

  E2EThroughput[engine]                  unpaced: the feed publishes batches of FEED_BATCH as
                                         fast as the md ring takes them; pyperf value: seconds
                                         per md event (events/s = 1 / value), from the first
                                         record published to the engine having decided the
                                         last one (it has taken an exec record published after
                                         it released the last md record).
  TickToOrderLatency[engine,rate=R].pNN  the feed publishes one record per 1/R s; per ORDER_NEW
                                         entry: (time the worker read it from the order ring) -
                                         (ts_ns of the newest md record the engine had when it
                                         decided, i.e. the last one published at or before the
                                         order's ts_ns, the engine's batch time). pyperf value:
                                         that percentile over the run.

Every pyperf value comes from a fresh engine process and run directory, and counts only after:
the engine consumed exactly the md events sent and exited on EXIT; the commands the worker read
from the order ring are the journal's commands, byte for byte and in order; `basis replay`'s
function (engine/replay.py) re-decides the journal identically; orders were sent (unpaced: at
least one decision; paced: for at least one opportunity in ten) and each decision is two IOC
legs of one opportunity (leg 0 buys, leg 1 sells the same quantity, one leg on the perp and one
on a spot book); every order was answered. Each value's evidence (events, decisions, orders,
journal records, checkpoints, percentiles) is printed on stderr, --quiet or not.

    .venv/bin/python perf/bench_e2e.py -o e2e.json [--fast] [--min-events N] [--realtime] [--only TEXT]
    .venv/bin/python perf/bench_e2e.py -o e2e.json --debug-single-value --smoke
    basis bench e2e [--fast]
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import EVERY_K, BookMarket, VenueAnswers, registry_of, scenario

from basis_core import cpu as cpulayout
from basis_core import schema as S
from basis_core.config import CpuConfig
from basis_core.configio import to_plain
from basis_core.engine.procs import engine_main
from basis_core.engine.replay import replay, save_run_meta
from basis_core.journal import JournalReader
from basis_core.results.stats import percentile
from basis_core.rings import CONSUMER, PRODUCER, Ring
from basis_core.units import MS

FEED_BATCH = 64
PATTERN_BLOCKS = 4  # blocks in the replayed pattern (unpaced runs)
PACED_EVERY_K = 1000  # paced runs: one opportunity per this many records,
PACED_HOLD = 100  # lasting this many records (10 ms at 10K/s)
PACED_BLOCKS = 10
#: paced latency runs: (rate in md events/s, percentiles)
#: (20K/s is not sustained on the 2-core host with one record per batch: the engine falls
#: behind, batches grow and the one-record opportunities are coalesced away)
LATENCY_RUNS = ((10_000, (50, 99)),)
LAYOUT = CpuConfig(engine=1, io=0)
SPAWN = mp.get_context("spawn")
READY_TIMEOUT_S = 300.0
EXIT_TIMEOUT_S = 120.0
LEG_MASK = (1 << S.LEG_BITS) - 1
WARMUP_EVENTS = 3_000  # per run, paced at 10K/s before the timed part
WARMUP_PACE_NS = 100_000


def _label(rate: int) -> str:
    return f"{rate // 1_000_000}M" if rate % 1_000_000 == 0 else f"{rate // 1000}K"


@functools.cache
def _placements() -> dict[str, cpulayout.Placement]:
    """Planned once per process, before the worker pins itself to the io core (the plan reads
    the cores this process may use)."""
    return {p.role: p for p in cpulayout.plan(LAYOUT)}


class Run:
    """One engine process (the product's engine_main) in a fresh run directory, and the io side
    of it: feed, venue answers, consumer, checks."""

    def __init__(self, root: Path, realtime: bool, paced: bool):
        pl = _placements()
        eng, io = pl["engine"].core, pl["io"].core
        self.cfg = scenario("real", -1 if eng is None else eng, -1 if io is None else io)
        self.cfg = replace(self.cfg, cpu=replace(self.cfg.cpu, realtime=realtime))
        cpulayout.apply(pl["io"])  # this process is the io side
        self.reg = registry_of(self.cfg)
        self.market = BookMarket(self.cfg, self.reg)
        self.venue = VenueAnswers(self.cfg, self.reg)
        self.run_dir = Path(tempfile.mkdtemp(prefix="e2e-", dir=root))
        save_run_meta(self.run_dir, self.cfg, self.reg)
        r = self.cfg.rings
        tag = f"bench-e2e-{Path(self.run_dir).name}"
        self.md = Ring.create(tag + "-md", r.md_slots, PRODUCER)
        self.ex = Ring.create(tag + "-ex", r.exec_slots, PRODUCER)
        self.od = Ring.create(tag + "-od", r.order_slots, CONSUMER)
        self.seq = {"md": 0, "ex": 0}
        self.buf = S.aligned_empty(r.order_slots)
        self.commands: list[np.ndarray] = []
        self.pending = S.aligned_empty(0)  # answers not yet pushed (exec ring full)
        self.sent_md = 0
        self.next_reconcile = 0
        self.published_ts: list[np.ndarray] = []  # ts_ns of every md record, in order
        self.recv: list[tuple[int, int]] = []  # (order ts_ns, read at ns) per ORDER_NEW entry leg
        # unpaced: the perp always dislocated (the engine takes thousands of records a batch);
        # paced: one opportunity of PACED_HOLD records every PACED_EVERY_K records
        if paced:
            self.pattern, _ = self.market.pattern(PACED_BLOCKS, PACED_EVERY_K, hold=PACED_HOLD)
        else:
            self.pattern, _ = self.market.pattern(PATTERN_BLOCKS)
        self.paced = paced
        self.pos = 0
        start = time.time_ns()
        spec = {
            "run_dir": str(self.run_dir),
            "config": to_plain(self.cfg),
            "registry": self.reg.as_dict(),
            "md": self.md.name,
            "exec": self.ex.name,
            "orders": self.od.name,
            "start_ns": start,
            "resume": False,
            "core": pl["engine"].core,
            "core_note": pl["engine"].note,
            "realtime": realtime,
        }
        self.proc = SPAWN.Process(target=engine_main, args=(spec,), name="basis-engine")
        self.proc.start()
        try:
            self._start(start)
        except BaseException:
            self.close()
            raise

    def _start(self, start: int) -> None:
        """Wait for the engine's READY, then the run's first records and the warm-up."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = False
        while not ready:
            n = self.od.pop_batch(self.buf)
            if n:
                got = self.buf[:n]
                is_ready = (got["kind"] == S.Kind.CONTROL) & (got["sub"] == S.ControlCommand.READY)
                ready = bool(is_ready.any())
                self._commands(got[~is_ready].copy())
                continue
            if not self.proc.is_alive():
                raise AssertionError(f"e2e: the engine process exited before READY ({self.proc.exitcode})")
            if time.monotonic() > deadline:
                raise AssertionError("e2e: the engine process was not READY in time")
            time.sleep(0.001)
        self._exec(self.market.initial_balances(start))
        self._md(self.market.prologue())
        # warm-up, untimed: the first decisions of a process take first-call paths (lazy
        # imports, journal segment, first checkpoint state); their samples are dropped
        self.feed(WARMUP_EVENTS, WARMUP_PACE_NS)
        self.recv.clear()

    # -- io side ---------------------------------------------------------------------------

    def _exec(self, recs: np.ndarray) -> None:
        recs = recs.copy()
        recs["seq"] = np.arange(self.seq["ex"] + 1, self.seq["ex"] + 1 + len(recs))
        self.seq["ex"] += len(recs)
        self.pending = np.concatenate([self.pending, recs]).view(S.GENERIC)
        self._flush_exec()

    def _flush_exec(self) -> None:
        if len(self.pending):
            k = self.ex.push_batch(self.pending)
            self.pending = self.pending[k:]

    def _md(self, recs: np.ndarray) -> int:
        """Publish as many of `recs` as fit (seq and ts_ns stamped now); returns how many."""
        recs = recs.copy()
        recs["seq"] = np.arange(self.seq["md"] + 1, self.seq["md"] + 1 + len(recs))
        ts = time.time_ns()
        recs["ts_ns"] = ts
        k = self.md.push_batch(recs)
        if k:
            self.seq["md"] += k
            self.sent_md += k
            self.published_ts.append(np.full(k, ts, np.int64))
        return k

    def _next_records(self, n: int) -> np.ndarray:
        """The next n records of the replayed pattern (n <= its length)."""
        p = len(self.pattern)
        a = self.pos % p
        self.pos += n
        if a + n <= p:
            return self.pattern[a : a + n]
        return np.concatenate([self.pattern[a:], self.pattern[: a + n - p]]).view(S.GENERIC)

    def _commands(self, cmds: np.ndarray) -> None:
        if len(cmds):
            self.commands.append(cmds)
            self._exec(self.venue.answer(cmds, time.time_ns()))

    def poll(self) -> int:
        """Read the order ring once: keep the commands, answer them; a reconcile pass when due."""
        self._flush_exec()
        n = self.od.pop_batch(self.buf)
        now = time.time_ns()
        if n:
            cmds = self.buf[:n].copy()
            new = cmds.view(S.ORDER_NEW)
            entry = (
                (cmds["kind"] == S.Kind.ORDER_NEW)
                & ((new["coid"] & LEG_MASK) == 0)
                & ((new["aux"] >> 8) == S.Purpose.ENTRY)
            )
            self.recv += [(int(t), now) for t in cmds["ts_ns"][entry]]
            self._commands(cmds)
        if now >= self.next_reconcile:
            if self.next_reconcile:
                self._exec(S.control_record(now, S.ControlCommand.RECONCILE, 0, 1))
            self.next_reconcile = now + int(self.cfg.policy.reconcile_interval_ms * MS)
        return n

    def alive(self) -> None:
        if not self.proc.is_alive():
            raise AssertionError(f"e2e: the engine process died (exit code {self.proc.exitcode})")

    def feed(self, n: int, pace_ns: int) -> float:
        """Publish n md events (pace_ns = 0: as fast as the ring takes them) and wait until the
        engine has taken them all; returns the seconds from the first publish to that."""
        target = self.md.published + n
        left = n
        chunk = FEED_BATCH if pace_ns == 0 else 1
        recs = self._next_records(min(chunk, left))
        t0 = time.perf_counter()
        next_t = time.perf_counter_ns()
        polls = 0
        while left:
            if pace_ns:
                while time.perf_counter_ns() < next_t:
                    self.poll()
                next_t += pace_ns
            k = self._md(recs)
            left -= k
            if k == len(recs):
                if left:
                    recs = self._next_records(min(chunk, left))
            else:
                recs = recs[k:]
            if not pace_ns:
                self.poll()  # the io side answers between publishes (paced: while it waits)
            polls += 1
            if polls % 4096 == 0:
                self.alive()
        while self.md.consumed < target:
            self.poll()
            polls += 1
            if polls % 4096 == 0:
                self.alive()
        # the engine releases a batch once journaled and then decides it: the clock stops when
        # it has released one more exec record (a clean reconciliation pass, as the io side
        # sends every second), which it reads only after deciding the last md batch
        self._exec(S.control_record(time.time_ns(), S.ControlCommand.RECONCILE, 0, 1))
        fence = self.ex.published
        while self.ex.consumed < fence:
            self.poll()
            polls += 1
            if polls % 4096 == 0:
                self.alive()
        return time.perf_counter() - t0

    def finish(self) -> dict:
        """EXIT the engine (once its order ring is quiet) and check everything; the figures'
        companions (counts) as a dict."""
        quiet_until = time.monotonic() + 0.2
        while time.monotonic() < quiet_until:
            if self.poll():
                quiet_until = time.monotonic() + 0.2
        self._exec(S.control_record(time.time_ns(), S.ControlCommand.EXIT))
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while self.proc.is_alive() and time.monotonic() < deadline:
            if not self.poll():
                time.sleep(0.0005)
        while self.poll():
            pass
        self.proc.join(5)
        if self.proc.is_alive() or self.proc.exitcode != 0:
            raise AssertionError(f"e2e: the engine process did not exit cleanly ({self.proc.exitcode})")
        return self.check()

    def check(self) -> dict:
        got = np.concatenate(self.commands).view(S.GENERIC) if self.commands else S.aligned_empty(0)
        recs = np.concatenate([b for _, b in JournalReader(self.run_dir / "journal").batches(0)]).view(
            S.GENERIC
        )
        journaled = recs[recs["source"] == S.Source.ENGINE]
        # bytes 60-63 are the check field the journal seals (schema.seal); the rest is the command
        words = 64 - 4
        if not np.array_equal(
            got.view(np.uint8).reshape(-1, 64)[:, :words], journaled.view(np.uint8).reshape(-1, 64)[:, :words]
        ):
            raise AssertionError(
                f"e2e: the order ring carried {len(got)} commands, the journal holds {len(journaled)}, "
                "not the same bytes"
            )
        md_in = int(np.isin(recs["kind"], (S.Kind.BOOK_LEVEL, S.Kind.TOP_OF_BOOK)).sum())
        if md_in != self.sent_md:
            raise AssertionError(f"e2e: the journal holds {md_in} md events, {self.sent_md} were sent")
        res = replay(self.run_dir, log=lambda line: None)
        if not res.identical or res.commands != len(journaled):
            raise AssertionError(
                f"e2e: replay re-decided {res.mismatched_batches} batches differently "
                f"({res.commands} commands replayed, {len(journaled)} journaled)"
            )
        new = got[got["kind"] == S.Kind.ORDER_NEW].view(S.ORDER_NEW)
        entries = new[(new["aux"] >> 8) == S.Purpose.ENTRY]
        # orders must flow: paced, one opportunity per block (an engine starved by a loaded
        # host coalesces some away); unpaced, at most one decision per engine batch
        want = self.sent_md // PACED_EVERY_K // 10 if self.paced else 1
        if len(entries) < max(want, 1):
            raise AssertionError(f"e2e: {len(entries)} decisions sent orders, at least {want} were due")
        perp = self.market.books[self.market.perp][1]
        by_opp: dict[int, list] = {}
        for o in new:
            by_opp.setdefault(int(o["coid"]) >> S.LEG_BITS, []).append(o)
        for opp, legs in by_opp.items():
            if (int(legs[0]["aux"]) >> 8) != S.Purpose.ENTRY:
                continue
            if len(legs) != 2:
                raise AssertionError(f"e2e: opportunity {opp} has {len(legs)} legs")
            buy, sell = sorted(legs, key=lambda o: int(o["coid"]))
            if (int(buy["sub"]), int(sell["sub"])) != (S.Side.BUY, S.Side.SELL):
                raise AssertionError(f"e2e: opportunity {opp}: leg 0 must buy and leg 1 sell")
            if float(buy["qty"]) != float(sell["qty"]) or not float(buy["qty"]) > 0:
                raise AssertionError(f"e2e: opportunity {opp}: legs of {buy['qty']} and {sell['qty']}")
            if (int(buy["instrument"]) == perp) == (int(sell["instrument"]) == perp):
                raise AssertionError(f"e2e: opportunity {opp} is not a spot/perp pair")
        if self.venue.counts["new"] != len(new):
            raise AssertionError(f"e2e: {self.venue.counts['new']} of {len(new)} orders answered")
        return {
            "md": self.sent_md,
            "decisions": len(entries),
            "orders": len(new),
            "commands": len(got),
            "journal_records": len(recs),
            "checkpoints": len(list(self.run_dir.glob("checkpoint*"))),
        }

    def latencies(self) -> np.ndarray:
        """Per entry order: read time - ts_ns of the newest md record at or before its ts_ns."""
        if not self.recv:
            return np.zeros(0, np.int64)
        ts = np.concatenate(self.published_ts)
        order_ts = np.array([t for t, _ in self.recv], np.int64)
        read = np.array([r for _, r in self.recv], np.int64)
        idx = np.searchsorted(ts, order_ts, side="right") - 1
        ok = idx >= 0
        return (read[ok] - ts[idx[ok]]).astype(np.int64)

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        for ring in (self.md, self.ex, self.od):
            ring.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


_opts: dict = {"realtime": False, "root": None}


def _root() -> Path:
    if _opts["root"] is None:
        _opts["root"] = Path(tempfile.mkdtemp(prefix="basis-bench-e2e-"))
        atexit.register(shutil.rmtree, _opts["root"], True)
    return _opts["root"]


def _one_run(n: int, pace_ns: int) -> tuple[float, np.ndarray, dict]:
    run = Run(_root(), _opts["realtime"], pace_ns > 0)
    try:
        elapsed = run.feed(n, pace_ns)
        counts = run.finish()
        return elapsed, run.latencies(), counts
    finally:
        run.close()


def _say(what: str, elapsed: float, counts: dict, lat: np.ndarray | None = None) -> None:
    """One line per checked value on stderr: what the figure rests on."""
    line = (
        f"e2e {what}: {counts['md']:,} md events in {elapsed:.3f} s, {counts['decisions']:,} decisions "
        f"({counts['orders']:,} orders, {counts['commands']:,} commands) = journal = replay; "
        f"{counts['journal_records']:,} journal records, {counts['checkpoints']} checkpoint(s)"
    )
    if lat is not None and lat.size:
        p50, p99 = np.percentile(lat, [50, 99]) / 1e3
        line += f"; tick-to-order p50 {p50:.0f} us, p99 {p99:.0f} us over {lat.size} orders"
    print(line, file=sys.stderr, flush=True)


def throughput(loops: int, inner: int) -> float:
    elapsed, _, counts = _one_run(loops * inner, 0)
    _say("throughput", elapsed, counts)
    return elapsed


def latency(loops: int, rate: int, pct: float, inner: int) -> float:
    elapsed, lat, counts = _one_run(loops * inner, 1_000_000_000 // rate)
    if lat.size == 0:
        raise AssertionError("e2e: no latency samples")
    _say(f"paced {_label(rate)}/s", elapsed, counts, lat)
    return percentile(lat, pct) * 1e-9 * loops * inner


def _add_args(cmd, args) -> None:
    cmd.extend(["--min-events", str(args.min_events)])
    if args.smoke:
        cmd.append("--smoke")
    if args.realtime:
        cmd.append("--realtime")
    if args.only:
        cmd.extend(["--only", args.only])


def main() -> None:
    runner = pyperf.Runner(processes=2, values=3, add_cmdline_args=_add_args)
    runner.argparser.add_argument(
        "--min-events",
        type=int,
        default=None,
        help="md events per timed run (default 200,000; --fast 100,000; --smoke 4,000)",
    )
    runner.argparser.add_argument(
        "--smoke", action="store_true", help="the smallest form: throughput and one latency percentile"
    )
    runner.argparser.add_argument(
        "--realtime",
        action="store_true",
        help="run the engine SCHED_FIFO when permitted ([cpu] realtime)",
    )
    runner.argparser.add_argument(
        "--only", default="", help="run only the benchmarks whose name contains this"
    )
    args = runner.parse_args()
    _placements()
    _opts["realtime"] = args.realtime
    if args.min_events is None:
        args.min_events = 4_000 if args.smoke else 100_000 if args.fast else 200_000
    pl = _placements()
    runner.metadata["e2e_layout"] = "; ".join(
        f"{p.role} core {p.core}" + (f" ({p.note})" if p.note else "") for p in pl.values()
    )
    runner.metadata["e2e_engine"] = (
        "basis_core.engine.procs.engine_main (the real-clock engine process: journal, "
        "EngineCore.step, checkpoints), default scenario policy"
    )
    runner.metadata["e2e_workload"] = (
        "BOOK_LEVEL records on the default scenario's 3 books; unpaced: the perp always "
        f"dislocated (direction flips every {EVERY_K // 2} records); paced: a dislocation of "
        f"{PACED_HOLD} records every {PACED_EVERY_K} records; every order answered (ACK + fill)"
    )
    inner = args.min_events
    if args.only in "E2EThroughput[engine]":
        runner.bench_time_func("E2EThroughput[engine]", throughput, inner, inner_loops=inner)
    for rate, pcts in LATENCY_RUNS[:1] if args.smoke else LATENCY_RUNS:
        n = inner if args.smoke else max(inner // 4, rate * 3)
        for pct in (99,) if args.smoke else pcts:
            name = f"TickToOrderLatency[engine,rate={_label(rate)}].p{str(pct).replace('.', '')}"
            if args.only not in name:
                continue
            runner.bench_time_func(name, latency, rate, pct, n, inner_loops=n)


if __name__ == "__main__":
    main()
