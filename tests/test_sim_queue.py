"""The simulated venues' queue model: our resting order's place in its price level's queue
(adapters/sim/queue.py, matching.py), and the latency of order entry and cancel (venue.py)."""

import asyncio
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sim_support import START_NS, Latency, VirtualClock, make_venue, running

from adapters.sim.matching import MARKET, FeeSchedule, MatchingEngine, Spec
from adapters.sim.queue import ProRata, make, split_cut
from adapters.sim.world import SimWorld
from basis_core.config import from_dict
from basis_core.configio import load_toml
from basis_core.errors import ConfigError
from basis_core.schema import OrderType, RejectReason, Side
from basis_core.venue import OrderRequest, OrderStatus

SPEC = Spec("BTC/USDT", "BTC", "USDT", tick=0.01, lot=0.001)
PX = 10_000  # ticks: 100.00
MODELS = ["back", "pro_rata"]
DEFAULT = Path(__file__).resolve().parents[1] / "basis_core/scenarios/default.toml"


def engine(model: str = "pro_rata", seed: int = 1) -> MatchingEngine:
    return MatchingEngine(SPEC, FeeSchedule(), queue=make(model, seed, "v", "btc"))


def rest(e: MatchingEngine, coid: str, lots: int, owner: str = "basis", px: int = PX) -> None:
    r = e.submit_lots(owner, coid, Side.BUY, OrderType.LIMIT, lots, px)
    assert r.order.reason is RejectReason.NONE and r.order.status is OrderStatus.OPEN


def sell(e: MatchingEngine, lots: int, owner: str = "basis") -> int:
    """A participant's market sell of `lots`; the lots of `owner`'s orders it filled."""
    r = e.submit_lots(MARKET, "", Side.SELL, OrderType.MARKET, lots, None)
    return sum(f.lots for f in r.fills if f.owner == owner)


@pytest.mark.parametrize("model", MODELS)
def test_an_order_behind_five_lots_fills_only_after_five_lots_traded(model):
    e = engine(model)
    e.set_level(Side.BUY, PX, 5)
    rest(e, "1", 3)
    assert e.queue_ahead("basis", "1") == 5
    assert sell(e, 4) == 0
    assert e.queue_ahead("basis", "1") == 1
    assert sell(e, 1) == 0  # the fifth lot ahead of us
    assert e.queue_ahead("basis", "1") == 0
    assert sell(e, 2) == 2
    assert e.query("basis", "1").status is OrderStatus.PARTIALLY_FILLED


@pytest.mark.parametrize("model", MODELS)
def test_growth_of_the_level_joins_behind_us_and_trades_reach_us_first(model):
    e = engine(model)
    e.set_level(Side.BUY, PX, 5)
    rest(e, "1", 3)
    e.set_level(Side.BUY, PX, 50)
    assert e.queue_ahead("basis", "1") == 5
    e.replace_market({PX: 500}, {}, 0, lambda *a: pytest.fail("nothing crosses"))
    assert e.queue_ahead("basis", "1") == 5
    assert sell(e, 7) == 2  # 5 ahead, then ours, before any of the 495 lots behind
    assert e.market_levels(Side.BUY) == {PX: 495}


def test_back_model_cancels_leave_from_behind_us_first():
    e = engine("back")
    e.set_level(Side.BUY, PX, 100)
    rest(e, "1", 10)
    e.set_level(Side.BUY, PX, 400)  # 100 ahead, 300 behind
    e.set_level(Side.BUY, PX, 200)
    assert e.queue_ahead("basis", "1") == 100
    e.set_level(Side.BUY, PX, 60)  # behind us is gone: the rest comes from ahead
    assert e.queue_ahead("basis", "1") == 60


def _cut_ahead(seed: int, ahead: int = 100, behind: int = 300, cut: int = 200, fast: bool = False) -> int:
    e = engine("pro_rata", seed)
    e.set_level(Side.BUY, PX, ahead)
    rest(e, "1", 10)
    e.set_level(Side.BUY, PX, ahead + behind)
    if fast:
        e.replace_market({PX: ahead + behind - cut}, {}, 0, lambda *a: pytest.fail("nothing crosses"))
    else:
        e.set_level(Side.BUY, PX, ahead + behind - cut)
    after = e.queue_ahead("basis", "1")
    assert e.market_levels(Side.BUY) == {PX: ahead + behind - cut}
    return ahead - after


