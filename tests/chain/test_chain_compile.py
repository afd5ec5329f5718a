"""The contracts build from source with solc-js, deterministically, and the build is cached by
source hash; a missing compiler or a broken source is a clear typed error."""

from __future__ import annotations

import shutil
import time

import pytest

from adapters.web3 import compile as build
from basis_core.errors import CompileError, ToolMissing

pytestmark = pytest.mark.chain


def test_cold_build_equals_the_session_build_and_the_second_build_is_a_cache_hit(
    tmp_path, monkeypatch, artifacts
):
    src = tmp_path / "src"
    shutil.copytree(build.CONTRACTS_DIR, src)
    monkeypatch.setenv("BASIS_SOLC_CACHE", str(tmp_path / "cache"))
    t0 = time.perf_counter()
    cold = build.compile_contracts(src)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = build.compile_contracts(src)
    t_warm = time.perf_counter() - t0
    assert cold == warm == artifacts  # byte-identical bytecode and ABI
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert t_warm < t_cold / 5
    print(f"solc-js cold build {t_cold * 1e3:.0f} ms, cached {t_warm * 1e3:.1f} ms")
    assert {"AtomicExecutor", "ConstantProductPool", "TestToken"} <= set(cold)
    errors = {e["name"] for e in cold["AtomicExecutor"].abi if e["type"] == "error"}
    assert errors == {"NotOwner", "Expired", "LegBelowMin", "ProfitBelowMin", "BrokenPath"}


def test_a_source_change_gets_a_new_cache_entry(tmp_path, monkeypatch):
    src = tmp_path / "src"
    shutil.copytree(build.CONTRACTS_DIR, src)
    std = build.standard_input(src)
    assert std["settings"]["evmVersion"] == "cancun"
    before = build.standard_input(src)
    (src / "TestToken.sol").write_text((src / "TestToken.sol").read_text() + "\n// changed\n")
    assert build.standard_input(src) != before


def test_broken_source_raises_compile_error_with_the_compiler_message(tmp_path, monkeypatch):
    monkeypatch.setenv("BASIS_SOLC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "Bad.sol").write_text("pragma solidity ^0.8.24; contract Bad { function f( }")
    with pytest.raises(CompileError) as info:
        build.compile_contracts(tmp_path)
    assert "Bad.sol" in str(info.value) and "ParserError" in str(info.value)
    with pytest.raises(CompileError):
        build.compile_contracts(tmp_path / "empty-dir-without-sources")


def test_missing_compiler_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BASIS_SOLCJS", str(tmp_path))
    with pytest.raises(ToolMissing) as info:
        build.compile_contracts()
    assert "scripts/bootstrap --test" in str(info.value)
