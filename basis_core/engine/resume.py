"""A warm restart of `basis run`: an unfinished run directory taken up again after every process
of its run died (SIGKILL, power cut, a second Ctrl-C).

The rule for a run directory (`state_of`): no journal records is a *new* one (the run starts
there); a journal and a report.json is a *finished* run; a journal without report.json is an
*unfinished* run. `basis run --run-dir D` refuses an unfinished D unless given `--resume` (it
would append a second run to the journal), and `--resume` refuses a D that is new or finished;
a finished D is replaced by the new run (`clear_finished`: its journal, checkpoints and results
are removed first, as a second run into one directory could never be replayed).

Resuming needs venues that outlived the run: live exchanges (kind "ccxt") and chains (kind
"web3"). A simulated venue's orders and balances died with the process, so a run with one is
refused (`check_resumable`).

What a resumed run does, on the io side (`Resumed`, made by `prepare`), before anything new is
sent:

* the engine state is rebuilt exactly as a standby engine rebuilds it (`replay` from the newest
  usable checkpoint, the journal after it): the io process's shadow from it, the engine process
  by `procs.resume` on the same files, which closes a half-written batch and journals a
  RECOVERED control (every order in flight verified by client order id, no new exposure until
  a clean reconciliation pass). Client order ids continue from the rebuilt engine; an order
  journaled as sent is never sent again (the engine journals a command before the io side can
  send it, and a command decided but not journaled was never sent);
* the ring sequences continue after the last journaled ones (the new engine drops what its
  journal holds by sequence number);
* the ledger is rebuilt (`catch_up`): the starting balances from the journal's first batch, the
  opportunities from the rebuilt engine, and every fill from the venues' own fill history (by
  trade id, as the user stream books them: results.sqlite is written at the end of a run only,
  so a killed run has none to restore from). A venue fill the journal already holds (the first
  n fills of an order whose engine state has n) is booked in the ledger only; a later one (it
  happened while nothing was running) also goes to the engine as a fill, numbered after the
  journaled ones;
* every order of the rebuilt book is known to reconciliation, whose first pass (asked for by
  RECOVERED) adopts what the venues hold open under our ids, resolves an order the journal holds
  working as the venue reports it (filled, cancelled) and finds nothing to flatten: the
  positions are the journal's, a hedged one stays hedged.

The run then goes on for what is left of its duration (`remaining_s`; `--duration S` gives S
more seconds) and writes the report of the whole run.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from basis_core.venue import Fill, coid_from_wire

from .. import schema as S
from ..errors import BasisError, ConfigError, JournalError, VenueError
from ..journal import JournalReader
from ..state.tables import OrderState
from ..units import MS
from .core import INITIAL_BALANCE, INITIAL_POSITION, EngineCore
from .procs import _journaled_seqs, _unfinished_batch
from .replay import load_run_meta, replay

if TYPE_CHECKING:
    from ..config import Config
    from ..registry import Registry
    from .runner import Runner

NEW, FINISHED, UNFINISHED = "new", "finished", "unfinished"
#: what a finished run leaves in its directory (removed before a new run takes the directory)
RUN_FILES = (
    "journal",
    "checkpoints",
    "streams",
    "scenario.json",
    "registry.json",
    "report.json",
    "report.html",
    "results.sqlite",
    "log.jsonl",
    "engine-latency.npy",
    "coid_prefix",
)
#: venue kinds whose orders and balances outlive the run's processes
PERSISTENT_KINDS = ("ccxt", "web3")
FILLS_PAGE = 1000
#: order states whose request may or may not have reached the venue before the run died
_IN_DOUBT = (OrderState.NEW, OrderState.SUBMITTED, OrderState.UNKNOWN)


def state_of(run_dir: Path) -> str:
    """NEW (no journal record), FINISHED (a journal and report.json) or UNFINISHED."""
    run_dir = Path(run_dir)
    jdir = run_dir / "journal"
    if not jdir.is_dir() or not any(jdir.glob("*.journal")):
        return NEW
    try:
        if JournalReader(jdir).end() == 0:
            return NEW
    except JournalError:
        pass  # damaged: not new; resuming reports the damage
    return FINISHED if (run_dir / "report.json").exists() else UNFINISHED


def check_run_dir(run_dir: Path, resume: bool) -> str:
    """The run directory's state, refusing what `basis run` must not do there: start a run in an
    unfinished one without `resume` (ConfigError naming --run-dir), resume a new or finished one
    (naming --resume)."""
    state = state_of(run_dir)
    if state == UNFINISHED and not resume:
        raise ConfigError(
            "--run-dir",
            f"{run_dir} holds an unfinished run (a journal and no report.json): add --resume to "
            f"take it up again (`basis replay {run_dir}` checks it), or name another directory",
        )
    if resume and state != UNFINISHED:
        why = "holds no journal" if state == NEW else "holds a finished run (report.json)"
        raise ConfigError("--resume", f"{run_dir} {why}: there is nothing to resume")
    return state


def clear_finished(run_dir: Path) -> list[str]:
    """Remove a finished run's files from `run_dir` (RUN_FILES only); returns what was removed."""
    gone = []
    for name in RUN_FILES:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        gone.append(name)
    return gone