def test_pro_rata_cancels_improve_our_place_by_the_share_ahead_of_us():
    # 100 lots ahead, 300 behind, 200 cancelled: 200 * 100 / 400 = 50 from ahead on average
    first = [_cut_ahead(seed) for seed in range(400)]
    assert first == [_cut_ahead(seed) for seed in range(400)]  # seeded: the same draws again
    assert first[:50] == [_cut_ahead(seed, fast=True) for seed in range(50)]  # the depth step's path
    assert all(0 <= x <= 100 for x in first)
    assert abs(statistics.fmean(first) - 50.0) < 1.5  # standard error of the mean ~0.22
    assert 3.0 < statistics.pstdev(first) < 6.0  # hypergeometric: sd ~4.3, not a fixed share
    assert len(set(first)) > 10


def test_pro_rata_draws_only_when_the_split_is_uncertain():
    e = engine("pro_rata")
    model = e.queue
    assert isinstance(model, ProRata)
    e.set_level(Side.BUY, PX, 100)
    e.set_level(Side.BUY, PX, 40)  # no order of ours: nothing to decide
    rest(e, "1", 10)
    e.set_level(Side.BUY, PX, 20)  # all of MARKET's lots are ahead of us
    assert e.queue_ahead("basis", "1") == 20 and model.draws == 0
    e.set_level(Side.BUY, PX, 80)  # 20 ahead, 60 behind
    e.set_level(Side.BUY, PX, 0)  # all of them leave
    assert e.queue_ahead("basis", "1") == 0 and model.draws == 0
    assert e.book_lots(1)[0] == [(PX, 10)]


def test_split_cut_spreads_a_cut_over_segments_between_several_orders():
    e = engine("pro_rata", seed=3)
    e.set_level(Side.BUY, PX, 30)
    rest(e, "a", 5)
    e.set_level(Side.BUY, PX, 60)
    rest(e, "b", 5, owner="other")
    e.set_level(Side.BUY, PX, 90)  # segments 30 | a | 30 | b | 30
    e.set_level(Side.BUY, PX, 45)
    a, b = e.queue_ahead("basis", "a"), e.queue_ahead("other", "b")
    assert 0 <= a <= 30 and a + 5 <= b <= a + 5 + 30
    assert e.market_levels(Side.BUY) == {PX: 45}
    assert sum(o.lots - o.filled for o in e.bids.levels[PX]) == 55
    assert split_cut([0, 7, 0], 5, lambda *a: pytest.fail("no draw")) == [0, 5, 0]
    with pytest.raises(ValueError):
        split_cut([3, 4], 8, lambda *a: 0)


def test_unknown_queue_model_is_a_config_error():
    with pytest.raises(ConfigError, match="queue_model"):
        make("fifo", 1, "v", "btc")
    raw = load_toml(DEFAULT)
    raw["venues"]["alpha"]["queue_model"] = "fifo"
    with pytest.raises(ConfigError, match=r"venues\.alpha\.queue_model"):
        from_dict(raw)


def test_the_scenario_sets_each_venues_model_seeded_by_the_run():
    raw = load_toml(DEFAULT)
    raw["venues"]["beta"]["queue_model"] = "back"
    world = SimWorld.from_config(from_dict(raw))
    assert isinstance(world.venues["alpha"].exchange.engine("alpha-BTCUSDT").queue, ProRata)
    assert world.venues["beta"].exchange.engine("beta-BTCUSDT").queue is None
    assert isinstance(world.venues["gamma"].exchange.engine("gamma-BTCUSDT-PERP").queue, ProRata)


# -- invariants under any sequence of depth changes and trades -----------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("level"), st.integers(0, 60)),
        st.tuples(st.just("trade"), st.integers(1, 40)),
        st.tuples(st.just("join"), st.integers(1, 12)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(MODELS), st.integers(0, 2**32 - 1), st.integers(1, 40), _ops)
