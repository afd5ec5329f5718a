"""Replay a run's journal through a fresh engine and compare its decisions.

Prints the records and batches replayed and the decision digest, and whether it equals the
digest the run logged in report.json. Exits 1 if any batch was decided differently or the
digest differs from the run's, 0 otherwise. With --from-checkpoint it starts, as a restarted
engine does, from the run's newest usable checkpoint and re-decides only the journal after it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "replay"
HELP = "replay a run's journal through a fresh engine and compare its decisions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory (journal/, scenario.json, registry.json)")
    parser.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="start from the newest usable checkpoint (checkpoints/) and replay only the journal after it",
    )


def main(args: argparse.Namespace) -> int:
    import orjson

    from ..engine.replay import replay

    res = replay(args.run_dir, from_checkpoint=args.from_checkpoint)
    report = Path(args.run_dir) / "report.json"
    logged = orjson.loads(report.read_bytes()).get("decision_digest", "") if report.exists() else ""
    same = res.identical and (not logged or logged == res.digest)
    print(
        (f"from the checkpoint at journal position {res.start:,}: " if res.start else "")
        + f"replayed {res.records:,} records in {res.batches:,} batches: {res.commands:,} commands, "
        f"{res.mismatched_batches} batch(es) decided differently; digest {res.digest}"
        + (f" ({'equal to' if logged == res.digest else 'DIFFERENT from'} the run's)" if logged else "")
    )
    return 0 if same else 1
