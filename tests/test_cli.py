"""The `basis` command's shape: one module per subcommand, each with the same four parts,
and arguments checked before anything runs."""

import argparse

import pytest

from basis_core import cli
from basis_core.scenarios import DEFAULT


@pytest.mark.parametrize("command", cli.COMMANDS, ids=[c.NAME for c in cli.COMMANDS])
def test_every_command_module_has_the_same_shape_and_is_listed_in_help(command, capsys):
    assert isinstance(command.NAME, str) and isinstance(command.HELP, str) and command.__doc__
    assert callable(command.add_arguments) and callable(command.main)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    assert command.NAME in capsys.readouterr().out


def test_command_names_are_unique():
    names = [c.NAME for c in cli.COMMANDS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("value", ["0", "-3", "ten", "nan", "inf", "-1", "1e20"])
def test_run_refuses_a_bad_duration_naming_the_argument(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--duration", value, "--run-dir", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert "argument --duration" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_duration_the_generated_market_cannot_hold_is_refused_before_anything_runs(tmp_path, capsys):
    config = tmp_path / "fine.toml"
    config.write_text("[market]\nstep_s = 0.005\n")
    assert cli.main(["run", str(config), "--duration", "86400", "--run-dir", str(tmp_path / "run")]) == 1
    assert "market.step_s" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_run_help_says_it_drives_simulated_venues_only(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert 'kind = "sim"' in out and "refused" in out
    for option in ("--duration", "--out", "--run-dir"):
        assert option in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_run_overrides_keep_data_paths_relative_to_the_config_file(tmp_path, monkeypatch, capsys):
    """--duration and --out change [run] only: the recorded scenario still finds its CSV files
    from another working directory, and --out places NAME-TIMESTAMP under it."""
    monkeypatch.chdir(tmp_path)
    recorded = DEFAULT.parent / "recorded.toml"
    assert cli.main(["run", str(recorded), "--duration", "1", "--out", "elsewhere"]) == 0
    (run_dir,) = (tmp_path / "elsewhere").iterdir()
    assert run_dir.name.startswith("recorded-")
    assert (run_dir / "report.json").exists()
    assert "decision digest" in capsys.readouterr().out


def test_command_main_takes_a_namespace():
    args = cli.build_parser().parse_args(["check", str(DEFAULT)])
    assert isinstance(args, argparse.Namespace) and args.func is cli.check.main