def test_fills_never_jump_the_queue_and_volume_is_conserved(model, seed, start, ops):
    """One level of MARKET depth and our orders joining it: each of our orders fills only with
    trade volume beyond the queue ahead of it; the queue ahead never grows (nor goes below 0);
    a cut takes no more from ahead of an order than was cut, nor less than the part that could
    not come from behind it; the level holds exactly MARKET's lots and our remainders."""
    e = engine(model, seed)
    e.set_level(Side.BUY, PX, start)
    ours: dict[str, int] = {}  # our live orders -> lots left
    for n, (what, x) in enumerate(ops):
        live = [c for c, left in ours.items() if left]
        before = {c: e.queue_ahead("basis", c) for c in live}
        market = e.market_levels(Side.BUY).get(PX, 0)
        if what == "join":
            rest(e, str(n), x)
            assert e.queue_ahead("basis", str(n)) == market + sum(ours.values())
            ours[str(n)] = x
            continue
        if what == "level":
            e.set_level(Side.BUY, PX, x)
            for c in live:
                ahead = e.queue_ahead("basis", c)
                cut = max(0, market - x)
                ours_ahead = sum(ours[d] for d in live if int(d) < int(c))
                behind = market - (before[c] - ours_ahead)
                assert before[c] - cut <= ahead <= before[c]
                assert before[c] - ahead >= cut - behind
                if model == "back":
                    assert before[c] - ahead == max(0, cut - behind)
        else:
            r = e.submit_lots(MARKET, "", Side.SELL, OrderType.MARKET, x, None)
            got: dict[str, int] = {}
            for f in r.fills:
                if f.owner == "basis":
                    got[f.coid] = got.get(f.coid, 0) + f.lots
            for c in live:
                assert got.get(c, 0) == max(0, min(ours[c], x - before[c]))
                ours[c] -= got.get(c, 0)
            for c in live:
                if ours[c]:
                    assert e.queue_ahead("basis", c) == max(0, before[c] - x)
        for c in live:
            if ours[c]:
                assert 0 <= e.queue_ahead("basis", c) <= before[c]
        level = sum(o.lots - o.filled for o in e.bids.levels.get(PX, ()))
        assert level == e.market_levels(Side.BUY).get(PX, 0) + sum(ours.values())


_levels = st.dictionaries(st.integers(97, 100), st.sampled_from([0, 5, 10, 20, 35]), max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(
        st.tuples(_levels, st.lists(st.tuples(st.integers(97, 100), st.integers(1, 8)), max_size=2)),
        min_size=2,
        max_size=8,
    ),
)
def test_pro_rata_depth_replacement_equals_level_by_level_set_level(seed, steps):
    """The depth step's one-call replacement draws and cuts as the level-by-level set_level
    calls do (shrinking levels first, in the same order): same queues, same draws."""
    fast, ref = engine("pro_rata", seed), engine("pro_rata", seed)
    for n, (bids, orders) in enumerate(steps):
        for i, (px, lots) in enumerate(orders):
            for e in (fast, ref):
                rest(e, f"{n}.{i}", lots, px=px)
        have = ref.market_levels(Side.BUY)
        for px, lots in have.items():
            if bids.get(px, 0) < lots:
                ref.set_level(Side.BUY, px, bids.get(px, 0), n)
        for px in sorted(bids):
            if bids[px] > have.get(px, 0):
                ref.set_level(Side.BUY, px, bids[px], n)
        fast.replace_market(bids, {}, n, lambda *a: pytest.fail("nothing crosses"))
        for e in (fast, ref):
            assert isinstance(e.queue, ProRata)
        assert fast.queue.draws == ref.queue.draws  # type: ignore[union-attr]
        queues = [
            [[(o.owner, o.coid, o.lots - o.filled) for o in e.bids.levels[p]] for p in e.bids.prices]
            for e in (fast, ref)
        ]
        assert queues[0] == queues[1]
        assert fast.market_levels(Side.BUY) == ref.market_levels(Side.BUY)


# -- order entry and cancel take the venue's latency ----------------------------------------


def test_entry_and_cancel_take_effect_after_the_request_latency():
    """An order joins the queue `request_ms` after it is sent: a trade in between takes the
    level without it, and it queues behind what is left. A cancel takes effect `request_ms`
    after it is sent: a trade in between still fills the order."""
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, latency=Latency(request_ms=10.0, response_ms=20.0, jitter_ms=0.0))
        eng = v.exchange.engine("btc")
        bid = eng.to_ticks(49_999.0)
        loop = asyncio.get_running_loop()
        async with running(v):
            v.apply_book("btc", {bid: 1_000}, {bid + 2: 1_000})
            # a participant sells 400 lots 5 ms after we send: before our order is there
            loop.call_later(0.005, v.participant_trade, "btc", Side.SELL, 400)
            t0 = clock.now_ns()
            ack = await v.submit(OrderRequest("1", "btc", Side.BUY, OrderType.LIMIT, 0.01, 49_999.0))
            assert clock.now_ns() - t0 == 30_000_000 and ack.filled_qty == 0.0
            assert eng.queue_ahead("basis", "1") == 600  # the level after the trade, not before
            # 5 ms after the cancel is sent, a sell of 600 + 300 lots reaches 300 of our 1,000
            loop.call_later(0.005, v.participant_trade, "btc", Side.SELL, 900)
            t1 = clock.now_ns()
            done = await v.cancel("1")
            assert clock.now_ns() - t1 == 30_000_000
            assert done.status is OrderStatus.CANCELED and done.filled_qty == pytest.approx(0.003)
            fills = (await v.fills()).fills
            assert [(f.coid, f.qty) for f in fills] == [("1", pytest.approx(0.003))]
            assert fills[0].ts_ns - t1 == 5_000_000

    clock.run(main())
