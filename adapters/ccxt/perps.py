"""Perpetuals on a ccxt venue: options, leverage, positions, margin balances, marks and funding.

`CcxtVenue` hands its perp work to one `Perps` (built at start when the venue lists a perp
instrument) so the engine sees a ccxt USDⓈ-M venue the way it sees a simulated perp venue:

* `positions()`: one `Position` per perp instrument (signed qty, entry, mark, unrealized PnL,
  the funding this venue paid since start), from ccxt's `fetch_positions`;
* `balances()`: the margin asset's *wallet* balance (deposits, realized PnL, commissions and
  funding; unrealized PnL left out, as the ledger books it) as total, split into free (the
  venue's available balance, at most the wallet) and locked (the rest: margin held by positions
  and open orders). Other assets are free;
* `funding_updates()`: a `FundingUpdate` per perp (mark, index, last funding rate, next
  funding time) from the premium index, for the market stream;
* `funding_payments()`: each FUNDING_FEE income the venue booked since start, as a
  `FundingPayment` for the user stream (the ledger books it), with the rate and mark of that
  funding time (the venue's funding-rate history) and the position it was paid on.

Leverage is set at start for every perp (`CcxtVenueConfig.leverage`, else the config's
`DEFAULT_LEVERAGE`); the venue must answer with that leverage. Margin is checked by the venue:
an order it finds short of margin is refused (Binance -2019, `OrderRejected` with reason
insufficient_funds), which the engine treats like any refusal.

Requests pass the venue's gate under the closest endpoint weights the venue config has:
leverage as "markets", positions as "balances", the premium index as "book", income and the
funding-rate history as "fills".
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from basis_core.config import DEFAULT_LEVERAGE
from basis_core.errors import ConfigError, MalformedResponse
from basis_core.venue import Balance, FundingPayment, FundingUpdate, InstrumentInfo, Position, require_finite
from basis_ext import router as R

from .constants import POSITION_ROWS
from .parsing import number, time_ms

if TYPE_CHECKING:  # pragma: no cover
    from .client import CcxtVenue

#: ccxt exchange ids whose every market is a linear perpetual (their markets load as swaps)
LINEAR_ONLY = frozenset({"binanceusdm"})
#: newest income ids remembered to drop repeats (income is read from its last time on)
_SEEN_KEEP = 1000
#: how far a funding income's time may lie from its funding time (ms)
_RATE_SLACK_MS = 60_000


def client_options(exchange: str, options: dict) -> dict:
    """ccxt options for `exchange`: a linear-only exchange loads its linear markets, not spot."""
    if exchange in LINEAR_ONLY:
        return dict(options, fetchMarkets={"types": ["linear"]}, defaultType="swap", defaultSubType="linear")
    return options


def stand_in(ex, exchange: str, base_url: str, ws_url: str = "") -> None:
    """Point a linear-only exchange's futures streams at `ws_url` (ccxt derives its public and
    market stream paths from it), and have ccxt map the answers of a `base_url` stand-in (a local
    emulator) with the error codes of the venue it stands in for: ccxt applies the USDⓈ-M table
    (-2019 margin, -2022 reduce only, ...) only to answers from the real futures host."""
    streams = ex.urls["api"].get("ws")
    if exchange in LINEAR_ONLY and ws_url and isinstance(streams, dict):
        ex.urls["api"]["ws"] = dict(streams, linear=ws_url)
    if not base_url:
        return
    fapi = base_url.rstrip("/") + "/fapi/"
    by_url = ex.get_exceptions_by_url

    def exceptions_by_url(url, exact_or_broad):
        if isinstance(url, str) and url.startswith(fapi):
            return (ex.exceptions.get("linear") or {}).get(exact_or_broad) or {}
        return by_url(url, exact_or_broad)

    ex.get_exceptions_by_url = exceptions_by_url


class Perps:
    """The perp side of one CcxtVenue (built by `attach` after the markets loaded)."""

    def __init__(self, venue: CcxtVenue, perps: dict[str, InstrumentInfo], leverage: dict[str, int]):
        self.venue, self.perps, self.leverage = venue, perps, leverage
        self.funding_paid: dict[str, float] = dict.fromkeys(perps, 0.0)
        self._since_ms = 0
        self._seen: dict[str, None] = {}
        self._next_income_ms = 0
        self._next_funding_ms: dict[str, int] = {}

    @classmethod
    def attach(cls, venue: CcxtVenue) -> Perps | None:
        """A Perps for `venue` when it lists perps; ConfigError for a leverage it cannot set."""
        perps = {n: i for n, i in venue.instruments().items() if i.kind == "perp"}
        cfg = venue.config
        for name in cfg.leverage:
            if name not in perps:
                raise ConfigError(
                    f"venues.{venue.name}.leverage.{name}", "is not a perp instrument of this venue"
                )
        if not perps:
            return None
        leverage = {}
        for name in perps:
            lev = cfg.leverage.get(name, DEFAULT_LEVERAGE)
            if lev != int(lev) or not 1 <= lev <= 125:
                raise ConfigError(
                    f"venues.{venue.name}.leverage.{name}",
                    f"the venue takes a whole leverage in 1..125, got {lev!r}",
                )
            leverage[name] = int(lev)
        return cls(venue, perps, leverage)

    async def start(self) -> None:
        """Set each perp's leverage; remember from when funding payments are ours to report."""
        v = self.venue
        ex = v._ex_or_fail()
        self._since_ms = int(time.time() * 1000) - 1
        for name, lev in self.leverage.items():
            got = await v._call(
                R.OP_MARKETS, "markets", R.QUERY, ex.set_leverage, lev, self.perps[name].symbol
            )
            said = got.get("leverage") if isinstance(got, dict) else None
            if said is None or int(require_finite(v.name, "leverage", said)) != lev:
                raise ConfigError(
                    f"venues.{v.name}.leverage.{name}", f"set to {lev}, the venue answered {said!r}"
                )

    # -- views ----------------------------------------------------------------------------------

    async def positions(self) -> dict[str, Position]:
        v = self.venue
        ex = v._ex_or_fail()
        by_symbol = {i.symbol: n for n, i in self.perps.items()}
        rows = await v._call(
            R.OP_BALANCES, "balances", R.QUERY, ex.fetch_positions, [i.symbol for i in self.perps.values()]
        )
        if not isinstance(rows, list):
            raise MalformedResponse(v.name, "malformed", "positions answer is not a list")
        self._check_rows(
            rows,
            v.answer(POSITION_ROWS[v.config.exchange][0]) if v.config.exchange in POSITION_ROWS else None,
        )
        out = {n: Position(n, 0.0, 0.0, 0.0, 0.0, self.funding_paid[n]) for n in self.perps}
        for p in rows:
            name = by_symbol.get(str(p.get("symbol"))) if isinstance(p, dict) else None
            if name is None:
                continue
            size = number(v.name, "position contracts", p.get("contracts") or 0.0, signed=True)
            size *= float(p.get("contractSize") or 1.0)
            if p.get("side") == "short":
                size = -abs(size)
            entry = number(v.name, "entry price", p.get("entryPrice") or 0.0)
            mark = number(v.name, "mark price", p.get("markPrice") or 0.0)
            upnl = number(v.name, "unrealized PnL", p.get("unrealizedPnl") or 0.0, signed=True)
            out[name] = Position(name, size, entry, mark, upnl, self.funding_paid[name])
        return out

    def _check_rows(self, rows: list, raw) -> None:
        """Every position the venue's own answer `raw` lists for one of our perps with a size is
        among ccxt's `rows` with the same signed size (ccxt takes the side from the notional)."""
        v = self.venue
        if raw is None:
            return
        _, id_key, size_key = POSITION_ROWS[v.config.exchange]
        ex = v._ex_or_fail()
        ids = {ex.market(i.symbol)["id"]: i.symbol for i in self.perps.values()}
        sizes = {  # signed, as positions() reads them
            str(p.get("symbol")): abs(float(p.get("contracts") or 0.0))
            * float(p.get("contractSize") or 1.0)
            * (-1.0 if p.get("side") == "short" else 1.0)
            for p in rows
            if isinstance(p, dict)
        }
        for r in raw if isinstance(raw, list) else ():
            market_id = r.get(id_key) if isinstance(r, dict) else None
            if not isinstance(market_id, str) or market_id not in ex.markets_by_id:
                raise MalformedResponse(v.name, "malformed", f"position row of no market: {market_id!r}")
            symbol = ids.get(market_id)
            if symbol is None:
                continue  # another market's position: not ours to read
            size = number(v.name, "position size", r.get(size_key), signed=True)
            if size and abs(sizes.get(symbol, 0.0) - size) > 1e-9 * abs(size):
                raise MalformedResponse(
                    v.name,
                    "malformed",
                    f"{r.get(id_key)}: position {r.get(size_key)!r} not read from the answer",
                )

    def balances(self, raw) -> dict[str, Balance]:
        """Wallet balances from ccxt's fetch_balance of a USDⓈ-M account (its `info.assets`)."""
        name = self.venue.name
        info = raw.get("info") if isinstance(raw, dict) else None
        assets = info.get("assets") if isinstance(info, dict) else None
        if not isinstance(assets, list):
            raise MalformedResponse(name, "malformed", "futures balance answer without assets")
        out = {}
        for a in assets:
            if not isinstance(a, dict) or not a.get("asset"):
                raise MalformedResponse(name, "malformed", f"futures balance row without asset: {a!r}")
            asset = str(a["asset"])
            wallet = number(name, f"{asset} wallet balance", a.get("walletBalance"), signed=True)
            avail = number(name, f"{asset} available balance", a.get("availableBalance", wallet), signed=True)
            if wallet < 0:
                raise MalformedResponse(name, "malformed", f"{asset} wallet balance is negative: {wallet}")
            free = min(max(avail, 0.0), wallet) if a.get("marginAvailable", True) else wallet
            out[asset] = Balance(asset, free, wallet - free)
        return out

    # -- funding --------------------------------------------------------------------------------

    async def funding_updates(self) -> list[FundingUpdate]:
        """Mark, index and funding rate of every perp (one premium-index request each)."""
        v = self.venue
        ex = v._ex_or_fail()
        out = []
        for name, info in self.perps.items():
            fr = await v._call(R.OP_BOOK, "book", R.QUERY, ex.fetch_funding_rate, info.symbol)
            if not isinstance(fr, dict):
                raise MalformedResponse(v.name, "malformed", "funding rate answer is not an object")
            mark = number(v.name, "mark price", fr.get("markPrice"))
            index = number(v.name, "index price", fr.get("indexPrice") or mark)
            rate = number(v.name, "funding rate", fr.get("fundingRate") or 0.0, signed=True)
            next_ms = time_ms(v.name, "next funding time", fr.get("fundingTimestamp"))
            self._next_funding_ms[name] = next_ms
            ts = time_ms(v.name, "premium index time", fr.get("timestamp")) or int(time.time() * 1000)
            out.append(FundingUpdate(v.name, name, ts * 1_000_000, mark, index, rate, next_ms * 1_000_000))
        return out

    def income_due(self, now_ms: int, every_s: float) -> bool:
        """Whether to read the income history now: a funding time passed since the last read
        (one second of grace for the venue to book it), or `every_s` went by."""
        if now_ms >= self._next_income_ms:
            return True
        return any(0 < t + 1000 <= now_ms for t in self._next_funding_ms.values())

    async def funding_payments(self, every_s: float) -> list[FundingPayment]:
        """FUNDING_FEE incomes booked since the last read (since start at first), oldest first."""
        v = self.venue
        ex = v._ex_or_fail()
        now_ms = int(time.time() * 1000)
        self._next_income_ms = now_ms + int(every_s * 1000)
        for inst, t in self._next_funding_ms.items():
            if t + 1000 <= now_ms:
                self._next_funding_ms[inst] = 0  # read; the next premium index says when next
        by_symbol = {i.symbol: n for n, i in self.perps.items()}
        rows = await v._call(
            R.OP_FILLS,
            "fills",
            R.QUERY,
            ex.fetch_funding_history,
            None,
            self._since_ms,
            1000,
            {"incomeType": "FUNDING_FEE"},
        )
        out = []
        for r in rows if isinstance(rows, list) else ():
            if not isinstance(r, dict):
                raise MalformedResponse(v.name, "malformed", f"funding income row is not an object: {r!r}")
            rid = str(r.get("id") or "")
            name = by_symbol.get(str(r.get("symbol")))
            if not rid or rid in self._seen or name is None:
                continue
            amount = number(v.name, "funding amount", r.get("amount"), signed=True)
            ts_ms = time_ms(v.name, "funding time", r.get("timestamp"))
            rate, mark = await self._rate_at(name, ts_ms)
            self._remember(rid)  # (only once read whole: a garbled read leaves it for the next)
            self._since_ms = max(self._since_ms, ts_ms)
            qty = -amount / (mark * rate) if rate and mark else 0.0
            lot = self.perps[name].lot
            qty = round(qty / lot) * lot if math.isfinite(qty) else 0.0
            self.funding_paid[name] -= amount
            out.append(
                FundingPayment(
                    v.name, name, ts_ms * 1_000_000, amount, str(r.get("code") or "USDT"), rate, mark, qty
                )
            )
        return out

    async def _rate_at(self, name: str, ts_ms: int) -> tuple[float, float]:
        """(funding rate, mark price) of the funding time nearest `ts_ms` within a minute (the
        venue books the income at or just after its funding time); (0, 0) when it lists none."""
        v = self.venue
        ex = v._ex_or_fail()
        rows = await v._call(
            R.OP_FILLS,
            "fills",
            R.QUERY,
            ex.fetch_funding_rate_history,
            self.perps[name].symbol,
            ts_ms - _RATE_SLACK_MS,
            10,
            {"until": ts_ms + _RATE_SLACK_MS},
        )
        best: tuple[int, float, float] | None = None
        for r in rows if isinstance(rows, list) else ():
            if not isinstance(r, dict):
                continue
            rate = number(v.name, "funding rate", r.get("fundingRate"), signed=True)
            info = r.get("info")
            mark = number(
                v.name, "funding mark", (info.get("markPrice") if isinstance(info, dict) else None) or 0.0
            )
            gap = abs(time_ms(v.name, "funding rate time", r.get("timestamp")) - ts_ms)
            if best is None or gap < best[0]:
                best = (gap, rate, mark)
        return (best[1], best[2]) if best is not None else (0.0, 0.0)

    def _remember(self, rid: str) -> None:
        self._seen[rid] = None
        while len(self._seen) > _SEEN_KEEP:
            del self._seen[next(iter(self._seen))]
