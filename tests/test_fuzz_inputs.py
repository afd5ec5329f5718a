"""Property-based fuzz of every input file basis reads before a run: the config (TOML text, and
its tables with values replaced, removed or added), the recorded books/trades CSV, and the
external signals file (JSON lines). Each input gives its typed error (ConfigError,
DataFileError, SignalFileError) or a correct result, never another exception.

500 examples per format in CI; 10,000 with BASIS_SOAK=full.
"""

import copy
import math
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orchestration import scenario
from soak import SOAK

from adapters.sim.recorded import MAX_STEPS, check, load, load_csv
from basis_core import config
from basis_core.configio import build, to_plain
from basis_core.engine.signals import load_signals
from basis_core.errors import ConfigError, DataFileError, SignalFileError
from basis_core.scenarios import DEFAULT

EXAMPLES = 10_000 if SOAK == "full" else 500
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=SOAK != "full",  # CI: the same examples every run; full: new ones each time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- config ---------------------------------------------------------------------------------------

DEFAULT_TEXT = DEFAULT.read_text()
DEFAULT_DATA = tomllib.loads(DEFAULT_TEXT)

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53, 2**62, 2**63 - 1, 2**63, 2**64, 65535, 65536]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e-10, 1e20, 1e300, 1.7976931348623157e308]),
)
TOML_VALUES = st.recursive(
    st.one_of(NUMBERS, st.booleans(), st.text(max_size=12), st.sampled_from(["*", "sim", "BTC", "alpha"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _tables(data, path=()):
    """Every (path, table) of a nested TOML document, arrays of tables included."""
    yield path, data
    for key, value in data.items():
        items = [(key, value)] if isinstance(value, dict) else []
        if isinstance(value, list):
            items = [((key, i), v) for i, v in enumerate(value) if isinstance(v, dict)]
        for k, v in items:
            yield from _tables(v, (*path, k))


@st.composite
def mutated_config(draw):
    data = copy.deepcopy(DEFAULT_DATA)
    for _ in range(draw(st.integers(1, 4))):
        tables = list(_tables(data))
        _, table = draw(st.sampled_from(tables))
        action = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if action == "add" or not table:
            table[draw(st.text(max_size=10))] = draw(TOML_VALUES)
        elif action == "delete":
            del table[draw(st.sampled_from(sorted(table)))]
        else:
            table[draw(st.sampled_from(sorted(table)))] = draw(TOML_VALUES)
    return data


@FUZZ
@given(data=mutated_config())
def test_a_config_with_any_value_changed_loads_or_names_its_key_path(data):
    try:
        cfg = config.from_dict(data)
    except ConfigError as exc:
        assert str(exc)
        return
    # a correct result: its plain form loads back to the same config, and it has a registry
    assert build(config.Config, to_plain(cfg)) == cfg
    reg = cfg.registry()
    assert [reg.venues.name(reg.venue(v)) for v in cfg.venues] == list(cfg.venues)


@st.composite
def mutated_text(draw):
    text = DEFAULT_TEXT.encode()
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 12))
        text = (
            text[:at]
            + draw(st.binary(max_size=8) | st.sampled_from([b"=", b"[", b"]", b'"', b"\n"]))
            + text[at + cut :]
        )
    return text


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=mutated_text())
def test_any_config_text_loads_or_is_a_config_error(scratch, text):
    path = scratch / "c.toml"
    path.write_bytes(text)
    try:
        cfg = config.load(path)
    except ConfigError as exc:
        assert str(exc)
        return
    assert build(config.Config, to_plain(cfg)) == cfg


# -- recorded CSV ---------------------------------------------------------------------------------

GRIDS = {("alpha", "btc"): (0.01, 1e-5), ("beta", "btc"): (0.5, 1e-3)}
CELLS = {
    "ts_ns": st.one_of(
        st.integers(0, 3_000_000_000).map(str),
        st.sampled_from(["-1", "1e9", "9223372036854775807", "9223372036854775808", "", "x", "1.5"]),
    ),
    "venue": st.sampled_from(["alpha", "beta", "gamma", "", " alpha"]),
    "instrument": st.sampled_from(["btc", "eth", ""]),
    "side": st.sampled_from(["bid", "ask", "buy", "sell", "BID", "", "middle"]),
    "price": st.one_of(
        st.integers(1, 10**7).map(lambda n: f"{n * 0.01:.2f}"),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["0", "-5", "1e300", "nan", "inf", "", "abc", "50000.005"]),
    ),
    "qty": st.one_of(
        st.integers(0, 10**6).map(lambda n: f"{n * 1e-3:.3f}"),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["0", "-1", "1e-9", "1e300", "", "x"]),
    ),
}
COLUMNS = list(CELLS)


