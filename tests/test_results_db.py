"""The SQLite results database: round trips of every table, fill de-duplication, order upserts,
append-only exceptions, refusal of files that are not results databases."""

import sqlite3

import pytest
from ledger_fills import fill

from basis_core.accounting import Ledger
from basis_core.errors import ResultsError
from basis_core.reconcile import ExceptionLog
from basis_core.reconcile.mismatch import Mismatch
from basis_core.results import ResultsDB
from basis_core.results.record import (
    HIST_LATENCY,
    SERIES_NET,
    SERIES_RESIDUAL,
    accounting_figures,
    record_exceptions,
    record_latency,
    record_ledger,
)
from basis_core.schema import OrderType, Side


class Order:
    """The fields of a venue order the results table stores (basis_core.venue.VenueOrder's names)."""

    def __init__(self, coid, status, filled_qty=0.0, avg_price=0.0, updated_ns=0):
        self.coid, self.instrument, self.side, self.type = coid, "BTCUSDT@alpha", Side.BUY, OrderType.LIMIT
        self.qty, self.price, self.status = 1.0, 100.0, status
        self.filled_qty, self.avg_price, self.created_ns, self.updated_ns = (
            filled_qty,
            avg_price,
            5,
            updated_ns,
        )


def spread_ledger():
    led = Ledger(lambda a, t: {"BTC": 100.0, "BNB": 300.0}[a])
    led.open_opportunity(3, "spread", 1.0, ts_ns=10)
    led.book_fill(
        fill(
            "alpha",
            "buy",
            1.0,
            100.0,
            20,
            48,
            "a1",
            fee=0.001,
            fee_asset="BNB",
            opportunity_id=3,
            signal_px=100.0,
        )
    )
    led.book_fill(fill("beta", "sell", 0.5, 102.0, 30, 49, "b1", fee=0.05, opportunity_id=3, signal_px=102.0))
    return led


def test_run_opportunities_fills_and_series_round_trip(tmp_path):
    path = tmp_path / "results.sqlite"
    led = spread_ledger()
    with ResultsDB(path) as db:
        db.start_run("r1", "default", 7, 1_000, {"run": {"seed": 7}}, "0.1.0")
        record_ledger(db, "r1", led, {3: "asymmetric"})
        record_ledger(db, "r1", led, {3: "asymmetric"})  # idempotent
        db.end_run("r1", 9_000)
    with ResultsDB(path, readonly=True) as db:
        (run,) = db.runs()
        assert run["run_id"] == "r1" and run["config"] == {"run": {"seed": 7}} and run["ended_ns"] == 9_000
        (opp,) = db.opportunities("r1")
        assert opp["realized_pnl_usdt"] == pytest.approx(1.0) and opp["fees_usdt"] == pytest.approx(0.35)
        assert opp["symmetry"] == pytest.approx(0.5) and opp["outcome"] == "asymmetric"
        assert opp["bought"] == {"BTC": 1.0} and opp["sold"] == {"BTC": 0.5}
        fills = db.fills("r1")
        assert [(f["venue"], f["coid"], f["fill_id"]) for f in fills] == [
            ("alpha", "48", "a1"),
            ("beta", "49", "b1"),
        ]
        assert fills[0]["fee_usdt"] == pytest.approx(0.3) and fills[0]["fee_asset"] == "BNB"
        net = db.series("r1", SERIES_NET)
        assert [t for t, _ in net] == [20, 30] and net[-1][1] == pytest.approx(1.0 - 0.35)
        assert db.series("r1", SERIES_RESIDUAL)[-1] == (
            30,
            pytest.approx(50.0 + 0.3),
        )  # 0.5 BTC + 0.001 BNB short


def test_fill_with_same_venue_coid_and_fill_id_is_stored_once(tmp_path):
    led = spread_ledger()
    with ResultsDB(tmp_path / "r.sqlite") as db:
        f, fee = led.fills[0]
        assert db.record_fill("r1", f, fee) is True
        assert db.record_fill("r1", f, fee) is False
        assert len(db.fills("r1")) == 1


def test_orders_are_upserted_and_transitions_and_exceptions_appended(tmp_path):
    with ResultsDB(tmp_path / "r.sqlite") as db:
        db.record_order("r1", "alpha", Order("17", "OPEN"), opportunity_id=1)
        db.record_order("r1", "alpha", Order("17", "FILLED", 1.0, 99.5, updated_ns=40), opportunity_id=1)
        db.record_order("r1", "alpha", Order("18", "OPEN"), origin="adopted")
        db.record_transition("r1", 50, "engine", "", "NORMAL", "PROTECTIVE", "SYMMETRY_BREACH")
        db.record_transition("r1", 60, "engine", "", "PROTECTIVE", "UNWINDING", "UNWIND_STARTED")
        m = Mismatch("balance", "alpha:BTC", 1.0, 0.9, "venue below ledger past the lag window", 70)
        record_exceptions(db, "r1", [m, m])
        assert db.resolve_exception("r1", "balance", "alpha:BTC", 80) == 2
        orders = {o["coid"]: o for o in db.orders("r1")}
        assert (
            orders["17"]["status"] == "FILLED"
            and orders["17"]["avg_price"] == 99.5
            and orders["17"]["side"] == "BUY"
        )
        assert orders["17"]["submitted_ns"] == 5 and orders["18"]["origin"] == "adopted"
        trs = db.transitions("r1")
        assert [(t["seq"], t["to_state"]) for t in trs] == [(1, "PROTECTIVE"), (2, "UNWINDING")]
        exc = db.exceptions("r1")
        assert [e["seq"] for e in exc] == [1, 2] and exc[0]["ours"] == 1.0 and exc[0]["resolved_ns"] == 80


