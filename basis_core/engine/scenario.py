"""Run one scenario: the venues' world, the engine, the run directory.

`run_simulated(cfg, run_dir)` is what `basis run` does: every venue of the config must be a
simulated one (kind "sim"); the kernels are compiled or loaded first, then the run goes on
the scenario's clock. With `run.clock = "virtual"` the venues' simulated clock drives
everything: the run takes a fraction of its simulated duration, and two runs with the same
seed decide the same (same digest); with "real" the engine runs in its own pinned process.
The run directory holds the journal (every input record, then the commands decided),
results.sqlite, report.json and report.html.

`run_scenario` is the part shared with tests that drive other venue worlds (ccxt on the
local exchange emulators, web3 on an EVM node) from code.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..cpu import apply, busy_warning, plan
from ..errors import ConfigError, Interrupted
from ..journal import JournalWriter
from ..observe.sample import Sampler
from ..observe.server import Observer
from ..runlog import RunLog
from ..units import MS
from .alerts import Alerts
from .build import fixed_marks_of, policy_of, rules_of
from .checkpoint import Checkpointer
from .control import ControlServer, socket_path
from .replay import save_run_meta
from .runner import Runner
from .signals import load_signals
from .stopping import StopSignals, signals_deferred

if TYPE_CHECKING:
    from .clustered import Clustered
    from .procs import ProcessRunner
    from .resume import Resumed


def run_dir_for(cfg: Config, override: str | None) -> Path:
    if override:
        return Path(override)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.run.out_dir) / f"{cfg.run.name}-{stamp}"


async def run_scenario(
    cfg: Config,
    run_dir: Path,
    world,
    progress=print,
    settle_s: float = 2.0,
    before_close=None,
    after_start=None,
    layout: str = "single",
    stop: StopSignals | None = None,
    resumed: Resumed | None = None,
    duration_s: float | None = None,
) -> Runner:
    """Run one scenario on the running loop; returns the finished Runner.

    layout "single": the engine core runs in this process, on the event loop (what the
    virtual clock needs); "processes": the pinned engine process joined by rings (real time).
    `after_start(runner)` and `before_close(runner)` are awaited with the venues open. With
    `stop`, SIGINT / SIGTERM stop the run early (stopping.py) while it runs here. With
    `resumed` (resume.py) the unfinished run in `run_dir` goes on, for `duration_s` (default:
    run.duration_s)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # every progress line goes to the terminal (when `progress` is given) and to log.jsonl
    log = RunLog(run_dir / "log.jsonl", run_dir.name, terminal=progress)
    log.event("runner", "start", scenario=cfg.run.name, clock=cfg.run.clock, layout=layout)
    # metrics and the status page, on 127.0.0.1 from their own thread ([observe]; off by default)
    observer = Observer(cfg.observe.metrics_port, cfg.observe.status_port, run_dir.name, log)
    reg = cfg.registry() if resumed is None else resumed.registry
    signals = None
    if cfg.signals.file:
        signals = load_signals(cfg.data_path(cfg.signals.file), reg, set(cfg.instruments))
    common = dict(
        venues=dict(world.venues),
        registry=reg,
        rules=rules_of(cfg),
        policy=policy_of(cfg),
        now_ns=world.clock.now_ns,
        progress=log.progress("runner"),
        fixed_marks=fixed_marks_of(cfg),
        signals=signals,
        builtin_signals=cfg.signals.builtin,
    )
    journal = None
    runner: Runner
    procs: ProcessRunner | None = None  # the engine in its own process (layout "processes")
    affinity = os.sched_getaffinity(0)
    control: ControlServer | None = None  # the operator's socket (`basis ctl`), once running
    alerts: Alerts | None = None  # the [alerts] hook, when configured
    clustered: Clustered | None = None  # the [cluster] link, when configured
    if layout == "processes":
        from .procs import ProcessRunner

        placements = {p.role: p for p in plan(cfg.cpu)}
        if progress:
            say = log.progress("cpu")
            for p in placements.values():
                if p.role != "io":
                    say(f"{p.role}: {'unpinned' if p.core is None else f'core {p.core}'} {p.note}".rstrip())
            say(apply(placements["io"]))
            warning = busy_warning(placements["engine"].core)
            if warning:
                say(warning)
        runner = procs = ProcessRunner(cfg=cfg, run_dir=run_dir, placements=placements, **common)
    else:
        journal = JournalWriter(run_dir / "journal", cfg.journal)
        checkpoints = Checkpointer(
            run_dir,
            cfg.journal.checkpoint_every_records,
            cfg.journal.checkpoint_keep,
            log=log.progress("checkpoint"),
        )
        runner = Runner(journal=journal, checkpoints=checkpoints, **common)
    runner.log = log
    runner.resumed = resumed
    # a live venue outlives a run: a new run takes over the perp positions it holds
    runner.adopt_positions = cfg.run.clock == "real"
    if stop is not None:
        stop.install(runner)
    try:
        if cfg.alerts.command or cfg.alerts.webhook_env:
            # before anything starts: a webhook_env that is unset (a ConfigError) stops no world
            alerts = Alerts(cfg.alerts, cfg.run.name, lambda: runner.core, runner.stats, runner.now_ns)
        observer.start()
        await world.start()
        for v in world.venues.values():  # every asset the venues hold has an id before
            for asset in await v.balances():  # any process copies the registry
                reg.assets.add(asset)
        save_run_meta(run_dir, cfg, reg)
        await runner.start()
        if cfg.cluster is not None:  # the shared limits reserved before the first batch
            from .clustered import Clustered

            clustered = Clustered(runner, cfg, log, run_dir)
            clustered.open()
            runner.watchers.append(clustered.watch)
        sampler = Sampler(runner, log)
        runner.watchers.append(sampler.watcher(int(cfg.observe.sample_ms * MS), observer.publish))
        control = await ControlServer(runner, socket_path(run_dir)).open()
        if alerts is not None:
            runner.watchers.append(alerts.watch)
        # the market goes on quoting while the run settles: hedges and unwinds started near
        # the end need live books to be priced
        market = runner.supervisor.watch(world.start_market(hold=True))
        if after_start is not None:
            await after_start(runner)
        await runner.run_for(cfg.run.duration_s if duration_s is None else duration_s)
        await runner.finish(settle_s)
        if clustered is not None:  # what the positions do not use goes back to the cluster
            clustered.close()
            clustered = None
        observer.publish(sampler.sample())  # the run's final figures
        if not market.done():
            market.cancel()
            await asyncio.gather(market, return_exceptions=True)
        runner.supervisor.raise_failure()  # a task that failed while the run settled
        save_run_meta(run_dir, cfg, reg)  # assets met during the run (fee tokens) have ids now
        if before_close is not None:
            await before_close(runner)
    finally:
        observer.stop()
        if clustered is not None:  # the run failed: nothing is returned (holds kept until released)
            clustered.link.abort()
        if control is not None:
            control.close()
        if alerts is not None:
            alerts.close()  # what is queued is delivered (bounded wait)
        if journal is not None:
            journal.close()
        if procs is not None:
            procs.close()
            os.sched_setaffinity(0, affinity)  # the caller gets its cores back
        await world.close()
        if stop is not None:
            stop.remove()
            if stop.requested or stop.immediate:
                log.event("runner", "stopped", "warning", signal=stop.requested, at_once=stop.immediate)
        log.event("runner", "end", decision_digest=runner.core.digest if hasattr(runner, "core") else "")
        log.close()
    return runner


