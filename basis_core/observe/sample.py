"""One look at a running engine: what the metrics and the status page show, as plain data.

`Sampler.sample()` reads what the run already keeps (the core's counters and state machines,
its order book and positions, the ledger's PnL and fees, the reconciliation counts, the rings'
cursors in the two-process layout) and returns a JSON-able dict. It is called from the run's
loop on an interval (`[observe] sample_ms` of the run's clock), never per record: the engine
publishes counters, the io side reads them. In the two-process layout the core read here is
the io process's shadow of the engine (the engine a few milliseconds late), and the latency
histogram is the shadow's step time; the engine process's own latencies are in report.json.

The sampler also writes the changes it finds since its last look to the run's log: each
engine, venue and position state transition, and each rejection count that grew.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..results.stats import BUCKETS_PER_OCTAVE
from ..runlog import NULL_LOG, RunLog

#: the latency histogram's upper bounds in ns, one per octave (the run's LatencyHistogram keeps
#: 16 buckets per octave, so each bound is one of its bucket edges: the counts are exact)
LATENCY_BOUNDS_NS = tuple(2**k for k in range(8, 27))
RECENT = 30  # transitions, rejections, working orders, positions shown on the page
LAYERS = ("order", "position", "balance", "reporting")


def _latency(hist) -> tuple[list[int], int, float]:
    """(cumulative count at each LATENCY_BOUNDS_NS bound, count, sum in ns) of the run's
    LatencyHistogram (the sum taken at each bucket's middle)."""
    counts = list(getattr(hist, "counts", ()))
    if not counts:
        return [0] * len(LATENCY_BOUNDS_NS), 0, 0.0
    per_octave = BUCKETS_PER_OCTAVE
    cum, out, k = 0, [], 0
    for bound in LATENCY_BOUNDS_NS:
        last = int(math.log2(bound)) * per_octave  # bucket k holds [2**((k-1)/B), 2**(k/B))
        while k <= last and k < len(counts):
            cum += counts[k]
            k += 1
        out.append(cum)
    total = sum(counts)
    s = sum(c * (0.0 if i == 0 else 2 ** ((i - 0.5) / per_octave)) for i, c in enumerate(counts) if c)
    return out, total, s


class Sampler:
    """Reads a running `Runner` (or ProcessRunner) into snapshots; see module docstring."""

    def __init__(self, runner, log: RunLog = NULL_LOG):
        self.runner = runner
        self.log = log
        self._transitions = 0  # engine and venue changes already logged
        self._position_changes: dict[int, int] = {}
        self._rejected: dict[str, int] = {}
        self.recent_transitions: list[dict[str, Any]] = []
        self.recent_rejections: list[dict[str, Any]] = []
        self.samples = 0

    def _changes(self, core, now_ns: int) -> None:
        # a cursor into the run's changes: right after the core dropped old ones from its window
        new, _, self._transitions = core.transitions.since(self._transitions)
        # only the open positions are kept: one entry per position ever opened would grow all run
        seen, self._position_changes = self._position_changes, {}
        for pos in core.open_positions.values():
            hist = pos.machine.history
            new.extend(hist[seen.get(pos.opp_id, 0) :])
            self._position_changes[pos.opp_id] = len(hist)
        for c in sorted(new, key=lambda c: c.t_ns):
            machine = c.machine if not c.key or c.machine == "engine" else f"{c.machine}:{c.key}"
            row = {"t_ns": c.t_ns, "machine": machine, "from": c.src, "to": c.dst, "cause": c.cause}
            self.recent_transitions.append(row)
            self.log.event("engine", "transition", **row)
        for reason, n in core.counters.rejected.items():
            grew = n - self._rejected.get(reason, 0)
            if grew > 0:
                row = {"t_ns": now_ns, "reason": reason, "count": grew}
                self.recent_rejections.append(row)
                self.log.event("engine", "rejected", **row)
                self._rejected[reason] = n
        del self.recent_transitions[:-RECENT]
        del self.recent_rejections[:-RECENT]

    def sample(self) -> dict[str, Any]:
        r = self.runner
        core = r.core
        now_ns = r.now_ns()
        self._changes(core, now_ns)
        c = core.counters
        buckets, count, total_ns = _latency(c.decision_ns)
        # counts the order book and the core keep as states change: no scan of every order
        # and position of the run on each sample
        orders: dict[str, dict[str, int]] = {}
        for (venue, state), n in sorted(core.orders.counts.items()):
            orders.setdefault(venue, {})[state.lower()] = n
        positions = dict(sorted(core.position_counts.items()))
        recon = {layer: 0 for layer in LAYERS}
        log_counts = r.reconciler.log.counts() if hasattr(r, "reconciler") else {}
        for layer in set(recon) | set(log_counts) | set(r.stats.reconcile_mismatches):
            recon[layer] = max(log_counts.get(layer, 0), r.stats.reconcile_mismatches.get(layer, 0))
        ledger = getattr(r, "ledger", None)
        residual = core.residual_history[-1][1] if core.residual_history else 0.0
        self.samples += 1
        return {
            "t_ns": now_ns,
            "t_s": (now_ns - core.market.start_ns) / 1e9,
            "wall_ns": time.time_ns(),
            "engine": {"state": core.engine.state.name, "halted_reason": core.halted_reason},
            "venues": {n: v.state.name for n, v in core.board.venues.items()},
            "counters": {
                "events": int(c.events),
                "decisions": int(count),
                "batches": int(r.stats.batches),
                "signals_seen": int(c.signals_seen),
                "orders_submitted": int(c.orders_submitted),
                "orders_filled": int(c.orders_filled),
                "hedges_completed": int(c.hedges_completed),
                "asymmetric_episodes": int(c.asymmetric_episodes),
                "unwinds": int(c.unwinds),
                "reconcile_passes": int(r.stats.reconcile_passes),
            },
            "rejected": dict(sorted(c.rejected.items())),
            "latency": {
                "bounds_ns": list(LATENCY_BOUNDS_NS),
                "cumulative": buckets,
                "count": count,
                "sum_ns": total_ns,
            },
            "orders": orders,
            "positions": positions,
            "residual_usdt": float(residual),
            "max_residual_usdt": float(c.max_residual_usdt),
            "realized_pnl_usdt": float(ledger.realized_pnl_usdt) if ledger is not None else 0.0,
            "fees_usdt": float(ledger.fees_usdt) if ledger is not None else 0.0,
            "reconciliation": recon,
            "rings": _ring_fill(r),
            "lag_s": max(0.0, (now_ns - core.now) / 1e9),
            "working": [
                {
                    "coid": o.wire,
                    "venue": o.venue,
                    "instrument": o.instrument,
                    "side": o.side.name,
                    "qty": o.qty,
                    "price": o.price,
                    "filled": o.filled,
                    "state": o.state.name,
                    "purpose": o.purpose,
                }
                for o in core.orders.working()[:RECENT]
            ],
            "open_positions": [
                {
                    "id": p.opp_id,
                    "strategy": p.strategy,
                    "buy": f"{p.buy.instrument}@{p.buy.venue}",
                    "sell": f"{p.sell.instrument}@{p.sell.venue}",
                    "qty": p.qty,
                    "state": p.state.name,
                }
                for p in list(core.open_positions.values())[:RECENT]
            ],
            "transitions": list(self.recent_transitions),
            "rejections": list(self.recent_rejections),
        }

    def watcher(self, interval_ns: int, publish: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """A callable for the runner's loop (`Runner.watchers`, called after each engine step):
        a sample every `interval_ns` of the run's clock, handed to `publish`. It sets no timer of
        its own, so a run on the virtual clock decides as it would without it."""
        due = [0]

        def watch() -> None:
            now = self.runner.now_ns()
            if now >= due[0]:
                due[0] = now + interval_ns
                publish(self.sample())

        return watch


def _ring_fill(runner) -> dict[str, float]:
    """Fill level (0..1) of each ring of the two-process layout (none on one process)."""
    out = {}
    for key in ("md", "ex", "orders"):
        ring = getattr(runner, key, None)
        if ring is None or not hasattr(ring, "published"):
            continue
        try:
            out[{"ex": "exec"}.get(key, key)] = (ring.published - ring.consumed) / ring.capacity
        except Exception:  # a ring closed at the end of the run
            continue
    return out
