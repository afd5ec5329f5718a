"""The one venue interface: every venue (simulated, ccxt, web3) implements `Venue`.

The engine cannot tell venues apart: it speaks only the types below.

Client order ids
    On the wire a client order id is a string: the decimal form of the u64 produced by
    `basis_core.schema.make_coid` (e.g. ``"1234567"``), at most 20 characters, which every
    venue we target accepts (Binance allows ``[A-Za-z0-9-_]{1,36}``). `coid_to_wire` and
    `coid_from_wire` convert; a venue never invents or rewrites a client order id, and ids
    not made by `make_coid` (orders placed by hand) come back with `coid_from_wire` == None.

Errors
    Methods raise only the typed errors of `basis_core.errors`:
    `RequestTimeout` (no answer: the request MAY have taken effect — verify by client order id),
    `RateLimited` (`retry_after_s`), `VenueUnavailable` (maintenance, outage),
    `OrderRejected` (`reason` is a `RejectReason` name such as ``"min_notional"``),
    `OrderNotFound`, `MalformedResponse`. Anything else escaping an adapter is a bug.

Numbers
    Prices and quantities are floats in natural units (quote per base, base units). Results
    never carry NaN: an adapter that receives one raises `MalformedResponse`.

Streams
    `market_data()` and `user_events()` are async iterators; each call returns a new
    independent subscription that ends when the venue is closed. Events are delivered in the
    order the venue emitted them (which, for faulted venues, may be out of order in time:
    balance updates carry `update_id` so a consumer can spot stale ones).
"""

from __future__ import annotations

import abc
import enum
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from basis_core.errors import MalformedResponse, OrderRejected
from basis_core.schema import Liquidity, OrderType, RejectReason, Side, TransferState, VenueReport

__all__ = [
    "Balance",
    "BalanceUpdate",
    "BookUpdate",
    "Charge",
    "Fill",
    "FillsPage",
    "FundingPayment",
    "FundingUpdate",
    "InstrumentInfo",
    "Liquidity",
    "MarketEvent",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Position",
    "RejectReason",
    "Side",
    "TradePrint",
    "TransferInfo",
    "TransferState",
    "UserEvent",
    "Venue",
    "VenueOrder",
    "VenueReport",
    "VenueStatus",
    "coid_from_wire",
    "coid_to_wire",
    "require_finite",
]

_MAX_COID = (1 << 64) - 1


def coid_to_wire(coid: int) -> str:
    """The wire form of a u64 client order id: its decimal string."""
    if isinstance(coid, bool) or not isinstance(coid, int) or not 0 < coid <= _MAX_COID:
        raise ValueError(f"client order id must be an integer in 1..2**64-1, got {coid!r}")
    return str(coid)


def coid_from_wire(text: str) -> int | None:
    """The u64 behind a wire client order id, or None when the id was not made by basis."""
    if not isinstance(text, str) or not text.isdigit() or len(text) > 20 or text.startswith("0"):
        return None
    value = int(text)
    return value if value <= _MAX_COID else None


class OrderStatus(enum.Enum):
    """An order's status as the venue reports it."""

    OPEN = "open"  # accepted, resting, nothing filled
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"  # IOC/market remainder, self-trade prevention
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


@dataclass(frozen=True)
class InstrumentInfo:
    """Trading rules of one instrument on one venue. `name` is the config's instrument name."""

    name: str
    symbol: str
    base: str
    quote: str
    kind: str = "spot"  # "spot" | "perp"
    tick: float = 0.01
    lot: float = 1e-5
    min_notional: float = 0.0
    max_qty: float = math.inf


@dataclass(frozen=True)
class OrderRequest:
    """A command to place one order. `price` is the limit (LIMIT, IOC, POST_ONLY) or, for
    MARKET, an optional protection bound (worst acceptable price; None = unbounded).
    `reduce_only` (perps): the venue rejects the order unless it only shrinks the position."""

    coid: str
    instrument: str
    side: Side
    type: OrderType
    qty: float
    price: float | None = None
    reduce_only: bool = False

    def __post_init__(self):
        """Bad input never reaches a venue: OrderRejected(venue="local", reason="bad_input")."""

        def bad(msg: str):
            raise OrderRejected("local", "bad_input", msg, reason="bad_input")

        if not isinstance(self.coid, str) or not self.coid:
            bad(f"coid must be a non-empty string, got {self.coid!r}")
        if not isinstance(self.side, Side) or not isinstance(self.type, OrderType):
            bad(f"order {self.coid}: side and type must be Side and OrderType members")
        if isinstance(self.qty, bool) or not (
            isinstance(self.qty, (int, float)) and math.isfinite(self.qty) and self.qty > 0
        ):
            bad(f"order {self.coid}: qty must be finite and > 0, got {self.qty!r}")
        if self.price is None:
            if self.type != OrderType.MARKET:
                bad(f"order {self.coid}: a {self.type.name} order needs a price")
        elif isinstance(self.price, bool) or not (
            isinstance(self.price, (int, float)) and math.isfinite(self.price) and self.price > 0
        ):
            bad(f"order {self.coid}: price must be finite and > 0, got {self.price!r}")


