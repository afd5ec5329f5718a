"""Writing a run's accounting and reconciliation results into the results database.

`record_ledger` is idempotent: call it at every housekeeping tick and at the end of a run (or
again after a resumed run replays); fills are keyed by (venue, client order id, fill id), the
opportunities are replaced by their latest figures and the PnL series are rewritten whole.
"""

from __future__ import annotations

import math

import numpy as np

from .db import ResultsDB
from .stats import LatencyHistogram

#: series names the report plots
SERIES_REALIZED = "realized_pnl_usdt"
SERIES_FEES = "fees_usdt"
SERIES_NET = "net_pnl_usdt"
SERIES_RESIDUAL = "residual_exposure_usdt"
HIST_LATENCY = "decision_latency_ns"


def record_ledger(db: ResultsDB, run_id: str, ledger, outcomes: dict[int, str] | None = None) -> None:
    """Fills, opportunities and the cumulative PnL / residual exposure series of a Ledger.

    Incremental within one process: only fills, history points and opportunities that changed
    since the last call on this `db` are written. The first call (a fresh process, a resumed run)
    writes the fills it has (repeats ignored), every opportunity, and replaces the series whole.
    """
    outcomes = outcomes or {}
    mark = db.watermarks.get((run_id, "ledger"))
    n_fills, n_hist = mark if mark else (0, 0)
    for fill, fee_usdt in ledger.fills[n_fills:]:
        db.record_fill(run_id, fill, fee_usdt)
    opp_ids = sorted(ledger.dirty) if mark else [o.opportunity_id for o in ledger.opportunities()]
    ledger.dirty.clear()
    for oid in opp_ids:
        db.record_opportunity(run_id, ledger.opportunity(oid), outcomes.get(oid, ""))
    for oid in set(outcomes) - set(opp_ids):
        db.record_opportunity(run_id, ledger.opportunity(oid), outcomes[oid])
    hist = ledger.history[n_hist:]
    write = db.record_series if mark else db.replace_series
    write(run_id, SERIES_REALIZED, [(t, r) for t, r, _, _ in hist])
    write(run_id, SERIES_FEES, [(t, f) for t, _, f, _ in hist])
    write(run_id, SERIES_NET, [(t, r - f) for t, r, f, _ in hist])
    write(run_id, SERIES_RESIDUAL, [(t, x) for t, _, _, x in hist if math.isfinite(x)])
    db.watermarks[(run_id, "ledger")] = (len(ledger.fills), len(ledger.history))
    db.commit()


def record_exceptions(db: ResultsDB, run_id: str, entries) -> None:
    """Write a reconciliation log's entries in their order: a mismatch (reconcile.Mismatch) is
    appended to the exception table, a resolution (reconcile.Resolution: it has `how`) marks the
    open rows of its (layer, key) resolved at its time, as the log resolved them in memory."""
    for e in entries:
        if hasattr(e, "how"):
            db.resolve_exception(run_id, e.layer, e.key, e.ts_ns)
        else:
            db.record_exception(run_id, e)
    db.commit()


def latency_edges(lo_ns: float = 100.0, hi_ns: float = 1e8, per_decade: int = 5) -> np.ndarray:
    """Log-spaced bin edges for decision latency, from `lo_ns` to `hi_ns`."""
    decades = math.log10(hi_ns / lo_ns)
    return np.logspace(math.log10(lo_ns), math.log10(hi_ns), round(decades * per_decade) + 1)


def record_latency(db: ResultsDB, run_id: str, samples_ns, edges=None) -> None:
    """Bin decision latencies (ns), samples or a run's LatencyHistogram (each of its buckets
    counted at its middle), into the histogram the report draws; values outside the edges land
    in the first or last bin so that none is dropped."""
    edges = latency_edges() if edges is None else np.asarray(edges, dtype=np.float64)
    weights = None
    if isinstance(samples_ns, LatencyHistogram):
        samples_ns, weights = samples_ns.middles(), np.asarray(samples_ns.counts, dtype=np.float64)
    arr = np.clip(np.asarray(samples_ns, dtype=np.float64), edges[0], np.nextafter(edges[-1], 0))
    binned, _ = np.histogram(arr, bins=edges, weights=weights)
    counts = np.rint(binned).astype(np.int64)
    db.record_histogram(run_id, HIST_LATENCY, edges.tolist(), counts.tolist())
    db.commit()


def accounting_figures(ledger, log=None) -> dict:
    """The report.json fields that come from accounting and reconciliation: realized_pnl_usdt,
    fees_usdt, slippage_usdt, max_residual_exposure_usdt (the largest sum of |exposure| seen at a
    booking) and, with an ExceptionLog, reconciliation {layer: mismatches}."""
    residuals = [x for _, _, _, x in ledger.history if math.isfinite(x)]
    out = {
        "realized_pnl_usdt": float(ledger.realized_pnl_usdt),
        "fees_usdt": float(ledger.fees_usdt),
        "slippage_usdt": float(ledger.slippage_usdt),
        "max_residual_exposure_usdt": float(max(residuals, default=0.0)),
    }
    if log is not None:
        out["reconciliation"] = log.counts()
    return out
