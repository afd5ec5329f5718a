"""The one `basis` command: one module per subcommand, all of the same shape.

A command module holds NAME (the subcommand), HELP (its line in `basis --help`), a docstring
(its `basis NAME --help` description), add_arguments(parser) and main(args) -> int (the exit
status). The work itself lives in the engine, results and host modules; a command module
parses, calls and prints. Adding a command is one module and one line in COMMANDS.

A BasisError raised by a command is printed as `error: ...` and exits with its status in
EXIT_STATUS (1; 3 for a run that ended outside policy; 130 for one stopped at once by a second
signal); a bad argument is argparse's `basis NAME: error: argument ...` and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from ..errors import BasisError, EndedOutsidePolicy, Interrupted
from . import bench, check, cluster, ctl, devchain, emulator, hostcheck, replay, report, run, styles, version

#: the subcommands, in the order `basis --help` lists them
COMMANDS: tuple[ModuleType, ...] = (
    version,
    check,
    run,
    ctl,
    cluster,
    replay,
    report,
    styles,
    bench,
    hostcheck,
    emulator,
    devchain,
)


#: exit statuses, the same for every command (README.md lists them under `basis run`)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_OUTSIDE_POLICY = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a job its Ctrl-C ended
#: the exit status of an error a command raises, by its type (the nearest along its MRO)
EXIT_STATUS: dict[type[BasisError], int] = {
    EndedOutsidePolicy: EXIT_OUTSIDE_POLICY,
    Interrupted: EXIT_INTERRUPTED,
    BasisError: EXIT_ERROR,
}


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
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except BasisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return next(EXIT_STATUS[t] for t in type(exc).__mro__ if t in EXIT_STATUS)
