"""A `LedgerFill` built by hand, for the accounting, reconciliation and results tests (no tests here)."""

from __future__ import annotations

from basis_core.accounting import LedgerFill


def fill(
    venue: str = "alpha",
    side: str = "buy",
    qty: float = 1.0,
    price: float = 100.0,
    ts: int = 1,
    coid: int | str = 17,
    fid: str = "1",
    *,
    base: str = "BTC",
    quote: str = "USDT",
    instrument: str = "",
    **kw,
) -> LedgerFill:
    """`side` `qty` `base` at `price` on `venue` at `ts`; the instrument is `{base}{quote}@{venue}`
    unless named; `kw` are LedgerFill's optional fields (fee, fee_asset, opportunity_id, strategy,
    kind, signal_px)."""
    return LedgerFill(
        venue=venue,
        instrument=instrument or f"{base}{quote}@{venue}",
        base=base,
        quote=quote,
        side=side,
        qty=qty,
        price=price,
        ts_ns=ts,
        coid=coid,
        fill_id=fid,
        **kw,
    )
