"""An operator's calls on a cluster of engines sharing limits through NATS JetStream.

CONFIG's [cluster] table names the servers, the bucket and the credentials' variables.

  show                        every shared limit: its value, what each engine holds (silent ones
                              marked), what is free; the cluster-wide halt in force
  set-limit KEY VALUE         set a shared limit (capital.VENUE.ASSET, position.INSTRUMENT,
                              residual); lowering it below what engines hold is refused
  release KEY ENGINE [force]  free what a silent ENGINE holds of KEY (its positions are known
                              flat or hedged); refused while its lease is live unless force
  halt [REASON]               halt every engine of the cluster
  lift-halt                   lift the cluster-wide halt (each engine resumes by `basis ctl`)

Exits 1 with the reason when the server does not answer or the call is refused.
"""

from __future__ import annotations

import argparse

NAME = "cluster"
HELP = "shared limits of a cluster of engines: show, set-limit, release, halt, lift-halt"
ACTIONS = {"show": (0, 0), "set-limit": (2, 2), "release": (2, 3), "halt": (0, 20), "lift-halt": (0, 0)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a TOML config with a [cluster] table")
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("args", nargs="*")


def main(args: argparse.Namespace) -> int:
    from ..config import load
    from ..engine.clustered import operate
    from ..errors import ConfigError

    low, high = ACTIONS[args.action]
    if not low <= len(args.args) <= high:
        raise ConfigError(args.action, f"takes {low} to {high} arguments, got {len(args.args)}")
    for line in operate(load(args.config), args.action, list(args.args)):
        print(line)
    return 0
