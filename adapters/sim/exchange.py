"""One simulated venue's books, accounts and perp positions, synchronous and deterministic.

`Exchange` joins a `MatchingEngine` per instrument with one `Accounts` ledger:

* funds are reserved when an order is admitted (after the filters pass): a spot buy locks
  quote (notional at its limit, or the sweep cost for a market buy, plus the largest fee if fees
  are charged in quote), a spot sell locks base, a perp order locks notional / leverage plus fee;
  short of funds → REJECTED with INSUFFICIENT_FUNDS and nothing locked;
* each fill settles at once: the order's reservation pays what it owes, proceeds are credited,
  the fee goes to the venue's fee sink (`accounts.FEES`), and the reservation is trimmed to
  what the rest of the order still needs; a terminal order releases all that remains;
* perp fills move no base asset: they update a signed position (average entry) and realize PnL
  in the quote asset when the position shrinks; `apply_funding` pays longs → shorts (rate > 0).
  Margin is checked at order entry only; there is no liquidation: a loss larger than the free
  balance takes what is free and the rest is counted in `bad_debt`.

The owner `MARKET` (other participants) has no account: its side of each trade comes from and
goes to `accounts.EXTERNAL`, so per-asset conservation holds over every holder.
"""

from __future__ import annotations

from dataclasses import dataclass

from basis_core.config import DEFAULT_LEVERAGE
from basis_core.errors import InsufficientFunds, OrderNotFound
from basis_core.schema import Liquidity, OrderEventType, OrderType, RejectReason, Side

from .accounts import EXTERNAL, FEES, Accounts
from .matching import MARKET, NOTHING, FeeSchedule, MatchFill, MatchingEngine, OrderView, Result, Spec
from .queue import make

_TERMINAL_EVENTS = (
    OrderEventType.FILL,
    OrderEventType.CANCELED,
    OrderEventType.EXPIRED,
    OrderEventType.REJECT,
)


@dataclass
class PerpPosition:
    lots: int = 0  # signed: long > 0
    cost: int = 0  # sum of ticks*lots of the open position (absolute)
    funding_atoms: int = 0  # funding paid (> 0) or received (< 0), quote atoms
    realized_atoms: int = 0


