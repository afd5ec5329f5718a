"""A clustered engine's allowance (basis_core/engine/allowance.py) and the limits a position uses
(basis_core/cluster/limits.py), without a server: entries capped to what is held never use more
than it, whatever the grants, prices and releases; a grant record names its limit back."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

from basis_core import schema as S
from basis_core.cluster.limits import CAPITAL, POSITION, RESIDUAL, LimitId, run_limits, uses_per_qty
from basis_core.engine.allowance import RELEASED, Allowance, grant_record, limit_of
from basis_core.registry import Registry
from basis_core.state.tables import HedgeState


@dataclass(frozen=True)
class Rule:
    venue: str
    base: str
    quote: str
    kind: str
    leverage: float = 1.0


RULES = {
    "a-spot": Rule("a", "BTC", "USDT", "spot"),
    "b-spot": Rule("b", "BTC", "USDT", "spot"),
    "c-perp": Rule("c", "BTC", "USDT", "perp", 5.0),
}


def test_a_pair_uses_the_buy_quote_the_sell_base_or_margin_the_positions_and_the_residual():
    spot = uses_per_qty(RULES["a-spot"], "a-spot", RULES["b-spot"], "b-spot", 100.0)
    assert spot == {
        "capital.a.USDT": 100.0,
        "capital.b.BTC": 1.0,
        "position.a-spot": 100.0,
        "position.b-spot": 100.0,
        "residual": 100.0,
    }
    perp = uses_per_qty(RULES["a-spot"], "a-spot", RULES["c-perp"], "c-perp", 100.0)
    assert perp["capital.c.USDT"] == 20.0 and "capital.c.BTC" not in perp
    keys = {lim.key for lim in run_limits(RULES)}
    assert keys >= set(spot) | set(perp) and "capital.c.BTC" not in keys


@dataclass
class Pos:
    state: HedgeState


@settings(max_examples=200, deadline=None)
@given(
    grants=st.lists(st.floats(0.0, 5_000.0), min_size=1, max_size=8),
    steps=st.lists(
        st.tuples(
            st.sampled_from(sorted(RULES)),
            st.sampled_from(sorted(RULES)),
            st.floats(1.0, 100_000.0),  # the reference price
            st.floats(0.0, 2.0),  # share of the cap the sizing takes (above 1: capped to it)
            st.booleans(),  # a position released since
        ),
        max_size=30,
    ),
)
@example(grants=[2.225073858507e-311], steps=[("a-spot", "a-spot", 99999.0, 1.0, False)])  # subnormal
def test_entries_capped_to_the_allowance_never_use_more_than_was_granted(grants, steps):
    a = Allowance()
    positions: dict[int, Pos] = {}
    for i, (buy, sell, px, share, release) in enumerate(steps):
        a.grant("residual", grants[i % len(grants)])
        a.grant("capital.a.USDT", grants[(i + 1) % len(grants)])
        a.release_done(positions)
        per = uses_per_qty(RULES[buy], buy, RULES[sell], sell, px)
        cap = a.cap(per)
        if cap <= 0:
            continue
        qty = min(cap, cap * share) if cap != float("inf") else 1.0
        positions[i] = Pos(HedgeState.HEDGING)
        a.back(i, per, qty)
        assert a.over == 0
        for key in per:  # (a key this entry did not use may hold more than a grant lowered since)
            if key in a.granted:
                assert a.used[key] <= a.granted[key] * (1 + 1e-9) + 1e-12
        if release:
            positions[i].state = HedgeState.COMPLETE
    in_use = a.in_use(positions)
    open_ = [o for o, p in positions.items() if p.state not in RELEASED]
    assert (
        in_use.get("residual", 0.0)
        <= sum(u for o in open_ for k, u in a.backing.get(o, ()) if k == "residual") + 1e-6
    )


def test_a_grant_record_names_its_limit_back_through_the_registry():
    reg = Registry()
    for v in ("a", "b"):
        reg.venues.add(v)
    reg.assets.add("USDT")
    reg.instruments.add("a-spot")
    for lim in (LimitId(CAPITAL, "b", "USDT"), LimitId(POSITION, instrument="a-spot"), LimitId(RESIDUAL)):
        rec = grant_record(reg, 5, lim, 123.5).view(S.CONTROL)
        assert int(rec["sub"][0]) == S.ControlCommand.CLUSTER_GRANT and float(rec["value"][0]) == 123.5
        assert limit_of(reg, rec[0]) == lim
