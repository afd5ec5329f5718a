"""Time units as counts of nanoseconds, the unit of every timestamp in the records and of the
engine's clock: `250 * MS` is 250 ms in ns."""

from __future__ import annotations

US = 1_000
MS = 1_000_000
S = 1_000_000_000
