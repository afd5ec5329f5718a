"""report.json: the run's headline figures, validated before they are written.

`write_report(path, data)` takes a RunReport or a plain dict, checks that every required field
is present with the right type (numbers finite and not negative where a count or a size is
meant), and writes it with orjson atomically (temporary file, fsync, rename). Extra fields are
kept. `read_report(path)` reads and validates. A missing or mistyped field raises ResultsError
naming every problem at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from ..errors import ResultsError
from .shortfall import TOTAL_KEYS as SHORTFALL_KEYS

_INT, _NUM, _NNUM = "count", "number", "non-negative number"
_TRANSITION_KEYS = ("t", "machine", "from", "to", "cause")

#: `state_transitions` is what the engine still held at the end (its newest engine and venue
#: changes, engine/core.py TRANSITIONS_KEPT, and every position's); a run writes beside it
#: `state_transitions_total` (every change of the run, all of them in results.sqlite) and, for
#: `anomalies` (the newest ANOMALIES_KEPT), `anomalies_total`.
#: field -> kind. "count" = int >= 0; "number" = finite float; "non-negative number" = finite >= 0;
#: "latency" = {p50, p99, p999} of non-negative numbers; "counts" = {str: count}; "transitions" =
#: [{t, machine, from, to, cause}].
FIELDS: dict[str, str] = {
    "events_processed": _INT,
    "events_per_s": _NNUM,
    "decision_latency_ns": "latency",
    "signals_seen": _INT,
    "signals_rejected": "counts",
    "orders_submitted": _INT,
    "orders_filled": _INT,
    "hedges_completed": _INT,
    "asymmetric_episodes": _INT,
    "unwinds": _INT,
    "max_residual_exposure_usdt": _NNUM,
    "state_transitions": "transitions",
    "reconciliation": "counts",
    "realized_pnl_usdt": _NUM,
    "fees_usdt": _NNUM,
    "slippage_usdt": _NUM,
}

#: fields checked when present (a report written before they existed stays valid):
#: "shortfall" = {opportunities: count, shortfall_usdt, shortfall_bps, execution_usdt,
#: unfilled_usdt: finite numbers, fees_usdt, paper_notional_usdt: finite numbers >= 0}
#: (results/shortfall.py)
OPTIONAL_FIELDS: dict[str, str] = {
    "implementation_shortfall": "shortfall",
}


@dataclass
class RunReport:
    """The required fields of report.json; `extra` is merged in as further top-level fields."""

    events_processed: int
    events_per_s: float
    decision_latency_ns: dict[str, float]
    signals_seen: int
    signals_rejected: dict[str, int]
    orders_submitted: int
    orders_filled: int
    hedges_completed: int
    asymmetric_episodes: int
    unwinds: int
    max_residual_exposure_usdt: float
    state_transitions: list[dict[str, Any]]
    reconciliation: dict[str, int]
    realized_pnl_usdt: float
    fees_usdt: float
    slippage_usdt: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        clash = set(out) & set(self.extra)
        if clash:
            raise ResultsError(f"extra fields shadow required ones: {sorted(clash)}")
        out.update(self.extra)
        return out


def _is_num(v: object) -> TypeGuard[int | float]:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _is_count(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= 0


def _check(name: str, kind: str, v) -> str | None:
    if kind == _INT:
        return None if _is_count(v) else f"{name}: expected an integer >= 0, got {v!r}"
    if kind == _NUM:
        return None if _is_num(v) else f"{name}: expected a finite number, got {v!r}"
    if kind == _NNUM:
        return None if _is_num(v) and v >= 0 else f"{name}: expected a finite number >= 0, got {v!r}"
    if kind == "latency":
        if not isinstance(v, dict):
            return f"{name}: expected {{p50, p99, p999}}, got {v!r}"
        bad = [k for k in ("p50", "p99", "p999") if not (_is_num(x := v.get(k)) and x >= 0)]
        return f"{name}: {', '.join(bad)} missing or not a number >= 0" if bad else None
    if kind == "counts":
        if not isinstance(v, dict) or not all(isinstance(k, str) and _is_count(c) for k, c in v.items()):
            return f"{name}: expected {{name: integer >= 0}}, got {v!r}"
        return None
    if kind == "transitions":
        if not isinstance(v, list):
            return f"{name}: expected a list of transitions, got {type(v).__name__}"
        for i, tr in enumerate(v):
            if not isinstance(tr, dict):
                return f"{name}[{i}]: expected a table, got {tr!r}"
            missing = [k for k in _TRANSITION_KEYS if k not in tr]
            if missing:
                return f"{name}[{i}]: missing {', '.join(missing)}"
            if not _is_num(tr["t"]) or not all(isinstance(tr[k], str) for k in _TRANSITION_KEYS[1:]):
                return f"{name}[{i}]: t must be a number and machine/from/to/cause strings"
        return None
    if kind == "shortfall":
        if not isinstance(v, dict):
            return f"{name}: expected a table of shortfall figures, got {v!r}"
        kinds = {"opportunities": _INT, "fees_usdt": _NNUM, "paper_notional_usdt": _NNUM}
        bad = [
            msg
            for k in SHORTFALL_KEYS
            if (msg := (f"{k}: missing" if k not in v else _check(f"{name}.{k}", kinds.get(k, _NUM), v[k])))
        ]
        return "; ".join(f"{name}.{b}" if b.endswith("missing") else b for b in bad) or None
    raise AssertionError(kind)


def validate(data: RunReport | dict) -> dict[str, Any]:
    """The report as a dict, or ResultsError listing every missing or mistyped field."""
    if isinstance(data, RunReport):
        data = data.as_dict()
    if not isinstance(data, dict):
        raise ResultsError(f"report must be a dict or RunReport, got {type(data).__name__}")
    problems = []
    for name, kind in FIELDS.items():
        if name not in data:
            problems.append(f"{name}: missing")
            continue
        msg = _check(name, kind, data[name])
        if msg:
            problems.append(msg)
    for name, kind in OPTIONAL_FIELDS.items():
        if name in data and (msg := _check(name, kind, data[name])):
            problems.append(msg)
    if problems:
        raise ResultsError("report.json is incomplete: " + "; ".join(problems))
    return data


def write_report(path: str | Path, data: RunReport | dict) -> Path:
    """Validate and write report.json atomically; returns the path written."""
    report = validate(data)
    try:
        blob = orjson.dumps(
            report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        )
    except TypeError as exc:
        raise ResultsError(f"report.json: a value cannot be written as JSON: {exc}") from None
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(blob + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report.json."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise ResultsError(f"no report.json at {path}") from None
    except orjson.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON: {exc}") from None
    return validate(data)
