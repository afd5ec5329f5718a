"""Run pyperf benchmark suites from perf/ (a source checkout), write their pyperf JSON and
print a summary table per suite.

Each suite writes OUT/SUITE-<UTC time>.json (readable by `python -m pyperf show / stats /
compare_to`). A suite whose optional peer library is not installed is reported as skipped.
An unknown suite name or a missing --compare-to file exits 2 before anything runs; a suite
that fails exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "bench"
HELP = "run pyperf benchmark suites and print a summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import SUITES

    parser.add_argument(
        "suites",
        nargs="*",
        default=["rings"],
        metavar="SUITE",
        help=f"suites to run, of: {', '.join(SUITES)} (default: rings)",
    )
    parser.add_argument(
        "--out", default="perf/results", metavar="DIR", help="directory for pyperf JSON files"
    )
    parser.add_argument("--fast", action="store_true", help="fewer samples (quick look, noisier)")
    parser.add_argument(
        "--compare-to", default=None, metavar="JSON", help="earlier pyperf JSON to compare with"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="SCHED_FIFO for the pinned processes of the suites that have them (e2e), where permitted",
    )


def main(args: argparse.Namespace) -> int:
    from ..bench import SUITES, compare, load_medians, render, run_suite, summarize

    suites = list(args.suites or ["rings"])
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        print(
            f"basis bench: unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}", file=sys.stderr
        )
        return 2
    if args.compare_to and not Path(args.compare_to).is_file():
        print(f"basis bench: --compare-to {args.compare_to}: no such file", file=sys.stderr)
        return 2
    out_dir = Path(args.out).resolve()
    for suite in suites:
        path = run_suite(suite, out_dir, args.fast, getattr(args, "realtime", False))
        if path is None:
            print(f"\n{suite}: skipped\n")
            continue
        print(f"\n{suite}: pyperf JSON in {path}\n")
        print(render(summarize(load_medians(path))))
        if args.compare_to:
            print(f"\ncompare_to {args.compare_to}:")
            compare(args.compare_to, path)
    return 0
