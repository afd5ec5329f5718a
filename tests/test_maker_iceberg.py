"""`maker_taker` as an iceberg (`[policy] maker_display_fraction`, issue #19): each quote shows
only its display part; once that has filled and been hedged the next part is a new order, which
the simulated venue's queue puts at the back of its price level."""

from __future__ import annotations

from adapters.sim.matching import MARKET
from basis_core import schema as S
from basis_core.engine.report import build_report
from basis_core.state.tables import OrderState
from tests.orchestration import config_error, invariants, run, scenario

FRACTION = 0.25


def record_posts(world, posted: list):
    """Wrap each simulated venue's matching engines: for every post-only order of ours that
    rests, whether it joined the back of its level's queue (nothing behind it) and the lots ahead."""

    def wrap(eng):
        submit = eng.submit

        def recording(owner, coid, side, otype, *args, **kw):
            res = submit(owner, coid, side, otype, *args, **kw)
            order = eng._orders.get((owner, coid))
            if owner != MARKET and otype == S.OrderType.POST_ONLY and order and not order.status.terminal:
                level = eng._side(order.side).levels[order.px]
                posted.append((coid, level[-1] is order, eng.queue_ahead(owner, coid)))
            return res

        eng.submit = recording

    for venue in world.venues.values():
        for eng in venue.exchange.engines.values():
            wrap(eng)


def test_an_iceberg_shows_one_display_part_at_a_time_each_at_the_back(tmp_path):
    posted: list = []
    policy = {"execution": "maker_taker", "maker_display_fraction": FRACTION}
    runner, _, problems = run(
        scenario(duration_s=15.0, policy=policy), tmp_path, setup=lambda w: record_posts(w, posted)
    )
    core, p = runner.core, runner.core.policy
    assert problems == [] and invariants(runner) == []
    book = core.orders.orders
    parts: dict[int, list] = {}
    for pos in sorted(core.positions.values(), key=lambda q: q.opp_id):
        parts.setdefault(pos.parent, []).append(pos)
    for quotes in parts.values():
        for pos in quotes:
            primary = book[pos.buy.coid]
            bl = core.rules[pos.buy.instrument]
            # the display part: the fraction of a slice-sized quote, in whole lots
            full = p.slice_residual_fraction * p.max_residual_usdt / primary.price
            assert primary.qty <= FRACTION * full + bl.lot + 1e-12
            assert primary.qty * primary.price >= bl.min_notional
        for prev, nxt in zip(quotes, quotes[1:], strict=False):
            # the next part leaves once the last is done and hedged: one display part at a time
            assert max(o.machine.since_ns for o in prev.orders(book)) <= nxt.created_ns
    # an opportunity worked more than it ever showed: several display parts filled in full
    filled_parts = {
        parent: [q for q in quotes if book[q.buy.coid].state == OrderState.FILLED]
        for parent, quotes in parts.items()
    }
    parent, done = max(filled_parts.items(), key=lambda kv: len(kv[1]))
    assert len(done) >= 2
    assert sum(book[q.buy.coid].filled for q in done) > max(book[q.buy.coid].qty for q in parts[parent])
    # every part that rested was a new order at the back of its level's queue
    assert len(posted) >= len(core.positions) // 2
    assert all(at_back for _, at_back, _ in posted)  # (a new best price: an empty level)
    assert any(ahead > 0 for _, _, ahead in posted)
    # what can be unhedged is one display part: about the fraction of the residual limit
    report = build_report(runner, 1.0)
    assert 0 < report["max_residual_exposure_usdt"] <= 1.1 * FRACTION * p.max_residual_usdt


def test_maker_display_fraction_is_checked(tmp_path):
    for bad in ("0.0", "1.5"):
        err = config_error(tmp_path, f"[policy]\nmaker_display_fraction = {bad}\n")
        assert "policy.maker_display_fraction" in str(err)