def coid_prefix(run_dir: Path) -> str:
    """The run's mark on the client order ids its live venues see ("b" and 6 hex digits): the one
    RUN_DIR/coid_prefix holds, or a new one (`keep_coid_prefix` writes it once the run starts). A
    venue remembers client order ids across runs, so each run's ids differ from every other
    run's, and a resumed run (the same directory) keeps its own."""
    path = run_dir / "coid_prefix"
    if path.exists():
        text = path.read_text().strip()
        if len(text) == 7 and text[0] == "b" and all(c in "0123456789abcdef" for c in text[1:]):
            return text
        raise ConfigError(str(path), f"not a client order id prefix: {text[:40]!r}")
    return "b" + secrets.token_hex(3)


def keep_coid_prefix(run_dir: Path, prefix: str) -> None:
    """Write `prefix` to RUN_DIR/coid_prefix (a resumed run reads it back)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "coid_prefix").write_text(prefix + "\n")


def check_inputs(cfg: Config) -> list[str]:
    """Open and fully check every file `cfg` names, as a run would before it starts: the recorded
    books and trades (every row against the scenario's instruments) and the external signals.
    Returns one line per file ("market.books: PATH: N rows"); a bad file raises its typed error
    (DataFileError, SignalFileError)."""
    out = []
    if cfg.market.source == "recorded":
        from adapters.sim.world import recorded_market

        market = recorded_market(cfg)
        for key, rec in (("books", market.books), ("trades", market.trades)):
            if rec is not None:
                out.append(f"market.{key}: {rec.path}: {len(rec.rows):,} rows")
    if cfg.signals.file:
        path = cfg.data_path(cfg.signals.file)
        signals = load_signals(path, cfg.registry(), set(cfg.instruments))
        out.append(f"signals.file: {path}: {len(signals):,} signals")
    if any(v.kind == "ccxt" for v in cfg.venues.values()):  # each [venues.NAME.ccxt] table
        from adapters.ccxt.world import describe_tables

        out += describe_tables(cfg)
    if any(v.kind == "web3" for v in cfg.venues.values()):  # each [venues.NAME.web3] table
        from adapters.web3.world import describe_tables as describe_chains

        out += describe_chains(cfg)
    return out


def simulated_only(cfg: Config) -> None:
    """Refuse a config naming a venue `basis run` cannot drive, never skipping it silently.
    Web3 venues (adapters/web3/world.py) and live ccxt venues (adapters/ccxt/world.py) run
    beside the simulated ones, on the real clock only; one run may hold all three kinds."""
    for name, venue in cfg.venues.items():
        if venue.kind == "web3" and cfg.run.clock != "real":
            raise ConfigError("run.clock", f"venue {name} is on a chain: a web3 run needs clock = 'real'")
        if venue.kind == "ccxt" and cfg.run.clock != "real":
            raise ConfigError(
                "run.clock", f"venue {name} is a live exchange: a ccxt run needs clock = 'real'"
            )
        if venue.kind not in ("sim", "web3", "ccxt"):
            raise ConfigError(
                f"venues.{name}.kind",
                f"'{venue.kind}' venues are not run by `basis run` yet; it drives simulated venues",
            )


def run_simulated(
    cfg: Config,
    run_dir: Path,
    progress=print,
    paper: bool = False,
    resume: bool = False,
    resume_for_s: float | None = None,
) -> dict:
    """Run `cfg` on its venues into `run_dir`; returns the run's report (what report.json
    holds). The world follows the venue kinds: simulated only, with web3 pools (ChainWorld),
    with live ccxt venues (CcxtWorld, whose digest is reported, never compared), or both (a
    ChainWorld over the CcxtWorld). Raises
    ConfigError before anything runs for a venue it cannot drive (`simulated_only`). With
    `paper`, the ccxt venues are paper venues (adapters/paper/world.py): their live public books
    drive simulated venues that fill our orders, and no credentials are read. With `resume`,
    the unfinished run in `run_dir` goes on (resume.py) for what is left of run.duration_s, or
    for `resume_for_s` more seconds, and the report covers the whole run."""
    from adapters.sim.clock import VirtualClock
    from adapters.sim.world import SimWorld

    from ..kernels.warmup import IMPORT_S, warm_up
    from .report import write_run

    if cfg.cluster is not None:  # shared limits through NATS (engine/clustered.py)
        from .clustered import check_clusterable

        check_clusterable(cfg, resume, paper)
    if not paper:  # a paper world checks its own venues (sim and ccxt, real clock)
        simulated_only(cfg)
    if resume:
        from .resume import check_resumable

        if paper:
            raise ConfigError("--resume", "a paper run's orders lived in the run's simulated venues")
        check_resumable(cfg, run_dir)
    t0 = time.perf_counter()
    groups = warm_up()  # compile or load every kernel now, not on the first live signal
    progress(
        f"kernels ready in {time.perf_counter() - t0 + IMPORT_S:.2f} s ("
        + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in groups.items())
        + ")"
    )
    # live venues mark this run's client order ids (a venue remembers ids across runs)
    prefix = coid_prefix(run_dir) if any(v.kind == "ccxt" for v in cfg.venues.values()) else ""
    if paper:  # live public books, our orders on the simulated matching engine
        from adapters.paper.world import PaperWorld

        world: SimWorld | ChainWorld | CcxtWorld = PaperWorld.from_config(cfg)
    elif any(v.kind == "web3" for v in cfg.venues.values()):  # pools on a chain beside them
        from adapters.web3.world import ChainWorld

        base = None
        if any(v.kind == "ccxt" for v in cfg.venues.values()):  # and live exchanges
            from adapters.ccxt.world import CcxtWorld

            base = CcxtWorld.from_config(cfg, coid_prefix=prefix)
        world = ChainWorld.from_run_config(cfg, base=base)
    elif any(v.kind == "ccxt" for v in cfg.venues.values()):  # live exchanges beside them
        from adapters.ccxt.world import CcxtWorld

        world = CcxtWorld.from_config(cfg, coid_prefix=prefix)
    else:
        world = SimWorld.from_config(cfg)
    if prefix and not paper:
        keep_coid_prefix(run_dir, prefix)
    resumed, duration_s = None, None
    if resume:  # the io side's state from the journal (the engine process rebuilds its own)
        from .resume import prepare

        resumed = prepare(run_dir, lambda line: progress("  resume: " + line))
        duration_s = resumed.remaining_s(cfg.run.duration_s) if resume_for_s is None else resume_for_s
        core = resumed.core
        progress(
            f"  resume: {resumed.elapsed_s:.1f} s of the run journaled; {len(core.orders.working())} "
            f"order(s) working, {len(core.open_positions)} position(s) open; {duration_s:g} s to go"
        )
    wall0 = time.perf_counter()
    layout = "single" if cfg.run.clock == "virtual" else "processes"
    stop = StopSignals(lambda line: progress("  " + line))
    coro = run_scenario(
        cfg,
        run_dir,
        world,
        progress=lambda line: progress("  " + line),
        layout=layout,
        stop=stop,
        resumed=resumed,
        duration_s=duration_s,
    )
    clock = world.clock
    try:
        runner = clock.run(coro) if isinstance(clock, VirtualClock) else asyncio.run(coro)
    except asyncio.CancelledError:
        if not stop.immediate:
            raise
        raise Interrupted(
            f"stopped at once on a second {stop.immediate}: nothing was settled and no report was "
            f"written; {run_dir}/journal ends at its last whole record (`basis replay {run_dir}`)"
            + (
                f"; take the run up again with `basis run --resume --run-dir {run_dir}` (same CONFIG)"
                if any(v.kind in ("ccxt", "web3") for v in cfg.venues.values()) and not paper
                else ""
            )
        ) from None
    with signals_deferred():  # the results are written whole, a signal meanwhile or not
        return write_run(runner, cfg, run_dir, time.perf_counter() - wall0, world.digest())
