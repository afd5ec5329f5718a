"""Run the engine on a scenario's venues and write its run directory.

With no CONFIG the embedded default scenario runs: three simulated venues (two spot, one
perp), a generated market with cross-venue and basis dislocations, and scheduled faults.
CONFIG's venues are simulated (kind = "sim") and, beside them on the real clock, live
exchanges through ccxt (kind = "ccxt", each with its [venues.NAME.ccxt] table; `basis
emulator` serves one on loopback) or pools on a chain (kind = "web3"). A config it cannot
drive (live venues on the virtual clock, a venue whose markets or fees differ from the
config) is refused with the key path (exit 1); sim, ccxt and web3 venues may be mixed in one
run. With a [cluster] table the engine shares limits with other engines through NATS
JetStream (README, "Run a cluster"). The run goes
on the scenario's clock (run.clock): "virtual" takes a fraction of the simulated duration and
decides the same for the same seed; "real" takes the duration in wall time, with the engine in
its own process placed on the cores of [cpu]. Progress lines are printed while it runs, then
a summary ending with the decision digest. The run directory holds journal/, results.sqlite,
report.json, report.html, scenario.json and registry.json.
A run that ends with a position neither flat nor hedged within limits prints each one with its
cause, writes everything all the same and exits 3 (EXIT_OUTSIDE_POLICY); an error exits 1.

A run directory that holds an unfinished run (a journal and no report.json: every process of
its run died) is refused unless --resume is given: then the run is taken up where its journal
ends (engine/resume.py; same CONFIG, venues that outlived it: ccxt or web3), with the venues'
open orders and fills adopted, and goes on for the rest of its duration (--duration S: S more
seconds). A directory holding a finished run is replaced by the new run.

SIGINT (Ctrl-C) or SIGTERM stops the run in order: no new entries, settle, cancel what still
works, reconcile, write everything (exit 0, or 3); a second one stops at once (exit 130), the
journal whole. With --paper (real clock) the ccxt venues are paper venues: their live public
order books, read with no credentials, drive simulated venues that fill our orders with the
configured fees and latencies; nothing is sent to the exchanges.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import EndedOutsidePolicy, Interrupted

if TYPE_CHECKING:
    from ..config import Config

NAME = "run"
HELP = "run the engine on a scenario's venues (default: the embedded simulated scenario)"


def _seconds(text: str) -> float:
    from ..config import MAX_DURATION_S

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_DURATION_S:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, {MAX_DURATION_S:g}]")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="TOML config of simulated venues; omitted: the embedded default scenario",
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        default=None,
        metavar="S",
        help="run for S seconds of the scenario's clock (overrides run.duration_s)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write the run directory under DIR (overrides run.out_dir)",
    )
    parser.add_argument(
        "--run-dir",
        default=None,
        metavar="DIR",
        help="write the run directory here (default: OUT_DIR/NAME-TIMESTAMP, from [run])",
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="paper trading: the ccxt venues' live public books (no keys read), our orders "
        "filled by the simulated matching engine with the configured fees and latencies",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="take up the unfinished run in --run-dir (same CONFIG): the engine's state from its "
        "checkpoints and journal, the venues' open orders and fills adopted, then the rest of "
        "its duration (or --duration S more)",
    )


def _with_run(cfg: Config, **changes) -> Config:
    """cfg with [run] fields changed; data paths stay relative to the config's file
    (base_dir is not an init field, so dataclasses.replace would drop it)."""
    out = replace(cfg, run=replace(cfg.run, **changes))
    object.__setattr__(out, "base_dir", cfg.base_dir)
    out._validate("")  # what depends on the run's length (the generated market's size)
    return out


def main(args: argparse.Namespace) -> int:
    from ..config import load
    from ..engine.resume import UNFINISHED
    from ..engine.scenario import run_dir_for, run_simulated, simulated_only
    from ..scenarios import DEFAULT

    path = args.config or DEFAULT
    cfg = load(path)
    if not args.paper:  # a paper run checks its venues when it builds them
        simulated_only(cfg)
    # resuming, --duration is how much longer to run: the run's own duration stays
    overrides = {"duration_s": None if args.resume else args.duration, "out_dir": args.out}
    cfg = _with_run(cfg, **{k: v for k, v in overrides.items() if v is not None})
    run_dir = run_dir_for(cfg, args.run_dir)
    state = _check_run_dir(run_dir, args.resume, args.run_dir)
    print(
        f"basis run: scenario {cfg.run.name!r} from {path}; {cfg.run.duration_s:g} s on the "
        f"{cfg.run.clock} clock; run directory {run_dir}"
        + ("; paper trading" if args.paper else "")
        + ("; resuming its unfinished run" if state == UNFINISHED else "")
    )
    try:
        report = run_simulated(
            cfg,
            run_dir,
            progress=lambda line: print(line, flush=True),
            paper=args.paper,
            resume=args.resume,
            resume_for_s=args.duration if args.resume else None,
        )
    except KeyboardInterrupt:  # before the run's loop handles the signals (kernels compiling)
        raise Interrupted(f"interrupted before the run started; nothing ran in {run_dir}") from None
    print(summary_table(report))
    still_open = report["open_positions"]
    if still_open:
        print(f"ENDED OUTSIDE POLICY: {len(still_open)} position(s) neither flat nor hedged within limits")
        for p in still_open:
            print(
                f"  opportunity {p['opportunity']}: {p['net_qty']:+g} {p['instrument']} on {p['venue']} "
                f"({p['exposure_usdt']:,.2f} USDT): {p['cause']}"
            )
        raise EndedOutsidePolicy(
            f"the run ended outside policy with {len(still_open)} position(s) open; "
            f"everything is written to {run_dir}"
        )
    return 0


def _check_run_dir(run_dir, resume: bool, named: str | None) -> str:
    """The run directory's state (engine/resume.py): an unfinished run is refused without
    --resume, --resume without one is refused; a finished run named again is replaced."""
    from ..engine.resume import FINISHED, check_run_dir, clear_finished

    if resume and not named:
        from ..errors import ConfigError

        raise ConfigError("--resume", "name the unfinished run's directory with --run-dir")
    state = check_run_dir(run_dir, resume)
    if state == FINISHED:
        gone = clear_finished(run_dir)
        print(f"basis run: {run_dir} held a finished run; replaced ({', '.join(gone)} removed)")
    return state


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
        ("state transitions", str(report.get("state_transitions_total", len(report["state_transitions"])))),
        (
            "open positions at the end",
            f"{len(report['open_positions'])} "
            f"({sum(p['exposure_usdt'] for p in report['open_positions']):,.2f} USDT): OUTSIDE POLICY"
            if report["open_positions"]
            else "none (flat or hedged within limits)",
        ),
        ("decision digest", report.get("decision_digest", "")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
