"""USDT accounting: one ledger of every fill, fee and transfer, valued at marks.

entries.py  the ledger's input records (fills, transfers) and their validation
costbasis.py  average-cost position keeping: realized and unrealized PnL in USDT
ledger.py   the ledger: balances per (venue, asset), PnL, fees, slippage, totals
convert.py  the venue interface's fills and transfers (basis_core.venue) into ledger entries
"""

from .costbasis import CostBasis
from .entries import LedgerFill, Transfer, TransferStatus
from .ledger import Ledger, OpportunityResult, Totals

__all__ = ["CostBasis", "Ledger", "LedgerFill", "OpportunityResult", "Totals", "Transfer", "TransferStatus"]
