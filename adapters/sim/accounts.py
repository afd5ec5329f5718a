"""Balances of a venue's account holders in integer atoms, with reservations per order.

Every amount is an int of atoms (10**-decimals of the asset), so conservation is exact: an
operation only moves atoms between holders' `free`/`locked`, the venue's fee sink (`FEES`)
and the outside world (`EXTERNAL`: counterparties without an account, deposits, withdrawals).
For every asset, the sum over all holders including FEES and EXTERNAL is always zero plus
what was created by `deposit` from EXTERNAL — i.e. `total(asset)` over real holders + FEES
equals the net inflow from EXTERNAL, to the atom.

Invariants (checked on every operation, InsufficientFunds otherwise):
  * a real holder's free and locked are never negative;
  * locked(owner, asset) == sum of that owner's open reservations in that asset.

A reservation belongs to one order key; `consume` pays out of it, `trim` gives back what is
no longer needed, `release` gives back all of it (order canceled/expired/filled).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from basis_core.errors import InsufficientFunds

FEES = "__fees__"
EXTERNAL = "__external__"


@dataclass(frozen=True)
class Amounts:
    free: int
    locked: int

    @property
    def total(self) -> int:
        return self.free + self.locked


class Accounts:
    """Free/locked balances per (owner, asset) and reservations per (owner, key)."""

    def __init__(self, decimals: dict[str, int] | None = None, default_decimals: int = 8):
        self.decimals = dict(decimals or {})
        self.default_decimals = default_decimals
        self._free: dict[tuple[str, str], int] = defaultdict(int)
        self._locked: dict[tuple[str, str], int] = defaultdict(int)
        self._res: dict[tuple[str, str], dict[str, int]] = {}
        self.version = 0  # increases on every change (balance update ids)

    # -- conversions ----------------------------------------------------------------------

    def scale(self, asset: str) -> int:
        return 10 ** self.decimals.get(asset, self.default_decimals)

    def to_atoms(self, asset: str, amount: float) -> int:
        return round(amount * self.scale(asset))

    def to_float(self, asset: str, atoms: int) -> float:
        return atoms / self.scale(asset)

    # -- queries --------------------------------------------------------------------------

    def get(self, owner: str, asset: str) -> Amounts:
        return Amounts(self._free.get((owner, asset), 0), self._locked.get((owner, asset), 0))

    def free(self, owner: str, asset: str) -> int:
        return self._free.get((owner, asset), 0)

    def owners(self) -> list[str]:
        return sorted({o for o, _ in self._free} | {o for o, _ in self._locked})

    def assets(self, owner: str | None = None) -> list[str]:
        keys = set(self._free) | set(self._locked)
        return sorted({a for o, a in keys if owner is None or o == owner})

    def total(self, asset: str) -> int:
        """Sum of free+locked of every holder except EXTERNAL (FEES included)."""
        return sum(v for (o, a), v in self._free.items() if a == asset and o != EXTERNAL) + sum(
            v for (o, a), v in self._locked.items() if a == asset and o != EXTERNAL
        )

    def external(self, asset: str) -> int:
        """Net atoms that came in from outside (deposits, counterparties without accounts)."""
        return -self._free.get((EXTERNAL, asset), 0)

    def reservation(self, owner: str, key: str) -> dict[str, int]:
        return dict(self._res.get((owner, key), {}))

    def reservations(self, owner: str) -> dict[str, dict[str, int]]:
        return {k: dict(v) for (o, k), v in self._res.items() if o == owner}

    # -- moves ----------------------------------------------------------------------------

    def deposit(self, owner: str, asset: str, atoms: int) -> None:
        """Credit `atoms` from outside (initial balances, incoming transfers)."""
        self._need(atoms >= 0, owner, asset, atoms, 0)
        self._move_free(EXTERNAL, owner, asset, atoms)

    def withdraw(self, owner: str, asset: str, atoms: int) -> None:
        """Debit `atoms` of free balance to the outside (outgoing transfers)."""
        self._move_free(owner, EXTERNAL, asset, atoms)

    def transfer_free(self, src: str, dst: str, asset: str, atoms: int) -> None:
        """Move free atoms between holders (negative amounts move the other way)."""
        if atoms >= 0:
            self._move_free(src, dst, asset, atoms)
        else:
            self._move_free(dst, src, asset, -atoms)

    def reserve(self, owner: str, key: str, asset: str, atoms: int) -> None:
        """Lock `atoms` of free balance for order `key`; InsufficientFunds leaves nothing changed."""
        if atoms == 0:
            return
        have = self._free.get((owner, asset), 0)
        self._need(0 < atoms <= have, owner, asset, atoms, have)
        self._free[(owner, asset)] = have - atoms
        self._locked[(owner, asset)] += atoms
        res = self._res.setdefault((owner, key), {})
        res[asset] = res.get(asset, 0) + atoms
        self.version += 1

    def consume(self, owner: str, key: str, asset: str, atoms: int, to: str) -> None:
        """Pay `atoms` out of the reservation of `key` to holder `to` (FEES, EXTERNAL, another)."""
        if atoms == 0:
            return
        have = self._res.get((owner, key), {}).get(asset, 0)
        self._need(0 < atoms <= have, owner, asset, atoms, have)
        self._unreserve(owner, key, asset, atoms, to)

    def trim(self, owner: str, key: str, asset: str, keep: int) -> int:
        """Release all of `key`'s reservation in `asset` above `keep`; returns atoms released."""
        have = self._res.get((owner, key), {}).get(asset, 0)
        extra = have - max(keep, 0)
        if extra > 0:
            self._unreserve(owner, key, asset, extra, owner)
        return max(extra, 0)

    def release(self, owner: str, key: str) -> dict[str, int]:
        """Release every asset reserved for `key`; returns what was released."""
        res = dict(self._res.get((owner, key), {}))
        for asset, atoms in res.items():
            self._unreserve(owner, key, asset, atoms, owner)
        return res

    def _unreserve(self, owner: str, key: str, asset: str, atoms: int, to: str) -> None:
        """Take `atoms` (at most what is reserved) out of `key`'s reservation in `asset` and
        credit them to holder `to`'s free balance (`owner` itself for a release)."""
        res = self._res[(owner, key)]
        res[asset] -= atoms
        if not res[asset]:
            del res[asset]
            if not res:
                del self._res[(owner, key)]
        self._locked[(owner, asset)] -= atoms
        self._free[(to, asset)] += atoms
        self.version += 1

    def _move_free(self, src: str, dst: str, asset: str, atoms: int) -> None:
        if atoms == 0:
            return
        have = self._free.get((src, asset), 0)
        if src not in (EXTERNAL, FEES):
            self._need(0 < atoms <= have, src, asset, atoms, have)
        else:
            self._need(atoms > 0, src, asset, atoms, have)
        self._free[(src, asset)] = have - atoms
        self._free[(dst, asset)] += atoms
        self.version += 1

    @staticmethod
    def _need(ok: bool, owner: str, asset: str, need: int, have: int) -> None:
        if not ok:
            raise InsufficientFunds(owner, asset, need, have)
