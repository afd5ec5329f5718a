"""report.json validation and writing, and `basis report RUN_DIR`: the summary it prints and the
self-contained HTML it writes (five inline SVG plots, nothing fetched from anywhere)."""

import argparse
import math
import re

import numpy as np
import orjson
import pytest
from ledger_fills import fill

from basis_core.accounting import Ledger
from basis_core.cli.report import main as report_main
from basis_core.errors import ResultsError
from basis_core.reconcile.mismatch import Mismatch
from basis_core.results import FIELDS, ResultsDB, RunReport, read_report, validate, write_report
from basis_core.results.record import HIST_LATENCY, record_exceptions, record_latency, record_ledger
from basis_core.results.stats import RESOLUTION, LatencyHistogram, latency_percentiles, percentile
from basis_core.schema import make_coid

T0 = 1_700_000_000_000_000_000


def sample_report(**over) -> RunReport:
    r = RunReport(
        events_processed=120_000,
        events_per_s=48_000.5,
        decision_latency_ns={"p50": 2_100.0, "p99": 9_000.0, "p999": 31_000.0},
        signals_seen=40,
        signals_rejected={"STALE": 3, "EDGE_GONE": 5},
        orders_submitted=50,
        orders_filled=44,
        hedges_completed=19,
        asymmetric_episodes=2,
        unwinds=1,
        max_residual_exposure_usdt=150.0,
        state_transitions=[
            {
                "t": T0 + 2e9,
                "machine": "engine",
                "from": "NORMAL",
                "to": "PROTECTIVE",
                "cause": "SYMMETRY_BREACH",
            }
        ],
        reconciliation={"order": 0, "position": 1, "balance": 0, "reporting": 0},
        realized_pnl_usdt=12.5,
        fees_usdt=3.25,
        slippage_usdt=-0.5,
        extra={"run_id": "r1"},
    )
    for k, v in over.items():
        setattr(r, k, v)
    return r


def test_report_json_round_trip_keeps_extra_fields(tmp_path):
    path = write_report(tmp_path / "report.json", sample_report())
    data = read_report(path)
    assert data["run_id"] == "r1" and data["signals_rejected"] == {"STALE": 3, "EDGE_GONE": 5}
    assert set(FIELDS) <= set(data)
    assert not (tmp_path / "report.json.tmp").exists()


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_report_json_missing_field_is_rejected_and_named(field, tmp_path):
    data = sample_report().as_dict()
    del data[field]
    with pytest.raises(ResultsError, match=field):
        write_report(tmp_path / "report.json", data)
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("events_processed", -1),
        ("events_processed", 1.5),
        ("events_processed", True),
        ("events_per_s", math.nan),
        ("decision_latency_ns", {"p50": 1.0, "p99": 2.0}),
        ("decision_latency_ns", {"p50": -1, "p99": 2, "p999": 3}),
        ("signals_rejected", {"STALE": "3"}),
        ("reconciliation", [1, 2]),
        ("realized_pnl_usdt", math.inf),
        ("fees_usdt", -0.1),
        ("state_transitions", [{"t": 1, "machine": "engine", "from": "NORMAL", "to": "HALTED"}]),
        ("state_transitions", [{"t": "x", "machine": "engine", "from": "a", "to": "b", "cause": "c"}]),
        ("max_residual_exposure_usdt", None),
    ],
)
def test_report_json_mistyped_field_is_rejected(field, value):
    data = sample_report().as_dict()
    data[field] = value
    with pytest.raises(ResultsError, match=field):
        validate(data)


def test_extra_field_may_not_shadow_a_required_one():
    with pytest.raises(ResultsError):
        sample_report(extra={"fees_usdt": 0.0}).as_dict()


