"""Replaying a run's journal through a fresh engine core.

A run directory holds `scenario.json` (the config it ran), `registry.json` (its venue,
instrument and asset ids) and `journal/` (every input batch, each ended by the runner's TIMER
record, followed by the commands the engine decided for it). `replay` feeds the input batches,
in the same batches, to a new EngineCore and compares what it decides with what was journaled:
the engine reads no clock and no venue, so the decisions must be identical, byte for byte.
Crash recovery starts from the same rebuilt state, replaying only the journal after the newest
usable checkpoint (checkpoint.py; `replay(..., from_checkpoint=True)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from .. import schema as S
from ..config import from_dict
from ..errors import JournalError
from ..journal import JournalReader
from ..registry import Registry
from .build import fixed_marks_of, policy_of, rules_of
from .checkpoint import load_latest
from .core import EngineCore


@dataclass
class ReplayResult:
    core: EngineCore
    batches: int
    records: int
    commands: int
    mismatched_batches: int
    digest: str
    #: commands decided for the journal's last batch that the journal does not hold: the
    #: engine died after journaling the batch and before journaling (hence sending) them
    unlogged: np.ndarray | None = None
    #: journal position the replay started at: 0, or the position of the checkpoint it loaded
    start: int = 0
    #: what that checkpoint's writer stored beside the core (checkpoint.py), {} without one
    extra: dict = field(default_factory=dict)
    #: the journal records replayed (from `start` to the end)
    replayed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=S.GENERIC))

    @property
    def identical(self) -> bool:
        return self.mismatched_batches == 0


def save_run_meta(run_dir: Path, cfg, registry: Registry) -> None:
    from ..configio import to_plain

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "scenario.json").write_bytes(orjson.dumps(to_plain(cfg), option=orjson.OPT_INDENT_2))
    (run_dir / "registry.json").write_bytes(orjson.dumps(registry.as_dict(), option=orjson.OPT_INDENT_2))


def load_run_meta(run_dir: Path):
    try:
        cfg = from_dict(orjson.loads((run_dir / "scenario.json").read_bytes()))
        reg = Registry.from_dict(orjson.loads((run_dir / "registry.json").read_bytes()))
    except FileNotFoundError as exc:
        raise JournalError(f"{run_dir} is not a run directory: {exc.filename} is missing") from None
    return cfg, reg


def replay(
    run_dir: str | Path, debug=None, from_checkpoint: bool = False, log: Callable[[str], None] = print
) -> ReplayResult:
    """Rebuild the engine from the journal; count batches whose decisions differ from the log.
    With `from_checkpoint`, start from the run's newest usable checkpoint (checkpoint.py) and
    replay only the journal after it; `log` reports each checkpoint that cannot be used."""

    run_dir = Path(run_dir)
    cfg, reg = load_run_meta(run_dir)
    reader = JournalReader(run_dir / "journal")
    restored = load_latest(run_dir, log) if from_checkpoint else None
    first = restored.position if restored is not None else 0
    records = reader.read(first).view(S.GENERIC)
    if restored is not None:
        core = restored.core
    elif len(records) == 0:
        raise JournalError(f"{run_dir}/journal is empty")
    else:
        core = EngineCore(
            reg,
            rules_of(cfg),
            policy_of(cfg),
            {},
            int(records["ts_ns"][0]),
            fixed_marks=fixed_marks_of(cfg),
            builtin_signals=cfg.signals.builtin,
        )
    ends = S.batch_ends(records)
    batches = mismatched = commands = 0
    start = 0
    unlogged = None
    for n_batch, end in enumerate(ends):
        batch = records[start : end + 1]
        inputs = batch[batch["source"] != S.Source.ENGINE]
        logged = batch[batch["source"] == S.Source.ENGINE]  # commands of the previous step
        start = end + 1
        # the commands journaled after this batch sit before the next batch's first input
        nxt = start
        while nxt < len(records) and records["source"][nxt] == S.Source.ENGINE:
            nxt += 1
        logged = records[start:nxt]
        start = nxt
        out = core.step(_aligned(inputs))
        batches += 1
        commands += len(out)
        if n_batch == len(ends) - 1 and len(out) and not len(logged) and nxt == len(records):
            unlogged = out  # a crash between the batch and its commands, not a divergence
            continue
        if len(out) != len(logged) or (len(out) and not _same(out, _aligned(logged))):
            mismatched += 1
            if debug:
                debug(batches, inputs, out, logged)
    return ReplayResult(
        core,
        batches,
        len(records),
        commands,
        mismatched,
        core.digest,
        unlogged,
        first,
        restored.extra if restored is not None else {},
        records,
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Records equal byte for byte, apart from the check word the journal fills in."""
    ra = a.view(np.uint8).reshape(-1, S.RECORD_SIZE)[:, :60]
    rb = b.view(np.uint8).reshape(-1, S.RECORD_SIZE)[:, :60]
    return bool(np.array_equal(ra, rb))


def _aligned(records: np.ndarray) -> np.ndarray:
    out = S.aligned_empty(len(records))
    out[:] = records
    return out
