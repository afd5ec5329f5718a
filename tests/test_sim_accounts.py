import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sim.accounts import EXTERNAL, FEES, Accounts
from adapters.sim.exchange import Exchange
from adapters.sim.matching import FeeSchedule, Spec
from basis_core.errors import InsufficientFunds
from basis_core.schema import OrderType, RejectReason, Side
from basis_core.venue import OrderStatus

SPOT = Spec("BTC/USDT", "BTC", "USDT", tick=0.5, lot=0.01, min_notional=0.0)
PERP = Spec("BTC/USDT:USDT", "BTC", "USDT", tick=0.5, lot=0.01, kind="perp")
OWNERS = ("a", "b")


def spot_exchange(asset="quote", maker=-0.5, taker=7.5):
    ex = Exchange("v", {"spot": (SPOT, FeeSchedule(maker, taker, asset=asset, asset_price=50.0))})
    for owner in OWNERS:
        ex.accounts.deposit(owner, "BTC", 2 * 10**8)
        ex.accounts.deposit(owner, "USDT", 300 * 10**8)
        ex.accounts.deposit(owner, "BNB", 10**6)
    ex.accounts.deposit(FEES, "USDT", 10**8)  # room for maker rebates
    return ex


def check_invariants(ex: Exchange):
    acc = ex.accounts
    for owner in OWNERS:
        reserved: dict[str, int] = {}
        for res in acc.reservations(owner).values():
            for asset, atoms in res.items():
                assert atoms > 0
                reserved[asset] = reserved.get(asset, 0) + atoms
        for asset in acc.assets(owner):
            got = acc.get(owner, asset)
            assert got.free >= 0 and got.locked >= 0, (owner, asset, got)
            assert got.locked == reserved.get(asset, 0), (owner, asset)
    for asset in ("BTC", "USDT", "BNB"):
        assert acc.total(asset) == acc.external(asset)
    eng = ex.engine("spot")
    assert eng.live_orders() == len(eng.resting())


