"""Without the npm tools the chain tests fail loudly (they are never skipped in silence)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]


def test_chain_tests_fail_with_the_bootstrap_hint_when_anvil_is_missing(tmp_path):
    env = dict(os.environ, BASIS_ANVIL=str(tmp_path / "no-anvil"))
    target = "tests/chain/test_chain_atomic.py::test_trade_whose_simulation_fails_is_never_sent"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "scripts/bootstrap --test" in out.stdout
    assert "1 error" in out.stdout and "skipped" not in out.stdout