@dataclass(frozen=True)
class VenueOrder:
    """The venue's view of one order."""

    coid: str
    instrument: str
    side: Side
    type: OrderType
    qty: float
    price: float | None
    status: OrderStatus
    filled_qty: float = 0.0
    avg_price: float = 0.0  # 0 while nothing is filled
    fee: float = 0.0  # total so far, in fee_asset
    fee_asset: str = ""
    venue_order_id: str = ""
    reason: RejectReason = RejectReason.NONE
    created_ns: int = 0
    updated_ns: int = 0

    @property
    def remaining(self) -> float:
        return max(self.qty - self.filled_qty, 0.0)


@dataclass(frozen=True)
class Fill:
    """One execution of one of our orders, as a venue reports it to our account. (Inside the
    simulated exchange each trade is a pair of `adapters.sim.matching.MatchFill`, one per owner.)"""

    venue: str
    instrument: str
    coid: str
    trade_id: str
    side: Side
    price: float
    qty: float
    fee: float
    fee_asset: str
    liquidity: Liquidity
    ts_ns: int


@dataclass(frozen=True)
class FillsPage:
    """Fills after a cursor, oldest first. Pass `cursor` back to get the next page; it is
    opaque (each venue encodes what it needs) and None means "from the beginning"."""

    fills: tuple[Fill, ...]
    cursor: str | None
    more: bool = False


@dataclass(frozen=True)
class Balance:
    asset: str
    free: float
    locked: float = 0.0

    @property
    def total(self) -> float:
        return self.free + self.locked


@dataclass(frozen=True)
class Position:
    """A perpetual position: signed qty (long > 0), average entry, mark, funding paid so far."""

    instrument: str
    qty: float
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    funding_paid: float = 0.0


@dataclass(frozen=True)
class TransferInfo:
    """A transfer of an asset from one venue to another."""

    transfer_id: str
    asset: str
    amount: float
    from_venue: str
    to_venue: str
    state: TransferState
    confirmations: int = 0
    required: int = 0
    requested_ns: int = 0
    eta_ns: int = 0
    updated_ns: int = 0


@dataclass(frozen=True)
class VenueStatus:
    """What the venue says about itself: `state` plus, for maintenance/limits, until when."""

    venue: str
    state: VenueReport
    until_ns: int = 0
    message: str = ""


# -- stream events --------------------------------------------------------------------------


@dataclass(frozen=True)
class BookUpdate:
    """Depth of one instrument. `snapshot` replaces the whole book; otherwise each (price, qty)
    sets that level (qty 0 deletes it)."""

    venue: str
    instrument: str
    ts_ns: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    snapshot: bool = False
    update_id: int = 0


@dataclass(frozen=True)
class TradePrint:
    """A public trade on the venue (anyone's). `side` is the aggressor's."""

    venue: str
    instrument: str
    ts_ns: int
    price: float
    qty: float
    side: Side
    trade_id: str


@dataclass(frozen=True)
class FundingUpdate:
    """Perp mark/index price and the funding rate that applies at `next_ns`."""

    venue: str
    instrument: str
    ts_ns: int
    mark_price: float
    index_price: float
    rate: float
    next_ns: int


@dataclass(frozen=True)
class OrderUpdate:
    """A pushed change of one of our orders (the venue's execution report). Its order's status
    becomes an ORDER_EVENT record (`schema.OrderEventType`) on the io path."""

    venue: str
    ts_ns: int
    order: VenueOrder


@dataclass(frozen=True)
class BalanceUpdate:
    """A pushed balance; `update_id` increases with the venue's own sequence."""

    venue: str
    ts_ns: int
    balance: Balance
    update_id: int


