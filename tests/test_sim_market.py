import asyncio

import numpy as np
import pytest
from test_sim_support import START_NS, Fault, FaultSchedule, VirtualClock, make_venue, running

from adapters.sim.market import Listing, MarketDriver, MarketModel, book_arrays, generate_mids
from adapters.sim.recorded import RecordedMarket, load, load_csv
from basis_core.errors import DataFileError
from basis_core.schema import OrderType, Side
from basis_core.venue import BookUpdate, Fill, OrderRequest, OrderStatus

LISTINGS = [
    Listing("alpha", "btc", "spot", 0.01, 1e-5),
    Listing("beta", "btc", "spot", 0.01, 1e-5),
    Listing("gamma", "btc", "perp", 0.1, 0.001),
]
FEES_BPS = 10.0 + 7.5  # two taker fees of the default scenario's spot venues


def episodes(mask: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate([[0], mask.astype(int)])) == 1))


def test_mids_are_correlated_across_venues_and_dislocate_beyond_fees():
    mids, premium = generate_mids(MarketModel(), LISTINGS, 36_000, seed=5)  # one hour
    returns = np.diff(np.log(mids[::600]), axis=0)  # 1-minute returns
    corr = np.corrcoef(returns.T)
    assert corr[0, 1] > 0.6 and corr[0, 2] > 0.3
    spread_bps = (mids[:, 0] / mids[:, 1] - 1) * 1e4
    assert episodes(np.abs(spread_bps) > FEES_BPS) >= 60  # cross-venue opportunities
    assert np.mean(np.abs(spread_bps) > FEES_BPS) < 0.5  # ... which do not last
    basis_bps = (mids[:, 2] / mids[:, 0] - 1) * 1e4
    assert 2 < np.mean(basis_bps) < 15  # perp trades at a premium
    assert episodes(basis_bps > 25) >= 10  # with excursions worth trading
    assert np.allclose(premium.mean(), 8.0, atol=5.0)


def test_same_seed_same_market_different_seed_different_market():
    a, _ = generate_mids(MarketModel(), LISTINGS, 500, seed=1)
    b, _ = generate_mids(MarketModel(), LISTINGS, 500, seed=1)
    c, _ = generate_mids(MarketModel(), LISTINGS, 500, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_depth_is_ordered_never_crossed_and_moves():
    model = MarketModel(levels=8)
    mids, _ = generate_mids(model, LISTINGS, 400, seed=3)
    for j, lst in enumerate(LISTINGS):
        bt, bl, at, al = book_arrays(model, lst, mids[:, j], seed=j)
        assert bt.shape == at.shape == (400, 8)
        assert np.all(np.diff(bt, axis=1) < 0) and np.all(np.diff(at, axis=1) > 0)
        assert np.all(bt[:, 0] < at[:, 0])
        assert np.all(bt[:, 0] * lst.tick <= mids[:, j]) and np.all(at[:, 0] * lst.tick >= mids[:, j])
        assert np.all(bl > 0) and np.std(bl[:, 0]) > 0 and np.any(bt[1:, 0] != bt[:-1, 0])
        assert np.mean(bl[:, -1]) > np.mean(bl[:, 0])  # deeper away from the touch


def test_volatility_spike_raises_realized_volatility_in_its_window():
    faults = FaultSchedule((Fault("volatility_spike", start_s=100.0, duration_s=100.0, magnitude=5.0),))
    model = MarketModel(dislocations_per_min=0.0, noise_bps=0.0)
    mids, _ = generate_mids(model, LISTINGS[:1], 3000, seed=9, faults=faults)
    r = np.diff(np.log(mids[:, 0]))
    calm, spike = np.std(r[:990]), np.std(r[1000:1990])
    assert 4.0 < spike / calm < 6.0


def test_price_gap_jumps_the_mid_and_silences_the_book_for_its_duration():
    clock = VirtualClock(START_NS)
    faults = FaultSchedule(
        (Fault("price_gap", venue="alpha", start_s=2.0, duration_s=1.5, magnitude=-80.0),), start_ns=START_NS
    )

    async def main():
        v = make_venue(clock, "alpha", faults=faults)
        async with running(v, watch=v) as (_, md):
            model = MarketModel(dislocations_per_min=0.0, vol_bps=0.5, noise_bps=0.0, trades_per_s=0.0)
            driver = MarketDriver({"alpha": v}, LISTINGS[:1], model, 6.0, seed=4, faults=faults)
            await driver.run()
        return driver, md

    driver, md = clock.run(main())
    step = int(2.0 / 0.1)
    jump = (driver.mids[step, 0] / driver.mids[step - 1, 0] - 1) * 1e4
    assert jump == pytest.approx(-80.0, abs=5.0)
    times = [(e.ts_ns - START_NS) / 1e9 for e in md if isinstance(e, BookUpdate)]
    assert not [t for t in times if 2.0 <= t < 3.5]
    assert [t for t in times if t < 2.0] and [t for t in times if t >= 3.5]


def test_participants_fill_our_resting_orders_through_the_driver():
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, "alpha")
        async with running(v, watch=v) as (user, _):
            model = MarketModel(trades_per_s=20.0, trade_qty=0.5)
            driver = MarketDriver({"alpha": v}, LISTINGS[:1], model, 20.0, seed=2)
            run = asyncio.get_running_loop().create_task(driver.run())
            await asyncio.sleep(0.15)
            bid = v.book("btc", 1)[0][0][0]
            await v.submit(OrderRequest("1", "btc", Side.BUY, OrderType.LIMIT, 0.01, bid))
            await run
        return user, v

    user, v = clock.run(main())
    assert [f for f in user if isinstance(f, Fill) and f.coid == "1"]
    assert v.exchange.engine("btc").query("basis", "1").status is OrderStatus.FILLED


