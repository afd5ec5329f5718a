"""The USDT ledger: conservation over random entry sequences, de-duplication, fee conversion,
transfers in flight, per-opportunity results and refusal of bad input."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_fills import fill

from basis_core.accounting import Ledger, Transfer, TransferStatus
from basis_core.errors import AccountingError, UnknownName
from basis_core.schema import make_coid

ASSETS = ("BTC", "ETH", "BNB")
VENUES = ("alpha", "beta", "gamma")


class Marks:
    """A mark per asset that the test moves over time: mark(asset, ts) looks up the last set value."""

    def __init__(self, **start):
        self.hist = {a: [(0, px)] for a, px in start.items()}

    def set(self, asset, ts, px):
        self.hist[asset].append((ts, px))

    def __call__(self, asset, ts):
        return [px for t, px in self.hist[asset] if t <= ts][-1]


def test_fee_in_non_quote_asset_is_converted_at_the_mark_at_fill_time():
    marks = Marks(BTC=100.0, BNB=300.0)
    led = Ledger(marks)
    marks.set("BNB", 10, 600.0)
    led.book_fill(fill(ts=5, fee=0.01, fee_asset="BNB", coid=1))
    assert led.fees_usdt == pytest.approx(3.0)  # 0.01 BNB at 300, the mark at ts=5
    led.book_fill(fill(ts=11, fee=0.01, fee_asset="BNB", coid=2))
    assert led.fees_usdt == pytest.approx(3.0 + 6.0)  # the second at 600
    assert led.balance("alpha", "BNB") == pytest.approx(-0.02)
    assert led.balance("alpha", "BTC") == pytest.approx(2.0)
    assert led.balance("alpha", "USDT") == pytest.approx(-200.0)


def test_fee_in_base_asset_reduces_the_base_balance_not_the_quote():
    led = Ledger(Marks(BTC=100.0))
    led.book_fill(fill(qty=1.0, price=100.0, fee=0.001, fee_asset="BTC"))
    assert led.balance("alpha", "BTC") == pytest.approx(0.999)
    assert led.balance("alpha", "USDT") == pytest.approx(-100.0)
    assert led.fees_usdt == pytest.approx(0.1)


def test_repeated_fill_report_is_booked_once():
    led = Ledger(Marks(BTC=100.0))
    f = fill(fee=0.1, fee_asset="USDT")
    assert led.book_fill(f) is True
    assert led.book_fill(f) is False
    assert led.book_fill(fill(fee=0.1, fee_asset="USDT", price=101.0)) is False  # same key, other content
    assert led.duplicates == 2
    assert led.balance("alpha", "BTC") == 1.0 and led.fees_usdt == pytest.approx(0.1)
    # same coid and fill id on another venue is another execution
    assert led.book_fill(fill(venue="beta", side="sell")) is True


def test_cross_venue_spread_realizes_the_price_difference_and_reports_the_opportunity():
    led = Ledger(Marks(BTC=100.0))
    led.open_opportunity(7, "spread", expected_edge_usdt=2.0)
    led.book_fill(
        fill(
            "alpha",
            "buy",
            2.0,
            100.0,
            coid=make_coid(7, 0),
            opportunity_id=7,
            strategy="spread",
            signal_px=99.9,
            fee=0.2,
        )
    )
    led.book_fill(
        fill("beta", "sell", 1.5, 101.0, coid=make_coid(7, 1), opportunity_id=7, signal_px=101.0, fee=0.15)
    )
    opp = led.opportunity(7)
    assert opp.realized_pnl_usdt == pytest.approx(1.5)
    assert opp.fees_usdt == pytest.approx(0.35)
    assert opp.slippage_usdt == pytest.approx(0.2)  # paid 0.1 above the signal on 2 coins
    assert opp.symmetry == pytest.approx(0.75)
    assert opp.expected_edge_usdt == 2.0 and opp.strategy == "spread"
    assert led.exposure_by_asset(2) == {"BTC": pytest.approx(50.0)}  # 0.5 BTC residual
    assert led.totals_by_strategy()["spread"].realized_pnl_usdt == pytest.approx(1.5)
    by_venue = led.totals_by_venue()
    assert (
        by_venue["alpha"].volume_usdt == pytest.approx(200.0) and by_venue["alpha"].realized_pnl_usdt is None
    )
    assert by_venue["beta"].fees_usdt == pytest.approx(0.15)


def test_perp_short_against_spot_long_is_flat_in_exposure_and_settles_realized_in_usdt():
    marks = Marks(BTC=100.0)
    led = Ledger(marks)
    led.book_fill(fill("alpha", "buy", 1.0, 100.0, coid=1))
    led.book_fill(fill("beta", "sell", 1.0, 102.0, coid=2, kind="perp"))
    assert led.exposure_by_asset(1) == {}
    marks.set("BTC", 5, 90.0)
    led.book_fill(fill("beta", "buy", 1.0, 90.0, coid=3, kind="perp", ts=6))
    assert led.balance("beta", "USDT") == pytest.approx(12.0)  # short from 102, covered at 90
    assert led.realized_pnl_usdt == pytest.approx(12.0)
    assert led.unrealized_pnl_usdt(6) == pytest.approx(-10.0)


def test_a_perp_position_held_at_the_start_is_opened_at_the_venues_entry_and_realizes_against_it():
    marks = Marks(BTC=110.0)
    led = Ledger(marks)
    led.deposit("beta", "USDT", 1000.0, 1)  # the margin wallet: earlier PnL already in it
    led.open_position("beta", "BTCUSDT@beta", "BTC", -2.0, 100.0, 1)
    assert led.perp_positions() == {("beta", "BTCUSDT@beta"): -2.0}
    assert led.opening_positions == {("beta", "BTCUSDT@beta"): (-2.0, 100.0)}
    # no cash, no fee, no fill: the wallet is what was deposited; the exposure it adds is none
    assert led.balance("beta", "USDT") == 1000.0 and led.fees_usdt == 0.0 and led.fills == []
    assert led.exposure_by_asset(1) == {}
    assert led.unrealized_pnl_usdt(1) == pytest.approx(-20.0)  # short from 100, mark 110
    assert led.equity_usdt(1) - led.contributed_usdt == pytest.approx(
        led.realized_pnl_usdt + led.unrealized_pnl_usdt(1) - led.fees_usdt
    )
    # covering half realizes against the venue's entry price, as the venue's wallet does
    led.book_fill(fill("beta", "buy", 1.0, 95.0, coid=3, kind="perp", ts=6, instrument="BTCUSDT@beta"))
    assert led.balance("beta", "USDT") == pytest.approx(1005.0)
    assert led.perp_positions() == {("beta", "BTCUSDT@beta"): -1.0}
    assert led.exposure_by_asset(6) == {"BTC": pytest.approx(110.0)}  # what the run's trade changed
    with pytest.raises(AccountingError, match="already holds"):
        led.open_position("beta", "BTCUSDT@beta", "BTC", 1.0, 100.0, 7)
    with pytest.raises(AccountingError, match="entry price"):
        led.open_position("gamma", "BTCUSDT@gamma", "BTC", 1.0, math.nan, 7)


def test_funding_is_realized_pnl_per_opportunity_not_a_fee():
    led = Ledger(Marks(BTC=100.0))
    led.book_funding("beta", "USDT", 1.25, 3, "funding:1", opportunity_id=4)
    led.book_funding("beta", "BTC", -0.01, 4, "funding:2", opportunity_id=4)
    assert led.realized_pnl_usdt == pytest.approx(0.25) and led.fees_usdt == 0.0
    assert led.opportunity(4).realized_pnl_usdt == pytest.approx(0.25)
    assert led.balance("beta", "BTC") == pytest.approx(-0.01)


def test_transfer_debits_when_sent_credits_on_confirm_and_returns_on_failure():
    led = Ledger(Marks(BTC=100.0))
    led.deposit("alpha", "BTC", 2.0, 0)
    t = dict(asset="BTC", amount=1.0, from_venue="alpha", to_venue="beta", ts_ns=1)
    assert led.book_transfer(Transfer("t1", status=TransferStatus.REQUESTED, **t))
    assert led.balance("alpha", "BTC") == 2.0
    assert led.book_transfer(Transfer("t1", status=TransferStatus.SENT, fee=0.01, **t))
    assert led.book_transfer(Transfer("t1", status=TransferStatus.SENT, fee=0.01, **t)) is False
    assert led.balance("alpha", "BTC") == pytest.approx(0.99) and led.balance("transit", "BTC") == 1.0
    assert led.pending_out("alpha", "BTC") == pytest.approx(1.01) and led.pending_in("beta", "BTC") == 1.0
    assert led.book_transfer(Transfer("t1", status=TransferStatus.CONFIRMED, **t))
    assert led.balance("beta", "BTC") == 1.0 and led.balance("transit", "BTC") == 0.0
    assert led.pending_transfers() == []
    with pytest.raises(AccountingError):
        led.book_transfer(Transfer("t1", status=TransferStatus.FAILED, **t))
    led.book_transfer(Transfer("t2", status=TransferStatus.CONFIRMING, **t))
    led.book_transfer(Transfer("t2", status=TransferStatus.FAILED, **t))
    assert led.balance("alpha", "BTC") == pytest.approx(0.99)
    assert led.fees_usdt == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(price=float("nan")),
        dict(price=-1.0),
        dict(qty=0.0),
        dict(qty=float("inf")),
        dict(fee=-0.1),
        dict(side="long"),
        dict(venue=""),
        dict(fid=""),
        dict(kind="option"),
    ],
)
def test_bad_fill_input_is_refused_with_a_typed_error(bad):
    with pytest.raises(AccountingError):
        fill(**bad)


def _raises_unknown(asset, ts):
    raise UnknownName(f"no market for {asset}")


@pytest.mark.parametrize("mark", [float("nan"), 0.0, -5.0, None, "raise-key", "raise-basis"])
def test_missing_or_broken_mark_books_nothing(mark):
    fn = {"raise-key": lambda a, t: {}[a], "raise-basis": _raises_unknown}.get(mark, lambda a, t: mark)
    led = Ledger(fn)
    with pytest.raises(AccountingError):
        led.book_fill(fill(fee=0.01, fee_asset="BNB"))
    assert led.postings == [] and led.balances() == {}
    # the same fill is not marked as seen: once a mark exists it books
    led._mark_fn = lambda a, t: 10.0
    assert led.book_fill(fill(fee=0.01, fee_asset="BNB"))


# -- conservation over random sequences ----------------------------------------------------------

price = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False)
amount = st.floats(min_value=0.001, max_value=10.0, allow_nan=False)

entry = st.one_of(
    st.tuples(
        st.just("fill"),
        st.sampled_from(VENUES),
        st.sampled_from(ASSETS[:2]),
        st.sampled_from(["buy", "sell"]),
        amount,
        price,
        st.floats(min_value=0, max_value=0.01),
        st.sampled_from(("USDT",) + ASSETS),
        st.sampled_from(["spot", "spot", "perp"]),
        st.integers(0, 3),
        st.integers(1, 40),
    ),
    st.tuples(
        st.just("transfer"),
        st.sampled_from(ASSETS),
        amount,
        st.sampled_from(VENUES),
        st.sampled_from(VENUES),
        st.lists(st.sampled_from(list(TransferStatus)), min_size=1, max_size=4),
        st.floats(0, 0.01),
    ),
    st.tuples(st.just("mark"), st.sampled_from(ASSETS), price),
    st.tuples(st.just("deposit"), st.sampled_from(VENUES), st.sampled_from(("USDT",) + ASSETS), amount),
    st.tuples(
        st.just("funding"),
        st.sampled_from(VENUES),
        st.sampled_from(("USDT", "BTC")),
        st.floats(min_value=-5, max_value=5, allow_nan=False),
        st.integers(0, 3),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(entry, max_size=40), st.lists(st.integers(0, 39), max_size=10))
def test_equity_change_equals_realized_plus_unrealized_minus_fees_and_repeats_are_ignored(entries, repeats):
    marks = Marks(BTC=100.0, ETH=10.0, BNB=5.0)
    led = Ledger(marks)
    booked = []
    ts = 0
    for n, e in enumerate(entries):
        ts += 1
        if e[0] == "fill":
            _, venue, base, side, qty, px, fee_rate, fee_asset, kind, opp, fid = e
            f = fill(
                venue,
                side,
                qty,
                px,
                ts=ts,
                coid=fid % 5 + 1,
                fid=str(fid),
                base=base,
                kind=kind,
                fee=qty * fee_rate,
                fee_asset=fee_asset,
                opportunity_id=opp,
                signal_px=px * 0.999,
            )
            if led.book_fill(f):
                booked.append(f)
        elif e[0] == "transfer":
            _, asset, amt, src, dst, states, fee = e
            for s in states:
                try:
                    led.book_transfer(Transfer(f"t{n}", asset, amt, src, dst, s, ts, fee))
                except AccountingError:
                    pass  # terminal-then-other-terminal is refused; the ledger is unchanged by it
        elif e[0] == "funding":
            led.book_funding(e[1], e[2], e[3], ts, f"funding:{n}", opportunity_id=e[4])
        elif e[0] == "mark":
            marks.set(e[1], ts, e[2])
        else:
            led.deposit(e[1], e[2], e[3], ts)
    before = led.balances()
    for i in repeats:
        if i < len(booked):
            assert led.book_fill(booked[i]) is False
    assert led.balances() == before
    # the identity: equity at the marks minus contributed capital == realized + unrealized - fees
    ts += 1
    lhs = led.equity_usdt(ts) - led.contributed_usdt
    rhs = led.realized_pnl_usdt + led.unrealized_pnl_usdt(ts) - led.fees_usdt
    scale = 1.0 + sum(abs(p.usdt) for p in led.postings)
    assert math.isclose(lhs, rhs, rel_tol=0, abs_tol=1e-9 * scale)
    # postings are the only source of balances
    sums = {}
    for p in led.postings:
        sums[(p.venue, p.asset)] = sums.get((p.venue, p.asset), 0.0) + p.delta
    assert all(math.isclose(sums.get(k, 0.0), v, abs_tol=1e-9 * scale) for k, v in led.balances().items())
    # fees split over opportunities and unattributed add up to the total
    assert sum(o.fees_usdt for o in led.opportunities()) <= led.fees_usdt + 1e-9 * scale
    assert math.isclose(
        sum(t.fees_usdt for t in led.totals_by_venue().values()), led.fees_usdt, abs_tol=1e-9 * scale
    )


round_trip = st.tuples(
    st.sampled_from(ASSETS[:2]),
    st.sampled_from(VENUES),
    st.sampled_from(VENUES),
    amount,
    price,
    price,
    st.sampled_from(("USDT",) + ASSETS),
    st.floats(0, 0.01),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(round_trip, max_size=15), st.randoms(use_true_random=False))
def test_flat_round_trips_change_usdt_value_by_exactly_realized_minus_fees(trips, rnd):
    """Every buy is matched by a sell of the same quantity (any venue, any price, interleaved in any
    order); marks fixed. With fees outside the traded assets the balance changes valued at the marks
    sum to exactly realized PnL minus fees; a repeated fill report changes nothing."""
    marks = {"BTC": 100.0, "ETH": 10.0, "BNB": 5.0}
    led = Ledger(lambda a, t: marks[a])
    legs = []
    for n, (base, v_buy, v_sell, qty, p_buy, p_sell, fee_asset, fee_rate, perp) in enumerate(trips):
        kind = "perp" if perp else "spot"
        if perp:
            v_sell = v_buy  # a perp position is per venue: a round trip closes it where it was opened
        for side, venue, px, coid, fid in (
            ("buy", v_buy, p_buy, 2 * n + 1, "b"),
            ("sell", v_sell, p_sell, 2 * n + 2, "s"),
        ):
            legs.append(
                fill(
                    venue,
                    side,
                    qty,
                    px,
                    coid=coid,
                    fid=fid,
                    base=base,
                    kind=kind,
                    fee=qty * fee_rate,
                    fee_asset=fee_asset,
                    opportunity_id=n + 1,
                )
            )
    rnd.shuffle(legs)
    for i, f in enumerate(legs):
        assert led.book_fill(f)
        if i % 3 == 0:
            assert not led.book_fill(f)
    value = sum(q * (1.0 if a == "USDT" else marks[a]) for (_, a), q in led.balances().items())
    scale = 1.0 + sum(abs(p.usdt) for p in led.postings)
    unrealized = led.unrealized_pnl_usdt(0)
    assert math.isclose(value, led.realized_pnl_usdt + unrealized - led.fees_usdt, abs_tol=1e-9 * scale)
    if all(t[6] in ("USDT", "BNB") for t in trips):
        # fees paid outside the traded assets: every traded position is flat, nothing is unrealized,
        # and realized is the sum of (sell - buy) * qty, whatever the booking order
        assert unrealized == pytest.approx(0.0, abs=1e-9 * scale)
        assert math.isclose(value, led.realized_pnl_usdt - led.fees_usdt, abs_tol=1e-9 * scale)
        spread = sum((t[5] - t[4]) * t[3] for t in trips)
        assert math.isclose(led.realized_pnl_usdt, spread, abs_tol=1e-9 * scale)
