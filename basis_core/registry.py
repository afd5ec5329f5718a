"""Names to small integer ids, in one place.

Venues fit a u8 (1..254), instruments and assets a u16 (1..65534); 0 means "none". Ids are
assigned in the order names are added, which for a run is the order of the config file, so
the same config always gives the same ids (journals replay byte for byte).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UnknownName

MAX_VENUES = 254
MAX_INSTRUMENTS = 65534


@dataclass
class _Names:
    label: str
    limit: int
    by_name: dict[str, int] = field(default_factory=dict)
    by_id: list[str] = field(default_factory=lambda: [""])

    def add(self, name: str) -> int:
        if not name or not isinstance(name, str):
            raise UnknownName(f"{self.label} name must be a non-empty string, got {name!r}")
        if name in self.by_name:
            return self.by_name[name]
        if len(self.by_id) > self.limit:
            raise UnknownName(f"too many {self.label}s (max {self.limit})")
        self.by_name[name] = len(self.by_id)
        self.by_id.append(name)
        return self.by_name[name]

    def id(self, name: str) -> int:
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownName(f"unknown {self.label} {name!r}; known: {sorted(self.by_name)}") from None

    def name(self, ident: int) -> str:
        if 0 < ident < len(self.by_id):
            return self.by_id[ident]
        raise UnknownName(f"unknown {self.label} id {ident}")

    def __len__(self) -> int:
        return len(self.by_id) - 1


class Registry:
    """Venue, instrument and asset ids for one run."""

    def __init__(self) -> None:
        self.venues = _Names("venue", MAX_VENUES)
        self.instruments = _Names("instrument", MAX_INSTRUMENTS)
        self.assets = _Names("asset", MAX_INSTRUMENTS)

    def venue(self, name: str) -> int:
        return self.venues.id(name)

    def instrument(self, name: str) -> int:
        return self.instruments.id(name)

    def asset(self, name: str) -> int:
        return self.assets.id(name)

    def as_dict(self) -> dict[str, list[str]]:
        """Serializable form, written beside a journal so ids can be read back as names."""
        return {
            "venues": self.venues.by_id[1:],
            "instruments": self.instruments.by_id[1:],
            "assets": self.assets.by_id[1:],
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[str]]) -> Registry:
        reg = cls()
        for name in data.get("venues", []):
            reg.venues.add(name)
        for name in data.get("instruments", []):
            reg.instruments.add(name)
        for name in data.get("assets", []):
            reg.assets.add(name)
        return reg
