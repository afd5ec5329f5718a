"""A reconciliation mismatch, and the append-only log that keeps every one of them.

A mismatch is an event: the layer that found it, the key it is about (a client order id, an
instrument, a (venue, asset) pair), our value, the venue's value and the cause. It is never
silently overwritten: the log keeps every mismatch raised, and a later clean check appends a
resolution instead of deleting the record. `to_error` turns one into the typed
ReconciliationMismatch for callers that must stop on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import ReconciliationMismatch


class Layer(str, enum.Enum):
    ORDER = "order"
    POSITION = "position"
    BALANCE = "balance"
    REPORTING = "reporting"


@dataclass(frozen=True)
class Mismatch:
    layer: str
    key: str
    ours: Any
    theirs: Any
    cause: str
    ts_ns: int = 0

    def __post_init__(self):
        object.__setattr__(self, "layer", Layer(self.layer).value)  # a Layer or its name; unknown: ValueError
        object.__setattr__(self, "key", str(self.key))

    def to_error(self) -> ReconciliationMismatch:
        return ReconciliationMismatch(self.layer, self.key, self.ours, self.theirs, self.cause)


@dataclass(frozen=True)
class Resolution:
    """A mismatch that a later check found clean (or that an action repaired)."""

    layer: str
    key: str
    ts_ns: int
    how: str

    def __post_init__(self):
        object.__setattr__(self, "layer", Layer(self.layer).value)
        object.__setattr__(self, "key", str(self.key))


@dataclass
class ExceptionLog:
    """Every mismatch and resolution, in the order they happened. Open = raised, not resolved."""

    entries: list[Mismatch | Resolution] = field(default_factory=list)
    _open: dict[tuple[str, str], Mismatch] = field(default_factory=dict)

    def raise_(self, m: Mismatch) -> bool:
        """Record `m`; returns False when the same (layer, key) is already open with the same
        values and cause (a repeated observation of one mismatch is not a new one)."""
        prev = self._open.get((m.layer, m.key))
        if prev is not None and (prev.ours, prev.theirs, prev.cause) == (m.ours, m.theirs, m.cause):
            return False
        self.entries.append(m)
        self._open[(m.layer, m.key)] = m
        return True

    def resolve(self, layer: str, key: str, ts_ns: int, how: str) -> bool:
        """Close the open mismatch of (layer, key), if any, with a Resolution entry."""
        layer, key = Layer(layer).value, str(key)
        if self._open.pop((layer, key), None) is None:
            return False
        self.entries.append(Resolution(layer, key, ts_ns, how))
        return True

    def open(self) -> list[Mismatch]:
        return list(self._open.values())

    def mismatches(self) -> list[Mismatch]:
        return [e for e in self.entries if isinstance(e, Mismatch)]

    def counts(self) -> dict[str, int]:
        """Mismatches raised per layer (every layer present, zero included): report.json's
        `reconciliation` field."""
        out = {layer.value: 0 for layer in Layer}
        for m in self.mismatches():
            out[m.layer] = out.get(m.layer, 0) + 1
        return out
