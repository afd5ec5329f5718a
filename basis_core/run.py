"""`basis run`: today it loads and validates the scenario and prints the layout it would run.

The engine loop (rings, kernels, orchestrator over the simulated venues) is wired in by the
orchestrator; until then this command says so and exits non-zero, rather than pretending.
"""
from __future__ import annotations

import sys

from .config import load
from .scenarios import DEFAULT


def main(args) -> int:
    path = args.config or DEFAULT
    cfg = load(path)
    reg = cfg.registry()
    print(f"scenario {cfg.run.name!r} from {path}")
    for vid, name in enumerate(reg.venues.by_id[1:], start=1):
        print(f"  venue {vid}: {name} ({cfg.venues[name].kind})")
    for iid, name in enumerate(reg.instruments.by_id[1:], start=1):
        inst = cfg.instruments[name]
        print(f"  instrument {iid}: {name} {inst.symbol} on {inst.venue} ({inst.kind})")
    print("not yet: the orchestrator is not wired in; nothing was traded", file=sys.stderr)
    return 3
