"""External signals: a JSON-lines file, one signal per line, played into the engine as records.

Each line is an object:

    {"at_ms": 1500, "buy": "alpha-BTCUSDT", "sell": "beta-BTCUSDT", "edge_bps": 12.5,
     "ttl_ms": 250, "qty": 0.05, "strategy": 7}

`at_ms` is when the signal is created, in ms from the start of the run; `buy` and `sell` are
instrument names of the scenario; `qty` (optional, 0 = let sizing decide) caps the size;
`strategy` (optional) is a small integer id carried into the record. The engine re-checks every
signal at dispatch time exactly like a built-in one: a stale, unhealthy or unfundable signal
is rejected with a counted reason, never sent. A malformed line is a SignalFileError naming
the line, before anything runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson

from .. import schema as S
from ..errors import BasisError
from ..registry import Registry

_KEYS = {"at_ms", "buy", "sell", "edge_bps", "ttl_ms", "qty", "strategy"}


class SignalFileError(BasisError):
    """A line of an external signal file is not a valid signal."""


def _num(line_no: int, obj: dict, key: str, default=None, positive=False) -> float:
    value = obj.get(key, default)
    if value is None:
        raise SignalFileError(f"line {line_no}: {key} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SignalFileError(f"line {line_no}: {key} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise SignalFileError(f"line {line_no}: {key} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def load_signals(path: str | Path, registry: Registry, instruments: set[str]) -> np.ndarray:
    """Parse the file into SIGNAL records (ts_ns/created_ns hold the offset in ns from the start,
    to be shifted by the runner); sorted by time, ids numbered from 1 in file order."""
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise SignalFileError(f"{p}: {exc.strerror or exc}") from None
    # (t, id, buy, sell, edge, ttl, qty, strategy)
    rows: list[tuple[int, int, str, str, float, int, float, int]] = []
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SignalFileError(f"{p}: line {line_no}: not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise SignalFileError(f"{p}: line {line_no}: expected an object")
        unknown = sorted(set(obj) - _KEYS)
        if unknown:
            raise SignalFileError(f"{p}: line {line_no}: unknown key {unknown[0]!r}")
        for leg in ("buy", "sell"):
            if obj.get(leg) not in instruments:
                raise SignalFileError(
                    f"{p}: line {line_no}: {leg} names {obj.get(leg)!r}, not an instrument of the scenario"
                )
        if obj["buy"] == obj["sell"]:
            raise SignalFileError(f"{p}: line {line_no}: buy and sell are the same instrument")
        try:
            at = _num(line_no, obj, "at_ms")
            edge = obj.get("edge_bps")
            if (
                edge is None
                or isinstance(edge, bool)
                or not isinstance(edge, (int, float))
                or not math.isfinite(edge)
            ):
                raise SignalFileError(f"line {line_no}: edge_bps must be a finite number, got {edge!r}")
            ttl = _num(line_no, obj, "ttl_ms", positive=True)
            qty = _num(line_no, obj, "qty", 0.0)
            strategy = int(_num(line_no, obj, "strategy", 0))
        except SignalFileError as exc:
            raise SignalFileError(f"{p}: {exc}") from None
        rows.append(
            (
                int(at * 1e6),
                len(rows) + 1,
                obj["buy"],
                obj["sell"],
                float(edge),
                int(ttl * 1000),
                qty,
                strategy,
            )
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    recs = S.empty(S.Kind.SIGNAL, len(rows))
    for i, (t, sid, buy, sell, edge, ttl_us, qty, strategy) in enumerate(rows):
        recs["ts_ns"][i] = recs["created_ns"][i] = t
        recs["signal_id"][i] = sid
        recs["instrument"][i] = registry.instrument(buy)
        recs["sell_instrument"][i] = registry.instrument(sell)
        recs["edge_bps"][i] = edge
        recs["ttl_us"][i] = min(ttl_us, 2**32 - 1)
        recs["qty_hint"][i] = qty
        recs["aux"][i] = min(strategy, 65535)
        recs["sub"][i] = 3
        recs["source"][i] = S.Source.SIGNAL
    return recs
