"""Decision kernels: numba-compiled loops over preallocated struct-of-arrays state.

Each kernel module holds the compiled kernels and a thin Python wrapper that checks arguments;
`reference` holds a plain-Python version of every kernel and the COMPARISONS table that drives
the parity tests (perf/bench_kernels.py times some references directly, not through the table).
`warmup.warm_up()` compiles or loads them all.

book.py       top-N books per (venue, instrument)
scan.py       the engine's per-batch market step: books, marks, volatility, best pair
gate.py       one decision: freshness, eligibility gate, sizing, risk, order records
decide.py     the engine's dispatch-time gate, headroom and sizing in one call
sizing.py     two-leg sizing: the largest common quantity every bound allows
risk.py       EWMA volatility of mids and the risk level it sets
symmetry.py   hedge symmetry: fill ratios, residual exposure, time in the hedge window
amm.py        constant-product pool math, exact in integers (the web3 adapter's)
finite.py     the finite/positive input checks the kernels inline
reference.py  the plain-Python references and COMPARISONS
warmup.py     compile or load every kernel before the first record
two_venues.py the smallest market: books, state, signal for warm-up, benchmarks and tests
"""
