"""Our orders, by client order id, each driven by the ORDER state machine.

Two kinds of news move an order: the venue's view of it (`VenueOrder`, from a submit/cancel
answer, a query or a pushed update) and executions (`Fill`, with trade ids and fees). Fills are
booked once per trade id; the venue's cumulative filled quantity is kept beside what we booked,
and exposure is computed from the larger of the two, so a fill we have not seen yet still
counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from basis_core.venue import coid_to_wire

from ..kernels.decide import WorkingOrders
from ..schema import OrderType, Side, make_coid, split_coid
from ..state.fsm import Machine
from ..state.tables import ORDER, OrderState


@dataclass
class ManagedOrder:
    coid: int
    venue: str
    instrument: str
    side: Side
    otype: OrderType
    qty: float
    price: float | None  # the bound
    max_slip_bps: float
    depends_on: int = 0  # coid of the leg this one hedges (0: primary)
    purpose: str = "entry"  # entry | hedge | unwind | restore
    machine: Machine[OrderState] = field(kw_only=True)
    filled_booked: float = 0.0
    filled_reported: float = 0.0
    notional_booked: float = 0.0
    fees: list[tuple[float, str]] = field(default_factory=list)
    base_fee: float = 0.0  # fees charged in the instrument's base asset (spot): base it did not get
    trade_ids: set[str] = field(default_factory=set)
    created_ns: int = 0
    sent_ns: int = 0
    last_query_ns: int = 0
    reject_reason: str = ""

    @property
    def wire(self) -> str:
        return coid_to_wire(self.coid)

    @property
    def opportunity(self) -> int:
        return split_coid(self.coid)[0]

    @property
    def leg(self) -> int:
        return split_coid(self.coid)[1]

    @property
    def state(self) -> OrderState:
        return self.machine.state

    @property
    def filled(self) -> float:
        """Best knowledge of the executed quantity: the larger of booked and venue-reported."""
        return max(self.filled_booked, self.filled_reported)

    @property
    def avg_price(self) -> float:
        return self.notional_booked / self.filled_booked if self.filled_booked > 0 else 0.0

    @property
    def terminal(self) -> bool:
        return self.machine.terminal

    @property
    def signed_filled(self) -> float:
        """The base quantity this order moved into (> 0) or out of (< 0) the account: the
        quantity filled, less any fee the venue charged in the base asset."""
        return (self.filled if self.side == Side.BUY else -self.filled) - self.base_fee


class OrderManager:
    """Every order we ever created in this run, with its state machine and fills."""

    def __init__(self, on_change=None):
        self.orders: dict[int, ManagedOrder] = {}
        self._working: dict[int, ManagedOrder] = {}
        self._on_change = on_change
        self.late_fills = 0
        #: orders per (venue, state name), kept as they change: read without a scan of every order
        self.counts: dict[tuple[str, str], int] = {}
        #: the working orders as arrays for the compiled gate (kernels/decide.py); ids by name
        self.table = WorkingOrders()
        self.venue_ids: dict[str, int] = {}
        self.instrument_ids: dict[str, int] = {}

    def _count(self, venue: str, state: str, n: int) -> None:
        key = (venue, state)
        left = self.counts.get(key, 0) + n
        if left:
            self.counts[key] = left
        else:
            del self.counts[key]

    def _changed(self, change) -> None:
        order = self.orders.get(int(change.key))
        if order is not None:
            self._count(order.venue, change.src, -1)
            self._count(order.venue, change.dst, 1)
            if order.terminal:
                self._working.pop(order.coid, None)
                self.table.remove(order.coid)
        if self._on_change is not None:
            self._on_change(change)

    def create(
        self,
        opp_id: int,
        leg: int,
        venue: str,
        instrument: str,
        side: Side,
        otype: OrderType,
        qty: float,
        price: float | None,
        max_slip_bps: float,
        now_ns: int,
        depends_on: int = 0,
        purpose: str = "entry",
    ) -> ManagedOrder:
        coid = make_coid(opp_id, leg)
        if coid in self.orders:
            raise ValueError(f"client order id {coid} already used")
        order = ManagedOrder(
            coid,
            venue,
            instrument,
            side,
            otype,
            qty,
            price,
            max_slip_bps,
            depends_on,
            purpose,
            created_ns=now_ns,
            machine=Machine(
                ORDER,
                OrderState.NEW,
                key=str(coid),
                on_change=self._changed,
                since_ns=now_ns,
                keep_history=False,
            ),
        )
        self.orders[coid] = order
        self._working[coid] = order
        self.table.add(
            coid, self.venue_ids.get(venue, 0), self.instrument_ids.get(instrument, 0), int(side), qty, price
        )
        self._count(venue, OrderState.NEW.name, 1)
        return order

    def get(self, coid: int) -> ManagedOrder | None:
        return self.orders.get(coid)

    def book_execution(
        self, order: ManagedOrder, trade_id: str, price: float, qty: float, fee: float, fee_asset: str
    ) -> bool:
        """Book one execution by its trade id; False when it was booked already (a repeat)."""
        if trade_id in order.trade_ids:
            return False
        order.trade_ids.add(trade_id)
        order.filled_booked += qty
        order.notional_booked += qty * price
        self.table.filled(order.coid, order.filled)
        if fee:
            order.fees.append((fee, fee_asset))
        if order.terminal:
            self.late_fills += 1
        return True

    def reported(self, order: ManagedOrder, cum: float) -> None:
        """The venue says `order` has filled `cum` in all (more than it said before)."""
        order.filled_reported = cum
        self.table.filled(order.coid, order.filled)

    def working(self, venue: str | None = None) -> list[ManagedOrder]:
        """Orders not yet in a terminal state (kept as an index: no scan of finished orders)."""
        return [o for o in self._working.values() if venue is None or o.venue == venue]

    def unknown(self) -> list[ManagedOrder]:
        return [o for o in self._working.values() if o.state == OrderState.UNKNOWN]

    def of_opportunity(self, opp_id: int) -> list[ManagedOrder]:
        return [o for o in self.orders.values() if o.opportunity == opp_id]
