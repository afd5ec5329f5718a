"""The end of a run: report.json, results.sqlite and report.html in the run directory.

The streams a run only appends to (state transitions, residual exposure, anomalies) are not
held whole in memory: the core keeps the newest of each (core.py TRANSITIONS_KEPT ...) and
`StreamFiles`, attached by the runner to the core whose results it writes, appends every item
to RUN_DIR/streams/NAME.jsonl as it comes. results.sqlite gets every one of them from there;
report.json lists the newest (`state_transitions`, `anomalies`) beside the run's totals
(`state_transitions_total`, `anomalies_total`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from basis_core.venue import OrderStatus

from ..errors import ResultsError
from ..results.db import ResultsDB
from ..results.record import (
    SERIES_RESIDUAL,
    accounting_figures,
    record_exceptions,
    record_latency,
    record_ledger,
)
from ..results.report import write_html
from ..results.reportjson import write_report
from ..results.shortfall import Fill, Plan, Shortfall, shortfall, totals
from ..results.stats import Spool
from ..state.fsm import Change
from ..state.tables import OrderState, VenueState
from .core import merged_changes, transition_dict

STREAMS_DIR = "streams"

_STATUS = {
    OrderState.FILLED: OrderStatus.FILLED,
    OrderState.CANCELED: OrderStatus.CANCELED,
    OrderState.EXPIRED: OrderStatus.EXPIRED,
    OrderState.REJECTED: OrderStatus.REJECTED,
    OrderState.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
}


class _OrderRow:
    """An engine order in the shape ResultsDB.record_order reads."""

    def __init__(self, o):
        self.coid, self.instrument, self.side, self.type = o.wire, o.instrument, o.side, o.otype
        self.qty, self.price = o.qty, o.price
        self.status = _STATUS.get(o.state, OrderStatus.OPEN)
        self.filled_qty, self.avg_price = o.filled, o.avg_price
        self.created_ns, self.updated_ns = o.created_ns, o.machine.since_ns


def open_positions(core) -> list[dict]:
    """Every position the run ends with that is neither flat nor hedged within limits (its net
    above `residual_tolerance_usdt`), each with its cause: how it stands, the state of the venue
    it would be unwound on, the last refusal, orders still in doubt."""
    book = core.orders.orders
    out = []
    for pos in core.positions.values():
        net = pos.net_qty(book)
        exposure = abs(net) * core.market.mark(core.rules[pos.buy.instrument].base)
        if exposure <= core.policy.residual_tolerance_usdt:
            continue
        leg = pos.buy if net > 0 else pos.sell
        history = pos.machine.history
        causes = [f"{pos.state.name} ({history[-1].cause})" if history else pos.state.name]
        venue = core.board[leg.venue]
        if venue.state != VenueState.UP:
            causes.append(f"{leg.venue} {venue.state.name}")
        if pos.unwind_failed:
            causes.append(f"unwind failed after {pos.unwind_attempts} attempts")
        refused = [book[c].reject_reason for c in pos.unwind_coids if c in book and book[c].reject_reason]
        if refused:
            causes.append(f"last refusal: {refused[-1]}")
        causes += [f"order {o.coid} on {o.venue} {o.state.name}" for o in pos.orders(book) if not o.terminal]
        out.append(
            {
                "opportunity": pos.opp_id,
                "venue": leg.venue,
                "instrument": leg.instrument,
                "net_qty": float(net),
                "exposure_usdt": float(exposure),
                "state": pos.state.name,
                "cause": "; ".join(causes),
            }
        )
    return out


def shortfall_rows(core, ledger) -> list[Shortfall]:
    """Implementation shortfall (results/shortfall.py) of every opportunity the engine decided,
    from its positions (planned qty, mids at decision and at the end) and the ledger's fills. The
    slices of a `sliced` opportunity count as one, under the parent's id, against the parent's
    mids and planned quantity."""
    groups: dict[int, list] = {}
    for pos in core.positions.values():
        groups.setdefault(pos.parent or pos.opp_id, []).append(pos)
    owner = {pos.opp_id: key for key, members in groups.items() for pos in members}
    fills: dict[int, list[Fill]] = {}
    for f, fee_usdt in ledger.fills:
        key = owner.get(f.opportunity_id)
        if key is not None:
            fills.setdefault(key, []).append(Fill(f.instrument, f.side, f.qty, f.price, fee_usdt))
    rows = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda p: p.opp_id)
        first, last = core.positions.get(key, members[0]), members[-1]
        if first.mid_buy <= 0 or first.mid_sell <= 0:
            continue  # decided before mids were kept (an older checkpoint): nothing to measure against
        plan = Plan(
            key,
            first.strategy,
            first.planned_qty or first.qty,
            first.buy.instrument,
            first.sell.instrument,
            first.mid_buy,
            first.mid_sell,
            last.end_mid_buy or first.mid_buy,
            last.end_mid_sell or first.mid_sell,
            slices=len(members),
        )
        rows.append(shortfall(plan, fills.get(key, ())))
    return rows


def execution_summary(core) -> dict:
    """The run's execution style and, for `sliced`, its parents, their slices and why they
    ended; for `maker_taker`, its opportunities, their quotes and why they ended."""
    slices = [p for p in core.positions.values() if p.parent and not p.maker]
    quotes = [p for p in core.positions.values() if p.maker]
    return {
        "style": core.policy.execution,
        "dispatch": core.policy.dispatch,
        "sliced_opportunities": len({p.parent for p in slices}),
        "slices": len(slices),
        "slicing_ended": dict(sorted(core.slice_ends.items())),
        "maker_opportunities": len({p.parent for p in quotes}),
        "quotes": len(quotes),
        "maker_ended": dict(sorted(getattr(core, "maker_ends", {}).items())),
    }


def build_report(runner, wall_s: float, world_digest: str = "") -> dict:
    core = runner.core
    c = core.counters
    acct = accounting_figures(runner.ledger, runner.reconciler.log)
    recon = dict(acct.get("reconciliation", {}))
    for layer, n in runner.stats.reconcile_mismatches.items():
        recon[layer] = max(recon.get(layer, 0), n)
    for layer in ("order", "position", "balance", "reporting"):
        recon.setdefault(layer, 0)
    return {
        "events_processed": int(c.events),
        "events_per_s": float(c.events / wall_s) if wall_s > 0 else 0.0,
        "decision_latency_ns": c.decision_ns.percentiles(),  # within stats.RESOLUTION of exact
        "signals_seen": int(c.signals_seen),
        "signals_rejected": dict(sorted(c.rejected.items())),
        "orders_submitted": int(c.orders_submitted),
        "orders_filled": int(c.orders_filled),
        "hedges_completed": int(c.hedges_completed),
        "asymmetric_episodes": int(c.asymmetric_episodes),
        "unwinds": int(c.unwinds),
        "max_residual_exposure_usdt": float(c.max_residual_usdt),
        # the newest the core holds (and every position's); all of them in results.sqlite
        "state_transitions": core.transitions_as_dicts(),
        "state_transitions_total": core.transitions_total,
        "reconciliation": recon,
        "realized_pnl_usdt": acct["realized_pnl_usdt"],
        "fees_usdt": acct["fees_usdt"],
        "slippage_usdt": acct["slippage_usdt"],
        # per opportunity against the mids at decision (results/shortfall.py); rows in results.sqlite
        "implementation_shortfall": totals(shortfall_rows(core, runner.ledger)),
        "execution": execution_summary(core),
        "decision_digest": core.digest,
        "venue_digest": world_digest,
        "wall_s": wall_s,
        "final_engine_state": core.engine.state.name,
        "venue_states": {n: v.state.name for n, v in core.board.venues.items()},
        "order_states": _count(o.state.name for o in core.orders.orders.values()),
        "position_states": _count(p.state.name for p in core.positions.values()),
        # positions neither flat nor hedged within limits once the run settled: none, or the run
        # ended outside policy (`basis run` exits 3)
        "open_positions": open_positions(core),
        # perp positions the venues held when the run began, taken over as its opening positions
        # (never traded by the run): what each was and what the venue's position is at the end
        "adopted_positions": adopted_positions(runner),
        "late_fills": core.orders.late_fills,
        # reorgs that replaced a block holding one of a chain venue's swaps before its fill was
        # final, per venue (adapters/web3/venue.py: the swap followed to the block that stays)
        "chain_reorgs": {
            n: int(v.reorgs_total) for n, v in runner.venues.items() if hasattr(v, "reorgs_total")
        },
        "anomalies": list(core.counters.anomalies),  # the newest ANOMALIES_KEPT
        "anomalies_total": core.counters.anomalies.count,
        # items a restart could not write to RUN_DIR/streams (StreamFiles.lost), by stream: none
        "streams_incomplete": dict(runner.streams.lost) if getattr(runner, "streams", None) else {},
        # fills charged in another asset after a venue's fee asset ran out, per venue
        "fee_asset_fallbacks": dict(core.counters.fee_asset_fallbacks),
        # base a venue kept as fees, bought back by policy (engine/fees.py): per base asset the
        # drift still owed and what restores brought; the newest restore orders with their reason
        "fee_restores": fee_restores(core),
        "fills_booked_late": len(runner.unbooked_fills),
        "engine_restarts": getattr(runner, "restarts", 0),
        "inventory_booked": runner.deposited,
        "io_calls": dict(runner.io.calls),
    }


def fee_restores(core) -> dict:
    restores = getattr(core, "fee_restores", None)
    if restores is None:
        return {}
    book = core.orders.orders
    return {
        "policy": core.policy.on_fee_asset_exhausted,
        "drift_owed": {a: round(d, 12) for a, d in sorted(core.fee_drift.items())},
        "restored": {a: round(q, 12) for a, q in sorted(core.fee_restored.items())},
        "orders_total": restores.count,
        "orders": [
            {
                "coid": r.coid,
                "venue": r.venue,
                "instrument": r.instrument,
                "qty": r.qty,
                "filled": book[r.coid].filled if r.coid in book else 0.0,
                "state": book[r.coid].state.name if r.coid in book else "",
                "t": r.decided_ns,
                "reason": r.reason,
            }
            for r in restores
        ],
    }


def adopted_positions(runner) -> list[dict]:
    """The perp positions the run took over at its start (`Runner._initial_positions`), each
    with the ledger's position on that instrument at the end (the opening one plus the run's
    own fills there)."""
    ledger = getattr(runner, "ledger", None)
    if ledger is None:
        return []
    now = ledger.perp_positions()
    return [
        {
            "venue": venue,
            "instrument": instrument,
            "qty_at_start": qty,
            "entry_price": entry,
            "qty_at_end": float(now.get((venue, instrument), 0.0)),
        }
        for (venue, instrument), (qty, entry) in sorted(getattr(runner, "_initial_positions", {}).items())
    ]


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def outcome_of(pos, book) -> str:
    """How an opportunity ended: its HEDGE state, and for one whose legs never filled, why (how
    each of its orders ended, with the venue's reason for a reject)."""
    orders = pos.orders(book)
    if any(o.filled > 0 for o in orders):
        return pos.state.name
    legs = ", ".join(
        f"{o.side.name.lower()} on {o.venue} {o.state.name.lower()}"
        + (f" ({o.reject_reason})" if o.reject_reason else "")
        for o in orders
    )
    return f"{pos.state.name}: no fill ({legs or 'no order sent'})"


def write_run(runner, cfg, run_dir: Path, wall_s: float, world_digest: str = "") -> dict:
    """Write report.json, results.sqlite and report.html. Each is written even when another
    fails; a failure is raised (ResultsError, naming every file that failed) after all three
    were tried."""
    report = build_report(runner, wall_s, world_digest)
    run_dir = Path(run_dir)
    steps = (
        ("report.json", lambda: write_report(run_dir / "report.json", report)),
        ("results.sqlite", lambda: _write_results(runner, cfg, run_dir)),
        ("report.html", lambda: write_html(run_dir)),
    )
    failed: list[tuple[str, Exception]] = []
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # every output is attempted; the failures are raised below
            failed.append((name, exc))
    if getattr(runner, "streams", None) is not None:
        runner.streams.flush()
    if failed:
        raise ResultsError(
            f"{run_dir}: " + "; ".join(f"{name} not written: {exc}" for name, exc in failed)
        ) from failed[0][1]
    return report


def all_transitions(runner) -> Iterator[dict]:
    """Every state change of the run, by time, as report.json lists them: the engine's and
    venues' from the run's stream file (the core's window when it has none), merged with
    every position's."""
    core, streams = runner.core, getattr(runner, "streams", None)
    if streams is None:
        yield from core.transitions_as_dicts()
        return
    positions = merged_changes((), core.positions.values())
    for c in heapq.merge(streams.read("transitions"), positions, key=lambda c: c.t_ns):
        yield transition_dict(c)


def _write_results(runner, cfg, run_dir: Path) -> None:
    core = runner.core
    streams = getattr(runner, "streams", None)
    run_id = run_dir.name
    runner.book_opportunities()
    with ResultsDB(run_dir / "results.sqlite") as db:
        db.start_run(run_id, cfg.run.name, cfg.run.seed, core.market.start_ns)
        for t in all_transitions(runner):
            machine, _, key = t["machine"].partition(":")
            db.record_transition(run_id, t["t"], machine, key, t["from"], t["to"], t["cause"])
        for o in core.orders.orders.values():
            db.record_order(
                run_id, o.venue, _OrderRow(o), opportunity_id=o.opportunity, submitted_ns=o.created_ns
            )
        outcomes = {p.opp_id: outcome_of(p, core.orders.orders) for p in core.positions.values()}
        record_ledger(db, run_id, runner.ledger, outcomes)
        residuals = streams.read("residual") if streams is not None else core.residual_history
        db.replace_series(run_id, SERIES_RESIDUAL, residuals)
        record_exceptions(db, run_id, runner.reconciler.log.entries)
        record_latency(db, run_id, core.counters.decision_ns or [0])
        for row in shortfall_rows(core, runner.ledger):
            db.record_shortfall(run_id, row.as_row())
        db.end_run(run_id, core.now)
        db.commit()
        db.seal()


# -- the run's append-only streams on disk --------------------------------------------------------


def _streams_of(core) -> dict[str, tuple[Spool, Callable[[Any], Any], Callable[[Any], Any]]]:
    """name -> (the core's spool, item -> JSON value, JSON value -> item)."""
    return {
        "transitions": (
            core.transitions,
            lambda c: [c.t_ns, c.machine, c.key, c.src, c.dst, c.event, c.cause],
            lambda v: Change(*v),
        ),
        "residual": (core.residual_history, list, tuple),
        "anomalies": (core.counters.anomalies, str, str),
    }


class StreamFiles:
    """Every item of the core's spools, one JSON line each, in RUN_DIR/streams/NAME.jsonl.

    Attaching keeps the file's first `spool.count` complete lines (a core restored from a
    checkpoint and the journal after it has made exactly those; what a first life wrote past
    them is made again) and adds the ones the file lacks from the window (a process that died
    before writing its buffer). Items neither in the file nor in the window any more are
    counted in `lost` (a restart that replayed more than a window since its last write)."""

    def __init__(self, run_dir: Path, core):
        self.dir = Path(run_dir) / STREAMS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lost: dict[str, int] = {}
        self._files: dict[str, BinaryIO] = {}
        self._decode: dict[str, Callable[[Any], Any]] = {}
        self._spools: list[Spool] = []
        for name, (spool, encode, decode) in _streams_of(core).items():
            self._attach(name, spool, encode)
            self._decode[name] = decode

    def _attach(self, name: str, spool: Spool, encode: Callable[[Any], Any]) -> None:
        path = self.dir / f"{name}.jsonl"
        kept = end = 0
        if path.exists():
            with path.open("rb") as old:
                for line in old:
                    if kept == spool.count or not line.endswith(b"\n"):
                        break
                    kept += 1
                    end += len(line)
        f: BinaryIO = path.open("r+b" if path.exists() else "wb")
        f.truncate(end)
        f.seek(end)
        items, lost, _ = spool.since(kept)
        if lost:
            self.lost[name] = lost

        def write(item: Any) -> None:
            f.write(orjson.dumps(encode(item)) + b"\n")

        for item in items:
            write(item)
        self._files[name] = f
        spool.sink = write
        self._spools.append(spool)

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def read(self, name: str) -> Iterator[Any]:
        """Every item of stream `name` so far, oldest first (read from its file)."""
        f = self._files.get(name)
        if f is not None:
            f.flush()
        decode = self._decode[name]
        with (self.dir / f"{name}.jsonl").open("rb") as f:
            for line in f:
                yield decode(orjson.loads(line))

    def close(self) -> None:
        """Write what is buffered and stop (the spools keep their windows only from here on)."""
        for spool in self._spools:
            spool.sink = None
        for f in self._files.values():
            f.close()
        self._files.clear()
