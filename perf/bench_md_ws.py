"""The market-data path over a websocket: a depth frame received → its record in the md ring.

Topology (the real-clock layout's io side, fed by the exchange emulator's book stream):

    emulator process                     this process (the io side)                 consumer process
    Emulator.set_book ─ depthUpdate ─ws─▶ ccxt.pro client (frame in: t0)            (the engine's
                                          → CcxtVenue.market_data (streams.py)       end of the
                                          → VenueIO.pump_market → book_records       md ring: reads
                                          → ProcessRunner._sink → md ring (t1) ────▶ and checks seq)

The venue, VenueIO and ProcessRunner are the product's own, built as `basis run` builds them on
the real clock (the ProcessRunner's rings are created; no engine process is started: a small
consumer process drains the md ring and checks that its sequence numbers are contiguous).
The emulator runs in its own process, so its work does not share this interpreter.

t0 is taken when ccxt's websocket client hands a frame to its handler (before JSON decoding:
the frame has been read from the socket), t1 when `ProcessRunner._sink` returns (the records are
published in the ring). ccxt folds frames that arrive while the venue's reader is busy into one
book; a frame's latency is then until the first publish after its arrival, which holds it.

    MdWsLatency[ccxt-ws,rate=R].p50 / .p99   frames sent at R per second (one book change each,
                                             one level), percentiles of t1 - t0 over a sample
    MdWsPathLatency[ccxt-ws,rate=R].p50/.p99 the same frames, t1 of each publish minus t0 of
                                             the last frame it holds: the path's own time, no
                                             wait behind earlier frames of a clump
    MdWsThroughput[ccxt-ws]                  a burst of frames made first and then sent back
                                             to back; the io thread's CPU seconds per frame
                                             from the first frame in to the last frame's
                                             publish (msgs/s on one core)

Latency is wall time, so it carries the host's scheduling: on a shared 2-core machine frames
come in clumps when either process waits for a core, and a clump's first frame waits for the
rest to be read. Throughput is CPU time of the io thread (`time.thread_time`), as
perf/bench_sim.py does, so time the core spends on other processes is not counted.

Each sample checks what it measured: every frame reached the client, the last published book
carries the emulator's last update id, no sequence gap was repaired (no resync) and, at the
end, the consumer read every record published with contiguous sequence numbers.

Figures (perf/results/md-ws-20261202T061250Z.json, `basis bench md-ws`, 2026-12-02 06:13 UTC,
2-vCPU VM shared with other work, load average 4-6 during the run; medians of 2 processes x 3
values): frames at 1000/s: p50 859 us, p99 15.1 ms from frame in to record in the ring;
per publish from the last frame it holds (the path itself): p50 562 us, p99 10.6 ms; a burst:
43.6 K frames/s on one core. A look inside one run at 100 frames/s (not a pyperf figure):
VenueIO.book_records ~110 us and ProcessRunner._sink ~200 us for a 7-record book, the rest the
hops between ccxt's future, the venue's book iterator and VenueIO; the p99s are the host's
scheduling (frames in clumps of tens of ms), not the path.

    .venv/bin/python perf/bench_md_ws.py --fast        (pyperf options apply)
    basis bench md-ws
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import pyperf

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator import RateLimitsConfig
from adapters.emulator.harness import standard_emulator
from basis_core import config
from basis_core import schema as S
from basis_core.engine.build import policy_of
from basis_core.engine.io import VenueIO
from basis_core.engine.procs import ProcessRunner
from basis_core.registry import Registry
from basis_core.results.stats import percentile
from basis_core.rings import CONSUMER, Ring
from basis_core.scenarios import DEFAULT

KEY, SECRET = "bench-key", "bench-secret"
SYM, INST = "BTCUSDT", "BTCUSDT"
RATE = 1000  # frames per second for the latency samples
LATENCY_FRAMES = 1000
BURST_FRAMES = 4000


# -- the emulator's process ----------------------------------------------------------------------


def emulator_main(conn) -> None:
    """Serve an emulator; on ("send", n, rate) make n one-level book changes, their frames sent
    at `rate` per second or (rate 0) all made first and then sent back to back (the emulator's
    depth_paused fault holds them); answer ("done", last update id)."""

    async def serve():
        big = RateLimitsConfig(weight_limit=10**9, orders_limit=10**9, orders_day_limit=10**9)
        emu = standard_emulator({KEY: (SECRET, "bench")}, limits=big)
        conn.send(await emu.start())
        loop = asyncio.get_running_loop()
        k = 0
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "stop":
                break
            _, n, rate = cmd
            t0 = time.perf_counter()
            emu.faults.depth_paused = not rate  # a burst: made first, then sent back to back
            for i in range(n):
                k += 1
                emu.set_book(
                    SYM,
                    [(50_000.00, 0.5 + (k % 97) * 0.001), (49_999.00, 1.0)],
                    [(50_000.01, 0.3), (50_001.00, 1.0)],
                )
                if rate:
                    wait = t0 + (i + 1) / rate - time.perf_counter()
                    await asyncio.sleep(max(wait, 0.0))
            emu.faults.depth_paused = False
            with emu.lock:
                conn.send(("done", emu.streams.update_id(SYM)))
        await emu.stop()

    asyncio.run(serve())


# -- the consumer's process (the engine's end of the md ring) -------------------------------------


def consumer_main(name: str, stop, conn) -> None:
    ring = Ring.attach(name, CONSUMER)
    buf = S.aligned_empty(4096)
    count, last, ok = 0, 0, True
    while True:
        n = ring.pop_batch(buf)
        if n:
            seqs = buf["seq"][:n]
            ok = ok and int(seqs[0]) == last + 1 and bool(np.all(np.diff(seqs) == 1))
            last, count = int(seqs[n - 1]), count + n
        elif stop.is_set() and ring.published == ring.consumed:
            break
        else:
            time.sleep(0.0001)
    ring.close()
    conn.send((count, ok))


# -- the io side ------------------------------------------------------------------------------------


class Session:
    """Emulator process, CcxtVenue (ws books), VenueIO and ProcessRunner's sink, consumer."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.emu_conn, child = ctx.Pipe()
        self.emu_proc = ctx.Process(target=emulator_main, args=(child,), daemon=True)
        self.emu_proc.start()
        self.port = self.emu_conn.recv()
        self.loop = asyncio.new_event_loop()
        self.arrivals: list[int] = []
        self.publishes: list[int] = []
        self.cpu_first = self.cpu_last = 0  # this thread's CPU time at the first frame, last publish
        self.last_uid = 0
        self.loop.run_until_complete(self._start(ctx))

    async def _start(self, ctx) -> None:
        cfg = config.load(DEFAULT)
        reg = Registry()
        reg.venues.add("emu")
        reg.instruments.add(INST)
        vcfg = from_dict(
            {
                "base_url": f"http://127.0.0.1:{self.port}",
                "market_data": "ws",
                "user_data": "rest",
                "timeout_ms": 5000,
                "instruments": {INST: "BTC/USDT"},
            }
        )
        self.venue = CcxtVenue("emu", vcfg, Credentials(KEY, SECRET))
        await self.venue.start()
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-md-ws-")
        self.runner = ProcessRunner(
            cfg=cfg,
            run_dir=Path(self.tmp.name),
            placements={},
            venues={"emu": self.venue},
            registry=reg,
            rules={},
            policy=policy_of(cfg),
            now_ns=time.time_ns,
        )
        self.stop_consumer = ctx.Event()
        self.cons_conn, child = ctx.Pipe()
        self.consumer = ctx.Process(
            target=consumer_main, args=(self.runner.names["md"], self.stop_consumer, child), daemon=True
        )
        self.consumer.start()
        sink = self.runner._sink
        clock, cpu = time.perf_counter_ns, time.thread_time_ns

        def timed_sink(rec: np.ndarray) -> None:
            sink(rec)
            self.publishes.append(clock())
            self.cpu_last = cpu()
            if int(rec["kind"][0]) == S.Kind.BOOK_LEVEL:
                self.last_uid = int(rec.view(S.BOOK_LEVEL)["update_id"][0])

        self.io = VenueIO({"emu": self.venue}, reg, time.time_ns, timed_sink, {1: INST})
        self.pump = self.loop.create_task(self.io.pump_market("emu"))
        while not self.publishes:  # the first snapshot: the websocket is up
            await asyncio.sleep(0.01)
        for client in self.venue._ex_or_fail().clients.values():  # stamp frames as they come in
            handle = client.handle_message

            def stamped(message, handle=handle):
                if not self.arrivals:
                    self.cpu_first = cpu()
                self.arrivals.append(clock())
                return handle(message)

            client.handle_message = stamped

    def sample(self, n: int, rate: float) -> tuple[list[int], list[int], int]:
        """Send n frames; (latency of each frame in ns, latency of each publish from the last
        frame it holds in ns, this thread's CPU ns from the first frame in to the last publish)."""
        return self.loop.run_until_complete(self._sample(n, rate))

    async def _sample(self, n: int, rate: float) -> tuple[list[int], list[int], int]:
        self.arrivals.clear()
        self.publishes.clear()
        resyncs = dict(self.venue.book_resyncs)
        self.emu_conn.send(("send", n, rate))
        while not self.emu_conn.poll():
            await asyncio.sleep(0.002)
        _, target = self.emu_conn.recv()
        deadline = time.monotonic() + 30
        while self.last_uid < target:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"last book {self.last_uid}, the emulator's {target}: {len(self.arrivals)} frames"
                    f" in, {len(self.publishes)} publishes, stale {self.venue.book_stale}, resyncs"
                    f" {self.venue.book_resyncs}, pump {self.pump}"
                )
            await asyncio.sleep(0.001)
        if len(self.arrivals) != n:
            raise AssertionError(f"{len(self.arrivals)} frames reached the client, {n} sent")
        if self.venue.book_resyncs != resyncs:
            raise AssertionError(f"sequence gaps repaired during the sample: {self.venue.book_resyncs}")
        pubs = np.asarray(self.publishes, dtype=np.int64)
        arr = np.asarray(self.arrivals, dtype=np.int64)
        first_after = np.searchsorted(pubs, arr, side="right")
        if np.any(first_after >= len(pubs)):
            raise AssertionError("a frame was never published")
        lat = (pubs[first_after] - arr).tolist()
        last_in = np.searchsorted(arr, pubs, side="left") - 1  # the last frame before each publish
        holds = (last_in >= 0) & (first_after[np.maximum(last_in, 0)] == np.arange(len(pubs)))
        path = (pubs[holds] - arr[last_in[holds]]).tolist()
        return lat, path, self.cpu_last - self.cpu_first

    def close(self) -> None:
        self.pump.cancel()
        self.loop.run_until_complete(asyncio.gather(self.pump, return_exceptions=True))
        self.loop.run_until_complete(self.venue.close())
        self.emu_conn.send(("stop",))
        self.stop_consumer.set()
        count, ok = self.cons_conn.recv()
        published = self.runner._ring_seq[self.runner.md.name]
        self.consumer.join(10)
        self.emu_proc.join(10)
        self.runner.close()
        self.tmp.cleanup()
        if not ok or count != published:
            raise AssertionError(f"md ring: consumer read {count} of {published} records (contiguous: {ok})")


