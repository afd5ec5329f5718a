"""From the venue interface's records (basis_core.venue) to the ledger's.

A venue reports a fill with its wire client order id; basis-made ids carry the opportunity id
(`schema.split_coid`), hand-placed orders have none and book under opportunity 0. The
instrument's rules (`InstrumentInfo`) say which assets the fill moves and whether it is a perp.
"""

from __future__ import annotations

from basis_core.venue import Fill, InstrumentInfo, Side, TransferInfo, TransferState, coid_from_wire

from ..errors import AccountingError
from ..schema import split_coid
from .entries import LedgerFill, Transfer, TransferStatus


def ledger_fill(
    fill: Fill,
    info: InstrumentInfo,
    *,
    strategy: str = "",
    signal_px: float = 0.0,
    fill_id: str | None = None,
) -> LedgerFill:
    """The ledger's record of one venue fill on instrument `info`. `fill_id` replaces the venue's
    trade id as the de-duplication id (see reconcile.fills for the per-order ordinal form)."""
    if fill.instrument != info.name:
        raise AccountingError(f"fill {fill.trade_id} is on {fill.instrument}, rules given for {info.name}")
    num = coid_from_wire(fill.coid)
    opportunity_id = split_coid(num)[0] if num else 0
    return LedgerFill(
        venue=fill.venue,
        instrument=fill.instrument,
        base=info.base,
        quote=info.quote,
        side="buy" if fill.side == Side.BUY else "sell",
        qty=fill.qty,
        price=fill.price,
        ts_ns=fill.ts_ns,
        coid=fill.coid,
        fill_id=fill_id or fill.trade_id,
        fee=fill.fee,
        fee_asset=fill.fee_asset or info.quote,
        opportunity_id=opportunity_id,
        strategy=strategy,
        kind=info.kind,
        signal_px=signal_px,
    )


_STATES = {
    TransferState.REQUESTED: TransferStatus.REQUESTED,
    TransferState.SENT: TransferStatus.SENT,
    TransferState.CONFIRMING: TransferStatus.CONFIRMING,
    TransferState.CONFIRMED: TransferStatus.CONFIRMED,
    TransferState.FAILED: TransferStatus.FAILED,
}


def ledger_transfer(info: TransferInfo, fee: float = 0.0) -> Transfer:
    """The ledger's record of one transfer update as a venue reported it."""
    return Transfer(
        info.transfer_id,
        info.asset,
        info.amount,
        info.from_venue,
        info.to_venue,
        _STATES[info.state],
        info.updated_ns or info.requested_ns,
        fee,
    )