class Exchange:
    """Books + ledger of one venue. Methods take `ts_ns` from the caller's clock."""

    def __init__(
        self,
        name: str,
        instruments: dict[str, tuple[Spec, FeeSchedule]],
        accounts: Accounts | None = None,
        leverage: dict[str, float] | None = None,
        queue_model: str = "back",
        queue_seed: int = 0,
    ):
        """`queue_model` and `queue_seed`: where other participants' cancels leave a level's
        queue (queue.py), one seeded model per instrument."""
        self.name = name
        self.accounts = accounts or Accounts()
        self.engines: dict[str, MatchingEngine] = {}
        for inst, (spec, fees) in instruments.items():
            self.accounts.decimals.setdefault(spec.base, spec.base_decimals)
            self.accounts.decimals.setdefault(spec.quote, spec.quote_decimals)
            if fees.asset not in ("quote", "received"):
                self.accounts.decimals.setdefault(fees.asset, fees.asset_decimals)
            self.engines[inst] = MatchingEngine(
                spec, fees, venue=name, can_pay=self._can_pay, queue=make(queue_model, queue_seed, name, inst)
            )
        self.leverage = dict(leverage or {})
        self.positions: dict[tuple[str, str], PerpPosition] = {}
        self.marks: dict[str, float] = {}
        self.bad_debt: dict[str, int] = {}

    # -- orders ---------------------------------------------------------------------------

    def engine(self, instrument: str) -> MatchingEngine:
        try:
            return self.engines[instrument]
        except KeyError:
            raise OrderNotFound(self.name, "unknown_instrument", instrument) from None

    def submit(
        self,
        owner: str,
        instrument: str,
        coid: str,
        side: Side,
        otype: OrderType,
        qty: float,
        price: float | None = None,
        ts_ns: int = 0,
        force: RejectReason | None = None,
    ) -> Result:
        """Place an order for `owner`; `force` rejects it with that reason once it passes the
        filters (fault injection)."""
        eng = self.engine(instrument)
        key = f"{instrument}/{coid}"

        def admit(side_, otype_, lots, px):
            if force is not None:
                return force
            try:
                for asset, atoms in self._need(instrument, side_, otype_, lots, px, owner).items():
                    self.accounts.reserve(owner, key, asset, atoms)
            except InsufficientFunds:
                self.accounts.release(owner, key)
                return RejectReason.INSUFFICIENT_FUNDS
            return RejectReason.NONE

        result = eng.submit(owner, coid, side, otype, qty, price, ts_ns, admit=admit)
        if not result.duplicate:
            self._settle(instrument, result)
        return result

    def cancel(self, owner: str, instrument: str, coid: str, ts_ns: int = 0) -> Result:
        result = self.engine(instrument).cancel(owner, coid, ts_ns)
        self._settle(instrument, result)
        return result

    def find(self, owner: str, coid: str, instrument: str | None = None) -> tuple[str, OrderView]:
        """(instrument, OrderView) of `coid`, searching every book when `instrument` is None."""
        names = [instrument] if instrument else list(self.engines)
        for name in names:
            try:
                return name, self.engine(name).query(owner, coid)
            except OrderNotFound:
                continue
        raise OrderNotFound(self.name, "unknown_order", coid)

    # -- other participants ---------------------------------------------------------------

    def set_level(self, instrument: str, side: Side, px: int, lots: int, ts_ns: int = 0) -> Result:
        result = self.engine(instrument).set_level(side, px, lots, ts_ns)
        if result is not NOTHING:
            self._settle(instrument, result)
        return result

    def participant_trade(
        self, instrument: str, side: Side, lots: int, ts_ns: int = 0, limit: int | None = None
    ) -> Result:
        """Someone else sends an aggressive order of `lots` (IOC at `limit`, or market)."""
        eng = self.engine(instrument)
        otype = OrderType.MARKET if limit is None else OrderType.IOC
        result = eng.submit_lots(MARKET, "", side, otype, lots, limit, ts_ns)
        self._settle(instrument, result)
        return result

    # -- perps ----------------------------------------------------------------------------

    def position(self, owner: str, instrument: str) -> PerpPosition:
        return self.positions.get((owner, instrument), PerpPosition())

    def set_mark(self, instrument: str, mark: float) -> None:
        self.marks[instrument] = mark

    def apply_funding(self, instrument: str, mark: float, rate: float) -> list[tuple[str, int]]:
        """Settle funding on every open position: a long pays lots*lot*mark*rate (rate > 0).
        Returns (owner, atoms paid; negative = received) per position, in owner order."""
        eng = self.engine(instrument)
        spec = eng.spec
        out = []
        for (owner, inst), pos in sorted(self.positions.items()):
            if inst != instrument or not pos.lots:
                continue
            atoms = round(pos.lots * spec.lot * mark * rate * 10**spec.quote_decimals)
            self._pay(owner, spec.quote, atoms)
            pos.funding_atoms += atoms
            out.append((owner, atoms))
        return out

    # -- internals ------------------------------------------------------------------------

    def _can_pay(self, owner: str, asset: str, atoms: int) -> bool:
        return self.accounts.free(owner, asset) >= atoms

    def _need(
        self,
        instrument: str,
        side: Side,
        otype: OrderType,
        lots: int,
        px: int | None,
        owner: str | None = None,
    ) -> dict[str, int]:
        """Atoms to reserve for `lots` at `px` (market orders: the current sweep cost, past
        `owner`'s own resting orders, which self-trade prevention expires)."""
        eng = self.engines[instrument]
        spec, fees = eng.spec, eng.fees
        if otype == OrderType.MARKET:
            units = eng.sweep(side, lots, px, exclude=owner)[1]
        else:
            assert px is not None  # the engine's filters refuse a priced order without a price
            units = px * lots
        notional = units * spec.notional_unit
        fee_rate = max(fees.rate(Liquidity.MAKER), fees.rate(Liquidity.TAKER), 0)
        quote_fee = spec.kind != "spot" or fees.asset in ("quote", spec.quote)
        fee = -((-notional * fee_rate) // 100_000_000) if quote_fee else 0
        if spec.kind != "spot":
            lev_milli = max(1, round(self.leverage.get(instrument, DEFAULT_LEVERAGE) * 1000))
            return {spec.quote: -((-notional * 1000) // lev_milli) + fee}
        if side == Side.BUY:
            return {spec.quote: notional + fee}
        return {spec.base: lots * spec.lot_atoms}

    def _settle(self, instrument: str, result: Result) -> None:
        eng = self.engines[instrument]
        for fill in result.fills:
            if fill.owner != MARKET:
                self._settle_fill(instrument, eng, fill)
        for ev in result.events:
            o = ev.order
            if o.owner == MARKET:
                continue
            key = f"{instrument}/{o.coid}"
            if ev.type in _TERMINAL_EVENTS or o.status.terminal:
                self.accounts.release(o.owner, key)
            elif ev.type == OrderEventType.PARTIAL_FILL and o.type in (OrderType.LIMIT, OrderType.POST_ONLY):
                rest = o.qty_lots - o.filled_lots
                for asset, atoms in self._need(instrument, o.side, o.type, rest, o.price_ticks).items():
                    self.accounts.trim(o.owner, key, asset, atoms)

    def _settle_fill(self, instrument: str, eng: MatchingEngine, f: MatchFill) -> None:
        spec, acc = eng.spec, self.accounts
        key = f"{instrument}/{f.coid}"
        if spec.kind == "spot":
            if f.side == Side.BUY:
                self._spend(f.owner, key, spec.quote, f.quote_atoms, EXTERNAL)
                acc.transfer_free(EXTERNAL, f.owner, spec.base, f.base_atoms)
            else:
                self._spend(f.owner, key, spec.base, f.base_atoms, EXTERNAL)
                acc.transfer_free(EXTERNAL, f.owner, spec.quote, f.quote_atoms)
        else:
            self._perp_fill(f.owner, instrument, spec, f)
        if f.fee_atoms > 0:
            res = acc.reservation(f.owner, key).get(f.fee_asset, 0)
            from_res = min(res, f.fee_atoms)
            if from_res:
                acc.consume(f.owner, key, f.fee_asset, from_res, FEES)
            if f.fee_atoms > from_res:
                acc.transfer_free(f.owner, FEES, f.fee_asset, f.fee_atoms - from_res)
        elif f.fee_atoms < 0:
            acc.transfer_free(FEES, f.owner, f.fee_asset, -f.fee_atoms)

    def _spend(self, owner: str, key: str, asset: str, atoms: int, to: str) -> None:
        have = self.accounts.reservation(owner, key).get(asset, 0)
        part = min(have, atoms)
        if part:
            self.accounts.consume(owner, key, asset, part, to)
        if atoms > part:
            self.accounts.transfer_free(owner, to, asset, atoms - part)

    def _perp_fill(self, owner: str, instrument: str, spec: Spec, f: MatchFill) -> None:
        pos = self.positions.setdefault((owner, instrument), PerpPosition())
        signed = f.lots if f.side == Side.BUY else -f.lots
        if pos.lots == 0 or (pos.lots > 0) == (signed > 0):
            pos.lots += signed
            pos.cost += f.price_ticks * f.lots
            return
        close = min(abs(pos.lots), f.lots)
        removed = pos.cost * close // abs(pos.lots)
        direction = 1 if pos.lots > 0 else -1
        pnl = (f.price_ticks * close - removed) * direction * spec.notional_unit
        pos.cost -= removed
        pos.lots -= direction * close
        opened = f.lots - close  # the part that flips the position
        if opened:
            pos.lots = opened if signed > 0 else -opened
            pos.cost = f.price_ticks * opened
        pos.realized_atoms += pnl
        self._pay(owner, spec.quote, -pnl)

    def _pay(self, owner: str, asset: str, atoms: int) -> None:
        """`owner` pays `atoms` to the outside (negative: receives); a shortfall is bad debt."""
        if atoms <= 0:
            if atoms:
                self.accounts.transfer_free(EXTERNAL, owner, asset, -atoms)
            return
        part = min(atoms, self.accounts.free(owner, asset))
        if part:
            self.accounts.transfer_free(owner, EXTERNAL, asset, part)
        if atoms > part:
            self.bad_debt[owner] = self.bad_debt.get(owner, 0) + atoms - part