_SESSION: list[Session] = []


def session() -> Session:
    if not _SESSION:
        _SESSION.append(Session())
        atexit.register(_SESSION[0].close)
    return _SESSION[0]


def latency(loops: int, pct: float, which: str) -> float:
    s = session()
    lat: list[int] = []
    for _ in range(loops):
        frames, path, _ = s.sample(LATENCY_FRAMES, RATE)
        lat += frames if which == "frame" else path
    return percentile([x / 1e9 for x in lat], pct) * loops


def throughput(loops: int) -> float:
    s = session()
    total = 0.0
    for _ in range(loops):
        _, _, span = s.sample(BURST_FRAMES, 0)
        total += span / 1e9
    return total


def main() -> None:
    runner = pyperf.Runner(processes=2, values=3, loops=1)  # a value is one sample: no calibration
    runner.metadata["md_ws_path"] = (
        "emulator depthUpdate -> ccxt.pro watch_order_book -> CcxtVenue.market_data -> "
        "VenueIO.pump_market -> ProcessRunner._sink -> md ring"
    )
    for pct in (50, 99):
        runner.bench_time_func(f"MdWsLatency[ccxt-ws,rate={RATE}].p{pct}", latency, float(pct), "frame")
        runner.bench_time_func(f"MdWsPathLatency[ccxt-ws,rate={RATE}].p{pct}", latency, float(pct), "path")
    runner.bench_time_func("MdWsThroughput[ccxt-ws]", throughput, inner_loops=BURST_FRAMES)


if __name__ == "__main__":
    main()
