"""Reconciliation layers over plain data: order diff (adopt / query / contradiction), balance lag
window with pending transfers and fees, position checks, reporting identities, exception log."""

import pytest
from ledger_fills import fill

from basis_core.accounting import Ledger, Transfer, TransferStatus
from basis_core.reconcile import ExceptionLog, Layer, Mismatch
from basis_core.reconcile.balances import BalanceReconciler
from basis_core.reconcile.orders import KnownOrder, apply, diff_orders
from basis_core.reconcile.positions import PositionPolicy, PositionReconciler
from basis_core.reconcile.reporting import check_reporting
from basis_core.schema import make_coid
from basis_core.units import S
from basis_core.venue import Balance, OrderStatus, OrderType, Position, Side, VenueOrder

C1, C2, C3 = (str(make_coid(9, leg)) for leg in range(3))


def vo(coid, status=OrderStatus.OPEN, filled=0.0, qty=1.0, side=Side.BUY):
    return VenueOrder(
        coid, "BTCUSDT", side, OrderType.LIMIT, qty, 100.0, status, filled, 100.0 if filled else 0.0
    )


def ko(coid, status=OrderStatus.OPEN, filled=0.0, qty=1.0, side=Side.BUY, venue="alpha", submitted=0):
    return KnownOrder(coid, venue, "BTCUSDT", side, qty, 100.0, status, filled, submitted_ns=submitted)


# -- order layer -------------------------------------------------------------------------------


def test_order_the_venue_has_and_we_do_not_is_adopted_not_resent():
    ours = {C1: ko(C1)}
    d = diff_orders("alpha", ours, [vo(C1), vo(C2, OrderStatus.PARTIALLY_FILLED, 0.4)], 10)
    assert [o.coid for o in d.adopt] == [C2] and d.mismatches == [] and d.to_query == []
    apply(ours, "alpha", d)
    assert ours[C2].origin == "adopted" and ours[C2].filled_qty == 0.4 and ours[C2].working
    # a second round sees it as ours: nothing adopted twice
    assert diff_orders("alpha", ours, [vo(C1), vo(C2, OrderStatus.PARTIALLY_FILLED, 0.4)], 11).adopt == []


def test_order_placed_by_hand_is_a_mismatch_and_left_alone():
    ours = {}
    d = diff_orders("alpha", ours, [vo("manual-1")], 10)
    assert d.adopt == [] and len(d.mismatches) == 1 and "foreign" in d.mismatches[0].cause
    apply(ours, "alpha", d)
    assert ours == {}


def test_working_order_missing_from_the_open_list_is_queried_not_declared_lost():
    ours = {
        C1: ko(C1),
        C2: ko(C2, status=None),
        C3: ko(C3, OrderStatus.FILLED, 1.0),
        "x": ko("x", venue="beta"),
    }
    d = diff_orders("alpha", ours, [], 10)
    assert sorted(d.to_query) == sorted([C1, C2])  # terminal and other-venue orders are not queried
    assert d.mismatches == [] and d.adopt == []


def test_venue_ahead_of_us_is_a_correction_contradictions_are_mismatches():
    ours = {
        C1: ko(C1, OrderStatus.OPEN),
        C2: ko(C2, OrderStatus.PARTIALLY_FILLED, 0.7),
        C3: ko(C3, OrderStatus.CANCELED),
    }
    d = diff_orders(
        "alpha",
        ours,
        [
            vo(C1, OrderStatus.PARTIALLY_FILLED, 0.5),
            vo(C2, OrderStatus.PARTIALLY_FILLED, 0.3),
            vo(C3, OrderStatus.OPEN),
        ],
        10,
    )
    causes = sorted(m.cause for m in d.mismatches)
    assert causes == ["terminal here, working at the venue", "we count more filled than the venue"]
    assert {u.coid for u in d.updates} == {C1, C2, C3}
    apply(ours, "alpha", d)
    assert ours[C1].status == OrderStatus.PARTIALLY_FILLED and ours[C1].filled_qty == 0.5
    d2 = diff_orders(
        "alpha", ours, [vo(C1, qty=2.0, side=Side.SELL, status=OrderStatus.PARTIALLY_FILLED, filled=0.5)], 11
    )
    assert [m.cause for m in d2.mismatches] == ["order terms differ"]