def test_latency_histogram_keeps_every_sample(tmp_path):
    with ResultsDB(tmp_path / "r.sqlite") as db:
        samples = [50, 1_000, 1_200, 30_000, 5e9]  # below and above the edges too
        record_latency(db, "r1", samples)
        edges, counts = db.histogram("r1", HIST_LATENCY)
        assert sum(counts) == len(samples) and len(edges) == len(counts) + 1
        assert counts[0] == 1 and counts[-1] == 1


def test_bad_numbers_are_refused(tmp_path):
    with ResultsDB(tmp_path / "r.sqlite") as db:
        with pytest.raises(ResultsError):
            db.record_series("r1", "x", [(1, float("nan"))])
        with pytest.raises(ResultsError):
            db.end_run("nope", 1)
        with pytest.raises(ResultsError):
            db.record_histogram("r1", "h", [0, 1], [1, 2])


def test_opening_a_foreign_or_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(ResultsError):
        ResultsDB(tmp_path / "missing.sqlite", readonly=True)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(ResultsError):
        ResultsDB(other, readonly=True)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ResultsError):
        ResultsDB(junk)


def test_database_is_in_wal_mode(tmp_path):
    ResultsDB(tmp_path / "r.sqlite").close()
    con = sqlite3.connect(tmp_path / "r.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_accounting_figures_for_report_json():
    led = spread_ledger()
    log = ExceptionLog()
    log.raise_(Mismatch("order", "alpha:17", "open", None, "lost", 1))
    fig = accounting_figures(led, log)
    assert fig["realized_pnl_usdt"] == pytest.approx(1.0) and fig["fees_usdt"] == pytest.approx(0.35)
    assert fig["slippage_usdt"] == pytest.approx(0.0)
    assert fig["max_residual_exposure_usdt"] == pytest.approx(100.3)  # 1 BTC bought, before the sell
    assert fig["reconciliation"] == {"order": 1, "position": 0, "balance": 0, "reporting": 0}


def test_record_ledger_is_incremental_and_a_fresh_writer_rewrites_the_same_content(tmp_path):
    led = spread_ledger()
    path = tmp_path / "r.sqlite"
    with ResultsDB(path) as db:
        record_ledger(db, "r1", led)
        led.book_fill(fill("beta", "sell", 0.5, 103.0, 40, 50, "b2", opportunity_id=3, signal_px=102.0))
        led.open_opportunity(4, "basis", 2.0, ts_ns=45)
        record_ledger(db, "r1", led, {4: "skipped"})
        net = db.series("r1", SERIES_NET)
        opps = db.opportunities("r1")
    assert [t for t, _ in net] == [20, 30, 40]
    assert [(o["opportunity_id"], o["fills"], o["outcome"]) for o in opps] == [(3, 3, ""), (4, 0, "skipped")]
    with ResultsDB(path) as db:  # a resumed process: no watermark, the same rows again, no duplicates
        record_ledger(db, "r1", led, {4: "skipped"})
        assert db.series("r1", SERIES_NET) == net and len(db.fills("r1")) == 3
        assert db.opportunities("r1") == opps


def test_sealed_database_is_one_file_and_a_later_writer_turns_wal_back_on(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsDB(path) as db:
        db.start_run("r1", "t", 1, 0)
        db.record_series("r1", "x", [(1, 2.0)])
        db.seal()
    with ResultsDB(path, readonly=True) as db:
        assert db.series("r1", "x") == [(1, 2.0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]
    with ResultsDB(path) as db:
        assert db._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_mismatch_resolved_in_the_log_is_resolved_in_the_store_and_a_later_one_stays_open(tmp_path):
    log = ExceptionLog()
    log.raise_(Mismatch("balance", "alpha:BTC", 1.0, 0.9, "venue below ledger", 70))
    log.resolve("balance", "alpha:BTC", 80, "back within band")
    log.raise_(Mismatch("balance", "alpha:BTC", 1.0, 0.8, "venue below ledger", 90))
    log.raise_(Mismatch("order", "17", "FILLED", "OPEN", "status differs", 95))
    log.resolve("order", "17", 99, "agrees")
    with ResultsDB(tmp_path / "r.sqlite") as db:
        record_exceptions(db, "r1", log.entries)
        rows = [(e["layer"], e["key"], e["t_ns"], e["resolved_ns"]) for e in db.exceptions("r1")]
    assert rows == [
        ("balance", "alpha:BTC", 70, 80),
        ("balance", "alpha:BTC", 90, None),
        ("order", "17", 95, 99),
    ]
