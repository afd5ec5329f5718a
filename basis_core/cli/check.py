"""Validate a TOML config file without running it.

Prints `ok: CONFIG: N venue(s), M instrument(s)` and exits 0, or prints the error naming the
offending key path and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError

NAME = "check"
HELP = "validate a TOML config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="TOML config file")


def main(args: argparse.Namespace) -> int:
    from ..config import load

    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 1
    reg = cfg.registry()
    print(f"ok: {args.config}: {len(reg.venues)} venue(s), {len(reg.instruments)} instrument(s)")
    return 0