@st.composite
def csv_file(draw):
    header = draw(st.permutations(COLUMNS))
    if draw(st.integers(0, 9)) == 0:
        header = draw(st.lists(st.sampled_from([*COLUMNS, "extra", ""]), max_size=7))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 14)) == 0:  # a line that is not a row at all
            lines.append(draw(st.text(max_size=30)))
            continue
        row = {c: draw(CELLS[c]) for c in COLUMNS}
        lines.append(",".join(row.get(c, "") for c in header))
    body = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 19)) == 0:
        body += draw(st.binary(min_size=1, max_size=6))
    return body


@FUZZ
@given(body=csv_file(), kind=st.sampled_from(["books", "trades"]))
def test_any_recorded_csv_loads_and_checks_or_is_a_data_file_error(scratch, body, kind):
    path = scratch / "r.csv"
    path.write_bytes(body)
    try:
        rec = load_csv(path, kind)
        check(rec, GRIDS)
    except DataFileError as exc:
        assert exc.path == str(path) and str(exc).startswith(str(path))
        return
    # a correct result: rows in time order, every one on its listing's grid
    ts = rec.rows["ts_ns"].tolist()
    assert ts == sorted(ts)
    for r in rec.rows:
        tick, lot = GRIDS[rec.listings[int(r["listing"])]]
        price, qty = float(r["price"]), float(r["qty"])
        assert math.isfinite(price) and 0 < price / tick <= MAX_STEPS + 1
        assert abs(round(price / tick) * tick - price) <= 1e-9 * max(1.0, price)
        assert (qty == 0 and kind == "books") or abs(round(qty / lot) * lot - qty) <= 1e-9 * max(1.0, qty)


# -- external signals -----------------------------------------------------------------------------

SIGNAL_CFG = config.from_dict(scenario())
REGISTRY = SIGNAL_CFG.registry()
INSTRUMENTS = sorted(SIGNAL_CFG.instruments)
NOT_NAMES = st.one_of(
    st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2), st.text(max_size=6)
)
FIELD_VALUES = {
    "at_ms": NUMBERS,
    "buy": st.sampled_from([*INSTRUMENTS, "nowhere", ""]) | NOT_NAMES,
    "sell": st.sampled_from([*INSTRUMENTS, "nowhere"]) | NOT_NAMES,
    "edge_bps": NUMBERS,
    "ttl_ms": NUMBERS,
    "qty": NUMBERS,
    "strategy": NUMBERS,
    "size": NUMBERS,
}


@st.composite
def signal_file(draw):
    import orjson

    lines = []
    for _ in range(draw(st.integers(0, 8))):
        pick = draw(st.integers(0, 19))
        if pick == 0:
            lines.append(draw(st.binary(max_size=30)))
            continue
        keys = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), unique=True, max_size=8))
        if pick < 10:  # mostly the keys a signal has
            keys = [k for k in FIELD_VALUES if k != "size"] if pick < 6 else keys
        obj = {k: draw(FIELD_VALUES[k]) for k in keys}
        try:
            lines.append(orjson.dumps(obj))
        except (TypeError, orjson.JSONEncodeError):  # a number JSON cannot hold: write it as text
            lines.append(repr(obj).encode())
    return b"\n".join(lines)


@FUZZ
@given(body=signal_file())
def test_any_signal_file_loads_or_is_a_signal_file_error(scratch, body):
    path = scratch / "s.jsonl"
    path.write_bytes(body)
    try:
        recs = load_signals(path, REGISTRY, set(INSTRUMENTS))
    except SignalFileError as exc:
        assert exc.path == str(path)
        return
    reg = REGISTRY
    for i in range(len(recs)):
        assert 0 <= int(recs["ts_ns"][i]) <= 2**62 and int(recs["ttl_us"][i]) <= 2**32 - 1
        assert reg.instruments.name(int(recs["instrument"][i])) in INSTRUMENTS
        assert int(recs["instrument"][i]) != int(recs["sell_instrument"][i])
        assert math.isfinite(float(recs["edge_bps"][i])) and float(recs["qty_hint"][i]) >= 0


