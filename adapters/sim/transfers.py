"""Transfers of assets between simulated venues, with delays and confirmations.

A transfer is debited from the source venue's free balance when it is sent (state SENT), shows
up on the chain after `delay_s` (+ any `transfer_delay` fault) as CONFIRMING with one
confirmation, gains one confirmation every `confirm_interval_s`, and is credited to the
destination when it has `confirmations` of them (CONFIRMED). Every state change is pushed to the
user streams of both venues; `history(venue)` lists the transfers a venue took part in.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace

from basis_core.errors import InsufficientFunds, OrderRejected
from basis_core.schema import TransferState
from basis_core.venue import TransferInfo

from .clock import Clock
from .faults import FaultSchedule


@dataclass(frozen=True)
class TransferRules:
    delay_s: float = 30.0
    confirmations: int = 3
    confirm_interval_s: float = 10.0


class TransferNetwork:
    """Moves assets between attached SimVenues (same owner on each)."""

    def __init__(
        self, clock: Clock, rules: TransferRules = TransferRules(), faults: FaultSchedule | None = None
    ):
        self.clock, self.rules = clock, rules
        self.faults = faults or FaultSchedule()
        self.venues: dict = {}
        self._transfers: list[TransferInfo] = []

    def attach(self, venue) -> None:
        self.venues[venue.name] = venue

    def history(self, venue: str) -> list[TransferInfo]:
        return [t for t in self._transfers if venue in (t.from_venue, t.to_venue)]

    def send(self, src, asset: str, amount: float, to_venue: str) -> TransferInfo:
        """Start a transfer (runs at the source venue when the request arrives)."""

        def bad(reason: str, msg: str):
            raise OrderRejected(src.name, reason, f"transfer: {msg}", reason=reason)

        if to_venue not in self.venues or to_venue == src.name:
            bad("bad_input", f"unknown destination venue {to_venue!r}")
        if (
            isinstance(amount, bool)
            or not isinstance(amount, (int, float))
            or not math.isfinite(amount)
            or amount <= 0
        ):
            bad("bad_input", f"amount must be finite and > 0, got {amount!r}")
        atoms = src.exchange.accounts.to_atoms(asset, amount)
        try:
            src.debit(asset, atoms)
        except InsufficientFunds:
            bad("insufficient_funds", f"{amount} {asset} is more than the free balance")
        now = self.clock.now_ns()
        delay = self.rules.delay_s
        fault = self.faults.on_event("transfer", src.name, now, kinds=("transfer_delay",))
        if fault is not None:
            delay += fault.delay_s
        total = delay + self.rules.confirm_interval_s * (self.rules.confirmations - 1)
        info = TransferInfo(
            f"{src.name}-{len(self._transfers) + 1}",
            asset,
            amount,
            src.name,
            to_venue,
            TransferState.SENT,
            0,
            self.rules.confirmations,
            now,
            now + int(total * 1e9),
            now,
        )
        self._transfers.append(info)
        self._announce(info)
        asyncio.get_running_loop().call_later(delay, self._confirm, len(self._transfers) - 1, atoms)
        return info

    def _confirm(self, index: int, atoms: int) -> None:
        info = self._transfers[index]
        n = info.confirmations + 1
        done = n >= info.required
        info = replace(
            info,
            confirmations=n,
            updated_ns=self.clock.now_ns(),
            state=TransferState.CONFIRMED if done else TransferState.CONFIRMING,
        )
        self._transfers[index] = info
        if done:
            self.venues[info.to_venue].credit(info.asset, atoms)
        else:
            asyncio.get_running_loop().call_later(self.rules.confirm_interval_s, self._confirm, index, atoms)
        self._announce(info)

    def _announce(self, info: TransferInfo) -> None:
        for name in (info.from_venue, info.to_venue):
            self.venues[name].push_transfer(info)
