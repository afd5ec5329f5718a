"""A sample (sample.py) in Prometheus' text exposition format, through `prometheus_client`.

One collector reads the newest sample on every scrape: nothing is updated per record, and the
registry holds no state of its own beyond that sample. Counters (`_total`) only grow over a run;
the machines' states are one gauge per (machine, state), 1 for the state it is in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..state.tables import EngineState, HedgeState, VenueState

#: sample["counters"] key -> (metric name, help); each is exposed as NAME_total
COUNTERS = {
    "events": ("basis_events", "records the engine has stepped"),
    "decisions": ("basis_decisions", "candidates the engine decided (latency samples)"),
    "batches": ("basis_batches", "engine steps (batches of records)"),
    "signals_seen": ("basis_signals_seen", "signals the engine looked at"),
    "orders_submitted": ("basis_orders_submitted", "orders the engine sent"),
    "orders_filled": ("basis_orders_filled", "orders filled in full"),
    "hedges_completed": ("basis_hedges_completed", "hedged positions completed"),
    "asymmetric_episodes": ("basis_asymmetric_episodes", "times a position was left one-sided"),
    "unwinds": ("basis_unwinds", "positions unwound"),
    "reconcile_passes": ("basis_reconcile_passes", "reconciliation passes run"),
}
#: sample key -> (gauge name, help), plain numbers
GAUGES = {
    "residual_usdt": ("basis_residual_exposure_usdt", "residual (unhedged) exposure now, USDT"),
    "max_residual_usdt": ("basis_max_residual_exposure_usdt", "largest residual exposure so far, USDT"),
    "realized_pnl_usdt": ("basis_realized_pnl_usdt", "realized PnL, USDT"),
    "fees_usdt": ("basis_fees_usdt", "fees paid, USDT"),
    "lag_s": (
        "basis_engine_lag_seconds",
        "the run's clock minus the time of the last record the engine stepped",
    ),
    "t_s": ("basis_run_seconds", "seconds of the run's clock since it started"),
}


class SampleCollector(Collector):
    """Yields the metric families of `latest()` (None before the first sample: nothing)."""

    def __init__(self, latest: Callable[[], dict[str, Any] | None]):
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        s = self.latest()
        if s is None:
            return
        for key, (name, doc) in COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=s["counters"][key])
        rejected = CounterMetricFamily(
            "basis_signals_rejected", "signals refused, by reason", labels=["reason"]
        )
        for reason, n in s["rejected"].items():
            rejected.add_metric([reason], n)
        yield rejected
        recon = CounterMetricFamily(
            "basis_reconciliation_mismatches", "mismatches raised, by layer", labels=["layer"]
        )
        for layer, n in s["reconciliation"].items():
            recon.add_metric([layer], n)
        yield recon
        lat = s["latency"]
        buckets = [(f"{b / 1e9:.9g}", n) for b, n in zip(lat["bounds_ns"], lat["cumulative"], strict=True)]
        buckets.append(("+Inf", lat["count"]))
        yield HistogramMetricFamily(
            "basis_decision_latency_seconds",
            "time from a candidate to its decision",
            buckets=buckets,
            sum_value=lat["sum_ns"] / 1e9,
        )
        orders = GaugeMetricFamily("basis_orders", "orders by venue and state", labels=["venue", "state"])
        for venue, states in sorted(s["orders"].items()):
            for state, n in sorted(states.items()):
                orders.add_metric([venue, state], n)
        yield orders
        engine = GaugeMetricFamily("basis_engine_state", "1 for the engine's state", labels=["state"])
        for st in EngineState:
            engine.add_metric([st.name], 1.0 if s["engine"]["state"] == st.name else 0.0)
        yield engine
        venues = GaugeMetricFamily("basis_venue_state", "1 for each venue's state", labels=["venue", "state"])
        for venue, now in sorted(s["venues"].items()):
            for vs in VenueState:
                venues.add_metric([venue, vs.name], 1.0 if now == vs.name else 0.0)
        yield venues
        positions = GaugeMetricFamily("basis_positions", "hedged positions by state", labels=["state"])
        for hs in HedgeState:
            positions.add_metric([hs.name], s["positions"].get(hs.name, 0))
        yield positions
        for key, (name, doc) in GAUGES.items():
            yield GaugeMetricFamily(name, doc, value=s[key])
        rings = GaugeMetricFamily(
            "basis_ring_fill_ratio", "records waiting / slots, per ring", labels=["ring"]
        )
        for ring, fill in sorted(s["rings"].items()):
            rings.add_metric([ring], fill)
        yield rings


def registry_for(latest: Callable[[], dict[str, Any] | None]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SampleCollector(latest))
    return reg


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