def test_latency_percentiles():
    p = latency_percentiles(list(range(1, 1001)))
    assert p["p50"] == pytest.approx(500.5) and p["p99"] == pytest.approx(990.01) and p["p999"] > p["p99"]
    assert latency_percentiles([]) == {"p50": 0.0, "p99": 0.0, "p999": 0.0}
    with pytest.raises(ResultsError):
        latency_percentiles([1.0, math.nan])


def test_reports_and_benchmarks_take_one_percentile_numpys_linear_method():
    lat = [5, 1, 9, 3]  # ranks 1 3 5 9: the 99th lies 0.97 of the way from 5 to 9
    assert percentile(lat, 50) == 4.0 and percentile(lat, 99) == pytest.approx(8.88)
    assert latency_percentiles(lat) == {"p50": 4.0, "p99": percentile(lat, 99), "p999": percentile(lat, 99.9)}


def make_run_dir(tmp_path, with_db=True):
    run_dir = tmp_path / "run"
    (run_dir / "journal").mkdir(parents=True)
    write_report(run_dir / "report.json", sample_report())
    if not with_db:
        return run_dir
    led = Ledger(lambda a, t: 100.0)
    for i in range(1, 13):
        led.open_opportunity(i, "spread", 0.5, T0 + i * 10**8)
        sell_qty = 1.0 if i % 4 else 0.4
        led.book_fill(
            fill(
                "alpha",
                "buy",
                1.0,
                100.0,
                T0 + i * 10**8,
                make_coid(i, 0),
                f"a{i}",
                fee=0.02,
                opportunity_id=i,
                signal_px=99.99,
            )
        )
        led.book_fill(
            fill(
                "beta",
                "sell",
                sell_qty,
                100.6,
                T0 + i * 10**8 + 5 * 10**6,
                make_coid(i, 1),
                f"b{i}",
                fee=0.02,
                opportunity_id=i,
                signal_px=100.6,
            )
        )
    with ResultsDB(run_dir / "results.sqlite") as db:
        db.start_run("r1", "default", 7, T0)
        record_ledger(db, "r1", led)
        record_latency(db, "r1", [1_000 + 37 * k for k in range(500)])
        for t, m, key, a, b, cause in [
            (2, "engine", "", "NORMAL", "PROTECTIVE", "SYMMETRY_BREACH"),
            (3, "engine", "", "PROTECTIVE", "UNWINDING", "UNWIND_STARTED"),
            (4, "engine", "", "UNWINDING", "NORMAL", "POLICY_CHECKS_PASSED"),
            (1, "venue", "beta", "UP", "THROTTLED", "RATE_LIMITED"),
            (2.5, "venue", "beta", "THROTTLED", "UP", "THROTTLE_CLEARED"),
        ]:
            db.record_transition("r1", T0 + int(t * 1e9), m, key, a, b, cause)
        record_exceptions(
            db, "r1", [Mismatch("position", "BTC", 0.0, 0.6, "residual after hedge window", T0 + 2 * 10**9)]
        )
        db.end_run("r1", T0 + 5 * 10**9)
    return run_dir


def test_basis_report_prints_the_summary_and_writes_self_contained_html(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path)
    assert report_main(argparse.Namespace(run_dir=str(run_dir))) == 0
    out = capsys.readouterr().out
    assert "run r1" in out and "120,000" in out and "STALE=3" in out and "position=1" in out
    html = (run_dir / "report.html").read_text()
    svgs = re.findall(r"<svg class=\"plot (\w+)\".*?</svg>", html, flags=re.S)
    assert sorted(svgs) == ["bars", "histogram", "line", "line", "timeline"]
    # every plot drew data, none is an empty frame
    assert "no samples recorded" not in html and "no state transitions recorded" not in html
    assert html.count("<polyline") == 4  # net, realized, fees + residual
    assert html.count("</title></rect>") >= 12 + 5  # symmetry bars + timeline segments (+ histogram bins)
    assert "PROTECTIVE" in html and "residual after hedge window" in html
    # nothing to fetch: no URL, no script, no external stylesheet or image
    for needle in ("http:", "https:", "//", "<script", "<link", "src=", "url(", "@import"):
        assert needle not in html, needle