ops = st.lists(
    st.tuples(
        st.sampled_from(["order", "order", "order", "cancel", "level", "trade"]),
        st.sampled_from(OWNERS),
        st.sampled_from(list(Side)),
        st.sampled_from(list(OrderType)),
        st.integers(1, 40),  # lots
        st.integers(190, 210),  # price ticks (95.0 .. 105.0)
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, fee_asset=st.sampled_from(["quote", "received", "BNB"]), with_market=st.booleans())
def test_balances_never_go_negative_and_are_conserved_to_the_atom(ops, fee_asset, with_market):
    ex = spot_exchange(fee_asset)
    start = {(o, a): ex.accounts.get(o, a).total for o in OWNERS for a in ("BTC", "USDT", "BNB")}
    fees_start = {a: ex.accounts.get(FEES, a).total for a in ("BTC", "USDT", "BNB")}
    n = 0
    for kind, owner, side, otype, lots, px in ops:
        n += 1
        if kind == "order":
            ex.submit(owner, "spot", f"c{n}", side, otype, lots * SPOT.lot, px * SPOT.tick, ts_ns=n)
        elif kind == "cancel":
            live = ex.engine("spot").resting(owner)
            if live:
                ex.cancel(owner, "spot", live[n % len(live)].coid, ts_ns=n)
        elif with_market and kind == "level":
            ex.set_level("spot", side, px, lots, ts_ns=n)
        elif with_market and kind == "trade":
            ex.participant_trade("spot", side, lots, ts_ns=n)
        check_invariants(ex)
    for owner in OWNERS:
        for o in ex.engine("spot").resting(owner):
            ex.cancel(owner, "spot", o.coid)
        assert all(ex.accounts.get(owner, a).locked == 0 for a in ("BTC", "USDT", "BNB"))
    check_invariants(ex)
    if not with_market:
        # only our two owners traded: every atom is with them or in the fee sink
        for asset in ("BTC", "USDT", "BNB"):
            now = sum(ex.accounts.get(o, asset).total for o in OWNERS)
            paid = ex.accounts.get(FEES, asset).total - fees_start[asset]
            assert now + paid == sum(start[(o, asset)] for o in OWNERS)


def test_buy_reserves_notional_plus_fee_and_cancel_releases_it():
    ex = spot_exchange("quote", maker=2.0, taker=10.0)
    r = ex.submit("a", "spot", "x", Side.BUY, OrderType.LIMIT, 1.0, 100.0)
    assert r.order.status is OrderStatus.OPEN
    notional = 100 * 10**8
    assert ex.accounts.get("a", "USDT").locked == notional + notional * 10 // 10_000
    ex.cancel("a", "spot", "x")
    assert ex.accounts.get("a", "USDT").locked == 0
    assert ex.accounts.get("a", "USDT").free == 300 * 10**8


def test_order_beyond_free_balance_is_rejected_with_insufficient_funds_and_locks_nothing():
    ex = spot_exchange()
    r = ex.submit("a", "spot", "big", Side.BUY, OrderType.LIMIT, 3.0, 100.0)  # 300 USDT + fee > 300
    assert r.order.status is OrderStatus.REJECTED and r.order.reason == RejectReason.INSUFFICIENT_FUNDS
    r = ex.submit("a", "spot", "sell", Side.SELL, OrderType.LIMIT, 2.5, 100.0)
    assert r.order.reason == RejectReason.INSUFFICIENT_FUNDS
    assert ex.accounts.get("a", "USDT").locked == 0 and ex.accounts.get("a", "BTC").locked == 0


def test_fill_at_a_better_price_settles_exactly_and_releases_the_surplus():
    ex = spot_exchange("quote", maker=0.0, taker=10.0)
    ex.submit("b", "spot", "s", Side.SELL, OrderType.LIMIT, 0.5, 99.0)
    r = ex.submit("a", "spot", "x", Side.BUY, OrderType.LIMIT, 1.0, 100.0)
    assert r.order.status is OrderStatus.PARTIALLY_FILLED
    paid = 99 * 50 * 10**6
    fee = paid * 10 // 10_000
    rest = 50 * 10**8 + 50 * 10**8 * 10 // 10_000
    a = ex.accounts.get("a", "USDT")
    assert a.locked == rest
    assert a.free == 300 * 10**8 - paid - fee - rest
    assert ex.accounts.get("a", "BTC").free == 2 * 10**8 + 50 * 10**6
    assert ex.accounts.get("b", "USDT").free == 300 * 10**8 + paid
    assert ex.accounts.get(FEES, "USDT").free == 10**8 + fee


def test_accounts_refuse_moves_that_would_go_negative():
    acc = Accounts()
    acc.deposit("a", "USDT", 100)
    with pytest.raises(InsufficientFunds):
        acc.reserve("a", "k", "USDT", 101)
    with pytest.raises(InsufficientFunds):
        acc.withdraw("a", "USDT", 101)
    acc.reserve("a", "k", "USDT", 60)
    with pytest.raises(InsufficientFunds):
        acc.consume("a", "k", "USDT", 61, EXTERNAL)
    assert acc.get("a", "USDT").free == 40 and acc.get("a", "USDT").locked == 60
    assert acc.release("a", "k") == {"USDT": 60}


def test_perp_fills_move_no_base_and_realize_pnl_when_the_position_shrinks():
    ex = Exchange("p", {"perp": (PERP, FeeSchedule(0.0, 0.0))}, leverage={"perp": 10.0})
    ex.accounts.deposit("a", "USDT", 1000 * 10**8)
    ex.set_level("perp", Side.SELL, 200, 200)  # asks at 100.0
    ex.submit("a", "perp", "o1", Side.BUY, OrderType.LIMIT, 2.0, 100.0)
    pos = ex.position("a", "perp")
    assert pos.lots == 200 and ex.accounts.get("a", "BTC").total == 0
    assert ex.accounts.get("a", "USDT").total == 1000 * 10**8  # no notional moved, margin released
    ex.set_level("perp", Side.BUY, 220, 1000)  # bids at 110.0
    ex.submit("a", "perp", "o2", Side.SELL, OrderType.MARKET, 3.0)
    pos = ex.position("a", "perp")
    assert pos.lots == -100 and pos.cost == 220 * 100  # flipped short 1.0 at 110
    assert ex.accounts.get("a", "USDT").total == (1000 + 20) * 10**8
    paid = ex.apply_funding("perp", 110.0, 0.001)  # shorts receive when rate > 0
    assert paid == [("a", -11_000_000)]
    assert ex.accounts.get("a", "USDT").total == (1000 + 20) * 10**8 + 11_000_000
    assert ex.accounts.total("USDT") == ex.accounts.external("USDT")


def test_perp_order_needs_margin_not_notional():
    ex = Exchange("p", {"perp": (PERP, FeeSchedule(0.0, 5.0))}, leverage={"perp": 5.0})
    ex.accounts.deposit("a", "USDT", 30 * 10**8)
    r = ex.submit("a", "perp", "o1", Side.BUY, OrderType.LIMIT, 1.0, 100.0)  # 100 notional, 20 margin
    assert r.order.status is OrderStatus.OPEN
    assert ex.accounts.get("a", "USDT").locked == 20 * 10**8 + 100 * 10**8 * 5 // 10_000
    r = ex.submit("a", "perp", "o2", Side.BUY, OrderType.LIMIT, 1.0, 100.0)
    assert r.order.reason == RejectReason.INSUFFICIENT_FUNDS


def test_market_order_reservation_looks_past_the_owners_own_resting_orders():
    ex = spot_exchange("quote", maker=0.0, taker=0.0)
    ex.set_level("spot", Side.SELL, 220, 100)  # 1.0 BTC at 110 from the market
    ex.submit("a", "spot", "own", Side.SELL, OrderType.LIMIT, 1.0, 100.0)  # our own ask in front
    r = ex.submit("a", "spot", "m", Side.BUY, OrderType.MARKET, 1.0)
    assert ex.engine("spot").query("a", "own").status is OrderStatus.EXPIRED
    assert r.order.status is OrderStatus.FILLED and r.order.avg_price == 110.0
    check_invariants(ex)
    assert ex.accounts.get("a", "USDT").total == 300 * 10**8 - 110 * 10**8
    ex.accounts.deposit("c", "USDT", 105 * 10**8)
    ex.accounts.deposit("c", "BTC", 10**8)
    ex.set_level("spot", Side.SELL, 220, 100)
    ex.submit("c", "spot", "own", Side.SELL, OrderType.LIMIT, 1.0, 100.0)
    r = ex.submit("c", "spot", "m", Side.BUY, OrderType.MARKET, 1.0)  # 110 needed, 105 held
    assert r.order.status is OrderStatus.REJECTED and r.order.reason == RejectReason.INSUFFICIENT_FUNDS
    assert ex.accounts.get("c", "USDT").free == 105 * 10**8


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops)
def test_perp_ledger_never_goes_negative_and_conserves_quote(ops):
    ex = Exchange("p", {"spot": (PERP, FeeSchedule(-0.5, 7.5))}, leverage={"spot": 3.0})
    for owner in OWNERS:
        ex.accounts.deposit(owner, "USDT", 300 * 10**8)
    ex.accounts.deposit(FEES, "USDT", 10**8)
    signed = {o: 0 for o in OWNERS}
    for n, (kind, owner, side, otype, lots, px) in enumerate(ops, start=1):
        r = None
        if kind == "order":
            r = ex.submit(owner, "spot", f"c{n}", side, otype, lots * PERP.lot, px * PERP.tick, ts_ns=n)
        elif kind == "cancel":
            live = ex.engine("spot").resting(owner)
            if live:
                r = ex.cancel(owner, "spot", live[0].coid, ts_ns=n)
        elif kind == "level":
            r = ex.set_level("spot", side, px, lots, ts_ns=n)
        else:
            r = ex.participant_trade("spot", side, lots, ts_ns=n)
        for f in r.fills if r is not None and not r.duplicate else ():
            if f.owner in signed:
                signed[f.owner] += f.lots if f.side == Side.BUY else -f.lots
        check_invariants(ex)
        assert ex.accounts.get("a", "BTC").total == 0  # perps move no base asset
    for owner in OWNERS:
        assert ex.position(owner, "spot").lots == signed[owner]


