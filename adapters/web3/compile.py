"""Build the Solidity sources in contracts/ with solc-js (standard JSON) and cache the result.

`compile_contracts()` returns {contract name: Artifact(abi, bytecode, deployed_bytecode)}.
The compiler runs as `node <solc>/solc.js --standard-json` (stdin: the input JSON; stdout: a
`>>>` banner line, then the output JSON). The evmVersion is set explicitly (solc-js defaults to
the newest fork, which a node may not run). Artifacts are cached as JSON under a build
directory keyed by the SHA-256 of (compiler version, input JSON), so a source change, a setting
change or a compiler change each rebuilds; the cache directory is never committed.

Locations: the solc-js package is found at $BASIS_SOLCJS or <repo>/tools/node_modules/solc;
the cache at $BASIS_SOLC_CACHE or <repo>/build/solc (falling back to the user cache dir when
the repo is read-only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from basis_core.errors import CompileError, ToolMissing

from .constants import EVM_VERSION, OPTIMIZER_RUNS

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
REPO_ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP_HINT = (
    "run scripts/bootstrap --test to install the npm tools (anvil, solc-js) into tools/node_modules"
)


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One compiled contract: its ABI (list of dicts) and creation / runtime bytecode (0x-hex)."""

    name: str
    abi: tuple
    bytecode: str
    deployed_bytecode: str


def solcjs_dir() -> Path:
    """The solc-js package directory; ToolMissing if it is not installed."""
    d = Path(os.environ.get("BASIS_SOLCJS", REPO_ROOT / "tools" / "node_modules" / "solc"))
    if not (d / "solc.js").is_file():
        raise ToolMissing(f"solc-js not found at {d}: {BOOTSTRAP_HINT}")
    if shutil.which("node") is None:
        raise ToolMissing("node is not on PATH; solc-js needs it")
    return d


def solc_version(d: Path) -> str:
    """The solc-js package version from its package.json (no compiler start-up needed)."""
    return json.loads((d / "package.json").read_text())["version"]


def standard_input(sources_dir: Path = CONTRACTS_DIR, evm_version: str = EVM_VERSION) -> dict:
    """The standard-JSON input for every .sol file in `sources_dir`, in sorted name order."""
    files = sorted(sources_dir.glob("*.sol"))
    if not files:
        raise CompileError(f"no .sol files in {sources_dir}")
    return {
        "language": "Solidity",
        "sources": {f.name: {"content": f.read_text()} for f in files},
        "settings": {
            "evmVersion": evm_version,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }


def _cache_dir() -> Path:
    env = os.environ.get("BASIS_SOLC_CACHE")
    if env:
        return Path(env)
    d = REPO_ROOT / "build" / "solc"
    try:
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "basis" / "solc"


def run_solc(std_input: dict, solc_dir: Path | None = None, timeout_s: float = 120.0) -> dict:
    """Run solc-js once on `std_input`; return the output JSON. CompileError on any error."""
    d = solc_dir or solcjs_dir()
    proc = subprocess.run(
        ["node", str(d / "solc.js"), "--standard-json"],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    text = proc.stdout
    start = text.find("{")
    if proc.returncode != 0 or start < 0:
        raise CompileError(f"solc-js exited {proc.returncode}: {(proc.stderr or text)[:2000]}")
    try:
        out = json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise CompileError(f"solc-js printed no parsable JSON: {exc}") from None
    errors = [e for e in out.get("errors", ()) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e.get("message", "?")) for e in errors))
    return out


def _artifacts(out: dict) -> dict[str, Artifact]:
    arts = {}
    for _file, contracts in sorted(out.get("contracts", {}).items()):
        for name, c in sorted(contracts.items()):
            arts[name] = Artifact(
                name,
                tuple(c["abi"]),
                "0x" + c["evm"]["bytecode"]["object"],
                "0x" + c["evm"]["deployedBytecode"]["object"],
            )
    return arts


def compile_contracts(
    sources_dir: Path = CONTRACTS_DIR, evm_version: str = EVM_VERSION, use_cache: bool = True
) -> dict[str, Artifact]:
    """Compile (or load from cache) every contract in `sources_dir`. Deterministic: the same
    sources, settings and compiler give byte-identical artifacts."""
    d = solcjs_dir()
    std = standard_input(sources_dir, evm_version)
    key = hashlib.sha256((solc_version(d) + "\n" + json.dumps(std, sort_keys=True)).encode()).hexdigest()
    cache = _cache_dir() / f"{key[:32]}.json"
    if use_cache and cache.is_file():
        try:
            return _artifacts(json.loads(cache.read_text()))
        except (json.JSONDecodeError, KeyError):
            pass  # a torn cache file: rebuild it
    out = run_solc(std, d)
    slim = {"contracts": out.get("contracts", {})}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(slim, sort_keys=True))
        os.replace(tmp, cache)
    except OSError:
        pass  # an unwritable cache only costs a rebuild next time
    return _artifacts(slim)
