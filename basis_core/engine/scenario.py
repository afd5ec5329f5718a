"""`basis run [CONFIG]`: run the engine on a scenario and write the run directory.

With no CONFIG the embedded default scenario runs: three simulated venues (two spot, one
perp), a generated market with real cross-venue and basis dislocations, and scheduled faults.
With `run.clock = "virtual"` the venues' simulated clock drives everything: the run takes a
fraction of its simulated duration, and two runs with the same seed decide the same (same
digest). The run directory holds the journal (every input record, then the commands decided),
results.sqlite, report.json and report.html.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

from .config import Config, load
from .cpu import apply, busy_warning, plan
from .engine.core import InstrumentRules
from .engine.policy import PolicyConfig
from .engine.replay import save_run_meta
from .engine.runner import Runner
from .engine.signals import load_signals
from .errors import ConfigError
from .journal import JournalWriter
from .scenarios import DEFAULT


def policy_of(cfg: Config) -> PolicyConfig:
    """The engine policy: the scenario's [policy], with its [limits] applied."""
    lim = cfg.limits
    return replace(
        cfg.policy,
        min_edge_bps=lim.min_edge_bps,
        max_slippage_bps=lim.max_slippage_bps,
        max_order_notional_usdt=lim.max_order_usdt,
        max_exposure_usdt=lim.max_position_usdt,
        max_residual_usdt=lim.max_residual_usdt,
        hedge_window_ms=lim.hedge_window_s * 1e3,
        unwind_window_ms=lim.unwind_window_s * 1e3,
    )


def rules_of(cfg: Config) -> dict[str, InstrumentRules]:
    out = {}
    for name, inst in cfg.instruments.items():
        venue = cfg.venues[inst.venue]
        out[name] = InstrumentRules(
            name,
            inst.venue,
            inst.base,
            inst.quote,
            inst.kind,
            inst.tick,
            inst.lot,
            inst.min_notional,
            venue.taker_fee_bps,
            getattr(inst, "leverage", 2.0) or 2.0,
        )
    return out


def fixed_marks_of(cfg: Config) -> dict[str, float]:
    """USDT prices of fee assets that have no book in the scenario (venues.X.fee_asset_price)."""
    out = {}
    for v in cfg.venues.values():
        asset = getattr(v, "fee_asset", "")
        if asset and asset not in ("quote", "received") and getattr(v, "fee_asset_price", 0):
            out[asset] = float(v.fee_asset_price)
    return out


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
) -> Runner:
    """Run one scenario on the running loop; returns the finished Runner.

    layout "single": the engine core runs in this process, on the event loop (what the
    virtual clock needs); "processes": the pinned engine process joined by rings (real time).
    `after_start(runner)` and `before_close(runner)` are awaited with the venues open."""
    run_dir.mkdir(parents=True, exist_ok=True)
    reg = cfg.registry()
    signals = None
    if cfg.signals.file:
        signals = load_signals(cfg.data_path(cfg.signals.file), reg, set(cfg.instruments))
    common = dict(
        venues=dict(world.venues),
        registry=reg,
        rules=rules_of(cfg),
        policy=policy_of(cfg),
        now_ns=world.clock.now_ns,
        progress=progress,
        fixed_marks=fixed_marks_of(cfg),
        signals=signals,
        builtin_signals=cfg.signals.builtin,
    )
    journal = None
    affinity = os.sched_getaffinity(0)
    if layout == "processes":
        from .engine.procs import ProcessRunner

        placements = {p.role: p for p in plan(cfg.cpu)}
        if progress:
            for p in placements.values():
                if p.role != "io":
                    progress(
                        f"{p.role}: {'unpinned' if p.core is None else f'core {p.core}'} {p.note}".rstrip()
                    )
            progress(apply(placements["io"]))
            warning = busy_warning(placements["engine"].core)
            if warning:
                progress(warning)
        runner = ProcessRunner(cfg=cfg, run_dir=run_dir, placements=placements, **common)
    else:
        journal = JournalWriter(run_dir / "journal", cfg.journal)
        runner = Runner(journal=journal, **common)
    try:
        await world.start()
        for v in world.venues.values():  # every asset the venues hold has an id before
            for asset in await v.balances():  # any process copies the registry
                reg.assets.add(asset)
        save_run_meta(run_dir, cfg, reg)
        await runner.start()
        # the market goes on quoting while the run settles: hedges and unwinds started near
        # the end need live books to be priced
        market = world.start_market(hold=True)
        if after_start is not None:
            await after_start(runner)
        await runner.run_for(cfg.run.duration_s)
        await runner.finish(settle_s)
        if not market.done():
            market.cancel()
            await asyncio.gather(market, return_exceptions=True)
        save_run_meta(run_dir, cfg, reg)  # assets met during the run (fee tokens) have ids now
        if before_close is not None:
            await before_close(runner)
    finally:
        if journal is not None:
            journal.close()
        if layout == "processes":
            runner.close()
            os.sched_setaffinity(0, affinity)  # the caller gets its cores back
        await world.close()
    return runner


