import dataclasses
import subprocess
import sys

import pytest
from orchestration import config_error

from basis_core import config
from basis_core.cli import main
from basis_core.scenarios import DEFAULT


def test_embedded_default_scenario_is_valid():
    cfg = config.load(DEFAULT)
    reg = cfg.registry()
    assert len(reg.venues) >= 2
    assert cfg.journal.fsync in ("every_n", "segment", "never")


def test_unknown_key_names_its_full_path(tmp_path):
    err = config_error(tmp_path, '[venues.alpha]\nkind = "sim"\ntaker_fee_bsp = 3\n')
    assert err.path == "venues.alpha.taker_fee_bsp"


@pytest.mark.parametrize(
    "body, path",
    [
        ("[rings]\nmd_slots = 1000\n", "rings.md_slots"),
        ('[journal]\nfsync = "sometimes"\n', "journal.fsync"),
        ('[run]\nduration_s = "ten"\n', "run.duration_s"),
        ("[run]\nseed = true\n", "run.seed"),
        ("[venues.a]\ntaker_fee_bps = -1\n", "venues.a.taker_fee_bps"),
        ('[instruments.x]\nvenue = "nowhere"\nsymbol = "BTC/USDT"\nbase = "BTC"\n', "instruments.x.venue"),
        ('[instruments.x]\nvenue = "a"\nbase = "BTC"\n[venues.a]\n', "instruments.x.symbol"),
        # values that used to pass the loader and end in a traceback (or a clamp) later
        ("[run]\nseed = -1\n", "run.seed"),
        ("[run]\nseed = 4294967296\n", "run.seed"),
        ("[run]\nduration_s = 1e20\n", "run.duration_s"),
        ("[run]\nstart_ns = 9223372036854775000\n", "run.start_ns"),
        ('[[faults]]\nkind = "maintenance"\nstart_s = 1e20\n', "faults[0].start_s"),
        ('[[faults]]\nkind = "maintenance"\nduration_s = 1e20\n', "faults[0].duration_s"),
        ("[run]\nduration_s = 3600.0\n[market]\nstep_s = 0.001\n", "market.step_s"),  # 36 M depth cells
        (
            '[venues.a]\n[instruments.x]\nvenue = "a"\nsymbol = "s"\nbase = "B"\ntick = 1e300\nlot = 1e300\n',
            "instruments.x.lot",
        ),  # tick*lot overflowed to inf: OverflowError
    ],
)
def test_bad_values_name_their_key_path(tmp_path, body, path):
    assert config_error(tmp_path, body).path == path


def test_config_objects_are_frozen():
    cfg = config.load(DEFAULT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.run.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.venues["new"] = None


def test_basis_check_prints_key_path_and_exits_non_zero(tmp_path, capsys):
    f = tmp_path / "typo.toml"
    f.write_text('[journal]\nfsnyc = "never"\n')
    assert main(["check", str(f)]) == 1
    assert "journal.fsnyc" in capsys.readouterr().err


def test_basis_check_accepts_the_default_scenario(capsys):
    assert main(["check", str(DEFAULT)]) == 0
    assert "ok" in capsys.readouterr().out


def test_basis_check_reports_toml_syntax_errors(tmp_path, capsys):
    f = tmp_path / "broken.toml"
    f.write_text("[run\nname=1")
    assert main(["check", str(f)]) == 1
    assert "syntax" in capsys.readouterr().err


def test_installed_basis_command_answers_help_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "basis_core", "--help"], capture_output=True, text=True, check=True
    )
    assert "check" in out.stdout and "run" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "basis_core", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("basis ")


def test_cython_sequencer_is_deterministic_and_restorable():
    from basis_ext.sequencer import Sequencer

    a, b = Sequencer(), Sequencer()
    assert [a.next(3) for _ in range(3)] == [b.next(3) for _ in range(3)] == [1, 2, 3]
    assert a.next(4) == 1
    a.restore(3, 100)
    assert a.next(3) == 101
    a.restore(3, 5)  # never backwards
    assert a.next(3) == 102
    with pytest.raises(ValueError):
        a.next(256)


def test_default_scenario_carries_balances_market_limits_and_faults():
    cfg = config.load(DEFAULT)
    kinds = {cfg.instruments[n].kind for n in cfg.instruments}
    assert kinds == {"spot", "perp"}
    assert all(v.balances for v in cfg.venues.values())
    assert cfg.market.source == "synthetic" and cfg.run.clock == "virtual"
    assert cfg.limits.max_order_usdt <= cfg.limits.max_position_usdt
    assert {f.kind for f in cfg.faults} >= {"timeout", "rate_limit", "maintenance"}
    assert "BNB" in cfg.registry().assets.by_name  # a fee asset is an asset of the run


def test_a_config_file_that_is_not_utf8_text_is_a_config_error(tmp_path, capsys):
    f = tmp_path / "latin.toml"
    f.write_bytes(b'[run]\nname = "caf\xe9"\n')
    assert main(["check", str(f)]) == 1
    assert "not UTF-8" in capsys.readouterr().err
