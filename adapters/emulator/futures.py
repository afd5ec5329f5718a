"""A Binance USDⓈ-M futures emulator on loopback, over the simulated venues' perp accounting.

`FuturesEmulator` is the spot `Emulator` (same request pipeline: signatures and recvWindow from
`auth`, weights and 429/418 from `limits`, the `faults` switches, the depth websocket) serving
the `/fapi` endpoints ccxt's `binanceusdm` uses instead of `/api`:

    public   GET  /fapi/v1/ping, time, exchangeInfo, depth, premiumIndex, fundingRate
    signed   GET  /fapi/v2|v3/account, /fapi/v2|v3/balance, /fapi/v2|v3/positionRisk,
                  /fapi/v1/leverageBracket, openOrders, userTrades, income, accountConfig,
                  commissionRate
             POST /fapi/v1/leverage;  POST / GET / DELETE /fapi/v1/order

Accounting is `adapters.sim.exchange.Exchange`'s for `kind = "perp"`: USDT-margined linear
contracts, one-way mode (one signed position per symbol, `positionSide` BOTH), entry price
averaged while a position grows, PnL realized into the wallet as it shrinks, commission in USDT.
Margin is cross: the wallet is the account's USDT (free + what open orders reserve); an order
needs initial margin (notional / leverage at its limit price, or the touch for a market order)
for the part that opens exposure, out of the available balance (wallet + unrealized PnL −
positions' initial margin − open orders' margin), else -2019 "Margin is insufficient.". A
reduce-only order that would not only shrink the position is -2022. There is no liquidation
(`liquidationPrice` is reported from the maintenance rate, nothing acts on it) and no isolated
margin, hedge mode or conditional orders.

Mark, index and funding: `set_mark` / `update_funding` (the market driver, from the book mid and
its funding model) set them; `apply_funding(symbol, rate, mark)` settles funding on every open
position at the mark (longs pay shorts when rate > 0), recorded as FUNDING_FEE income; funding
is also settled by `update_funding` whenever a funding time (`funding_interval_s`) has passed.
Histories (income, funding rates) keep their newest `HISTORY` entries.

User data: `POST / PUT / DELETE /fapi/v1/listenKey` (API key, no signature; PUT and DELETE
address the caller's live key) and the listen key's socket at `/private/ws?listenKey=k`, where
ccxt.pro's binanceusdm connects (`userstream.UserStreams`). Every change of an order is one
`ORDER_TRADE_UPDATE` (x NEW, TRADE with the last fill's qty, price, commission, trade id and
realized profit, CANCELED, EXPIRED); a result with fills is followed by one `ACCOUNT_UPDATE`
(reason ORDER: the margin asset's wallet, the traded symbol's position) per account holder it
touched, and each funding payment by one `ACCOUNT_UPDATE` (reason FUNDING_FEE: the wallet and
the payment as its balance change, no positions, as Binance sends it for cross margin).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from urllib.parse import parse_qsl

from aiohttp import web

from adapters.sim.exchange import DEFAULT_LEVERAGE, Exchange  # the simulated exchange's default
from adapters.sim.matching import MARKET, MatchFill, OrderView, Result, Spec
from basis_core.errors import ConfigError
from basis_core.schema import OrderType, RejectReason, Side
from basis_core.venue import OrderStatus

from . import wire
from .limits import RateLimitsConfig
from .server import Emulator, FeeSchedule, Placed, _Refused
from .userstream import EXEC_TYPE

#: Binance USDⓈ-M's fee tiers (VIP 0 .. 9) as (maker, taker) bps; an account's `feeTier` is the
#: tier of its fees (0 when they are none of these), as /fapi/v1/accountConfig reports it
FEE_TIERS = (
    (2.0, 4.0),
    (1.6, 4.0),
    (1.4, 3.5),
    (1.2, 3.2),
    (1.0, 3.0),
    (0.8, 2.7),
    (0.6, 2.5),
    (0.4, 2.2),
    (0.2, 2.0),
    (0.0, 1.7),
)
#: the regular tier, charged in USDT
FUTURES_FEES = FeeSchedule(maker_bps=FEE_TIERS[0][0], taker_bps=FEE_TIERS[0][1])
#: maintenance margin rate of the one leverage bracket every symbol has here
MAINT_MARGIN_RATE = 0.004
MAX_LEVERAGE = 125
#: newest entries kept per owner (income) and per symbol (funding rates)
HISTORY = 10_000

#: (method, path) -> request weight (Binance USDⓈ-M's published weights)
FUTURES_WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/fapi/v1/ping"): 1,
    ("GET", "/fapi/v1/time"): 1,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v1/premiumIndex"): 1,
    ("GET", "/fapi/v1/fundingRate"): 1,
    ("GET", "/fapi/v1/leverageBracket"): 1,
    ("GET", "/fapi/v2/account"): 5,
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/balance"): 5,
    ("GET", "/fapi/v3/balance"): 5,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("POST", "/fapi/v1/order"): 0,
    ("GET", "/fapi/v1/order"): 1,
    ("DELETE", "/fapi/v1/order"): 1,
    ("GET", "/fapi/v1/openOrders"): 1,  # 40 without a symbol
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/income"): 30,
    ("POST", "/fapi/v1/leverage"): 1,
    ("GET", "/fapi/v1/accountConfig"): 5,
    ("GET", "/fapi/v1/commissionRate"): 20,
}

STATUS = dict(wire.STATUS)
#: (type, time in force) on the wire for each of our order types
TYPE = {
    OrderType.LIMIT: ("LIMIT", "GTC"),
    OrderType.IOC: ("LIMIT", "IOC"),
    OrderType.POST_ONLY: ("LIMIT", "GTX"),
    OrderType.MARKET: ("MARKET", "GTC"),
}
ORDER_TYPES = ["LIMIT", "MARKET"]
#: an engine reject reason -> (HTTP status, Binance USDⓈ-M code, message)
REJECTS: dict[RejectReason, tuple[int, int, str]] = {
    RejectReason.LOT_SIZE: (400, -1013, "Filter failure: LOT_SIZE"),
    RejectReason.BAD_INPUT: (400, -1013, "Filter failure: PRICE_FILTER"),
    RejectReason.MIN_NOTIONAL: (400, -4164, "Order's notional must be no smaller than the minimum."),
    RejectReason.POST_ONLY_WOULD_CROSS: (
        400,
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    RejectReason.INSUFFICIENT_FUNDS: (400, -2019, "Margin is insufficient."),
}


def _refuse(reason: RejectReason) -> _Refused:
    status, code, msg = REJECTS.get(reason, (400, -2010, "NEW_ORDER_REJECTED"))
    return _Refused(status, code, msg)


def _keep(d: dict, key, value) -> None:
    """d[key] = value, the oldest entries dropped past `HISTORY` * 10 (a trade's PnL and an
    order's reduce-only flag are kept for that many of the newest)."""
    d[key] = value
    while len(d) > HISTORY * 10:
        del d[next(iter(d))]


def _money(x: float) -> str:
    return f"{x:.8f}"


class FuturesFormatter(wire.Formatter):
    """USDⓈ-M bodies for one symbol."""

    def symbol_info(self) -> dict:
        s = self.spec
        return {
            "symbol": s.symbol,
            "pair": s.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "baseAsset": s.base,
            "quoteAsset": s.quote,
            "marginAsset": s.quote,
            "pricePrecision": self.px_dec,
            "quantityPrecision": self.qty_dec,
            "baseAssetPrecision": s.base_decimals,
            "quotePrecision": s.quote_decimals,
            "underlyingType": "COIN",
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "orderTypes": ORDER_TYPES,
            "timeInForce": ["GTC", "IOC", "GTX"],
            "filters": [
                *self.grid_filters(),
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": self.qty(s.lot),
                    "maxQty": self.qty(self.max_qty),
                    "stepSize": self.qty(s.lot),
                },
                {"filterType": "MIN_NOTIONAL", "notional": f"{s.min_notional:g}"},
            ],
        }

    def futures_order(self, v: OrderView, ms: int, reduce_only: bool = False) -> dict:
        otype, tif = TYPE[v.type]
        return {
            "orderId": v.oid,
            "symbol": self.spec.symbol,
            "status": STATUS[v.status],
            "clientOrderId": v.coid,
            "price": self.px(v.price),
            "avgPrice": self.px(v.avg_price) if v.filled_qty else "0",
            "origQty": self.qty(v.qty),
            "executedQty": self.qty(v.filled_qty),
            "cumQty": self.qty(v.filled_qty),
            "cumQuote": self.quote(v.avg_price * v.filled_qty),
            "timeInForce": tif,
            "type": otype,
            "reduceOnly": reduce_only,
            "closePosition": False,
            "side": wire.SIDE[v.side],
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": otype,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": v.created_ns // 1_000_000,
            "updateTime": v.updated_ns // 1_000_000 or ms,
        }

    def order_trade_update(
        self,
        v: OrderView,
        x: str,
        fill: MatchFill | None,
        commission: float,
        realized: float,
        reduce_only: bool,
        ms: int,
    ) -> dict:
        """The `o` of one ORDER_TRADE_UPDATE: one change `x` of order `v` (TRADE: `fill`)."""
        otype, tif = TYPE[v.type]
        last_qty = fill.qty if fill is not None else 0.0
        last_px = fill.price if fill is not None else 0.0
        return {
            "s": self.spec.symbol,
            "c": v.coid,
            "S": wire.SIDE[v.side],
            "o": otype,
            "f": tif,
            "q": self.qty(v.qty),
            "p": self.px(v.price),
            "ap": self.px(v.avg_price) if v.filled_qty else "0",
            "sp": "0",
            "x": x,
            "X": STATUS[v.status],
            "i": v.oid,
            "l": self.qty(last_qty),
            "z": self.qty(v.filled_qty),
            "L": self.px(last_px),
            "N": (fill.fee_asset or self.spec.quote) if fill is not None else self.spec.quote,
            "n": _money(commission),
            "T": (fill.ts_ns // 1_000_000) if fill is not None else (v.updated_ns // 1_000_000 or ms),
            "t": fill.trade_id if fill is not None else 0,
            "b": "0",
            "a": "0",
            "m": fill is not None and int(fill.liquidity) == 1,
            "R": reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": otype,
            "ps": "BOTH",
            "cp": False,
            "rp": _money(realized),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        }

    def user_trade(self, f: MatchFill, oid: int, commission: float, realized: float) -> dict:
        return {
            "symbol": self.spec.symbol,
            "id": f.trade_id,
            "orderId": oid,
            "side": wire.SIDE[f.side],
            "price": self.px(f.price),
            "qty": self.qty(f.qty),
            "realizedPnl": _money(realized),
            "marginAsset": self.spec.quote,
            "quoteQty": self.quote(f.price * f.qty),
            "commission": _money(commission),
            "commissionAsset": f.fee_asset,
            "time": f.ts_ns // 1_000_000,
            "positionSide": "BOTH",
            "buyer": f.side == Side.BUY,
            "maker": int(f.liquidity) == 1,
        }


class _PerpExchange(Exchange):
    """The simulated exchange, remembering the PnL each perp fill realized (until `take_pnl`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fill_pnl: dict[tuple[str, int], int] = {}

    def _perp_fill(self, owner: str, instrument: str, spec: Spec, f: MatchFill) -> None:
        before = self.position(owner, instrument).realized_atoms
        super()._perp_fill(owner, instrument, spec, f)
        self._fill_pnl[(owner, f.trade_id)] = self.positions[(owner, instrument)].realized_atoms - before

    def take_pnl(self, owner: str, trade_id: int) -> int:
        return self._fill_pnl.pop((owner, trade_id), 0)


@dataclasses.dataclass
class _Funding:
    index: float = 0.0
    rate: float = 0.0
    next_ms: int = 0


class FuturesEmulator(Emulator):
    """One emulated USDⓈ-M venue: perpetual `specs` (all margined in one asset), `leverage` per
    symbol (default `DEFAULT_LEVERAGE`), funding every `funding_interval_s`."""

    def __init__(
        self,
        specs: list[Spec],
        keys: dict[str, tuple[str, str]],
        *,
        name: str = "usdm",
        fees: FeeSchedule = FUTURES_FEES,
        limits: RateLimitsConfig | None = None,
        leverage: dict[str, float] | None = None,
        funding_interval_s: float = 8 * 3600.0,
    ):
        perps = [dataclasses.replace(s, kind="perp") for s in specs]
        margin = {s.quote for s in perps}
        if len(margin) > 1:
            raise ConfigError(f"emulator {name}", f"one margin asset per venue, got {sorted(margin)}")
        if fees.asset != "quote":
            raise ConfigError(f"emulator {name}.fees", "USDⓈ-M commission is charged in the margin asset")
        if not (math.isfinite(funding_interval_s) and funding_interval_s > 0):
            raise ConfigError(f"emulator {name}.funding_interval_s", "must be finite and > 0")
        super().__init__(perps, keys, name=name, fees=fees, limits=limits)
        self.exchange = self._perp = _PerpExchange(name, {s.symbol: (s, fees) for s in perps})
        self.margin_asset = margin.pop() if margin else "USDT"
        self._fmt = {s.symbol: FuturesFormatter(s) for s in perps}
        self.formats = {sym: fmt for sym, fmt in self._fmt.items()}
        self.funding_interval_ms = int(funding_interval_s * 1000)
        for sym in self.formats:
            self.set_leverage(sym, (leverage or {}).get(sym, DEFAULT_LEVERAGE))
        self._funding = {sym: _Funding() for sym in self.formats}
        self._rates: dict[str, collections.deque] = {
            sym: collections.deque(maxlen=HISTORY) for sym in self.formats
        }
        self._income: dict[str, collections.deque] = {}
        self._tran_id = 0
        self._reduce_only: dict[tuple[str, str, str], None] = {}  # (owner, symbol, coid), newest last
        self._pnl: dict[tuple[str, int], float] = {}  # (owner, trade id) -> realized PnL, newest last
        self._routes = {
            ("GET", "/fapi/v1/ping"): (False, self._ping),
            ("GET", "/fapi/v1/time"): (False, self._time),
            ("GET", "/fapi/v1/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/fapi/v1/depth"): (False, self._futures_depth),
            ("GET", "/fapi/v1/premiumIndex"): (False, self._premium_index),
            ("GET", "/fapi/v1/fundingRate"): (False, self._funding_rate),
            ("GET", "/fapi/v1/leverageBracket"): (True, self._leverage_bracket),
            ("GET", "/fapi/v2/account"): (True, self._account_v2),
            ("GET", "/fapi/v3/account"): (True, self._account_v3),
            ("GET", "/fapi/v2/balance"): (True, self._balance),
            ("GET", "/fapi/v3/balance"): (True, self._balance),
            ("GET", "/fapi/v2/positionRisk"): (True, self._position_risk_v2),
            ("GET", "/fapi/v3/positionRisk"): (True, self._position_risk_v3),
            ("POST", "/fapi/v1/leverage"): (True, self._post_leverage),
            ("POST", "/fapi/v1/order"): (True, self._post_order),
            ("GET", "/fapi/v1/order"): (True, self._get_order),
            ("DELETE", "/fapi/v1/order"): (True, self._delete_order),
            ("GET", "/fapi/v1/openOrders"): (True, self._open_orders),
            ("GET", "/fapi/v1/userTrades"): (True, self._user_trades),
            ("GET", "/fapi/v1/income"): (True, self._income_history),
            ("GET", "/fapi/v1/accountConfig"): (True, self._account_config),
            ("GET", "/fapi/v1/commissionRate"): (True, self._commission_rate),
        }
        self._fees = fees

    # -- set-up and the market driver (any thread) ---------------------------------------------

    def set_leverage(self, symbol: str, leverage: float) -> None:
        if symbol not in self.formats:
            raise ConfigError(f"emulator {self.name}.leverage.{symbol}", "not listed here")
        if not (isinstance(leverage, (int, float)) and 1 <= leverage <= MAX_LEVERAGE):
            raise ConfigError(
                f"emulator {self.name}.leverage.{symbol}", f"must be in [1, {MAX_LEVERAGE}], got {leverage!r}"
            )
        with self.lock:
            self.exchange.leverage[symbol] = float(leverage)

    def set_mark(self, symbol: str, mark: float) -> None:
        """The mark price of `symbol` (positions' unrealized PnL and margin are valued at it)."""
        if not (math.isfinite(mark) and mark > 0):
            raise ValueError(f"{symbol}: mark must be finite and > 0, got {mark!r}")
        with self.lock:
            self.exchange.set_mark(symbol, mark)

    def update_funding(self, symbol: str, mark: float, index: float, rate: float) -> list[tuple[str, float]]:
        """New mark, index and funding rate (the market driver's step). When a funding time has
        passed since the last update, funding is first settled at the previous rate and the new
        mark; returns what `apply_funding` paid (empty otherwise)."""
        if not all(math.isfinite(x) for x in (mark, index, rate)):
            raise ValueError(f"{symbol}: mark, index and rate must be finite")
        now = self.now_ms()
        with self.lock:
            fund = self._funding[symbol]
            paid: list[tuple[str, float]] = []
            if fund.next_ms and now >= fund.next_ms:
                paid = self.apply_funding(symbol, fund.rate, mark)
            self.set_mark(symbol, mark)
            fund.index, fund.rate = index, rate
            fund.next_ms = (now // self.funding_interval_ms + 1) * self.funding_interval_ms
            return paid

    def apply_funding(self, symbol: str, rate: float, mark: float) -> list[tuple[str, float]]:
        """Settle funding on every open position of `symbol` at `mark`: a long pays
        qty * mark * rate (receives when rate < 0), a short the opposite. Each payment is a
        FUNDING_FEE income of its owner; returns (owner, amount received; < 0 paid)."""
        if not (math.isfinite(rate) and math.isfinite(mark) and mark > 0):
            raise ValueError(f"{symbol}: funding rate and mark must be finite (mark > 0)")
        with self.lock:
            now = self.now_ms()
            self.exchange.set_mark(symbol, mark)
            acc = self.exchange.accounts
            out = []
            for owner, atoms in self.exchange.apply_funding(symbol, mark, rate):
                amount = -acc.to_float(self.margin_asset, atoms)
                self._add_income(owner, symbol, "FUNDING_FEE", amount, now)
                self._account_update(owner, "FUNDING_FEE", now, (), amount)
                out.append((owner, amount))
            self._rates[symbol].append((now, rate, mark))
            return out

    def mark(self, symbol: str) -> float:
        """The mark price: the one set, else the book's mid (0 with an empty book)."""
        m = self.exchange.marks.get(symbol)
        if m:
            return m
        eng = self.exchange.engine(symbol)
        bid, ask = eng.best_bid(), eng.best_ask()
        if bid and ask:
            return (bid + ask) / 2
        return bid or ask or 0.0

    def position(self, owner: str, symbol: str) -> tuple[float, float]:
        """(signed qty, entry price) of `owner` in `symbol`."""
        with self.lock:
            pos = self.exchange.position(owner, symbol)
            eng = self.exchange.engine(symbol)
            if not pos.lots:
                return 0.0, 0.0
            qty = eng.qty(abs(pos.lots)) * (1 if pos.lots > 0 else -1)
            return qty, pos.cost / abs(pos.lots) * eng.spec.tick

    def income(self, owner: str) -> list[dict]:
        with self.lock:
            return list(self._income.get(owner, ()))

    # -- request pipeline -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """USDⓈ-M's depth streams are under /public/ws and /market/ws (ccxt derives them from
        the futures stream base); they are the emulator's depth stream."""
        if request.path.split("/")[1:3] in (["public", "ws"], ["market", "ws"]):
            return await self.streams.handle(request)
        if request.path == "/private/ws":
            return await self.users.handle_listen_key(request)
        if request.path == "/fapi/v1/listenKey":  # API key, no signature
            body = (await request.text()) if request.can_read_body else ""
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))
            with self.lock:
                status, out = self.users.rest(
                    request.method, request.headers.get("X-MBX-APIKEY"), params, key_required=False
                )
            self.log.append((request.method, request.path, status))
            return self._json(status, out)
        return await super()._handle(request)

    def _cost(self, method: str, path: str, params: dict) -> tuple[int, bool]:
        weight = FUTURES_WEIGHTS.get((method, path), 1)
        if path == "/fapi/v1/depth":
            limit = int(params.get("limit", "500") or 500)
            weight = 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        elif path == "/fapi/v1/openOrders" and "symbol" not in params:
            weight = 40
        return weight, (method, path) == ("POST", "/fapi/v1/order")

    def _add_income(
        self, owner: str, symbol: str, kind: str, amount: float, ms: int, trade_id: int = 0
    ) -> None:
        if amount == 0:
            return
        self._tran_id += 1
        self._income.setdefault(owner, collections.deque(maxlen=HISTORY)).append(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": _money(amount),
                "asset": self.margin_asset,
                "info": kind,
                "time": ms,
                "tranId": self._tran_id,
                "tradeId": str(trade_id) if trade_id else "",
            }
        )

    def _absorb(self, symbol: str, result: Result) -> None:
        """Keep each fill of an account holder with the PnL it realized; book its income."""
        eng = self.exchange.engine(symbol)
        acc = self.exchange.accounts
        for f in result.fills:
            if f.owner == MARKET:
                continue
            oid = eng.query(f.owner, f.coid).oid
            pnl = acc.to_float(self.margin_asset, self._perp.take_pnl(f.owner, f.trade_id))
            self._trades.setdefault((f.owner, symbol), []).append((f, oid))
            _keep(self._pnl, (f.owner, f.trade_id), pnl)
            ms = f.ts_ns // 1_000_000
            self._add_income(f.owner, symbol, "REALIZED_PNL", pnl, ms, f.trade_id)
            self._add_income(f.owner, symbol, "COMMISSION", -self._commission(f), ms, f.trade_id)
        self._publish(symbol, result)

    # -- user data -------------------------------------------------------------------------------

    def _publish(self, symbol: str, result: Result) -> None:
        """The ORDER_TRADE_UPDATEs of one matching-engine result, then an ACCOUNT_UPDATE per
        account holder it filled (under the lock; after `_absorb` kept each fill's PnL)."""
        users = self.users
        if not result.events or not users.has_subscribers():
            return
        fmt = self._fmt[symbol]
        fills: dict[tuple[str, str], collections.deque[MatchFill]] = {}
        for f in result.fills:
            if f.owner != MARKET:
                fills.setdefault((f.owner, f.coid), collections.deque()).append(f)
        ms = self.now_ms()
        filled: dict[str, None] = {}
        for ev in result.events:
            view = ev.order
            x = EXEC_TYPE.get(ev.type)
            if view.owner == MARKET or x is None or x == "REJECTED":
                continue  # USDⓈ-M answers a refused order on the POST only
            fill = None
            if x == "TRADE":
                queue = fills.get((view.owner, view.coid))
                fill = queue.popleft() if queue else None
                filled[view.owner] = None
            reduce_only = (view.owner, symbol, view.coid) in self._reduce_only
            pnl = self._pnl.get((view.owner, fill.trade_id), 0.0) if fill is not None else 0.0
            commission = self._commission(fill) if fill is not None else 0.0
            users.publish(
                view.owner,
                {
                    "e": "ORDER_TRADE_UPDATE",
                    "E": ms,
                    "T": (fill.ts_ns if fill is not None else view.updated_ns) // 1_000_000 or ms,
                    "o": fmt.order_trade_update(view, x, fill, commission, pnl, reduce_only, ms),
                },
            )
        for owner in filled:
            self._account_update(owner, "ORDER", ms, (symbol,))

    def _account_update(
        self, owner: str, reason: str, ms: int, symbols: tuple[str, ...], change: float = 0.0
    ) -> None:
        """One ACCOUNT_UPDATE of `owner` (under the lock): the margin asset's wallet, `change`
        as its balance change (bc), and the positions of `symbols`."""
        if not self.users.has_subscribers(owner):
            return
        wallet = _money(self._margin(owner)["wallet"])
        positions = []
        for sym in symbols:
            qty, entry = self._position_nolock(owner, sym)
            mark = self.mark(sym) or entry
            positions.append(
                {
                    "s": sym,
                    "pa": self.formats[sym].qty(qty),
                    "ep": f"{entry:.8f}",
                    "bep": f"{entry:.8f}",
                    "cr": "0",
                    "up": _money((mark - entry) * qty if qty else 0.0),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            )
        balance = {"a": self.margin_asset, "wb": wallet, "cw": wallet, "bc": _money(change)}
        self.users.publish(
            owner,
            {"e": "ACCOUNT_UPDATE", "E": ms, "T": ms, "a": {"m": reason, "B": [balance], "P": positions}},
        )

    # -- margin --------------------------------------------------------------------------------

    def _margin(self, owner: str) -> dict[str, float]:
        """The owner's cross-margin figures in the margin asset (under the lock)."""
        acc = self.exchange.accounts
        a = acc.get(owner, self.margin_asset)
        free, locked = acc.to_float(self.margin_asset, a.free), acc.to_float(self.margin_asset, a.locked)
        wallet = free + locked
        upnl = pos_im = maint = 0.0
        for sym in self.formats:
            qty, entry = self._position_nolock(owner, sym)
            if not qty:
                continue
            mark = self.mark(sym) or entry
            upnl += (mark - entry) * qty
            pos_im += abs(qty) * mark / self.exchange.leverage[sym]
            maint += abs(qty) * mark * MAINT_MARGIN_RATE
        available = max(0.0, wallet + upnl - pos_im - locked)
        return {
            "wallet": wallet,
            "upnl": upnl,
            "position_im": pos_im,
            "order_im": locked,
            "maint": maint,
            "margin_balance": wallet + upnl,
            "available": available,
        }

    def _position_nolock(self, owner: str, symbol: str) -> tuple[float, float]:
        pos = self.exchange.position(owner, symbol)
        if not pos.lots:
            return 0.0, 0.0
        eng = self.exchange.engine(symbol)
        return eng.qty(abs(pos.lots)) * (1 if pos.lots > 0 else -1), pos.cost / abs(pos.lots) * eng.spec.tick

    def _liquidation_price(self, owner: str, symbol: str, m: dict[str, float]) -> float:
        """Cross margin, this position alone against the wallet: where margin balance meets
        maintenance margin (0 when there is none)."""
        qty, entry = self._position_nolock(owner, symbol)
        if not qty:
            return 0.0
        side = 1 if qty > 0 else -1
        q = abs(qty)
        px = (m["wallet"] - side * q * entry) / (q * MAINT_MARGIN_RATE - side * q)
        return max(px, 0.0)

    def _check_margin(self, owner: str, sym: str, side: Side, otype: OrderType, qty: float, price, p) -> None:
        eng = self.exchange.engine(sym)
        lots = eng.to_lots(qty)
        if lots is None:
            return  # the engine's filters refuse it
        pos = self.exchange.position(owner, sym).lots
        reducing = pos != 0 and (pos > 0) != (side == Side.BUY)
        if p.get("reduceOnly", "").lower() == "true" and not (reducing and lots <= abs(pos)):
            raise _Refused(400, -2022, "ReduceOnly Order is rejected.")
        opening = lots if not reducing else max(0, lots - abs(pos))
        if not opening:
            return
        if price is None:
            touch = eng.best_ask() if side == Side.BUY else eng.best_bid()
            price = touch or self.mark(sym)
        need = eng.qty(opening) * price / self.exchange.leverage[sym]
        if need > self._margin(owner)["available"] * (1 + 1e-12):
            raise _Refused(400, -2019, "Margin is insufficient.")

    # -- endpoints ------------------------------------------------------------------------------

    async def _exchange_info(self, owner, p):
        body = await super()._exchange_info(owner, p)
        body["assets"] = [{"asset": self.margin_asset, "marginAvailable": True, "autoAssetExchange": "0"}]
        return body

    async def _futures_depth(self, owner, p):
        body = await self._depth(owner, p)
        ms = self.now_ms()
        body["E"], body["T"] = ms, ms
        return body

    def _premium(self, sym: str) -> dict:
        fund, ms = self._funding[sym], self.now_ms()
        mark = self.mark(sym)
        nxt = fund.next_ms or (ms // self.funding_interval_ms + 1) * self.funding_interval_ms
        return {
            "symbol": sym,
            "markPrice": f"{mark:.8f}",
            "indexPrice": f"{fund.index or mark:.8f}",
            "estimatedSettlePrice": f"{fund.index or mark:.8f}",
            "lastFundingRate": f"{fund.rate:.8f}",
            "interestRate": "0.00010000",
            "nextFundingTime": nxt,
            "time": ms,
        }

    async def _premium_index(self, owner, p):
        with self.lock:
            if "symbol" in p:
                return self._premium(self._symbol(p))
            return [self._premium(s) for s in self.formats]

    async def _funding_rate(self, owner, p):
        limit = min(int(p.get("limit", "100") or 100), 1000)
        start = int(p["startTime"]) if p.get("startTime") else None
        end = int(p["endTime"]) if p.get("endTime") else None
        syms = [self._symbol(p)] if "symbol" in p else list(self.formats)
        with self.lock:
            rows = [
                {
                    "symbol": s,
                    "fundingRate": f"{rate:.8f}",
                    "fundingTime": ms,
                    "markPrice": f"{mark:.8f}",
                }
                for s in syms
                for ms, rate, mark in self._rates[s]
                if (start is None or ms >= start) and (end is None or ms <= end)
            ]
        rows.sort(key=lambda r: r["fundingTime"])
        return rows[:limit] if start is not None else rows[-limit:]

    async def _leverage_bracket(self, owner, p):
        syms = [self._symbol(p)] if "symbol" in p else list(self.formats)
        out = [
            {
                "symbol": s,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": MAX_LEVERAGE,
                        "notionalCap": 9_000_000_000,
                        "notionalFloor": 0,
                        "maintMarginRatio": MAINT_MARGIN_RATE,
                        "cum": 0.0,
                    }
                ],
            }
            for s in syms
        ]
        return out[0] if "symbol" in p else out

    def _asset_rows(self, owner: str, m: dict[str, float], ms: int) -> list[dict]:
        acc = self.exchange.accounts
        rows = []
        for asset in sorted(set(acc.assets(owner)) | {self.margin_asset}):
            if asset == self.margin_asset:
                wallet, upnl, im = m["wallet"], m["upnl"], m["position_im"] + m["order_im"]
                rows.append(
                    {
                        "asset": asset,
                        "walletBalance": _money(wallet),
                        "unrealizedProfit": _money(upnl),
                        "marginBalance": _money(m["margin_balance"]),
                        "maintMargin": _money(m["maint"]),
                        "initialMargin": _money(im),
                        "positionInitialMargin": _money(m["position_im"]),
                        "openOrderInitialMargin": _money(m["order_im"]),
                        "crossWalletBalance": _money(wallet),
                        "crossUnPnl": _money(upnl),
                        "availableBalance": _money(m["available"]),
                        "maxWithdrawAmount": _money(min(m["available"], wallet)),
                        "marginAvailable": True,
                        "updateTime": ms,
                    }
                )
            else:  # held, not usable as margin (no multi-assets mode)
                a = acc.get(owner, asset)
                total = acc.to_float(asset, a.free + a.locked)
                rows.append(
                    {
                        "asset": asset,
                        "walletBalance": _money(total),
                        "unrealizedProfit": _money(0),
                        "marginBalance": _money(total),
                        "maintMargin": _money(0),
                        "initialMargin": _money(0),
                        "positionInitialMargin": _money(0),
                        "openOrderInitialMargin": _money(0),
                        "crossWalletBalance": _money(total),
                        "crossUnPnl": _money(0),
                        "availableBalance": _money(0),
                        "maxWithdrawAmount": _money(total),
                        "marginAvailable": False,
                        "updateTime": ms,
                    }
                )
        return rows

    def _position_row(self, owner: str, sym: str, m: dict[str, float], ms: int) -> dict:
        qty, entry = self._position_nolock(owner, sym)
        mark = self.mark(sym)
        lev = self.exchange.leverage[sym]
        fmt = self.formats[sym]
        notional = qty * mark
        im = abs(notional) / lev
        return {
            "symbol": sym,
            "positionSide": "BOTH",
            "positionAmt": fmt.qty(qty),
            "entryPrice": f"{entry:.8f}",
            "breakEvenPrice": f"{entry:.8f}",
            "markPrice": f"{mark:.8f}",
            "unRealizedProfit": _money((mark - entry) * qty if qty else 0.0),
            "liquidationPrice": _money(self._liquidation_price(owner, sym, m)),
            "leverage": str(int(lev) if lev == int(lev) else lev),
            "maxNotionalValue": "9000000000",
            "marginType": "cross",
            "isolatedMargin": _money(0),
            "isAutoAddMargin": "false",
            "isolated": False,
            "notional": _money(notional),
            "isolatedWallet": "0",
            "initialMargin": _money(im),
            "maintMargin": _money(abs(notional) * MAINT_MARGIN_RATE),
            "positionInitialMargin": _money(im),
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
            "marginAsset": self.margin_asset,
            "updateTime": ms,
        }

    async def _account_v2(self, owner, p, v3: bool = False):
        ms = self.now_ms()
        with self.lock:
            m = self._margin(owner)
            positions = [self._position_row(owner, s, m, ms) for s in self.formats]
            assets = self._asset_rows(owner, m, ms)
        body = {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "feeBurn": False,
            "tradeGroupId": -1,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "totalInitialMargin": _money(m["position_im"] + m["order_im"]),
            "totalMaintMargin": _money(m["maint"]),
            "totalWalletBalance": _money(m["wallet"]),
            "totalUnrealizedProfit": _money(m["upnl"]),
            "totalMarginBalance": _money(m["margin_balance"]),
            "totalPositionInitialMargin": _money(m["position_im"]),
            "totalOpenOrderInitialMargin": _money(m["order_im"]),
            "totalCrossWalletBalance": _money(m["wallet"]),
            "totalCrossUnPnl": _money(m["upnl"]),
            "availableBalance": _money(m["available"]),
            "maxWithdrawAmount": _money(min(m["available"], m["wallet"])),
            "assets": assets,
            "positions": positions,
        }
        if v3:  # v3 lists open positions only, without the account flags
            for k in (
                "feeTier",
                "canTrade",
                "canDeposit",
                "canWithdraw",
                "feeBurn",
                "tradeGroupId",
                "updateTime",
            ):
                body.pop(k)
            body["positions"] = [r for r in positions if float(r["positionAmt"]) != 0]
        return body

    async def _account_config(self, owner, p):
        mine = (self._fees.maker_bps, self._fees.taker_bps)
        return {
            "feeTier": FEE_TIERS.index(mine) if mine in FEE_TIERS else 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "dualSidePosition": False,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    async def _commission_rate(self, owner, p):
        return {
            "symbol": self._symbol(p),
            "makerCommissionRate": f"{self._fees.maker_bps * 1e-4:.6f}",
            "takerCommissionRate": f"{self._fees.taker_bps * 1e-4:.6f}",
        }

    async def _account_v3(self, owner, p):
        return await self._account_v2(owner, p, v3=True)

    async def _balance(self, owner, p):
        ms = self.now_ms()
        with self.lock:
            rows = self._asset_rows(owner, self._margin(owner), ms)
        return [
            {
                "accountAlias": "SgsR",
                "asset": r["asset"],
                "balance": r["walletBalance"],
                "crossWalletBalance": r["crossWalletBalance"],
                "crossUnPnl": r["crossUnPnl"],
                "availableBalance": r["availableBalance"],
                "maxWithdrawAmount": r["maxWithdrawAmount"],
                "marginAvailable": r["marginAvailable"],
                "updateTime": ms,
            }
            for r in rows
        ]

    async def _position_risk_v2(self, owner, p, v3: bool = False):
        syms = [self._symbol(p)] if "symbol" in p else list(self.formats)
        ms = self.now_ms()
        with self.lock:
            m = self._margin(owner)
            rows = [self._position_row(owner, s, m, ms) for s in syms]
        if v3:
            drop = ("leverage", "maxNotionalValue", "marginType", "isAutoAddMargin", "isolated")
            rows = [
                {k: v for k, v in r.items() if k not in drop} for r in rows if float(r["positionAmt"]) != 0
            ]
        return rows

    async def _position_risk_v3(self, owner, p):
        return await self._position_risk_v2(owner, p, v3=True)

    async def _post_leverage(self, owner, p):
        sym = self._symbol(p)
        try:
            lev = int(p.get("leverage", ""))
        except ValueError:
            raise _Refused(
                400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed."
            ) from None
        if not 1 <= lev <= MAX_LEVERAGE:
            raise _Refused(400, -4028, f"Leverage {lev} is not valid")
        with self.lock:
            self.exchange.leverage[sym] = float(lev)
        return {"leverage": lev, "maxNotionalValue": "9000000000", "symbol": sym}

    def _order_type(self, p: dict) -> OrderType:
        wtype, tif = p.get("type"), p.get("timeInForce")
        if wtype == "LIMIT":
            if tif in (None, "GTC"):
                return OrderType.LIMIT
            if tif == "IOC":
                return OrderType.IOC
            if tif == "GTX":
                return OrderType.POST_ONLY
            raise _Refused(400, -1115, "Invalid timeInForce.")
        if wtype == "MARKET":
            return OrderType.MARKET
        raise _Refused(400, -1116, "Invalid orderType.")

    def _place(self, owner, sym, coid, side, otype, qty, price, p) -> dict:
        with self.lock, self.streams.watch(sym):
            self._check_margin(owner, sym, side, otype, qty, price, p)
            result = self.exchange.submit(owner, sym, coid, side, otype, qty, price, time.time_ns())
            view = result.order
            assert view is not None  # a submit's result always holds its order
            if result.duplicate:
                if view.status == OrderStatus.REJECTED:
                    raise _refuse(view.reason)
                raise _Refused(400, -4116, "ClientOrderId is duplicated.")
            if view.status == OrderStatus.REJECTED:
                raise _refuse(view.reason)
            self.placed.append(Placed(sym, owner, coid, view.oid))
            reduce_only = p.get("reduceOnly", "").lower() == "true"
            if reduce_only:
                _keep(self._reduce_only, (owner, sym, coid), None)
            self._absorb(sym, result)
            body = self._fmt[sym].futures_order(view, self.now_ms(), reduce_only)
        if p.get("newOrderRespType", "ACK") == "ACK":
            keep = (
                "orderId",
                "symbol",
                "status",
                "clientOrderId",
                "price",
                "origQty",
                "type",
                "side",
                "updateTime",
            )
            body = {k: body[k] for k in keep}
        return body

    def _view_body(self, owner: str, sym: str, view: OrderView) -> dict:
        return self._fmt[sym].futures_order(view, self.now_ms(), (owner, sym, view.coid) in self._reduce_only)

    async def _get_order(self, owner, p):
        sym = self._symbol(p)
        with self.lock:
            view = self._find(owner, sym, p)
            if view is None:
                raise _Refused(400, -2013, "Order does not exist.")
            return self._view_body(owner, sym, view)

    async def _delete_order(self, owner, p):
        sym = self._symbol(p)
        with self.lock, self.streams.watch(sym):
            view = self._find(owner, sym, p)
            if view is None or view.status.terminal:
                raise _Refused(400, -2011, "Unknown order sent.")
            result = self.exchange.cancel(owner, sym, view.coid, time.time_ns())
            assert result.order is not None  # a cancel's result always holds its order
            self._publish(sym, result)
            return self._view_body(owner, sym, result.order)

    async def _open_orders(self, owner, p):
        syms = [self._symbol(p)] if "symbol" in p else list(self.formats)
        with self.lock:
            return [
                self._view_body(owner, sym, view)
                for sym in syms
                for view in self.exchange.engine(sym).resting(owner)
            ]

    async def _user_trades(self, owner, p):
        sym = self._symbol(p)
        limit = min(int(p.get("limit", "500") or 500), 1000)
        from_id = int(p["fromId"]) if p.get("fromId") else None
        start_ms = int(p["startTime"]) if p.get("startTime") else None
        fmt = self._fmt[sym]
        with self.lock:
            rows = [
                (f, oid, self._pnl.get((owner, f.trade_id), 0.0))
                for f, oid in self._trades.get((owner, sym), ())
                if (from_id is None or f.trade_id >= from_id)
                and (start_ms is None or f.ts_ns // 1_000_000 >= start_ms)
            ]
        return [fmt.user_trade(f, oid, self._commission(f), pnl) for f, oid, pnl in rows[:limit]]

    async def _income_history(self, owner, p):
        limit = min(int(p.get("limit", "100") or 100), 1000)
        start = int(p["startTime"]) if p.get("startTime") else None
        end = int(p["endTime"]) if p.get("endTime") else None
        kind, sym = p.get("incomeType"), p.get("symbol")
        if sym is not None:
            self._symbol(p)
        with self.lock:
            rows = [
                r
                for r in self._income.get(owner, ())
                if (kind is None or r["incomeType"] == kind)
                and (sym is None or r["symbol"] == sym)
                and (start is None or r["time"] >= start)
                and (end is None or r["time"] <= end)
            ]
        return rows[:limit] if start is not None else rows[-limit:]


def usdm_emulator(
    specs: list[Spec],
    keys: dict[str, tuple[str, str]],
    name: str = "usdm",
    fees: FeeSchedule = FUTURES_FEES,
) -> FuturesEmulator:
    """The `basis emulator --kind usdm` factory: a FuturesEmulator over `specs`."""
    return FuturesEmulator(specs, keys, name=name, fees=fees)
