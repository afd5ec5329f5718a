"""One reconciliation pass over every venue: the four layers in order, at start and on a timer.

Order of work, per pass:

1. order layer per venue (adopt, query, mark lost), folded into our order book;
2. fills and transfer states per venue into the ledger (so partial fills found in step 1 are
   booked; the ledger ignores what it already has);
3. position layer over all venues;
4. balance layer per venue (lag window);
5. reporting layer over the ledger.

A venue whose open-order list cannot be fetched is reported `unreachable` and skipped for the
later layers (its balances are not compared against a ledger we could not update). The pass is
`clean` when no mismatch is open and no order is unresolved: the engine may leave RECONCILING
only after a clean pass (`engine_event`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from basis_core.venue import Venue

from ..accounting.convert import ledger_transfer
from ..accounting.ledger import Ledger
from ..errors import VenueError
from ..state.tables import EngineEvent
from .balances import BalanceReconciler, reconcile_balances
from .fills import FillSync, sync_fills
from .mismatch import ExceptionLog, Mismatch
from .orders import DEFAULT_GRACE_NS, KnownOrder, OrderIndex, OrderRound, apply, reconcile_orders
from .positions import PositionCheck, PositionReconciler
from .reporting import ReportingCheck, check_reporting


@dataclass
class Pass:
    """What one pass found."""

    ts_ns: int
    orders: dict[str, OrderRound] = field(default_factory=dict)
    fills_booked: int = 0
    transfers_booked: int = 0
    positions: PositionCheck | None = None
    balances_pending: dict[str, int] = field(default_factory=dict)
    reporting: ReportingCheck | None = None
    unreachable: dict[str, str] = field(default_factory=dict)
    raised: list[Mismatch] = field(default_factory=list)
    open_mismatches: int = 0

    @property
    def adopted(self) -> list[str]:
        return [vo.coid for r in self.orders.values() for vo in r.adopt]

    @property
    def lost(self) -> list[str]:
        return [c for r in self.orders.values() for c in r.lost]

    @property
    def unresolved(self) -> list[str]:
        return [c for r in self.orders.values() for c in r.unresolved]

    @property
    def clean(self) -> bool:
        return not (self.open_mismatches or self.unresolved or self.unreachable or self.balances_pending)


class Reconciler:
    """Holds the state that spans passes: exception log, lag windows, fill cursors.
    `ordinal_fill_ids`: book fills as "#n" per order, as a ledger rebuilt from the journal does."""

    def __init__(
        self,
        venues: list[Venue],
        ledger: Ledger,
        orders: dict[str, KnownOrder],
        *,
        balance_lag_ns: int,
        position: PositionReconciler | None = None,
        grace_ns: int = DEFAULT_GRACE_NS,
        log: ExceptionLog | None = None,
        ordinal_fill_ids: bool = False,
        balance_rel_tol: float = 1e-9,
    ):
        self.venues, self.ledger, self.orders = venues, ledger, orders
        self.log = log if log is not None else ExceptionLog()
        self.balances = BalanceReconciler(balance_lag_ns, rel_tol=balance_rel_tol, log=self.log)
        self.positions = position or PositionReconciler(log=self.log)
        self.positions.log = self.log
        self.grace_ns = grace_ns
        self.fills = {v.name: FillSync(ordinal=ordinal_fill_ids) for v in venues}
        self.order_index = {v.name: OrderIndex() for v in venues}

    async def run(self, ts_ns: int) -> Pass:
        p = Pass(ts_ns)
        n_before = len(self.log.mismatches())
        reachable = []
        for v in self.venues:
            try:
                rnd = await reconcile_orders(
                    v, self.orders, ts_ns, grace_ns=self.grace_ns, index=self.order_index[v.name]
                )
                for m in rnd.mismatches:
                    self.log.raise_(m)
                apply(self.orders, v.name, rnd)
                p.orders[v.name] = rnd
                p.fills_booked += await sync_fills(v, self.ledger, self.fills[v.name])
                p.transfers_booked += await self._sync_transfers(v)
                reachable.append(v)
            except VenueError as exc:
                p.unreachable[v.name] = f"{type(exc).__name__}: {exc}"
        try:
            p.positions = self.positions.check(
                self.ledger, {v.name: await v.positions() for v in reachable}, ts_ns
            )
        except VenueError as exc:
            p.unreachable["positions"] = f"{type(exc).__name__}: {exc}"
        for v in reachable:
            try:
                bc = await reconcile_balances(v, self.ledger, self.balances, ts_ns)
                p.balances_pending.update(bc.pending)
            except VenueError as exc:
                p.unreachable[v.name] = f"{type(exc).__name__}: {exc}"
        p.reporting = check_reporting(self.ledger, ts_ns, log=self.log, outcomes=False)
        p.raised = self.log.mismatches()[n_before:]
        p.open_mismatches = len(self.log.open())
        return p

    async def _sync_transfers(self, v: Venue) -> int:
        """Book the venue's transfer states; a venue that has no transfer history to offer
        (VenueError code "not_supported") has none to book."""
        try:
            infos = await v.transfers()
        except VenueError as exc:
            if exc.code == "not_supported":
                return 0
            raise
        return sum(self.ledger.book_transfer(ledger_transfer(info)) for info in infos)


def engine_event(p: Pass) -> EngineEvent | None:
    """The engine-risk event a pass calls for: RECONCILE_MISMATCH when it raised anything,
    POLICY_CHECKS_PASSED's reconciliation part when clean, else None (not yet decided)."""
    if p.raised:
        return EngineEvent.RECONCILE_MISMATCH
    return EngineEvent.POLICY_CHECKS_PASSED if p.clean else None
