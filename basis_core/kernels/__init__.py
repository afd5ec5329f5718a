"""Decision kernels: numba-compiled loops over preallocated struct-of-arrays state.

Each kernel module holds the compiled kernels and a thin Python wrapper that checks arguments;
`reference` holds a plain-Python version of every kernel and the COMPARISONS table that drives
the parity tests and the benchmarks. `warmup.warm_up()` compiles or loads them all.
"""
