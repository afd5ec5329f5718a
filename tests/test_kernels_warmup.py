"""warm_up() compiles or loads every kernel and runs a real decision through them."""

from basis_core.kernels import warmup


def test_warm_up_runs_every_kernel_group():
    times = warmup.warm_up()
    assert set(times) == {"amm", "book", "decision", "symmetry+risk"}
    assert all(t >= 0 for t in times.values())
    assert warmup.IMPORT_S > 0