def main(args) -> int:
    from adapters.sim.world import SimWorld

    from .engine.report import write_run

    path = args.config or DEFAULT
    cfg = load(path)
    for name, venue in cfg.venues.items():
        if venue.kind != "sim":
            # not yet: live ccxt/web3 accounts are driven from code (adapters/ccxt/local.py,
            # adapters/web3/world.py), not from `basis run`; never run without a venue silently
            raise ConfigError(
                f"venues.{name}.kind",
                f"'{venue.kind}' venues are not run by `basis run` yet; it drives simulated venues",
            )
    if args.duration:
        cfg = replace(cfg, run=replace(cfg.run, duration_s=float(args.duration)))
    run_dir = run_dir_for(cfg, getattr(args, "run_dir", None) or args.out)
    print(
        f"basis run: scenario {cfg.run.name!r} from {path}; {cfg.run.duration_s:g} s on the "
        f"{cfg.run.clock} clock; run directory {run_dir}"
    )
    from .kernels.warmup import IMPORT_S, warm_up

    t0 = time.perf_counter()
    groups = warm_up()  # compile or load every kernel now, not on the first live signal
    print(
        f"kernels ready in {time.perf_counter() - t0 + IMPORT_S:.2f} s ("
        + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in groups.items())
        + ")"
    )
    world = SimWorld.from_config(cfg)
    wall0 = time.perf_counter()
    layout = "single" if cfg.run.clock == "virtual" else "processes"
    coro = run_scenario(
        cfg, run_dir, world, progress=lambda line: print("  " + line, flush=True), layout=layout
    )
    runner = world.clock.run(coro) if cfg.run.clock == "virtual" else asyncio.run(coro)
    wall = time.perf_counter() - wall0
    report = write_run(runner, cfg, run_dir, wall, world.digest())
    print(summary_table(report))
    return 0


def summary_table(report: dict) -> str:
    rows = [
        ("events processed", f"{report['events_processed']:,}"),
        ("events/s (wall)", f"{report['events_per_s']:,.0f}"),
        (
            "decision latency p50/p99/p999 (ns)",
            "{p50:,.0f} / {p99:,.0f} / {p999:,.0f}".format(**report["decision_latency_ns"]),
        ),
        ("signals seen", f"{report['signals_seen']:,}"),
        (
            "signals rejected",
            ", ".join(f"{k}={v}" for k, v in sorted(report["signals_rejected"].items())) or "0",
        ),
        ("orders submitted / filled", f"{report['orders_submitted']} / {report['orders_filled']}"),
        ("hedges completed", str(report["hedges_completed"])),
        ("asymmetric episodes / unwinds", f"{report['asymmetric_episodes']} / {report['unwinds']}"),
        ("max residual exposure (USDT)", f"{report['max_residual_exposure_usdt']:,.2f}"),
        (
            "realized PnL / fees / slippage (USDT)",
            f"{report['realized_pnl_usdt']:,.2f} / {report['fees_usdt']:,.2f} / {report['slippage_usdt']:,.2f}",
        ),
        (
            "reconciliation mismatches",
            ", ".join(f"{k}={v}" for k, v in sorted(report["reconciliation"].items())) or "0",
        ),
        ("state transitions", str(len(report["state_transitions"]))),
        ("decision digest", report.get("decision_digest", "")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
