"""Validate a TOML config file and every file it names, without running it.

The recorded books and trades ([market]) and the external signals ([signals] file) are opened
and checked in full, as a run checks them before it starts, and each ccxt venue's
[venues.NAME.ccxt] table is built as a run builds it (its credentials named, not read), as is
each web3 venue's [venues.NAME.web3] table (its chain_file read, the node not asked, the key
named; the route of its swaps: public mempool or bundle relay). Prints one line per data file,
ccxt and web3 venue and
`ok: CONFIG: N venue(s), M instrument(s)` and exits 0, or prints the first error (the key path,
or the file, line and column) and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import BasisError

NAME = "check"
HELP = "validate a TOML config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="TOML config file")


def main(args: argparse.Namespace) -> int:
    from ..config import load
    from ..engine.scenario import check_inputs

    try:
        cfg = load(args.config)
        for line in check_inputs(cfg):
            print(f"  {line}")
    except BasisError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 1
    reg = cfg.registry()
    print(f"ok: {args.config}: {len(reg.venues)} venue(s), {len(reg.instruments)} instrument(s)")
    return 0
