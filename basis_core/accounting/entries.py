"""The ledger's input records: fills and transfers, validated on construction.

A fill is what a venue reported for one execution of one of our orders, identified by
(venue, client order id, fill id) so that a repeated report can be recognised. The fee is in
whatever asset the venue charged it (quote, base, or a third asset such as BNB); the ledger
converts it to USDT at the mark at the fill's time. Bad input (NaN, non-positive quantity or
price, negative fee, empty names) raises AccountingError: the ledger never books a guess.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from ..errors import AccountingError

USDT = "USDT"


class TransferStatus(enum.Enum):
    """Where a transfer between venues stands. Only CONFIRMED credits the destination."""

    REQUESTED = "REQUESTED"
    SENT = "SENT"
    CONFIRMING = "CONFIRMING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"


def _finite(name: str, value: float, *, positive: bool = False, nonneg: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AccountingError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise AccountingError(f"{name} must be > 0, got {value!r}")
    if nonneg and value < 0:
        raise AccountingError(f"{name} must be >= 0, got {value!r}")


def _named(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise AccountingError(f"{name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True)
class LedgerFill:
    """One execution of one of our orders, as the ledger books it: the venue's report
    (`basis_core.venue.Fill`, converted by `accounting.convert.ledger_fill`) with the assets it
    moves, its opportunity and strategy, and the price the signal assumed.

    `side` is "buy" or "sell" of `base` against `quote` at `price` (quote per base). `kind`
    "spot" moves both assets on the venue; "perp" opens or closes a contract position whose
    realized PnL settles in `quote` (the notional does not move). `signal_px` is the price
    the signal assumed for this leg (0 = unknown): slippage is measured against it.
    """

    venue: str
    instrument: str
    base: str
    quote: str
    side: str
    qty: float
    price: float
    ts_ns: int
    coid: int | str
    fill_id: str
    fee: float = 0.0
    fee_asset: str = USDT
    opportunity_id: int = 0
    strategy: str = ""
    kind: str = "spot"
    signal_px: float = 0.0

    def __post_init__(self):
        for name in ("venue", "instrument", "base", "quote", "fee_asset"):
            _named(name, getattr(self, name))
        if self.side not in ("buy", "sell"):
            raise AccountingError(f"side must be 'buy' or 'sell', got {self.side!r}")
        if self.kind not in ("spot", "perp"):
            raise AccountingError(f"kind must be 'spot' or 'perp', got {self.kind!r}")
        if self.base == self.quote:
            raise AccountingError(f"base and quote are the same asset {self.base!r}")
        _finite("qty", self.qty, positive=True)
        _finite("price", self.price, positive=True)
        _finite("fee", self.fee, nonneg=True)
        _finite("signal_px", self.signal_px, nonneg=True)
        if isinstance(self.coid, bool) or not isinstance(self.coid, (int, str)) or self.coid in (0, ""):
            raise AccountingError(f"coid must be a non-zero int or a non-empty string, got {self.coid!r}")
        if not isinstance(self.fill_id, str) or not self.fill_id:
            raise AccountingError(f"fill_id must be a non-empty string, got {self.fill_id!r}")

    @property
    def key(self) -> tuple[str, str, str]:
        """The de-duplication key: a fill with the same key is the same execution. The client
        order id is compared in its wire form (decimal string), so 17 and "17" are one order."""
        return (self.venue, str(self.coid), self.fill_id)

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1


@dataclass(frozen=True)
class Transfer:
    """A movement of `amount` of `asset` from one venue to another (or out to the chain).

    The ledger debits `from_venue` as soon as the transfer is SENT (or later states), holds
    the amount in transit, credits `to_venue` on CONFIRMED and returns it on FAILED. `fee` is
    charged in `asset` on the sending side.
    """

    transfer_id: str
    asset: str
    amount: float
    from_venue: str
    to_venue: str
    status: TransferStatus
    ts_ns: int
    fee: float = 0.0

    def __post_init__(self):
        for name in ("transfer_id", "asset", "from_venue", "to_venue"):
            _named(name, getattr(self, name))
        if not isinstance(self.status, TransferStatus):
            raise AccountingError(f"status must be a TransferStatus, got {self.status!r}")
        _finite("amount", self.amount, positive=True)
        _finite("fee", self.fee, nonneg=True)
