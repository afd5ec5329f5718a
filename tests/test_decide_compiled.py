"""The compiled gate and sizing (kernels/decide.py, through engine/decide.py) decides exactly as
the Python reference path (engine/decisions.py `_gate`, `_size`): random scenarios (seeds,
fault schedules, execution styles) are run on the compiled path and their journals replayed on
the Python path, which must send the same commands byte for byte; and at every batch of a
faulted run both paths give the same answer on every pair, taken or not."""

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orchestration import run, scenario

from basis_core.config import FAULT_KINDS
from basis_core.engine import decide
from basis_core.engine.core import EngineCore
from basis_core.engine.replay import replay
from basis_core.errors import ConfigError
from basis_core.kernels.decide import FALLBACK, WorkingOrders
from basis_core.schema import RejectReason


def _fault(rng: random.Random, kind: str) -> dict:
    f = {
        "kind": kind,
        "venue": "*" if kind == "volatility_spike" else rng.choice(["alpha", "beta", "gamma"]),
        "start_s": round(rng.uniform(0.5, 5), 1),
        "duration_s": round(rng.uniform(0.5, 2), 1),
    }
    if kind in ("timeout", "reject", "ack_lost"):
        f.update(on="submit", count=rng.randint(1, 3))
    if kind in ("cancel_fill_race", "fill_after_cancel_ack"):
        f["count"] = rng.randint(1, 3)
    if kind == "timeout":
        f["reached"] = rng.choice(["yes", "no", "random"])
    if kind == "reject":
        f["reason"] = rng.choice(["insufficient_funds", "venue_reject", "rate_limited"])
    if kind in ("volatility_spike", "price_gap"):
        f["magnitude"] = rng.choice([5.0, 20.0, 60.0])
    if kind in ("balance_delay", "balance_reorder", "transfer_delay"):
        f["delay_s"] = rng.choice([1.0, 3.0])
    if kind == "rate_limit":
        f["retry_after_s"] = 0.5
    return f


@st.composite
def scenarios(draw):
    seed = draw(st.integers(0, 10_000))
    rng = random.Random(seed)
    kinds = draw(st.lists(st.sampled_from(FAULT_KINDS), max_size=4))
    policy = {"execution": draw(st.sampled_from(["taker", "taker", "sliced"]))}
    policy["dispatch"] = draw(st.sampled_from(["simultaneous", "primary_then_hedge"]))
    data = scenario(duration_s=6.0, faults=[_fault(rng, k) for k in kinds], seed=seed, policy=policy)
    data["market"]["dislocations_per_min"] = 30.0  # decisions of every kind in a short run
    return data


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=scenarios())
def test_random_faulted_scenarios_decide_byte_for_byte_as_the_python_reference(
    data, tmp_path_factory, monkeypatch
):
    tmp = tmp_path_factory.mktemp("compiled")
    monkeypatch.setenv(decide.PATH_ENV, "compiled")
    runner, _, _ = run(data, tmp)
    assert runner.core.decider is not None
    assert runner.core.counters.signals_seen > 0
    monkeypatch.setenv(decide.PATH_ENV, "python")
    ref = replay(tmp / "run", log=lambda line: None)
    assert ref.core.decider is None
    assert ref.identical, f"{ref.mismatched_batches} batches decided otherwise by the Python path"
    assert ref.digest == runner.core.digest


def _both(core: EngineCore, buy: str, sell: str, created_ns: int, ttl_us: int, hint: float):
    assert core.decider is not None
    compiled = core.decider.gate_size(core, buy, sell, created_ns, ttl_us, hint)
    if compiled is None:  # no mark yet: the Python path (which raises NoMark) decides
        return None, None
    reason = core._gate(buy, sell, created_ns, ttl_us)
    python = (None, reason) if reason else core._size(buy, sell, hint)
    return compiled, python


def test_every_pair_at_every_batch_of_a_faulted_run_gets_the_python_paths_answer(tmp_path, monkeypatch):
    """Stronger than the decisions taken: after each replayed batch, every ordered pair (with
    and without a qty hint, fresh and expired) is gated and sized by both paths."""
    rng = random.Random(3)
    faults = [_fault(rng, k) for k in ("volatility_spike", "maintenance", "rate_limit", "transfer_delay")]
    data = scenario(duration_s=6.0, faults=faults, seed=3)
    data["market"]["dislocations_per_min"] = 30.0
    monkeypatch.setenv(decide.PATH_ENV, "compiled")
    run(data, tmp_path)
    checked = {"sized": 0, "rejected": 0, "fallback": 0}
    names = None
    orig_step = EngineCore.step

    def step(core, batch):
        nonlocal names
        out = orig_step(core, batch)
        names = names or list(core.rules)
        for buy in names:
            for sell in names:
                if buy == sell:
                    continue
                for created, ttl, hint in ((core.now, 10**6, 0.0), (core.now, 10**6, 0.003), (0, 1, 0.0)):
                    compiled, python = _both(core, buy, sell, created, ttl, hint)
                    if compiled is None:
                        checked["fallback"] += 1
                        continue
                    assert compiled == python, (core.now, buy, sell, hint)
                    checked["sized" if compiled[0] is not None else "rejected"] += 1
        return out

    monkeypatch.setattr(EngineCore, "step", step)
    res = replay(tmp_path / "run", log=lambda line: None)
    assert res.identical
    # a signal created at an absurd time: Python's unbounded ints decide it (stale), not int64
    core, (buy, sell) = res.core, names[:2]
    assert core.decider is not None
    assert core.decider.gate_size(core, buy, sell, -(2**63) + 1, 2**32 - 1, 0.0) is None
    assert core._gate_size(buy, sell, -(2**63) + 1, 2**32 - 1, 0.0) == (None, RejectReason.STALE)
    assert checked["sized"] > 50 and checked["rejected"] > 50, checked


def test_working_orders_table_keeps_creation_order_through_removals_and_grows():
    t = WorkingOrders(capacity=2)
    for coid in range(1, 6):
        t.add(coid, coid, 10 + coid, coid % 2, float(coid), None if coid == 3 else 100.0 + coid)
    t.filled(2, 0.5)
    t.remove(1)
    t.remove(4)
    t.remove(99)  # not working: nothing
    t.filled(4, 1.0)  # ended already: not counted
    assert t.coids == [2, 3, 5]
    assert t.wi[: t.n].tolist() == [[2, 12, 0], [3, 13, 1], [5, 15, 1]]
    assert np.array_equal(t.wf[: t.n], [[2.0, 102.0, 0.5], [3.0, 0.0, 0.0], [5.0, 105.0, 0.0]])


def test_an_unknown_decision_path_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(decide.PATH_ENV, "numba")
    with pytest.raises(ConfigError, match=decide.PATH_ENV):
        decide.wanted()


def test_fallback_code_is_not_a_reject_reason():
    assert FALLBACK not in {int(r) for r in RejectReason}
