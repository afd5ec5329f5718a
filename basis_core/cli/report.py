"""Print a run's summary and (re)write RUN_DIR/report.html.

Reads RUN_DIR/report.json (required) and RUN_DIR/results.sqlite (optional); the summary goes
to stdout, the path of the HTML file written to stderr. A missing or invalid report.json is
an error (exit 1).
"""

from __future__ import annotations

import argparse
import sys

NAME = "report"
HELP = "print a run's summary and write RUN_DIR/report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory (report.json, results.sqlite)")


def main(args: argparse.Namespace) -> int:
    from ..results.report import RunData, summary, write_html

    data = RunData(args.run_dir)
    print(summary(data))
    print(f"wrote {write_html(data)}", file=sys.stderr)
    return 0
