"""Report how well this Linux host is tuned for basis: what a tuned host needs and what this
one has, one line per check (cores available, isolated cores, CPU frequency governor,
transparent huge pages, /dev/shm size, clock source, real-time throttling, whether the [cpu]
layout fits), `ok` or `warn` with the fix. Nothing on the host is changed; exits 0.
"""

from __future__ import annotations

import argparse

NAME = "host-check"
HELP = "report how well this host is tuned for basis"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", help="config whose [cpu] layout to check (default: engine=1, io=0)"
    )


def main(args: argparse.Namespace) -> int:
    from ..config import CpuConfig, load
    from ..hostcheck import checks, render

    cpu = load(args.config).cpu if args.config else CpuConfig(engine=1, io=0)
    print(render(checks(cpu)))
    return 0