def test_report_without_a_results_database_still_renders_every_plot_frame(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path, with_db=False)
    assert report_main(argparse.Namespace(run_dir=str(run_dir))) == 0
    html = (run_dir / "report.html").read_text()
    assert html.count("<svg") == 5
    assert "no samples recorded" in html  # says so rather than drawing an invented line
    assert "PROTECTIVE" in html  # the timeline comes from report.json's transitions


def test_report_on_a_missing_or_broken_run_dir_is_a_typed_error(tmp_path):
    with pytest.raises(ResultsError):
        report_main(argparse.Namespace(run_dir=str(tmp_path / "nope")))
    (tmp_path / "report.json").write_bytes(orjson.dumps({"events_processed": 1}))
    with pytest.raises(ResultsError, match="fees_usdt"):
        report_main(argparse.Namespace(run_dir=str(tmp_path)))


def test_long_series_are_thinned_but_keep_their_spikes():
    from basis_core.results.report import MAX_POINTS, thin

    pts = [(i * 1000, float(i % 7)) for i in range(50_000)]
    pts[31_337] = (pts[31_337][0], 1e6)
    out = thin(pts)
    assert len(out) <= MAX_POINTS + 4 and out[0] == pts[0] and out[-1] == pts[-1]
    assert (pts[31_337][0], 1e6) in out and min(v for _, v in out) == 0.0
    assert [t for t, _ in out] == sorted(t for t, _ in out)
    short = pts[:100]
    assert thin(short) == short


def test_latency_histogram_percentiles_stay_within_its_resolution_of_the_exact_ones():
    rng = np.random.default_rng(3)
    for samples in (
        rng.lognormal(9.0, 1.5, 20_000),  # decision latencies: ~8 us, a long tail
        rng.integers(1, 10**9, 997).astype(float),
        np.array([2_000.0]),
        np.array([1.0, 5e8, 7.0, 3e4]),
    ):
        hist = LatencyHistogram()
        for x in samples:
            hist.add(x)
        assert len(hist) == len(samples)
        exact = latency_percentiles(samples)
        for key, value in hist.percentiles().items():
            assert abs(value - exact[key]) <= RESOLUTION * exact[key] * (1 + 1e-9), (key, value, exact[key])
    assert LatencyHistogram().percentiles() == {"p50": 0.0, "p99": 0.0, "p999": 0.0}
    one = LatencyHistogram()
    one.add(0)
    assert one.percentiles()["p50"] == 0.0


def test_a_latency_histogram_is_bounded_whatever_the_number_of_samples():
    hist = LatencyHistogram()
    size = len(hist.counts)
    for x in range(1, 200_000, 7):
        hist.add(float(x))
    hist.add(1e30)  # past the last bucket: counted in it
    assert len(hist.counts) == size and len(hist) == len(range(1, 200_000, 7)) + 1


def test_a_run_histogram_records_the_same_report_bins_as_its_samples(tmp_path):
    samples = [1_000 + 37 * k for k in range(500)] + [50, 5e9]
    hist = LatencyHistogram()
    for x in samples:
        hist.add(x)
    with ResultsDB(tmp_path / "a.sqlite") as a, ResultsDB(tmp_path / "b.sqlite") as b:
        record_latency(a, "r", samples)
        record_latency(b, "r", hist)
        (ea, ca), (eb, cb) = a.histogram("r", HIST_LATENCY), b.histogram("r", HIST_LATENCY)
    assert ea == eb and sum(ca) == sum(cb) == len(samples)
    # only a sample within half a bucket of a report edge may land on the other side of it
    near = sum(any(abs(x - e) <= RESOLUTION * e for e in ea) for x in samples)
    assert sum(abs(x - y) for x, y in zip(ca, cb, strict=True)) <= 2 * near < len(samples) / 4
