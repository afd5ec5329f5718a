"""EIP-1559 fee policy with hard caps.

`GasPolicy.quote(base_fee, suggested_tip)` gives (maxFeePerGas, maxPriorityFeePerGas):
tip = min(suggested or the default tip, tip cap); max fee = base_fee * multiplier + tip,
clamped to the fee cap. If even base_fee + tip is above the cap the transaction could not be
included without breaking the cap, so the quote raises GasCapExceeded and nothing is sent.
`bump(fees)` gives the fees of a replacement (each field raised by 12.5%, rounded up, which
clears the 10% rule of geth-like pools); a bump above either cap raises GasCapExceeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from basis_core.errors import GasCapExceeded

from .constants import GWEI, REPLACEMENT_BUMP_DEN, REPLACEMENT_BUMP_NUM


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def as_tx(self) -> dict:
        return {"maxFeePerGas": self.max_fee_per_gas, "maxPriorityFeePerGas": self.max_priority_fee_per_gas}


class GasPolicy:
    """Fee quotes under the caps of one venue config (Web3VenueConfig)."""

    def __init__(self, cfg, venue: str = "evm"):
        self.venue = venue
        self.max_fee_cap = int(cfg.max_fee_gwei * GWEI)
        self.tip_cap = int(cfg.max_priority_fee_gwei * GWEI)
        self.default_tip = int(cfg.default_priority_fee_gwei * GWEI)
        self.multiplier = cfg.base_fee_multiplier
        self.max_gas = cfg.max_gas
        self.margin_pct = cfg.gas_margin_pct

    def quote(self, base_fee: int, suggested_tip: int | None = None) -> Fees:
        if base_fee < 0 or (suggested_tip is not None and suggested_tip < 0):
            raise GasCapExceeded(self.venue, "base_fee", base_fee, self.max_fee_cap)
        tip = min(self.default_tip if suggested_tip is None else suggested_tip, self.tip_cap)
        if base_fee + tip > self.max_fee_cap:
            raise GasCapExceeded(self.venue, "max_fee_per_gas", base_fee + tip, self.max_fee_cap)
        return Fees(min(base_fee * self.multiplier + tip, self.max_fee_cap), tip)

    def bump(self, fees: Fees) -> Fees:
        new_max = -(-fees.max_fee_per_gas * REPLACEMENT_BUMP_NUM // REPLACEMENT_BUMP_DEN)
        new_tip = -(-fees.max_priority_fee_per_gas * REPLACEMENT_BUMP_NUM // REPLACEMENT_BUMP_DEN)
        new_max, new_tip = (
            max(new_max, fees.max_fee_per_gas + 1),
            max(new_tip, fees.max_priority_fee_per_gas + 1),
        )
        if new_tip > self.tip_cap:
            raise GasCapExceeded(self.venue, "max_priority_fee_per_gas", new_tip, self.tip_cap)
        if new_max > self.max_fee_cap:
            raise GasCapExceeded(self.venue, "max_fee_per_gas", new_max, self.max_fee_cap)
        return Fees(new_max, new_tip)

    def check(self, fees: Fees) -> None:
        """GasCapExceeded unless both fields of `fees` are within the caps."""
        if fees.max_priority_fee_per_gas > self.tip_cap:
            raise GasCapExceeded(
                self.venue, "max_priority_fee_per_gas", fees.max_priority_fee_per_gas, self.tip_cap
            )
        if fees.max_fee_per_gas > self.max_fee_cap:
            raise GasCapExceeded(self.venue, "max_fee_per_gas", fees.max_fee_per_gas, self.max_fee_cap)

    def gas_limit(self, estimate: int) -> int:
        """Gas limit for an estimate: estimate * margin, refused above max_gas."""
        if estimate > self.max_gas:
            raise GasCapExceeded(self.venue, "gas", estimate, self.max_gas)
        return min(estimate * self.margin_pct // 100, self.max_gas)
