"""The USDT ledger: every fill, fee, transfer and deposit, as postings per (venue, asset).

One Ledger per run. It is fed the venue's reports (fills, transfer updates) and the starting
inventory (deposits), and answers:

- balances per (venue, asset) as the venue should show them (fees deducted, transfers debited
  when sent and credited when confirmed), and what is in transit;
- realized and unrealized PnL in USDT by average cost, fees in USDT (a fee charged in any asset
  is converted at the mark at the fee's time), slippage against the signal's prices;
- per opportunity: expected edge, realized PnL, fees, slippage, bought/sold quantity;
- totals per venue and per strategy; net exposure per asset and per instrument at marks.

Marks come from the caller: `mark(asset, ts_ns) -> float` is USDT per unit of `asset` at that
time (USDT itself is 1 and never asked). A mark that is missing, NaN or not positive raises
AccountingError and nothing is booked. Perp positions are valued at the mark of their base.

Fills are de-duplicated by (venue, client order id, fill id): a repeated report returns False
and changes nothing. The identity tested on every sequence of entries:

    equity(marks) - contributed == realized + unrealized(marks) - fees

where equity values every balance (in transit included) at the marks plus perp unrealized PnL,
and contributed is the USDT value of the deposits at their time.

A perp position the venue already held when the run began is booked by `open_position` at the
venue's entry price: no fill, no cash, nothing contributed. Closing it later realizes against
that entry price, as the venue does in its wallet balance; its PnL before the run shows in the
unrealized PnL. Like deposited inventory it is the run's starting point: `exposure_by_asset`
counts only what trading changed since.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import AccountingError, BasisError
from .costbasis import CostBasis
from .entries import USDT, LedgerFill, Transfer, TransferStatus

MarkFn = Callable[[str, int], float]

_DEBITED = (TransferStatus.SENT, TransferStatus.CONFIRMING, TransferStatus.CONFIRMED)
_ORDER = {
    TransferStatus.REQUESTED: 0,
    TransferStatus.SENT: 1,
    TransferStatus.CONFIRMING: 2,
    TransferStatus.CONFIRMED: 3,
    TransferStatus.FAILED: 3,
}


@dataclass(frozen=True)
class Posting:
    """One change of one balance: `delta` units of `asset` at `venue` (venue "transit" = in flight)."""

    ts_ns: int
    kind: str  # fill | fee | transfer | deposit | settle | funding | open
    venue: str
    asset: str  # for "open": the perp instrument (delta 0: a position, not a balance)
    delta: float
    usdt: float  # delta valued at the mark at ts_ns
    ref: str


@dataclass
class OpportunityResult:
    """What one opportunity expected and what it got, in USDT."""

    opportunity_id: int
    strategy: str = ""
    expected_edge_usdt: float = 0.0
    realized_pnl_usdt: float = 0.0
    fees_usdt: float = 0.0
    slippage_usdt: float = 0.0
    funding_usdt: float = 0.0
    fills: int = 0
    bought: dict[str, float] = field(default_factory=dict)  # base asset -> qty bought
    sold: dict[str, float] = field(default_factory=dict)  # base asset -> qty sold
    first_ts_ns: int = 0
    last_ts_ns: int = 0

    @property
    def symmetry(self) -> float:
        """min(bought, sold) / max(bought, sold) over the opportunity's base assets; 1 = fully hedged."""
        lo = hi = 0.0
        for asset in set(self.bought) | set(self.sold):
            b, s = self.bought.get(asset, 0.0), self.sold.get(asset, 0.0)
            lo, hi = lo + min(b, s), hi + max(b, s)
        return lo / hi if hi > 0 else 0.0

    @property
    def net_pnl_usdt(self) -> float:
        return self.realized_pnl_usdt - self.fees_usdt


@dataclass
class Totals:
    """Aggregates for one venue or one strategy. `realized_pnl_usdt` is None for a venue:
    a hedged trade's PnL belongs to the pair of legs, not to either venue."""

    fills: int = 0
    volume_usdt: float = 0.0
    fees_usdt: float = 0.0
    slippage_usdt: float = 0.0
    realized_pnl_usdt: float | None = None


