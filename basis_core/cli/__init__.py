"""The one `basis` command: one module per subcommand, all of the same shape.

A command module holds NAME (the subcommand), HELP (its line in `basis --help`), a docstring
(its `basis NAME --help` description), add_arguments(parser) and main(args) -> int (the exit
status). The work itself lives in the engine, results and host modules; a command module
parses, calls and prints. Adding a command is one module and one line in COMMANDS.

A BasisError raised by a command is printed as `error: ...` and exits 1; a bad argument is
argparse's `basis NAME: error: argument ...` and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from ..errors import BasisError
from . import bench, check, hostcheck, replay, report, run, version

#: the subcommands, in the order `basis --help` lists them
COMMANDS: tuple[ModuleType, ...] = (version, check, run, replay, report, bench, hostcheck)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basis", description="Execution orchestration for hedged cross-venue crypto trading."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
        p.set_defaults(func=command.main)
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
