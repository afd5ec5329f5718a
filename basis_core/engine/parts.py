"""What the parts of the engine core share: one declaration of the state and of the calls
that EngineCore (core.py) and its two mixins, Decisions (decisions.py) and Hedging
(hedging.py), reach through `self`.

`EngineParts` holds no state and no logic. Its attributes are declared here, with their
types, and set by `EngineCore.__init__`; its methods are the calls one part makes on another,
each implemented where it belongs (named beside it) and overriding the declaration here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import schema as S
from ..registry import Registry
from ..results.stats import Spool
from ..state.fsm import Change, Machine
from ..state.tables import EngineState
from .market import MarketState
from .orders import ManagedOrder, OrderManager
from .policy import PolicyConfig
from .positions import HedgedPosition, MakerParent, SliceParent
from .venues import VenueBoard

if TYPE_CHECKING:
    from .allowance import Allowance
    from .core import Counters, InstrumentRules
    from .decide import CompiledDecision


class EngineParts:
    """The engine core's shared state and cross-part calls (see module docstring)."""

    # -- state, set by EngineCore.__init__ ----------------------------------------------------
    reg: Registry
    policy: PolicyConfig
    configured_policy: PolicyConfig  # the run's config: an operator's set-limit stays within it
    rules: dict[str, InstrumentRules]  # instrument name -> its rules
    counters: Counters
    now: int  # ingest time of the current batch (the engine reads no clock)
    engine: Machine[EngineState]  # the engine's risk state
    board: VenueBoard
    orders: OrderManager
    market: MarketState
    decider: CompiledDecision | None  # the compiled gate and sizing; None: the Python reference
    positions: dict[int, HedgedPosition]  # every opportunity of the run, by id
    open_positions: dict[int, HedgedPosition]  # not yet RECONCILED
    position_counts: dict[str, int]  # positions per HEDGE state name, kept as they change
    inventory: dict[tuple[str, str], float]  # (venue, asset) -> free, from our own fills
    in_transit: dict[tuple[str, str], float]  # (to venue, asset) -> amount
    fee_exhausted: set[str]  # venues whose fee asset ran out (their fees fall back to another asset)
    allowance: Allowance | None  # a clustered run's shared limits held here (allowance.py), else None
    fee_drift: dict[str, float]  # base asset -> what venues kept as fees, owed back (fees.py)
    next_opp: int
    reconcile_clean_since: int
    reconcile_requested: bool
    last_entry_ns: int
    stop_new: bool  # set at the end of a run: no new opportunities
    residual_history: Spool[tuple[int, float]]  # (ts, total residual USDT) at each change, the newest
    slicing: dict[int, SliceParent]  # `sliced` opportunities still sending slices, by parent id
    slice_ends: dict[str, int]  # sliced opportunities ended, by why
    making: dict[int, MakerParent]  # `maker_taker` opportunities still quoting, by parent id
    maker_ends: dict[str, int]  # maker_taker opportunities ended, by why

    # -- commands (core.py) -------------------------------------------------------------------

    def _new_order(
        self,
        opp_id: int,
        leg: int,
        venue: str,
        instrument: str,
        side: S.Side,
        otype: S.OrderType,
        qty: float,
        price: float,
        slip_bps: float,
        depends_on: int,
        purpose: S.Purpose,
    ) -> ManagedOrder:
        raise NotImplementedError

    def _cancel(self, order: ManagedOrder) -> None:
        raise NotImplementedError

    def _send(self, order: ManagedOrder) -> None:
        raise NotImplementedError

    def _send_cancel(self, order: ManagedOrder) -> None:
        raise NotImplementedError

    def _query(self, order: ManagedOrder) -> None:
        raise NotImplementedError

    def _request(self, command: S.ControlCommand, aux: int) -> None:
        raise NotImplementedError

    def _position_changed(self, change: Change) -> None:
        raise NotImplementedError

    # -- risk (hedging.py) -------------------------------------------------------------------------

    def _request_reconcile(self) -> None:
        raise NotImplementedError

    # -- entries and inventory (decisions.py) ---------------------------------------------------

    def _send_hedge(self, pos: HedgedPosition, qty: float) -> ManagedOrder:
        raise NotImplementedError

    def _free_quote(self, venue: str, quote: str) -> float:
        raise NotImplementedError

    def _advance_slices(self) -> None:
        raise NotImplementedError

    def _slice_qty_cap(self, buy_name: str, sell_name: str) -> float:
        raise NotImplementedError

    def _gate(self, buy_name: str, sell_name: str, created_ns: int, ttl_us: int) -> S.RejectReason:
        raise NotImplementedError

    def _mid(self, instrument: str) -> float:
        raise NotImplementedError

    def _venue_exposure(self, venue: str) -> float:
        raise NotImplementedError

    # -- maker_taker (maker.py) -----------------------------------------------------------------

    def _start_maker(self, strategy: str, buy_name: str, sell_name: str, edge_bps: float, qty: float) -> bool:
        raise NotImplementedError

    def _advance_makers(self) -> None:
        raise NotImplementedError

    def _hedge_maker_fills(self, pos: HedgedPosition, net: float, flat: bool) -> bool:
        raise NotImplementedError

    # -- base-asset fee drift (fees.py) ------------------------------------------------------------

    def _carry_fee_drift(self, pos: HedgedPosition) -> None:
        raise NotImplementedError

    def _restore_fee_drift(self) -> None:
        raise NotImplementedError

    def fee_drift_usdt(self) -> float:
        raise NotImplementedError

    # -- hedging (hedging.py) -------------------------------------------------------------------

    def _aggressive(
        self,
        pos: HedgedPosition,
        venue: str,
        instrument: str,
        side: S.Side,
        qty: float,
        purpose: S.Purpose,
        through_bps: float,
    ) -> ManagedOrder | None:
        raise NotImplementedError

    def _note_end_mids(self, pos: HedgedPosition) -> None:
        raise NotImplementedError

    def _free_base(self, venue: str, instrument: str) -> float:
        raise NotImplementedError
