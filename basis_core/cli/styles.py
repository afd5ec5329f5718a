"""Run one scenario under each execution style and print them side by side.

CONFIG (default: the embedded default scenario) runs once per style, `taker`, `sliced` and
`maker_taker`, with only `[policy] execution` changed (same seed, market and faults), each through
the code path of `basis run` into OUT/STYLE (a full run directory: journal, report.json,
results.sqlite, report.html). The table gives each style's implementation shortfall (USDT and
bps of the paper notional), realized PnL, fees, max residual exposure (OVER when above
max_residual_usdt), asymmetric episodes and positions left open.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .run import _seconds, _with_run

NAME = "styles"
HELP = "run a scenario under each execution style and compare shortfall, PnL and residual"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", metavar="CONFIG", help="TOML config; omitted: the default scenario"
    )
    parser.add_argument(
        "--duration", type=_seconds, default=None, metavar="S", help="seconds of the scenario's clock"
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="the runs go to DIR/taker, DIR/sliced, DIR/maker_taker (default: a temp dir)",
    )


def main(args: argparse.Namespace) -> int:
    from ..config import load
    from ..engine.build import policy_of
    from ..engine.scenario import simulated_only
    from ..engine.styles import run_styles, style_table
    from ..scenarios import DEFAULT

    path = args.config or DEFAULT
    cfg = load(path)
    simulated_only(cfg)
    if args.duration is not None:
        cfg = _with_run(cfg, duration_s=args.duration)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="basis-styles-"))
    print(f"basis styles: scenario {cfg.run.name!r} from {path}; {cfg.run.duration_s:g} s; runs under {out}")
    reports = run_styles(cfg, out, progress=lambda line: None)
    print(style_table(reports, policy_of(cfg).max_residual_usdt))
    return 0
