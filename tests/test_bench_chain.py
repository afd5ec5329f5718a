"""`basis bench chain` (perf/bench_chain.py): its samples come from the pool venue's own path,
and a share is shown as a share."""

from __future__ import annotations

import importlib.util

import pytest

from basis_core.bench import ROOT, SUITES, render, summarize


def _bench():
    spec = importlib.util.spec_from_file_location("bench_chain", ROOT / SUITES["chain"])
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_share_is_shown_as_a_percentage_not_a_time():
    rows = summarize({"ChainSimPassedShare[cex-dex,run=5s]": 0.875, "ChainBroadcastLatency[anvil].p50": 0.01})
    text = render(rows)
    assert "87.5% of orders" in text
    assert "10.0 ms" in text


@pytest.mark.chain
def test_latency_samples_time_the_venues_own_simulation_and_broadcast():
    bench = _bench()
    try:
        broadcast, sims = bench.latency_sample(6)
        ch = bench.chain()
        assert len(broadcast) == len(sims) == 6
        # the simulation is one eth_call inside the way from submit to the broadcast
        assert all(0 < s < b for s, b in zip(sims, broadcast))
        # a second sample reuses the same chain (one anvil per worker process)
        again, _ = bench.latency_sample(2)
        assert len(again) == 2 and ch is bench.chain()
    finally:
        for c in bench._CHAIN:
            c.close()
        bench._CHAIN.clear()