# -- balance layer -----------------------------------------------------------------------------


def ledger_with_inventory():
    led = Ledger(lambda a, t: {"BTC": 100.0, "BNB": 300.0}[a])
    led.deposit("alpha", "USDT", 1000.0, 0)
    led.deposit("alpha", "BTC", 1.0, 0)
    led.deposit("alpha", "BNB", 1.0, 0)
    return led


def test_lagging_balance_is_no_mismatch_inside_the_window_and_one_after_it():
    led = ledger_with_inventory()
    rec = BalanceReconciler(lag_ns=2 * S)
    # a partial fill with its fee in BNB: the ledger moves at once, the venue's balances later
    led.book_fill(fill("alpha", "buy", 0.4, 100.0, 1 * S, C1, "t1", fee=0.001, fee_asset="BNB"))
    stale = {"USDT": Balance("USDT", 1000.0), "BTC": Balance("BTC", 1.0), "BNB": Balance("BNB", 1.0)}
    # inside the lag window the venue may show any balance the ledger held in it: no candidate
    r1 = rec.check("alpha", stale, led, 1 * S)
    assert r1.raised == [] and r1.pending == {}
    r2 = rec.check("alpha", stale, led, 2 * S + S // 2)
    assert r2.raised == [] and r2.pending == {}
    # past the window the stale value is a candidate, raised only if it persists another window
    r2b = rec.check("alpha", stale, led, 3 * S + S // 2)
    assert r2b.raised == [] and set(r2b.pending) == {"alpha:USDT", "alpha:BTC", "alpha:BNB"}
    # the venue catches up inside the window: candidates dropped, nothing raised
    fresh = {
        "USDT": Balance("USDT", 960.0),
        "BTC": Balance("BTC", 1.0, locked=0.4),
        "BNB": Balance("BNB", 0.999),
    }
    r3 = rec.check("alpha", fresh, led, 2 * S + S // 2 + 1)
    assert r3.raised == [] and r3.pending == {}
    # a real difference: it persists past the window, then is raised once, with both values
    wrong = dict(fresh, BTC=Balance("BTC", 1.3))
    assert rec.check("alpha", wrong, led, 10 * S).raised == []
    assert rec.check("alpha", wrong, led, 11 * S).raised == []
    r = rec.check("alpha", wrong, led, 12 * S)
    assert [(m.layer, m.key, m.ours, m.theirs) for m in r.raised] == [
        ("balance", "alpha:BTC", pytest.approx(1.4), 1.3)
    ]
    assert "below ledger" in r.raised[0].cause
    assert rec.check("alpha", wrong, led, 13 * S).raised == []  # still the same open mismatch
    assert len(rec.log.open()) == 1
    r = rec.check("alpha", fresh, led, 14 * S)
    assert r.resolved == ["alpha:BTC"] and rec.log.open() == []
    assert len(rec.log.mismatches()) == 1  # kept in the log after its resolution


def test_pending_transfer_allows_either_side_of_the_move_until_confirmed():
    led = ledger_with_inventory()
    led.deposit("beta", "BTC", 0.5, 0)
    rec = BalanceReconciler(lag_ns=0)
    t = dict(asset="BTC", amount=0.6, from_venue="alpha", to_venue="beta", ts_ns=1)
    led.book_transfer(Transfer("w1", status=TransferStatus.SENT, fee=0.0005, **t))
    # venue not yet debited: alpha still shows 1.0; beta already credited early: 1.1
    for alpha, beta in ((1.0, 0.5), (0.3995, 0.5), (0.3995, 1.1), (1.0, 1.1)):
        ra = rec.check(
            "alpha",
            {"USDT": Balance("USDT", 1000.0), "BNB": Balance("BNB", 1.0), "BTC": Balance("BTC", alpha)},
            led,
            5,
        )
        rb = rec.check("beta", {"BTC": Balance("BTC", beta)}, led, 5)
        assert ra.raised == [] and rb.raised == [], (alpha, beta)
    led.book_transfer(Transfer("w1", status=TransferStatus.CONFIRMED, **t))
    rb = rec.check("beta", {"BTC": Balance("BTC", 0.5)}, led, 6)  # confirmed here, venue never credited
    assert [m.key for m in rb.raised] == ["beta:BTC"] and rb.raised[0].ours == pytest.approx(1.1)


def test_asset_only_the_venue_knows_is_compared_against_zero():
    led = ledger_with_inventory()
    rec = BalanceReconciler(lag_ns=0)
    bal = {
        "USDT": Balance("USDT", 1000.0),
        "BTC": Balance("BTC", 1.0),
        "BNB": Balance("BNB", 1.0),
        "ETH": Balance("ETH", 2.0),
    }
    r = rec.check("alpha", bal, led, 1)
    assert [(m.key, m.ours, m.theirs) for m in r.raised] == [("alpha:ETH", 0.0, 2.0)]


# -- position layer ----------------------------------------------------------------------------


def test_positions_perp_mismatch_incomplete_hedge_and_residual_past_the_window():
    led = Ledger(lambda a, t: 100.0)
    rec = PositionReconciler(PositionPolicy(hedge_window_ns=2 * S, min_symmetry=0.95, max_residual_usdt=30.0))
    led.book_fill(fill("alpha", "buy", 1.0, 100.0, 1 * S, C1, "a", opportunity_id=9))
    led.book_fill(
        fill("beta", "sell", 0.5, 100.0, 1 * S, C2, "b", instrument="BTC-PERP", opportunity_id=9, kind="perp")
    )
    venue_pos = {"beta": {"BTC-PERP": Position("BTC-PERP", -0.5, 100.0, 100.0, 0.0)}}
    r = rec.check(led, venue_pos, 2 * S)
    assert r.raised == [] and r.incomplete == [9] and r.exposure_usdt == {"BTC": pytest.approx(50.0)}
    assert rec.check(led, venue_pos, 3 * S).raised == []  # exactly the window after the last fill: not yet
    assert [m.key for m in rec.check(led, venue_pos, 3 * S + 1).raised] == ["opportunity:9"]
    assert rec.check(led, venue_pos, 4 * S).raised == []  # over the limit since 2 s: exactly the window
    assert [m.key for m in rec.check(led, venue_pos, 4 * S + 1).raised] == ["exposure:BTC"]
    r = rec.check(led, {"beta": {"BTC-PERP": Position("BTC-PERP", -0.4, 100.0, 100.0, 0.0)}}, 5 * S)
    assert [(m.key, m.ours, m.theirs) for m in r.raised] == [("beta:BTC-PERP", -0.5, -0.4)]
    # the hedge completes: the opportunity and the residual resolve
    led.book_fill(
        fill(
            "beta",
            "sell",
            0.5,
            100.0,
            6 * S,
            make_coid(9, 3),
            "c",
            instrument="BTC-PERP",
            opportunity_id=9,
            kind="perp",
        )
    )
    r = rec.check(led, {"beta": {"BTC-PERP": Position("BTC-PERP", -1.0, 100.0, 100.0, 0.0)}}, 7 * S)
    assert r.raised == [] and r.incomplete == [] and r.residual_usdt == 0.0
    assert rec.log.open() == []


def test_positions_look_again_only_at_opportunities_changed_or_still_incomplete():
    """A run's later passes cost what its first did: hedged opportunities that did not change
    are not gone over again."""

    class Counting(Ledger):
        looked = 0

        def opportunity(self, opportunity_id):
            Counting.looked += 1
            return super().opportunity(opportunity_id)

    led = Counting(lambda a, t: 100.0)
    rec = PositionReconciler(PositionPolicy(hedge_window_ns=2 * S, max_residual_usdt=1e9))
    for opp in range(1, 201):
        for side, venue in (("buy", "alpha"), ("sell", "beta")):
            led.book_fill(
                fill(
                    venue,
                    side,
                    0.1,
                    100.0,
                    S,
                    make_coid(opp, 0 if side == "buy" else 1),
                    f"{side}{opp}",
                    opportunity_id=opp,
                )
            )
    led.book_fill(fill("alpha", "buy", 0.1, 100.0, S, make_coid(201, 0), "lone", opportunity_id=201))
    assert rec.check(led, {}, 2 * S).incomplete == [201] and Counting.looked == 201
    Counting.looked = 0
    assert rec.check(led, {}, 3 * S + 1).incomplete == [201] and Counting.looked == 1  # only the open one
    led.book_fill(fill("beta", "sell", 0.1, 100.0, 4 * S, make_coid(201, 1), "hedge", opportunity_id=201))
    Counting.looked = 0
    r = rec.check(led, {}, 5 * S)
    assert r.incomplete == [] and Counting.looked == 1 and rec.log.open() == []  # raised, then resolved
    Counting.looked = 0
    assert rec.check(led, {}, 6 * S).incomplete == [] and Counting.looked == 0


# -- reporting layer and log -------------------------------------------------------------------


def test_reporting_flags_report_figures_that_differ_from_the_ledger():
    led = ledger_with_inventory()
    led.book_fill(fill("beta", "buy", 0.5, 100.0, 1, C1, "b", opportunity_id=9, strategy="spread"))
    led.book_fill(fill("alpha", "sell", 0.5, 110.0, 1, C2, "s", fee=0.05, opportunity_id=9))
    ok = check_reporting(led, 2, {"realized_pnl_usdt": 5.0, "fees_usdt": 0.05, "slippage_usdt": 0.0})
    assert ok.raised == [] and ok.outcome["spread"].realized_net_usdt == pytest.approx(4.95)
    log = ExceptionLog()
    bad = check_reporting(led, 2, {"realized_pnl_usdt": 5.0, "fees_usdt": 0.0, "slippage_usdt": 0.0}, log=log)
    assert [m.key for m in bad.raised] == ["report:fees_usdt"] and log.counts()["reporting"] == 1


def test_reporting_reads_running_totals_that_agree_with_the_opportunities():
    led = ledger_with_inventory()
    led.book_fill(fill("beta", "buy", 0.5, 100.0, 1, C1, "b", fee=0.02, opportunity_id=9, strategy="spread"))
    led.book_fill(fill("alpha", "sell", 0.5, 110.0, 1, C2, "s", fee=0.05, opportunity_id=9))
    led.book_fill(fill("alpha", "buy", 0.1, 100.0, 2, C3, "t", fee=0.01, opportunity_id=10))
    assert led.opportunity_fees_usdt == pytest.approx(sum(o.fees_usdt for o in led.opportunities()))
    assert led.gross_usdt == pytest.approx(sum(abs(p.usdt) for p in led.postings))
    quick = check_reporting(led, 3, outcomes=False)
    assert quick.raised == [] and quick.outcome == {}  # the continuous passes skip the outcome
    # a fee booked to an opportunity twice shows against the total
    led.opportunity_fees_usdt += 1.0
    assert [m.key for m in check_reporting(led, 3).raised] == ["ledger:fees_by_opportunity"]


def test_exception_log_never_overwrites_and_counts_every_layer():
    log = ExceptionLog()
    a = Mismatch(Layer.BALANCE, "alpha:BTC", 1.0, 0.9, "x", 1)
    assert log.raise_(a) and not log.raise_(Mismatch("balance", "alpha:BTC", 1.0, 0.9, "x", 2))
    assert log.raise_(Mismatch("balance", "alpha:BTC", 1.0, 0.8, "x", 3))  # new values: a new entry
    assert log.resolve("balance", "alpha:BTC", 4, "fixed") and not log.resolve(
        "balance", "alpha:BTC", 5, "again"
    )
    assert [type(e).__name__ for e in log.entries] == ["Mismatch", "Mismatch", "Resolution"]
    assert log.counts() == {"order": 0, "position": 0, "balance": 2, "reporting": 0}
    with pytest.raises(ValueError):
        Mismatch("ledger", "k", 1, 2, "unknown layer")
    err = a.to_error()
    assert err.layer == "balance" and "ours=1.0 venue=0.9" in str(err)


# -- order diff over random books --------------------------------------------------------------


def test_a_perp_position_differing_only_while_a_fill_is_in_flight_is_no_mismatch():
    """The venue has applied a fill that is still on its way to us: within `lag_ns` the difference
    is no mismatch; once the fill is booked it agrees; one that lasts past the lag is raised."""
    led = Ledger(lambda a, t: 100.0)
    rec = PositionReconciler(PositionPolicy(hedge_window_ns=3600 * S, max_residual_usdt=1e9, lag_ns=2 * S))
    venue_side = {"gamma": {"PERP": Position("PERP", -0.1, 100.0, 100.0, 0.0)}}
    assert rec.check(led, venue_side, 1 * S).raised == []  # the fill is in flight
    led.book_fill(
        fill("gamma", "sell", 0.1, 100.0, 1 * S, make_coid(1, 1), "t1", instrument="PERP", kind="perp")
    )
    assert rec.check(led, venue_side, 2 * S).raised == [] and rec.log.open() == []
    venue_side = {"gamma": {"PERP": Position("PERP", -0.3, 100.0, 100.0, 0.0)}}  # never booked
    assert rec.check(led, venue_side, 3 * S).raised == []
    (m,) = rec.check(led, venue_side, 5 * S).raised
    assert (m.key, m.cause) == ("gamma:PERP", "perp position differs")


from hypothesis import given, settings
from hypothesis import strategies as st

STATUSES = list(OrderStatus)
order_state = st.tuples(st.sampled_from(STATUSES + [None]), st.floats(0, 1))


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.integers(1, 30), order_state, max_size=12),
    st.dictionaries(
        st.integers(1, 30),
        st.tuples(st.sampled_from([OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED]), st.floats(0, 1)),
        max_size=12,
    ),
    st.lists(st.sampled_from(["manual-a", "manual-b"]), max_size=2, unique=True),
)
def test_order_diff_adopts_each_unknown_basis_order_once_and_queries_only_what_it_cannot_see(
    ours_spec, open_spec, foreign
):
    ours = {
        str(make_coid(k, 0)): ko(str(make_coid(k, 0)), status, filled if status else 0.0)
        for k, (status, filled) in ours_spec.items()
    }
    venue_open = [vo(str(make_coid(k, 0)), status, filled) for k, (status, filled) in open_spec.items()]
    venue_open += [vo(c) for c in foreign]
    d = diff_orders("alpha", ours, venue_open, 1)
    open_ids = {o.coid for o in venue_open}
    assert {o.coid for o in d.adopt} == open_ids - set(ours) - set(foreign)
    assert set(d.to_query) == {c for c, o in ours.items() if o.working} - open_ids
    assert not set(d.to_query) & {o.coid for o in d.adopt}
    assert sum("foreign" in m.cause for m in d.mismatches) == len(foreign)
    apply(ours, "alpha", d)
    # after applying, every basis order the venue lists is known with the venue's status and fills
    for o in venue_open:
        if o.coid not in foreign:
            assert ours[o.coid].status == o.status and ours[o.coid].filled_qty == pytest.approx(
                o.filled_qty, abs=1e-9
            )
    again = diff_orders("alpha", ours, venue_open, 2)
    assert again.adopt == [] and again.updates == []


def test_rounds_with_an_order_index_find_what_rounds_over_every_order_find():
    """An OrderIndex round looks at the orders working at the last round, the new ones and the
    venue's open ones: the same adoptions, queries, updates and mismatches as a full scan."""
    import asyncio
    import itertools
    import random

    from basis_core.errors import OrderNotFound
    from basis_core.reconcile.orders import OrderIndex, reconcile_orders

    class Venue:
        name = "alpha"

        def __init__(self):
            self.orders: dict[str, VenueOrder] = {}  # what the venue holds, by coid
            self.asked = 0

        async def open_orders(self):
            return [o for o in self.orders.values() if not o.status.terminal]

        async def fetch_order(self, coid, instrument=None):
            self.asked += 1
            if coid not in self.orders:
                raise OrderNotFound("alpha", "unknown_order", coid)
            return self.orders[coid]

    rng = random.Random(5)
    venue = Venue()
    full: dict[str, KnownOrder] = {}
    indexed: dict[str, KnownOrder] = {}
    index = OrderIndex()
    opps = itertools.count(100)  # client order ids are never reused
    statuses = [OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.PARTIALLY_FILLED]
    for step in range(60):
        for _ in range(rng.randint(0, 4)):  # new orders: ours, the venue's, or both
            coid = str(make_coid(next(opps), 0))
            if rng.random() < 0.8:
                where = rng.choice(["alpha", "beta"])
                for book in (full, indexed):
                    book[coid] = ko(coid, None, venue=where, submitted=step * S)
            if rng.random() < 0.7:
                venue.orders[coid] = vo(coid, rng.choice(statuses), filled=rng.choice([0.0, 0.5, 1.0]))
        for coid in rng.sample(sorted(venue.orders), min(3, len(venue.orders))):  # the venue moves on
            venue.orders[coid] = vo(coid, rng.choice(statuses), filled=venue.orders[coid].filled_qty)
        ts = step * S
        a = asyncio.run(reconcile_orders(venue, full, ts, grace_ns=2 * S))
        b = asyncio.run(reconcile_orders(venue, indexed, ts, grace_ns=2 * S, index=index))
        assert (a.adopt, a.to_query, a.updates, a.lost, a.unresolved) == (
            b.adopt,
            b.to_query,
            b.updates,
            b.lost,
            b.unresolved,
        ), step
        assert [(m.key, m.cause) for m in a.mismatches] == [(m.key, m.cause) for m in b.mismatches]
        apply(full, "alpha", a)
        apply(indexed, "alpha", b)
        # what the next round starts from: every order on the venue still working, not all of them
        on_venue = {c for c, o in indexed.items() if o.venue == "alpha"}
        assert {c for c in on_venue if indexed[c].working} <= index.working <= on_venue
    assert full == indexed and len(full) > 100
    assert len(index.working) < 0.8 * len(on_venue)


def test_a_round_judges_the_venue_answer_against_the_book_as_it_was_when_the_venue_was_asked():
    """Our book moves while a request is out: a fill the venue made after it answered, or an
    order we sent meanwhile, is neither a contradiction, nor undone, nor adopted."""
    import asyncio

    from basis_core.reconcile.orders import OrderIndex, reconcile_orders

    class Venue:
        """Answers with what it held when asked; our book moves on before the answer arrives."""

        name = "alpha"

        def __init__(self, ours, held):
            self.ours, self.held = ours, held

        async def open_orders(self):
            answer = list(self.held)
            # while the answer travels: C1 fills here (our stream is ahead of that answer) and C2
            # is sent, already known to the venue when it answered
            self.ours[C1].filled_qty, self.ours[C1].status = 1.0, OrderStatus.FILLED
            self.ours[C2] = ko(C2, None)
            await asyncio.sleep(0)
            return answer

        async def fetch_order(self, coid, instrument=None):
            raise AssertionError("nothing is missing from the open list")

    for index in (None, OrderIndex()):
        ours = {C1: ko(C1)}
        if index is not None:
            index.candidates(ours)  # C1 was working at the last round
        venue = Venue(ours, [vo(C1), vo(C2, OrderStatus.PARTIALLY_FILLED, 0.25)])
        rnd = asyncio.run(reconcile_orders(venue, ours, 10, index=index))
        assert rnd.mismatches == [], [m.cause for m in rnd.mismatches]  # was: "we count more filled"
        apply(ours, "alpha", rnd)
        # the fill that came after the answer stands; the order sent meanwhile stays ours
        assert (ours[C1].status, ours[C1].filled_qty) == (OrderStatus.FILLED, 1.0)
        assert ours[C2].origin == "ours" and ours[C2].status is None
    # an answer that is newer than our unchanged view is still taken (the venue is the truth)
    ours = {C1: ko(C1)}
    rnd = asyncio.run(reconcile_orders(VenueAhead(), ours, 10))
    apply(ours, "alpha", rnd)
    assert (ours[C1].status, ours[C1].filled_qty) == (OrderStatus.PARTIALLY_FILLED, 0.5)


class VenueAhead:
    name = "alpha"

    async def open_orders(self):
        return [vo(C1, OrderStatus.PARTIALLY_FILLED, 0.5)]

    async def fetch_order(self, coid, instrument=None):
        raise AssertionError("not asked")
