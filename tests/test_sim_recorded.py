"""Recorded market data is checked row by row before a run starts: a bad row is a DataFileError
naming the file, the line and the column, never a market task that dies while the run goes on."""

import pytest

from adapters.sim.recorded import check, load_csv
from adapters.sim.world import SimWorld
from basis_core import cli, config
from basis_core.errors import DataFileError

HEADER = "ts_ns,venue,instrument,side,price,qty\n"
GOOD = "1000000000,alpha,btc,bid,49999.00,0.5\n1000000000,alpha,btc,ask,50001.00,0.5\n"
GRIDS = {("alpha", "btc"): (0.01, 1e-5)}
SCENARIO = """[run]
duration_s = 2.0
[venues.alpha]
balances = { USDT = 10000.0, BTC = 1.0 }
[instruments.btc]
venue = "alpha"
symbol = "BTC/USDT"
base = "BTC"
[market]
source = "recorded"
books = "b.csv"
"""


def scenario(tmp_path, rows: str):
    (tmp_path / "b.csv").write_text(HEADER + GOOD + rows)
    (tmp_path / "s.toml").write_text(SCENARIO)
    return tmp_path / "s.toml"


@pytest.mark.parametrize(
    "row, column, words",
    [
        ("2000000000,alpha,btc,bid,49999.005,0.5", "price", "ticks"),  # off the tick grid
        ("2000000000,alpha,btc,bid,49999.00,0.000015", "qty", "lots"),  # off the lot grid
        ("2000000000,gamma,btc,bid,49999.00,0.5", "venue", "gamma/btc"),  # unknown venue
        ("2000000000,alpha,eth,bid,49999.00,0.5", "instrument", "alpha/eth"),  # unknown instrument
        ("2000000000,alpha,btc,bid,1e300,0.5", "price", "ticks"),  # beyond 2**53 ticks
    ],
)
def test_a_row_that_does_not_fit_the_scenario_is_refused_at_its_line(tmp_path, row, column, words):
    rec = load_csv(scenario(tmp_path, row + "\n").parent / "b.csv", "books")
    with pytest.raises(DataFileError) as err:
        check(rec, GRIDS)
    assert (err.value.row, err.value.column) == (4, column)
    assert "b.csv:4" in str(err.value) and words in str(err.value)


def test_the_world_checks_every_row_before_the_market_starts(tmp_path):
    """The off-tick row is the last one: it used to kill the market task when replay reached it."""
    path = scenario(tmp_path, "9000000000,alpha,btc,ask,50001.003,0.5\n")
    with pytest.raises(DataFileError) as err:
        SimWorld.from_config(config.load(path))
    assert err.value.row == 4 and err.value.column == "price"


def test_basis_run_on_a_bad_row_exits_1_with_the_error_and_runs_nothing(tmp_path, capsys):
    path = scenario(tmp_path, "2000000000,gamma,btc,bid,49999.00,0.5\n")
    run_dir = tmp_path / "run"
    assert cli.main(["run", str(path), "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "b.csv:4" in err and "gamma/btc" in err
    assert "Traceback" not in err and not (run_dir / "report.json").exists()


def test_a_row_earlier_than_the_one_before_is_refused_not_taken_as_the_time_origin(tmp_path):
    path = scenario(tmp_path, "500000000,alpha,btc,bid,49999.00,0.5\n")
    with pytest.raises(DataFileError) as err:
        load_csv(path.parent / "b.csv", "books")
    assert (err.value.row, err.value.column) == (4, "ts_ns")
    assert "time order" in str(err.value) and "line 3" in str(err.value)


@pytest.mark.parametrize("ts", ["100000000000000000000", "9223372036854775808", "-1"])
def test_a_timestamp_outside_int64_is_a_typed_error(tmp_path, ts):
    path = scenario(tmp_path, f"{ts},alpha,btc,bid,49999.00,0.5\n")
    with pytest.raises(DataFileError) as err:
        load_csv(path.parent / "b.csv", "books")
    assert (err.value.row, err.value.column) == (4, "ts_ns")


def test_rows_on_the_grid_in_time_order_pass_and_an_empty_level_is_allowed(tmp_path):
    path = scenario(tmp_path, "1000000000,alpha,btc,bid,49999.00,0\n2000000000,alpha,btc,ask,50001.01,1e-5\n")
    rec = load_csv(path.parent / "b.csv", "books")
    check(rec, GRIDS)
    assert rec.rows["line"].tolist() == [2, 3, 4, 5]


def test_basis_check_opens_the_data_files_and_checks_every_row(tmp_path, capsys):
    path = scenario(tmp_path, "2000000000,alpha,btc,ask,50001.00,0.5\n")
    assert cli.main(["check", str(path)]) == 0
    assert f"market.books: {tmp_path / 'b.csv'}: 3 rows" in capsys.readouterr().out
    (tmp_path / "b.csv").write_text(HEADER + GOOD + "2000000000,alpha,btc,ask,50001.003,0.5\n")
    assert cli.main(["check", str(path)]) == 1
    assert "b.csv:4 [price]" in capsys.readouterr().err
    (tmp_path / "b.csv").unlink()
    assert cli.main(["check", str(path)]) == 1
    assert "b.csv: cannot open" in capsys.readouterr().err


def test_a_line_that_is_not_utf8_text_is_a_typed_error_at_its_line(tmp_path):
    (tmp_path / "b.csv").write_bytes((HEADER + GOOD).encode() + b"2000000000,alp\x80ha,btc,bid,1,1\n")
    with pytest.raises(DataFileError) as err:
        load_csv(tmp_path / "b.csv", "books")
    assert err.value.row == 4 and "UTF-8" in str(err.value)
