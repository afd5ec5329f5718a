"""The single-file build: scripts/build-zipapp writes dist/basis.pyz, and that one file runs
basis with nothing else installed — a bare Python 3.11, a fresh directory, no virtualenv on
PATH, no PYTHONPATH, an empty HOME (so shiv extracts it anew and numba compiles the kernels
from cold, caching them where the extracted package lives).

The build (about 2 minutes) is reused while dist/basis.pyz is newer than every file of the
checkout it is built from; the first run from an empty HOME compiles the kernels (about a
minute on two cores)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PYZ = ROOT / "dist" / "basis.pyz"
MINIMAL_PATH = "/usr/bin:/bin"


def _sources() -> list[Path]:
    """The files the build copies: tracked and new files of the checkout (as the script does)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [ROOT / f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def _fresh() -> bool:
    if not PYZ.exists():
        return False
    built = PYZ.stat().st_mtime
    return all(p.stat().st_mtime < built for p in _sources() if p != PYZ)


def _bare_python() -> str:
    """A Python of the build's version with no basis dependency on its path: the system's
    python3 on a minimal PATH, or else the base interpreter under this test's virtualenv."""
    found = shutil.which("python3", path=MINIMAL_PATH)
    if found:
        version = subprocess.run(
            [found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        ).stdout.strip()
        if version == str(sys.version_info[:2]):
            return found
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def pyz() -> Path:
    if not _fresh():
        subprocess.run([str(ROOT / "scripts" / "build-zipapp")], cwd=ROOT, check=True, timeout=1200)
    assert PYZ.is_file()  # (a file edited while it was built makes the next test run rebuild it)
    return PYZ


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """An empty HOME shared by this module's runs: the first extracts the file into it."""
    return tmp_path_factory.mktemp("home")


def _run(pyz: Path, cwd: Path, home: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {"PATH": MINIMAL_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run(
        [_bare_python(), str(pyz), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_single_file_holds_the_extensions_and_the_package_data(pyz):
    names = set(zipfile.ZipFile(pyz).namelist())
    wanted = [f"site-packages/basis_ext/{pyx.stem}." for pyx in (ROOT / "ext").glob("*.pyx")]
    wanted += [
        f"site-packages/{p.relative_to(ROOT)}"
        for pattern in (
            "basis_core/scenarios/**/*.toml",
            "basis_core/scenarios/**/*.csv",
            "adapters/**/*.sol",
        )
        for p in ROOT.glob(pattern)
    ]
    assert len(wanted) > 8
    missing = [w for w in wanted if not any(n.startswith(w) for n in names)]
    assert not missing, missing
    assert any(n.startswith("site-packages/basis_ext/") and n.endswith(".so") for n in names)


def test_the_single_file_runs_the_default_scenario_on_a_bare_python(pyz, home, tmp_path):
    work = tmp_path / "work"
    work.mkdir()

    shown = _run(pyz, work, home, "--help", timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for command in ("run", "replay", "report", "check"):
        assert command in shown.stdout

    run_dir = tmp_path / "run"
    ran = _run(pyz, work, home, "run", "--duration", "5", "--run-dir", str(run_dir), timeout=600)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "decision digest" in ran.stdout
    for name in ("report.json", "report.html", "results.sqlite", "scenario.json"):
        assert (run_dir / name).exists(), name
    # the embedded scenario and the Cython extensions came from the extracted file, not this checkout
    assert str(ROOT) not in ran.stdout
    assert "/.shiv/" in ran.stdout.splitlines()[0]

    # numba cached the kernels beside the extracted package: a second run loads them
    cached = list((home / ".shiv").glob("*/site-packages/basis_core/**/__pycache__/*.nbi"))
    assert cached, "no numba cache index was written under ~/.shiv"
    again = _run(pyz, work, home, "run", "--duration", "1", "--run-dir", str(tmp_path / "run2"), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    ready = re.search(r"kernels ready in ([\d.]+) s", again.stdout)
    assert ready and float(ready.group(1)) < 15, again.stdout[:500]


def test_a_bad_argument_of_the_single_file_names_it_and_exits_2(pyz, home, tmp_path):
    out = _run(pyz, tmp_path, home, "run", "--duration", "soon", timeout=300)
    assert out.returncode == 2
    assert "argument --duration" in out.stderr
    assert os.listdir(tmp_path) == []  # nothing was run or written