def test_an_order_filling_at_several_prices_is_charged_the_fee_asset_only_while_it_lasts():
    # "a" holds BNB for the fee of one of its two fills: the match asks for both fees together, so
    # the second falls back to the received asset instead of overdrawing BNB at settlement
    ex = Exchange("v", {"spot": (SPOT, FeeSchedule(0.0, 10.0, asset="BNB", asset_price=50.0))})
    ex.accounts.deposit("a", "USDT", 300 * 10**8)
    ex.accounts.deposit("a", "BNB", 150_000)  # one fill's fee is 99,000 / 100,000 atoms
    ex.accounts.deposit("b", "BTC", 2 * 10**8)
    ex.submit("b", "spot", "s1", Side.SELL, OrderType.LIMIT, 0.5, 99.0)
    ex.submit("b", "spot", "s2", Side.SELL, OrderType.LIMIT, 0.5, 100.0)
    r = ex.submit("a", "spot", "x", Side.BUY, OrderType.LIMIT, 1.0, 100.0)
    taker = [f for f in r.fills if f.owner == "a"]
    assert r.order.status is OrderStatus.FILLED and len(taker) == 2
    assert [f.fee_asset for f in taker] == ["BNB", "BTC"]
    assert ex.accounts.get("a", "BNB").free == 150_000 - taker[0].fee_atoms >= 0
    assert ex.accounts.get("a", "BTC").free == 10**8 - taker[1].fee_atoms