BOOKS = """ts_ns,venue,instrument,side,price,qty
1000000000,alpha,btc,bid,49999.00,0.5
1000000000,alpha,btc,ask,50001.00,0.5
1500000000,alpha,btc,bid,49999.50,0.2
"""
TRADES = """ts_ns,venue,instrument,side,price,qty
2000000000,alpha,btc,sell,49999.50,0.25
"""


def test_recorded_books_and_trades_replay_into_the_venue(tmp_path):
    (tmp_path / "b.csv").write_text(BOOKS)
    (tmp_path / "t.csv").write_text(TRADES)
    books, trades = load_csv(tmp_path / "b.csv", "books"), load(tmp_path / "t.csv", "trades")
    assert books.listings == [("alpha", "btc")] and len(books.rows) == 3
    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, "alpha")
        async with running(v):
            market = RecordedMarket(books, trades)
            run = asyncio.get_running_loop().create_task(market.run({"alpha": v}))
            await asyncio.sleep(0.6)
            assert v.book("btc", 5) == ([(49999.5, 0.2), (49999.0, 0.5)], [(50001.0, 0.5)])
            await v.submit(OrderRequest("1", "btc", Side.BUY, OrderType.LIMIT, 0.1, 49999.5))
            await run
        return v

    v = clock.run(main())
    got = v.exchange.engine("btc").query("basis", "1")
    assert got.filled_qty == pytest.approx(0.05)  # 0.2 ahead of us, the trade was 0.25


@pytest.mark.parametrize(
    "row, line, column",
    [
        ("x,alpha,btc,bid,1,1", 3, "ts_ns"),
        ("1,alpha,btc,middle,1,1", 3, "side"),
        ("1,alpha,btc,bid,nan,1", 3, "price"),
        ("1,alpha,btc,bid,-5,1", 3, "price"),
        ("1,alpha,btc,bid,100,-1", 3, "qty"),
        ("1,,btc,bid,100,1", 3, "venue"),
        ("1,alpha,btc,bid,100", 3, None),
    ],
)
def test_malformed_csv_row_is_a_typed_error_naming_the_line(tmp_path, row, line, column):
    f = tmp_path / "bad.csv"
    f.write_text("ts_ns,venue,instrument,side,price,qty\n1,alpha,btc,bid,100,1\n" + row + "\n")
    with pytest.raises(DataFileError) as err:
        load_csv(f, "books")
    assert err.value.row == line and err.value.column == column
    assert f"bad.csv:{line}" in str(err.value)


def test_missing_column_and_parquet_without_pyarrow_are_clear_errors(tmp_path):
    f = tmp_path / "cols.csv"
    f.write_text("ts_ns,venue,side,price,qty\n")
    with pytest.raises(DataFileError) as err:
        load_csv(f, "trades")
    assert "instrument" in str(err.value) and err.value.row == 1
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(DataFileError) as err:
            load(tmp_path / "x.parquet", "books")
        assert "pyarrow" in str(err.value)


def test_book_records_carry_the_same_depth_as_the_published_snapshots():
    from basis_core import schema as S

    clock = VirtualClock(START_NS)

    async def main():
        v = make_venue(clock, "alpha")
        async with running(v, watch=v) as (_, md):
            driver = MarketDriver(
                {"alpha": v}, LISTINGS[:1], MarketModel(levels=4, trades_per_s=0.0), 1.0, seed=8
            )
            for step in range(3):
                driver.apply_step(step)
            await asyncio.sleep(0.01)
        return driver, [e for e in md if isinstance(e, BookUpdate)]

    driver, updates = clock.run(main())
    rec = driver.book_records([1], [1], 0, 3, start_ns=START_NS)
    assert rec.dtype == S.BOOK_LEVEL and len(rec) == 3 * (2 * 4 + 3)
    per = rec.reshape(3, -1)
    for step, upd in enumerate(updates):
        assert list(per[step]["action"][[0, 1, -1]]) == [S.BookAction.SNAPSHOT_BEGIN] * 2 + [
            S.BookAction.SNAPSHOT_END
        ]
        sets = per[step][per[step]["action"] == S.BookAction.SET]
        bids = [(p, q) for p, q, sd in zip(sets["price"], sets["qty"], sets["sub"]) if sd == Side.BUY]
        asks = [(p, q) for p, q, sd in zip(sets["price"], sets["qty"], sets["sub"]) if sd == Side.SELL]
        assert bids == list(upd.bids) and asks == list(upd.asks)
