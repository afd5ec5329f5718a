"""Reconciliation: our view against the venues', in four layers (ARCHITECTURE.md, "Reconciliation").

mismatch.py   Mismatch (layer, key, ours, theirs, cause) and the append-only ExceptionLog
orders.py     order layer: adopt, targeted query, lost — by client order id
fills.py      venue fills into the ledger (de-duplicated)
positions.py  position layer: perp positions, hedge completion, residual exposure
balances.py   balance layer: ledger vs venue with pending transfers and a lag window
reporting.py  reporting layer: USDT accounting identities, report figures, outcome
runner.py     one pass over every venue and layer; the engine event it calls for
"""

from .mismatch import ExceptionLog, Layer, Mismatch, Resolution

__all__ = ["ExceptionLog", "Layer", "Mismatch", "Resolution"]
