"""Embedded scenario files; `default.toml` is what `basis run` uses with no argument."""

from pathlib import Path

SCENARIO_DIR = Path(__file__).parent
DEFAULT = SCENARIO_DIR / "default.toml"
