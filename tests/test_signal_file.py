"""An external signal file's values are checked against what the record holds: out of range is
a SignalFileError naming the line, never a traceback and never a silent clamp."""

import orjson
import pytest
from orchestration import scenario

from basis_core.config import from_dict
from basis_core.engine.signals import load_signals
from basis_core.errors import BasisError, SignalFileError

LEGS = {"buy": "alpha-BTCUSDT", "sell": "beta-BTCUSDT", "edge_bps": 12.5}


def line(**fields) -> str:
    """One signal line: the two legs and an edge, then `fields` (None leaves a key out)."""
    obj = {**LEGS, **fields}
    return orjson.dumps({k: v for k, v in obj.items() if v is not None}).decode()


def load(tmp_path, *lines: str):
    cfg = from_dict(scenario())
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    return load_signals(tmp_path / "s.jsonl", cfg.registry(), set(cfg.instruments))


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"at_ms": 1e20, "ttl_ms": 250}, "at_ms must be <="),  # overflowed int64
        ({"at_ms": 1, "ttl_ms": 250, "strategy": 70000}, "strategy must be <= 65535"),  # was clamped
        ({"at_ms": 1, "ttl_ms": 250, "strategy": 1.5}, "strategy must be a whole number"),
        ({"at_ms": 1, "ttl_ms": 1e30}, "ttl_ms must be <="),  # was clamped
        ({"at_ms": 1, "ttl_ms": 0}, "ttl_ms must be > 0"),
        ({"at_ms": 1, "ttl_ms": 5, "buy": ["x"]}, "buy names ['x']"),  # was a TypeError
        ({"at_ms": 1}, "ttl_ms is missing"),
    ],
)
def test_a_value_out_of_range_is_a_typed_error_naming_the_line(tmp_path, fields, words):
    with pytest.raises(SignalFileError) as err:
        load(tmp_path, line(at_ms=0, ttl_ms=250), line(**fields))
    assert err.value.line == 2 and words in str(err.value)
    assert isinstance(err.value, BasisError) and str(err.value).startswith(str(tmp_path / "s.jsonl"))


def test_values_at_their_limits_are_carried_exactly(tmp_path):
    recs = load(tmp_path, line(at_ms=7, ttl_ms=4294967.295, strategy=65535, qty=0.5))
    assert int(recs["aux"][0]) == 65535 and int(recs["ttl_us"][0]) == 2**32 - 1
    assert int(recs["ts_ns"][0]) == 7_000_000 and float(recs["qty_hint"][0]) == 0.5


def test_a_missing_file_is_a_typed_error(tmp_path):
    cfg = from_dict(scenario())
    with pytest.raises(SignalFileError, match="cannot read"):
        load_signals(tmp_path / "none.jsonl", cfg.registry(), set(cfg.instruments))


def test_basis_check_opens_the_signal_file_and_checks_every_line(tmp_path, capsys):
    from basis_core import cli
    from basis_core.scenarios import DEFAULT

    path = tmp_path / "s.toml"
    path.write_text(DEFAULT.read_text() + '\n[signals]\nfile = "s.jsonl"\n')
    (tmp_path / "s.jsonl").write_text(line(at_ms=1, ttl_ms=5) + "\n")
    assert cli.main(["check", str(path)]) == 0
    assert "signals.file:" in capsys.readouterr().out
    (tmp_path / "s.jsonl").write_text(
        line(at_ms=1, ttl_ms=5) + "\n" + line(at_ms=2, ttl_ms=5, strategy=70000)
    )
    assert cli.main(["check", str(path)]) == 1
    assert "s.jsonl: line 2: strategy must be <= 65535" in capsys.readouterr().err
