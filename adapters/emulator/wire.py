"""Binance spot REST bodies built from the matching engine's views (pure functions)."""

from __future__ import annotations

import math

from adapters.sim.matching import MatchFill, OrderView, Spec, step_decimals
from basis_core.schema import OrderType, RejectReason, Side
from basis_core.venue import OrderStatus

STATUS = {
    OrderStatus.OPEN: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
SIDE_OF = {"BUY": Side.BUY, "SELL": Side.SELL}
#: (type, time in force) on the wire for each of our order types
TYPE = {
    OrderType.LIMIT: ("LIMIT", "GTC"),
    OrderType.IOC: ("LIMIT", "IOC"),
    OrderType.POST_ONLY: ("LIMIT_MAKER", None),
    OrderType.MARKET: ("MARKET", None),
}
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]

#: an engine reject reason -> (HTTP status, Binance code, message)
REJECTS: dict[RejectReason, tuple[int, int, str]] = {
    RejectReason.LOT_SIZE: (400, -1013, "Filter failure: LOT_SIZE"),
    RejectReason.BAD_INPUT: (400, -1013, "Filter failure: PRICE_FILTER"),
    RejectReason.MIN_NOTIONAL: (400, -1013, "Filter failure: NOTIONAL"),
    RejectReason.POST_ONLY_WOULD_CROSS: (400, -2010, "Order would immediately match and take."),
    RejectReason.INSUFFICIENT_FUNDS: (400, -2010, "Account has insufficient balance for requested action."),
}
FILTER_FAILURES = {
    "LOT_SIZE": RejectReason.LOT_SIZE,
    "PRICE_FILTER": RejectReason.BAD_INPUT,
    "NOTIONAL": RejectReason.MIN_NOTIONAL,
}


def error(code: int, msg: str) -> dict:
    return {"code": code, "msg": msg}


class Formatter:
    """Decimal strings with the precision of one instrument."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.px_dec = step_decimals(spec.tick)
        self.qty_dec = step_decimals(spec.lot)
        self.quote_dec = min(spec.quote_decimals, 8)

    def px(self, value: float | None) -> str:
        return f"{(value or 0.0):.{self.px_dec}f}"

    def qty(self, value: float) -> str:
        return f"{value:.{self.qty_dec}f}"

    def quote(self, value: float) -> str:
        return f"{value:.{self.quote_dec}f}"

    @property
    def max_qty(self) -> float:
        """The listing's largest quantity as the venue publishes it (a finite number)."""
        return 9_000_000.0 if math.isinf(self.spec.max_qty) else self.spec.max_qty

    def grid_filters(self) -> list[dict]:
        """The PRICE_FILTER and LOT_SIZE filters: the tick and lot grid, as both of Binance's
        exchangeInfo answers (spot and USDⓈ-M) publish it."""
        s = self.spec
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": self.px(s.tick),
                "maxPrice": "10000000",
                "tickSize": self.px(s.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": self.qty(s.lot),
                "maxQty": self.qty(self.max_qty),
                "stepSize": self.qty(s.lot),
            },
        ]

    def symbol_info(self) -> dict:
        s = self.spec
        return {
            "symbol": s.symbol,
            "status": "TRADING",
            "baseAsset": s.base,
            "quoteAsset": s.quote,
            "baseAssetPrecision": s.base_decimals,
            "quoteAssetPrecision": s.quote_decimals,
            "orderTypes": ORDER_TYPES,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "filters": [
                *self.grid_filters(),
                {
                    "filterType": "NOTIONAL",
                    "minNotional": f"{s.min_notional:g}",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
        }

    def order(
        self, v: OrderView, ms: int, fills: list[dict] | None = None, client_id: str | None = None
    ) -> dict:
        otype, tif = TYPE[v.type]
        body = {
            "symbol": self.spec.symbol,
            "orderId": v.oid,
            "orderListId": -1,
            "clientOrderId": v.coid if client_id is None else client_id,
            "price": self.px(v.price),
            "origQty": self.qty(v.qty),
            "executedQty": self.qty(v.filled_qty),
            "cummulativeQuoteQty": self.quote(v.avg_price * v.filled_qty),
            "status": STATUS[v.status],
            "timeInForce": tif or "GTC",
            "type": otype,
            "side": SIDE[v.side],
            "time": v.created_ns // 1_000_000,
            "updateTime": v.updated_ns // 1_000_000,
            "transactTime": ms,
            "workingTime": v.created_ns // 1_000_000,
            "isWorking": True,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if fills is not None:
            body["fills"] = fills
        return body

    def fill(self, f: MatchFill, commission: float) -> dict:
        return {
            "price": self.px(f.price),
            "qty": self.qty(f.qty),
            "commission": f"{commission:.8f}",
            "commissionAsset": f.fee_asset,
            "tradeId": f.trade_id,
        }

    def trade(self, f: MatchFill, oid: int, commission: float) -> dict:
        return {
            "symbol": self.spec.symbol,
            "id": f.trade_id,
            "orderId": oid,
            "orderListId": -1,
            "price": self.px(f.price),
            "qty": self.qty(f.qty),
            "quoteQty": self.quote(f.price * f.qty),
            "commission": f"{commission:.8f}",
            "commissionAsset": f.fee_asset,
            "time": f.ts_ns // 1_000_000,
            "isBuyer": f.side == Side.BUY,
            "isMaker": int(f.liquidity) == 1,
            "isBestMatch": True,
        }
