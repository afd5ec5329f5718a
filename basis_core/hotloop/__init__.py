"""A compiled hot loop for the end-to-end benchmark, its plain-Python reference, and the
synthetic workload they are measured on. `basis run` does not use it: the product's engine is
`basis_core.engine` (perf/bench_e2e.py, perf/peers/bench_nautilus.py and tests/test_hotloop.py do).

    params.py     HotParams: the one spread strategy the loop runs, flattened for numba
    loop.py       run_batch (one compiled call per md batch) and HotLoop, its Python driver
    reference.py  PyEngine: the same decisions in plain Python (reference and baseline)
    workload.py   quote_ticks: two-venue quote ticks with one opportunity every K ticks
"""

from .loop import HotLoop, run_batch
from .params import HotParams
from .reference import ORDER_FIELDS, PyEngine, orders_array, orders_tuples
from .workload import opportunity_index, quote_ticks

__all__ = [
    "ORDER_FIELDS",
    "HotLoop",
    "HotParams",
    "PyEngine",
    "opportunity_index",
    "orders_array",
    "orders_tuples",
    "quote_ticks",
    "run_batch",
]
