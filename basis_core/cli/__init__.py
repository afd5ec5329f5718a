"""The one `basis` command.

basis version              print the version and the versions of the libraries it runs on
basis check CONFIG         validate a TOML config; errors name the key path; exit 1 on error
basis run [CONFIG]         run the engine (no CONFIG: the embedded simulated scenario)
basis replay RUN_DIR       replay the journal through a fresh engine; exit 1 if any decision differs
basis report RUN_DIR       print a run's summary and write RUN_DIR/report.html
basis bench [SUITE...]     run pyperf suites (perf/), write pyperf JSON and a summary table
basis host-check [CONFIG]  what a tuned host needs and what this one has (ok / warn + fix)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import BasisError, ConfigError


def _cmd_version(args) -> int:
    import numba
    import numpy

    print(f"basis {__version__}")
    print(f"numpy {numpy.__version__}, numba {numba.__version__}, python {sys.version.split()[0]}")
    return 0


def _cmd_check(args) -> int:
    from .config import load

    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 1
    reg = cfg.registry()
    print(f"ok: {args.config}: {len(reg.venues)} venue(s), {len(reg.instruments)} instrument(s)")
    return 0


def _cmd_run(args) -> int:
    from .run import main as run_main

    return run_main(args)


def _cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def _cmd_replay(args) -> int:
    import orjson

    from .engine.replay import replay

    res = replay(args.run_dir)
    report = Path(args.run_dir) / "report.json"
    logged = orjson.loads(report.read_bytes()).get("decision_digest", "") if report.exists() else ""
    same = res.identical and (not logged or logged == res.digest)
    print(
        f"replayed {res.records:,} records in {res.batches:,} batches: {res.commands:,} commands, "
        f"{res.mismatched_batches} batch(es) decided differently; digest {res.digest}"
        + (f" ({'equal to' if logged == res.digest else 'DIFFERENT from'} the run's)" if logged else "")
    )
    return 0 if same else 1


def _cmd_report(args) -> int:
    from .results.report import main as report_main

    return report_main(args)


def _cmd_host_check(args) -> int:
    from .config import CpuConfig, load
    from .hostcheck import checks, render

    cpu = load(args.config).cpu if args.config else CpuConfig(engine=1, io=0)
    print(render(checks(cpu)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basis", description="Execution orchestration for hedged cross-venue crypto trading."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("version", help="print versions")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("check", help="validate a TOML config file")
    p.add_argument("config")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("run", help="run the engine (default: embedded simulated venues)")
    p.add_argument(
        "config", nargs="?", help="TOML config or run directory; omitted: embedded default scenario"
    )
    p.add_argument("--duration", type=float, default=None, help="override run.duration_s (seconds)")
    p.add_argument("--out", default=None, help="override run.out_dir")
    p.add_argument("--run-dir", default=None, help="write the run here (default: OUT_DIR/NAME-TIMESTAMP)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("bench", help="run pyperf benchmark suites and print a summary")
    p.add_argument("suites", nargs="*", default=["rings"], help="suites to run (default: rings)")
    p.add_argument("--out", default="perf/results", help="directory for pyperf JSON files")
    p.add_argument("--fast", action="store_true", help="fewer samples (quick look, noisier)")
    p.add_argument("--compare-to", default=None, help="earlier pyperf JSON to compare with")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="SCHED_FIFO for the pinned processes of the suites that have them (e2e), where permitted",
    )
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser(
        "replay", help="replay a run's journal through a fresh engine and compare its decisions"
    )
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("report", help="print a run's summary and write RUN_DIR/report.html")
    p.add_argument("run_dir", help="run directory (report.json, results.sqlite)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("host-check", help="report how well this host is tuned for basis")
    p.add_argument("config", nargs="?", help="config whose [cpu] layout to check (default: engine=1, io=0)")
    p.set_defaults(func=_cmd_host_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BasisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
