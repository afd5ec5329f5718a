"""External signals: a JSON-lines file, one signal per line, played into the engine as records.

Each line is an object:

    {"at_ms": 1500, "buy": "alpha-BTCUSDT", "sell": "beta-BTCUSDT", "edge_bps": 12.5,
     "ttl_ms": 250, "qty": 0.05, "strategy": 7}

`at_ms` is when the signal is created, in ms from the start of the run (at most 2**62 ns);
`buy` and `sell` are instrument names of the scenario; `ttl_ms` is > 0 and at most
4,294,967.295 (the record holds microseconds in 32 bits); `qty` (optional, 0 = let sizing
decide) caps the size; `strategy` (optional) is an integer id in 0..65535 carried into the
record. The engine re-checks every signal at dispatch time exactly like a built-in one: a
stale, unhealthy or unfundable signal is rejected with a counted reason, never sent. A
malformed line, or a value out of its range (never clamped), is a SignalFileError naming the
line, before anything runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson

from .. import schema as S
from ..errors import SignalFileError
from ..registry import Registry

__all__ = ["SignalFileError", "load_signals"]

_KEYS = {"at_ms", "buy", "sell", "edge_bps", "ttl_ms", "qty", "strategy"}

#: key -> (default (None: required), least, most, least excluded, whole number): each bound is
#: what the record's field holds (ts_ns an int64 once the run's start, <= 2**62, is added;
#: ttl_us a uint32; aux a uint16), so nothing is clamped
_NUMBERS: dict[str, tuple[float | None, float, float, bool, bool]] = {
    "at_ms": (None, 0.0, 2**62 / 1e6, False, False),
    "edge_bps": (None, -math.inf, math.inf, False, False),
    "ttl_ms": (None, 0.0, (2**32 - 1) / 1e3, True, False),
    "qty": (0.0, 0.0, math.inf, False, False),
    "strategy": (0, 0, 65535, False, True),
}


def _num(path: str, line_no: int, obj: dict, key: str) -> float:
    default, least, most, open_below, whole = _NUMBERS[key]
    value = obj.get(key, default)

    def bad(message: str) -> SignalFileError:
        return SignalFileError(path, f"{key} {message}, got {value!r}", line=line_no)

    if value is None:
        raise SignalFileError(path, f"{key} is missing", line=line_no)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad("must be a finite number")
    if value < least or (open_below and value == least):
        raise bad(f"must be {'>' if open_below else '>='} {least:g}")
    if value > most:
        raise bad(f"must be <= {most:g}")
    if whole and value != int(value):
        raise bad("must be a whole number")
    return float(value)


def load_signals(path: str | Path, registry: Registry, instruments: set[str]) -> np.ndarray:
    """Parse the file into SIGNAL records (ts_ns/created_ns hold the offset in ns from the start,
    to be shifted by the runner); sorted by time, ids numbered from 1 in file order."""
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise SignalFileError(str(p), f"cannot read: {exc.strerror or exc}") from None
    # (t, id, buy, sell, edge, ttl, qty, strategy)
    rows: list[tuple[int, int, str, str, float, int, float, int]] = []
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SignalFileError(str(p), f"not JSON ({exc})", line=line_no) from None
        if not isinstance(obj, dict):
            raise SignalFileError(str(p), "expected an object", line=line_no)
        unknown = sorted(set(obj) - _KEYS)
        if unknown:
            raise SignalFileError(str(p), f"unknown key {unknown[0]!r}", line=line_no)
        for leg in ("buy", "sell"):
            name = obj.get(leg)
            if not isinstance(name, str) or name not in instruments:
                raise SignalFileError(
                    str(p), f"{leg} names {name!r}, not an instrument of the scenario", line=line_no
                )
        if obj["buy"] == obj["sell"]:
            raise SignalFileError(str(p), "buy and sell are the same instrument", line=line_no)
        at, edge, ttl, qty, strategy = (_num(str(p), line_no, obj, key) for key in _NUMBERS)
        rows.append(
            (
                int(at * 1e6),
                len(rows) + 1,
                obj["buy"],
                obj["sell"],
                float(edge),
                int(ttl * 1000),
                qty,
                int(strategy),
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
        recs["ttl_us"][i] = ttl_us
        recs["qty_hint"][i] = qty
        recs["aux"][i] = strategy
        recs["sub"][i] = 3
        recs["source"][i] = S.Source.SIGNAL
    return recs