@dataclass(frozen=True)
class FundingPayment:
    """Funding settled on a perp position: `amount` > 0 received, < 0 paid, in `asset`."""

    venue: str
    instrument: str
    ts_ns: int
    amount: float
    asset: str
    rate: float
    mark_price: float
    position_qty: float


@dataclass(frozen=True)
class Charge:
    """A cost the venue took outside any fill: on a chain, the gas of a transaction that was
    mined and reverted (no trade, but the fee is spent). `amount` > 0 of `asset`; `ref` is
    unique per charge (the transaction hash); `coid` the order it was spent on, "" if none."""

    venue: str
    ts_ns: int
    asset: str
    amount: float
    ref: str
    coid: str = ""


MarketEvent = BookUpdate | TradePrint | FundingUpdate | VenueStatus
UserEvent = OrderUpdate | Fill | BalanceUpdate | TransferInfo | FundingPayment | Charge


def require_finite(venue: str, what: str, value) -> float:
    """`value` as a float, or MalformedResponse naming `what` (for adapters parsing answers)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MalformedResponse(venue, "malformed", f"{what} is not a number: {value!r}") from None
    if not math.isfinite(out):
        raise MalformedResponse(venue, "malformed", f"{what} is not finite: {value!r}")
    return out


class Venue(abc.ABC):
    """One venue. All I/O methods are coroutines and raise only basis_core.errors types.

    `cancel` and `fetch_order` take the instrument when the caller knows it; a venue that
    needs it (ccxt) and cannot find it from its own records raises OrderNotFound.
    """

    name: str

    # lifecycle
    async def start(self) -> None:  # noqa: B027 (a venue with nothing to connect keeps it)
        """Connect, load instrument rules. Idempotent."""

    async def close(self) -> None:  # noqa: B027 (a venue with nothing to release keeps it)
        """Release connections and end the venue's streams. Idempotent."""

    @abc.abstractmethod
    def instruments(self) -> dict[str, InstrumentInfo]:
        """Rules of the venue's instruments by config name (valid after `start`)."""

    # orders
    @abc.abstractmethod
    async def submit(self, order: OrderRequest) -> VenueOrder:
        """Place an order; returns the acknowledgement. A second submit with the same coid
        returns the existing order (idempotent), never a duplicate."""

    @abc.abstractmethod
    async def cancel(self, coid: str, instrument: str | None = None) -> VenueOrder:
        """Cancel by client order id; returns the order's state after the cancel. Cancelling an
        order that is already terminal returns it unchanged (status tells what happened)."""

    @abc.abstractmethod
    async def fetch_order(self, coid: str, instrument: str | None = None) -> VenueOrder:
        """The venue's current view of one order; OrderNotFound if it never reached the venue."""

    @abc.abstractmethod
    async def open_orders(self, instrument: str | None = None) -> list[VenueOrder]:
        """Our orders that are OPEN or PARTIALLY_FILLED."""

    @abc.abstractmethod
    async def fills(self, cursor: str | None = None, limit: int = 1000) -> FillsPage:
        """Our fills after `cursor`, oldest first, at most `limit`."""

    # funds
    @abc.abstractmethod
    async def balances(self) -> dict[str, Balance]:
        """Balances by asset as the venue reports them (may lag our own fills)."""

    async def positions(self) -> dict[str, Position]:
        """Perp positions by instrument (empty for spot-only venues)."""
        return {}

    @abc.abstractmethod
    async def transfer(self, asset: str, amount: float, to_venue: str) -> TransferInfo:
        """Start a withdrawal of `amount` to `to_venue`; returns it in state REQUESTED or SENT."""

    @abc.abstractmethod
    async def transfers(self) -> list[TransferInfo]:
        """Transfers into or out of this venue, oldest first, with their current state."""

    # status and streams
    @abc.abstractmethod
    async def status(self) -> VenueStatus:
        """The venue's own status (UP = VenueReport.OK, MAINTENANCE with until_ns ...)."""

    @abc.abstractmethod
    def market_data(self, instruments: list[str] | None = None) -> AsyncIterator[MarketEvent]:
        """Subscribe to book updates, public trades, funding and status for `instruments`."""

    @abc.abstractmethod
    def user_events(self) -> AsyncIterator[UserEvent]:
        """Subscribe to our order updates, fills, balance updates, transfers, funding payments."""