def check_resumable(cfg: Config, run_dir: Path) -> None:
    """Refuse to resume a run whose venues died with it, or with a config other than its own."""
    for name, venue in cfg.venues.items():
        if venue.kind not in PERSISTENT_KINDS:
            raise ConfigError(
                f"venues.{name}.kind",
                f"a '{venue.kind}' venue's orders and balances died with the run: only runs on "
                f"{' and '.join(PERSISTENT_KINDS)} venues can be resumed",
            )
    from ..configio import to_plain

    try:
        saved = orjson.loads((Path(run_dir) / "scenario.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise JournalError(
            f"{run_dir} is not a run directory: its scenario.json is unreadable ({exc})"
        ) from None
    ours = orjson.loads(orjson.dumps(to_plain(cfg)))
    for d in (saved, ours):  # how long it runs and where new runs go may change
        d.get("run", {}).pop("duration_s", None)
        d.get("run", {}).pop("out_dir", None)
    key = _first_difference(saved, ours, "")
    if key is not None:
        raise ConfigError(
            key or "config",
            f"differs from the config the run in {run_dir} started with (scenario.json): "
            "resume it with the same config",
        )


def _first_difference(a, b, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                return sub
            found = _first_difference(a[k], b[k], sub)
            if found is not None:
                return found
        return None
    return None if a == b else path


@dataclass
class Resumed:
    """The io side's start of a resumed run (module docstring)."""

    run_dir: Path
    registry: Registry
    #: the shadow engine core: stepped over the journal up to `position`
    core: EngineCore
    position: int
    #: input records of a half-written last batch (the new engine closes it)
    pending: np.ndarray
    #: the last md / exec ring sequences the journal holds
    seen: tuple[int, int]
    #: the starting balances the run began with (its journal's INITIAL_BALANCE records)
    initial_balances: dict[tuple[str, str], float]
    #: run time the journal covers, in seconds (the engine's now less its start)
    elapsed_s: float
    #: the perp positions the run took over at its start (its journal's INITIAL_POSITION records)
    initial_positions: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    #: what the catch-up found: fills already journaled, fills new to the engine
    fills_known: int = 0
    fills_new: int = 0
    notes: list[str] = field(default_factory=list)
    #: our orders (wire ids) whose request may or may not have left before the run died
    in_doubt: list[str] = field(default_factory=list)
    ready_seen: bool = False

    def remaining_s(self, duration_s: float) -> float:
        return max(0.0, duration_s - self.elapsed_s)

    def engine_ready(self, runner: Runner) -> None:
        """The engine is up (called at the catch-up and again at the engine process's first
        READY): an order in doubt gets reconciliation's grace window only after the engine's own
        verification had its time (`lost_after_ms`), and a hedge left one-legged by the crash its
        window from now: the time nothing ran does not count against them."""
        if self.ready_seen:
            return
        self.ready_seen = True
        now = runner.now_ns()
        start = now + int(runner.policy.lost_after_ms * MS)
        for wire in self.in_doubt:
            known = runner.known.get(wire)
            if known is not None:
                known.submitted_ns = max(known.submitted_ns, start)
        runner.reconciler.positions.window_from_ns = now

    async def catch_up(self, runner: Runner) -> None:
        """Rebuild the ledger and the io side's view of our orders and fills (module
        docstring); called by `Runner.start` before the venues' streams start."""
        core = runner.core
        runner._initial_balances = dict(self.initial_balances)
        runner._initial_positions = dict(self.initial_positions)
        runner.book_opening_positions(runner.now_ns())
        if runner._marks_ready():
            runner.deposit_initial()
            runner.deposited = True
        runner.book_opportunities()
        # reconciliation knows every order of the book, finished ones too: a venue that shows
        # open an order we hold finished is a mismatch, not an adoption
        runner._was_working = set(core.orders.orders)
        runner._mirror_orders()
        # orders whose answer died with the run, and maybe their request: the engine verifies
        # them by client order id (RECOVERED) and declares one the venue does not know never
        # placed; reconciliation waits for that (`engine_ready`)
        self.in_doubt = [o.wire for o in core.orders.working() if o.state in _IN_DOUBT]
        self.engine_ready(runner)
        self.ready_seen = False  # (again once the engine process says READY)
        io = runner.io
        for name, venue in runner.venues.items():
            try:
                fills = await all_fills(venue)
            except VenueError as exc:
                # the reconciliation passes book them (ledger only) once the venue answers
                self.notes.append(f"{name}: fill history not read ({type(exc).__name__}: {exc})")
                continue
            count: dict[int, int] = defaultdict(int)
            for fill in fills:
                num = coid_from_wire(fill.coid)
                order = core.orders.get(num) if num is not None else None
                if num is None or order is None:
                    continue  # not ours, or an id this run never made: reconciliation says so
                count[num] += 1
                if count[num] <= len(order.trade_ids):
                    io.known_fill(fill, count[num])  # the engine has it: its ledger entry only
                    runner._on_fill(fill)
                    self.fills_known += 1
                else:
                    io.emit_fill(fill)  # new to the engine too (and booked by its hook)
                    self.fills_new += 1
        if runner.progress:
            runner.progress(
                f"resumed: {self.fills_known} venue fill(s) the journal holds booked in the ledger, "
                f"{self.fills_new} made since, sent to the engine" + "".join(f"; {n}" for n in self.notes)
            )


async def all_fills(venue) -> list[Fill]:
    """Every fill the venue reports for our account, oldest first."""
    out: list[Fill] = []
    cursor: str | None = None
    while True:
        page = await venue.fills(cursor, FILLS_PAGE)
        out.extend(page.fills)
        if not page.more or not page.fills or page.cursor in (None, cursor):
            return out
        cursor = page.cursor


def _first_batch_starts(run_dir: Path) -> np.ndarray:
    """The BALANCE_UPDATE records of the journal's first batch (the runner puts the starting
    balances and positions there, before the first step)."""
    reader = JournalReader(Path(run_dir) / "journal")
    parts = []
    for _, recs in reader.batches(0):
        recs = recs.view(S.GENERIC)
        ends = S.batch_ends(recs)
        first = recs[: ends[0] + 1] if len(ends) else recs
        parts.append(first[first["kind"] == S.Kind.BALANCE_UPDATE])
        if len(ends):
            break
    if not parts:
        return S.empty(S.Kind.BALANCE_UPDATE)[:0]
    return np.concatenate(parts).view(S.BALANCE_UPDATE)


def initial_balances(run_dir: Path, registry: Registry) -> dict[tuple[str, str], float]:
    """The starting balances of the run: the INITIAL_BALANCE records of its journal's first
    batch (they are all in it: the runner puts them there before the first step)."""
    out: dict[tuple[str, str], float] = {}
    bal = _first_batch_starts(run_dir)
    for b in bal[bal["sub"] == INITIAL_BALANCE]:
        key = (registry.venues.name(int(b["venue"])), registry.assets.name(int(b["aux"])))
        out[key] = float(b["free"]) + float(b["locked"])
    return out


def initial_positions(run_dir: Path, registry: Registry) -> dict[tuple[str, str], tuple[float, float]]:
    """The perp positions the run took over at its start: (venue, instrument) -> (qty, entry),
    from the INITIAL_POSITION records of its journal's first batch."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    bal = _first_batch_starts(run_dir)
    for b in bal[bal["sub"] == INITIAL_POSITION]:
        key = (registry.venues.name(int(b["venue"])), registry.instruments.name(int(b["aux"])))
        out[key] = (float(b["free"]), float(b["locked"]))
    return out


def prepare(run_dir: Path, log: Callable[[str], None]) -> Resumed:
    """Rebuild the io side's engine state of the unfinished run in `run_dir` (the standby's
    way: newest usable checkpoint, then the journal after it)."""
    run_dir = Path(run_dir)
    _, reg = load_run_meta(run_dir)
    try:
        res = replay(run_dir, from_checkpoint=True, log=log)
    except BasisError:
        raise
    except Exception as exc:  # an unreadable journal is the run directory's problem: name it
        raise JournalError(f"{run_dir}/journal cannot be replayed: {type(exc).__name__}: {exc}") from exc
    core = res.core
    log(
        f"state from the checkpoint at journal position {res.start:,}, then {res.records:,} records replayed"
        if res.start
        else f"state from the whole journal ({res.records:,} records replayed)"
    )
    return Resumed(
        run_dir=run_dir,
        registry=reg,
        core=core,
        position=res.start + res.records,
        pending=_unfinished_batch(res.replayed),
        seen=_journaled_seqs(res.replayed, res.extra.get("seen", (0, 0))),
        initial_balances=initial_balances(run_dir, reg),
        initial_positions=initial_positions(run_dir, reg),
        elapsed_s=max(0.0, (core.now - core.market.start_ns) / 1e9),
    )