# -- recorded Parquet -----------------------------------------------------------------------------

#: a column's cells as Parquet holds them: text (as the CSV's), numbers, or another type
PARQUET_CELLS = {
    "ts_ns": st.one_of(
        st.integers(0, 3_000_000_000),
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([1.5, float("nan"), True]),
        CELLS["ts_ns"],
    ),
    "venue": st.one_of(CELLS["venue"], st.integers(0, 3), st.just(True)),
    "instrument": st.one_of(CELLS["instrument"], st.floats(0, 2)),
    "side": CELLS["side"],
    "price": st.one_of(
        st.integers(1, 10**7).map(lambda n: n * 0.01),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-5, 10**9),
        CELLS["price"],
    ),
    "qty": st.one_of(
        st.integers(0, 10**6).map(lambda n: n * 1e-3),
        st.floats(allow_nan=True, allow_infinity=True),
        CELLS["qty"],
    ),
}


@st.composite
def parquet_file(draw):
    """Bytes of a Parquet file with the CSV's columns (each of one drawn type, nulls allowed),
    or such a file cut off or with bytes changed, or bytes that are no Parquet at all."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(0, 8))
    columns = {}
    for c in draw(st.permutations(COLUMNS)):
        if draw(st.integers(0, 19)) == 0:
            continue  # a column missing
        kind = draw(st.sampled_from(["text", "native", "native", "null"]))
        cells = [draw(PARQUET_CELLS[c]) for _ in range(n)]
        if kind == "text":
            cells = [str(x) for x in cells]
        elif kind == "null" and cells:
            cells[draw(st.integers(0, n - 1))] = None
        try:
            columns[c] = pa.array(cells)
        except (pa.ArrowException, OverflowError, ValueError, TypeError):  # mixed types: as text
            columns[c] = pa.array([None if x is None else str(x) for x in cells])
    sink = io.BytesIO()
    pq.write_table(pa.table(columns) if columns else pa.table({"x": pa.array([], pa.int64())}), sink)
    body = sink.getvalue()
    damage = draw(st.integers(0, 9))
    if damage == 0:
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == 1:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at + 1 :]
    elif damage == 2:
        body = draw(st.binary(max_size=64))
    return body


@FUZZ
@given(body=parquet_file(), kind=st.sampled_from(["books", "trades"]))
def test_any_recorded_parquet_loads_and_checks_or_is_a_data_file_error(scratch, body, kind):
    pytest.importorskip("pyarrow")
    path = scratch / "r.parquet"
    path.write_bytes(body)
    try:
        rec = load(path, kind)
        check(rec, GRIDS)
    except DataFileError as exc:
        assert exc.path == str(path) and str(exc).startswith(str(path))
        return
    ts = rec.rows["ts_ns"].tolist()
    assert ts == sorted(ts)
    for r in rec.rows:
        assert rec.listings[int(r["listing"])] in GRIDS
        tick, lot = GRIDS[rec.listings[int(r["listing"])]]
        price, qty = float(r["price"]), float(r["qty"])
        assert math.isfinite(price) and 0 < price / tick <= MAX_STEPS + 1
        assert abs(round(price / tick) * tick - price) <= 1e-9 * max(1.0, price)
        assert (qty == 0 and kind == "books") or abs(round(qty / lot) * lot - qty) <= 1e-9 * max(1.0, qty)


def test_a_parquet_file_that_is_no_parquet_or_holds_a_null_or_a_bool_is_a_data_file_error(scratch):
    """Found by the fuzz: bytes that are no Parquet raised pyarrow's ArrowInvalid; a null venue
    was read as a venue named "None", a true price as "True" (refused only by luck)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = scratch / "bad.parquet"
    path.write_bytes(b"garbage")
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        load(path, "books")
    row = {"ts_ns": [1], "venue": ["alpha"], "instrument": ["btc"], "side": ["bid"], "price": [50_000.0]}
    for column, cells in (("venue", [None]), ("qty", [True])):
        pq.write_table(pa.table({**row, "qty": [0.5], column: cells}), str(path))
        with pytest.raises(DataFileError) as err:
            load(path, "books")
        assert (err.value.row, err.value.column) == (2, column)