class Ledger:
    def __init__(self, mark: MarkFn):
        self._mark_fn = mark
        self.postings: list[Posting] = []
        self.gross_usdt = 0.0  # sum of |usdt| over the postings, kept as they are made
        self.opportunity_fees_usdt = 0.0  # fees booked to opportunities, kept as they are booked
        self.fills: list[tuple[LedgerFill, float]] = []  # every booked fill with its fee in USDT
        self.history: list[
            tuple[int, float, float, float]
        ] = []  # (ts_ns, realized, fees, residual) per booking
        self._bal: dict[tuple[str, str], float] = defaultdict(float)
        self._seen: set[tuple[str, str, str]] = set()
        self._pos: dict[str, CostBasis] = {}  # asset or perp key -> cost basis
        self._perp_base: dict[str, str] = {}  # perp key -> base asset
        self._inst_qty: dict[str, float] = defaultdict(float)
        self._inst_base: dict[str, str] = {}
        self._deposited: dict[str, float] = defaultdict(float)
        #: perp positions held at the start (`open_position`): (venue, instrument) -> (qty, entry)
        self.opening_positions: dict[tuple[str, str], tuple[float, float]] = {}
        self._opened: dict[str, float] = defaultdict(float)  # base asset -> opening perp qty
        self._transfers: dict[str, Transfer] = {}
        self._opps: dict[int, OpportunityResult] = {}
        self.dirty: set[int] = set()  # opportunities changed since a recorder last took them
        self._watchers: list[set[int]] = []  # more such sets, one per checker (`watch`)
        self._opp_pos: dict[int, dict[str, CostBasis]] = defaultdict(dict)
        self._venue_totals: dict[str, Totals] = defaultdict(Totals)
        self.contributed_usdt = 0.0
        self.fees_usdt = 0.0
        self.slippage_usdt = 0.0
        self.funding_usdt = 0.0
        self.duplicates = 0

    # -- marks ---------------------------------------------------------------------------------

    def mark(self, asset: str, ts_ns: int) -> float:
        """USDT per unit of `asset` at `ts_ns` from the caller's mark function, checked."""
        if asset == USDT:
            return 1.0
        try:
            px = self._mark_fn(asset, ts_ns)
        except (LookupError, BasisError):  # the caller's "no mark for that": the same as a missing one
            px = None
        if (
            px is None
            or isinstance(px, bool)
            or not isinstance(px, (int, float))
            or not math.isfinite(px)
            or px <= 0
        ):
            raise AccountingError(f"no usable USDT mark for {asset} at {ts_ns}: {px!r}")
        return float(px)

    # -- booking -------------------------------------------------------------------------------

    def deposit(self, venue: str, asset: str, amount: float, ts_ns: int, ref: str = "deposit") -> None:
        """Starting inventory (or capital added): counted as contributed, not as PnL."""
        if not math.isfinite(amount) or amount <= 0:
            raise AccountingError(f"deposit amount must be > 0, got {amount!r}")
        m = self.mark(asset, ts_ns)
        self.contributed_usdt += amount * m
        self._deposited[asset] += amount
        if asset != USDT:
            self._basis(self._pos, asset).trade(amount, m)
        self._post(ts_ns, "deposit", venue, asset, amount, m, ref)

    def open_position(
        self, venue: str, instrument: str, base: str, qty: float, entry_price: float, ts_ns: int
    ) -> None:
        """A perp position the venue holds at the start of the run (signed `qty`, long > 0) taken
        over at the venue's `entry_price`: an opening posting, not a fill (no fee, no volume, no
        opportunity). Booked once per (venue, instrument), before any fill of it."""
        if not math.isfinite(qty) or qty == 0:
            raise AccountingError(
                f"opening position {venue}:{instrument}: qty must be finite and != 0, got {qty!r}"
            )
        if not math.isfinite(entry_price) or entry_price <= 0:
            raise AccountingError(
                f"opening position {venue}:{instrument}: entry price must be > 0, got {entry_price!r}"
            )
        key = f"perp:{venue}:{instrument}"
        if (venue, instrument) in self.opening_positions or key in self._pos:
            raise AccountingError(f"opening position {venue}:{instrument}: the ledger already holds it")
        self._perp_base[key] = base
        self._basis(self._pos, key).trade(qty, entry_price)
        self.opening_positions[(venue, instrument)] = (float(qty), float(entry_price))
        self._opened[base] += qty
        self._inst_base[instrument] = base
        self.postings.append(
            Posting(
                int(ts_ns),
                "open",
                venue,
                instrument,
                0.0,
                0.0,
                f"open:{venue}:{instrument}:{qty!r}@{entry_price!r}",
            )
        )
        self._snapshot(ts_ns)

    def open_opportunity(
        self, opportunity_id: int, strategy: str, expected_edge_usdt: float, ts_ns: int = 0
    ) -> None:
        """Declare an opportunity before its fills arrive (the signal's expected edge, in USDT)."""
        if not math.isfinite(expected_edge_usdt):
            raise AccountingError(f"expected edge must be finite, got {expected_edge_usdt!r}")
        opp = self._opp(opportunity_id, strategy, ts_ns)
        opp.expected_edge_usdt = float(expected_edge_usdt)

    def book_fill(self, f: LedgerFill) -> bool:
        """Book one fill and its fee. Returns False (and books nothing) for a repeated report."""
        if f.key in self._seen:
            self.duplicates += 1
            return False
        m_quote = self.mark(f.quote, f.ts_ns)
        m_fee = self.mark(f.fee_asset, f.ts_ns) if f.fee else 0.0
        if f.kind == "perp" and f.quote != USDT:
            raise AccountingError(
                f"perp {f.instrument}: only USDT-margined perps are supported, quote is {f.quote}"
            )
        self._seen.add(f.key)
        dq = f.sign * f.qty
        px_usdt = f.price * m_quote
        ref = f"{f.venue}:{f.coid}:{f.fill_id}"
        opp = self._opp(f.opportunity_id, f.strategy, f.ts_ns) if f.opportunity_id else None
        books = [self._pos] + ([self._opp_pos[f.opportunity_id]] if opp else [])
        if f.kind == "spot":
            for book in books:
                self._basis(book, f.base).trade(dq, px_usdt)
                if f.quote != USDT:
                    self._basis(book, f.quote).trade(-dq * f.price, m_quote)
            self._post(f.ts_ns, "fill", f.venue, f.base, dq, px_usdt, ref)
            self._post(f.ts_ns, "fill", f.venue, f.quote, -dq * f.price, m_quote, ref)
        else:
            key = f"perp:{f.venue}:{f.instrument}"
            self._perp_base[key] = f.base
            r_global = self._basis(self._pos, key).trade(dq, f.price)
            if opp is not None:
                self._basis(self._opp_pos[f.opportunity_id], key).trade(dq, f.price)
            if r_global:
                self._post(f.ts_ns, "settle", f.venue, USDT, r_global, 1.0, ref)
        self._inst_qty[f.instrument] += dq
        self._inst_base[f.instrument] = f.base
        fee_usdt = self._book_fee(f.venue, f.fee_asset, f.fee, m_fee, f.ts_ns, ref, books)
        slip = (f.price - f.signal_px) * f.qty * f.sign * m_quote if f.signal_px > 0 else 0.0
        self.slippage_usdt += slip
        vt = self._venue_totals[f.venue]
        vt.fills += 1
        vt.volume_usdt += f.qty * px_usdt
        vt.slippage_usdt += slip
        if opp is not None:
            opp.fills += 1
            opp.realized_pnl_usdt = self._opp_realized(f.opportunity_id)
            opp.fees_usdt += fee_usdt
            self.opportunity_fees_usdt += fee_usdt
            opp.slippage_usdt += slip
            side = opp.bought if f.side == "buy" else opp.sold
            side[f.base] = side.get(f.base, 0.0) + f.qty
            opp.last_ts_ns = max(opp.last_ts_ns, f.ts_ns)
        self.fills.append((f, fee_usdt))
        self._snapshot(f.ts_ns)
        return True

    def book_transfer(self, t: Transfer) -> bool:
        """Apply a transfer status update. Returns False for a repeat or a stale (earlier) status;
        a terminal transfer that reports a different terminal status raises AccountingError."""
        prev = self._transfers.get(t.transfer_id)
        if prev is not None:
            terms = lambda x: (x.asset, x.amount, x.from_venue, x.to_venue)
            if terms(prev) != terms(t):
                raise AccountingError(
                    f"transfer {t.transfer_id}: update does not match the transfer first booked"
                )
            if prev.status == t.status or _ORDER[t.status] < _ORDER[prev.status]:
                return False
            if _ORDER[prev.status] == 3:
                raise AccountingError(f"transfer {t.transfer_id}: {prev.status.value} then {t.status.value}")
        was_debited = prev is not None and prev.status in _DEBITED
        m = self.mark(t.asset, t.ts_ns)
        ref = f"transfer:{t.transfer_id}"
        if t.status in _DEBITED and not was_debited:
            self._post(t.ts_ns, "transfer", t.from_venue, t.asset, -t.amount, m, ref)
            self._post(t.ts_ns, "transfer", "transit", t.asset, t.amount, m, ref)
            self._book_fee(t.from_venue, t.asset, t.fee, m, t.ts_ns, ref, [self._pos])
        if t.status == TransferStatus.CONFIRMED:
            self._post(t.ts_ns, "transfer", "transit", t.asset, -t.amount, m, ref)
            self._post(t.ts_ns, "transfer", t.to_venue, t.asset, t.amount, m, ref)
        elif t.status == TransferStatus.FAILED and was_debited:
            self._post(t.ts_ns, "transfer", "transit", t.asset, -t.amount, m, ref)
            self._post(t.ts_ns, "transfer", t.from_venue, t.asset, t.amount, m, ref)
        self._transfers[t.transfer_id] = t
        self._snapshot(t.ts_ns)
        return True

    def book_fee(
        self, venue: str, asset: str, amount: float, ts_ns: int, ref: str, opportunity_id: int = 0
    ) -> float:
        """A fee not attached to a fill (withdrawal, funding charge ...). Returns its USDT value."""
        if not math.isfinite(amount) or amount < 0:
            raise AccountingError(f"fee must be >= 0, got {amount!r}")
        m = self.mark(asset, ts_ns)
        books = [self._pos] + ([self._opp_pos[opportunity_id]] if opportunity_id else [])
        usdt = self._book_fee(venue, asset, amount, m, ts_ns, ref, books)
        if opportunity_id:
            opp = self._opp(opportunity_id, "", ts_ns)
            opp.fees_usdt += usdt
            self.opportunity_fees_usdt += usdt
            opp.realized_pnl_usdt = self._opp_realized(opportunity_id)
        self._snapshot(ts_ns)
        return usdt

    def book_funding(
        self, venue: str, asset: str, amount: float, ts_ns: int, ref: str, opportunity_id: int = 0
    ) -> float:
        """Perp funding settled into `asset` (> 0 received, < 0 paid); realized PnL, not a fee."""
        if not math.isfinite(amount):
            raise AccountingError(f"funding amount must be finite, got {amount!r}")
        m = self.mark(asset, ts_ns)
        if asset != USDT:
            self._basis(self._pos, asset).trade(amount, m)
        self._post(ts_ns, "funding", venue, asset, amount, m, ref)
        self.funding_usdt += amount * m
        if opportunity_id:
            opp = self._opp(opportunity_id, "", ts_ns)
            opp.funding_usdt += amount * m
            opp.realized_pnl_usdt = self._opp_realized(opportunity_id)
        self._snapshot(ts_ns)
        return amount * m

    # -- queries -------------------------------------------------------------------------------

    def balance(self, venue: str, asset: str) -> float:
        return self._bal.get((venue, asset), 0.0)

    def balances(self) -> dict[tuple[str, str], float]:
        """Every (venue, asset) balance the ledger expects; venue "transit" holds what is in flight."""
        return dict(self._bal)

    def pending_transfers(self) -> list[Transfer]:
        done = (TransferStatus.CONFIRMED, TransferStatus.FAILED)
        return [t for t in self._transfers.values() if t.status not in done]

    def pending_out(self, venue: str, asset: str) -> float:
        """Amount debited from `venue` by the ledger but not yet confirmed at the destination."""
        return sum(
            t.amount + t.fee
            for t in self.pending_transfers()
            if t.from_venue == venue and t.asset == asset and t.status in _DEBITED
        )

    def pending_in(self, venue: str, asset: str) -> float:
        """Amount on its way to `venue` that the ledger has not credited yet."""
        return sum(t.amount for t in self.pending_transfers() if t.to_venue == venue and t.asset == asset)

    @property
    def realized_pnl_usdt(self) -> float:
        """Realized by average cost over every asset and perp, plus funding received."""
        return sum(b.realized for b in self._pos.values()) + self.funding_usdt

    def unrealized_pnl_usdt(self, ts_ns: int) -> float:
        return sum(b.unrealized(self._key_mark(k, ts_ns)) for k, b in self._pos.items() if b.qty)

    def equity_usdt(self, ts_ns: int) -> float:
        """Every balance (in transit included) at the marks, plus the perps' unrealized PnL."""
        total = sum(q * self.mark(a, ts_ns) for (_, a), q in self._bal.items() if q)
        total += sum(
            b.unrealized(self._key_mark(k, ts_ns))
            for k, b in self._pos.items()
            if k in self._perp_base and b.qty
        )
        return total

    def exposure_by_asset(self, ts_ns: int) -> dict[str, float]:
        """Net exposure taken by trading, per asset, in USDT at the marks: spot holdings on every
        venue and in transit, plus perp positions on that base, minus the deposited inventory."""
        qty: dict[str, float] = defaultdict(float)
        for (_, asset), q in self._bal.items():
            if asset != USDT:
                qty[asset] += q
        for asset, q in self._deposited.items():
            if asset != USDT:
                qty[asset] -= q
        for asset, q in self._opened.items():  # perp positions held at the start
            qty[asset] -= q
        for key, b in self._pos.items():
            if key in self._perp_base:
                qty[self._perp_base[key]] += b.qty
        return {a: q * self.mark(a, ts_ns) for a, q in qty.items() if abs(q) > 1e-12}

    def perp_positions(self) -> dict[tuple[str, str], float]:
        """Signed perp quantity per (venue, instrument) as our fills put it."""
        out = {}
        for key, b in self._pos.items():
            if key in self._perp_base:
                _, venue, instrument = key.split(":", 2)
                out[(venue, instrument)] = b.qty
        return out

    def exposure_by_instrument(self, ts_ns: int) -> dict[str, float]:
        """Net signed quantity traded per instrument, in USDT at the mark of its base."""
        return {
            i: q * self.mark(self._inst_base[i], ts_ns) for i, q in self._inst_qty.items() if abs(q) > 1e-12
        }

    def opportunity(self, opportunity_id: int) -> OpportunityResult:
        try:
            return self._opps[opportunity_id]
        except KeyError:
            raise AccountingError(f"unknown opportunity {opportunity_id}") from None

    def opportunities(self) -> list[OpportunityResult]:
        return [self._opps[k] for k in sorted(self._opps)]

    def totals_by_venue(self) -> dict[str, Totals]:
        return {
            v: Totals(t.fills, t.volume_usdt, t.fees_usdt, t.slippage_usdt)
            for v, t in sorted(self._venue_totals.items())
        }

    def totals_by_strategy(self) -> dict[str, Totals]:
        out: dict[str, Totals] = {}
        for o in self.opportunities():
            t = out.setdefault(o.strategy, Totals(realized_pnl_usdt=0.0))
            t.fills += o.fills
            t.fees_usdt += o.fees_usdt
            t.slippage_usdt += o.slippage_usdt
            t.realized_pnl_usdt = (t.realized_pnl_usdt or 0.0) + o.realized_pnl_usdt  # 0.0 from the start
        return out

    # -- internals -----------------------------------------------------------------------------

    def _book_fee(self, venue, asset, amount, m, ts_ns, ref, books) -> float:
        if not amount:
            return 0.0
        if asset != USDT:
            for book in books:
                self._basis(book, asset).trade(-amount, m)  # the fee disposes of `amount` at the mark
        self._post(ts_ns, "fee", venue, asset, -amount, m, ref)
        usdt = amount * m
        self.fees_usdt += usdt
        self._venue_totals[venue].fees_usdt += usdt
        return usdt

    def _post(self, ts_ns, kind, venue, asset, delta, m, ref) -> None:
        if not delta:
            return
        self._bal[(venue, asset)] += delta
        post = Posting(int(ts_ns), kind, venue, asset, float(delta), float(delta * m), ref)
        self.postings.append(post)
        self.gross_usdt += abs(post.usdt)

    def watch(self) -> set[int]:
        """A set of opportunity ids that the ledger adds to whenever one is opened or changes,
        starting with every one it has: a checker takes and clears it instead of going over every
        opportunity of the run each time."""
        changed = set(self._opps)
        self._watchers.append(changed)
        return changed

    def _opp(self, opportunity_id: int, strategy: str, ts_ns: int) -> OpportunityResult:
        self.dirty.add(opportunity_id)
        for changed in self._watchers:
            changed.add(opportunity_id)
        opp = self._opps.get(opportunity_id)
        if opp is None:
            opp = OpportunityResult(opportunity_id, strategy, first_ts_ns=ts_ns, last_ts_ns=ts_ns)
            self._opps[opportunity_id] = opp
        elif strategy and not opp.strategy:
            opp.strategy = strategy
        return opp

    def _snapshot(self, ts_ns: int) -> None:
        try:
            residual = sum(abs(v) for v in self.exposure_by_asset(ts_ns).values())
        except AccountingError:
            residual = math.nan  # no mark for some asset at this time: unknown, not zero
        self.history.append((int(ts_ns), self.realized_pnl_usdt, self.fees_usdt, residual))

    def _opp_realized(self, opportunity_id: int) -> float:
        return (
            sum(b.realized for b in self._opp_pos[opportunity_id].values())
            + self._opps[opportunity_id].funding_usdt
        )

    def _key_mark(self, key: str, ts_ns: int) -> float:
        return self.mark(self._perp_base.get(key, key), ts_ns)

    @staticmethod
    def _basis(book: dict[str, CostBasis], key: str) -> CostBasis:
        b = book.get(key)
        if b is None:
            b = book[key] = CostBasis()
        return b
