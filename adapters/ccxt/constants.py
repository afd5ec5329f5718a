"""The ccxt venue's constants as data: the ONE error table, venue codes, limits, status map.

`ERRORS` maps each ccxt exception class to our typed error (`basis_core.errors`), the router's
fault class (`basis_ext.router.FAULT_*`, which decides retries) and the failure mode it signals:
a venue-state event (`VenueEvent`) and, for rate limits, the engine event that degrades routing.
Lookup walks the exception's MRO, so the most specific row wins and every ccxt error has a row
(`BaseError` is the last resort). Note that Binance's HTTP 429/418 raise `DDoSProtection`, a
sibling of `RateLimitExceeded`: both rows exist. The client tells a 418 (an IP ban: `BAN_RULE`,
`IpBanned`, the venue DOWN until the ban ends) from a 429 by the answer's HTTP status.

`VENUE_MESSAGES` refines an order refusal by the venue's exact documented message (the body
of the answer ccxt carries in its exception text), giving the `RejectReason` name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import ccxt

from basis_core.errors import (
    AuthenticationFailed,
    IpBanned,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueError,
    VenueUnavailable,
)
from basis_core.state.tables import EngineEvent, VenueEvent
from basis_core.venue_errors import most_specific
from basis_ext import router as R

# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRule:
    """How one ccxt exception class is handled."""

    error: type[VenueError]  # our typed error
    code: str  # our short code, VenueError.code
    fault: int  # basis_ext.router FAULT_* (retry decisions)
    venue_event: VenueEvent | None = None
    engine_event: EngineEvent | None = None
    reason: str = ""  # RejectReason name, for OrderRejected


_V, _N = VenueEvent, EngineEvent

#: ccxt exception class -> rule. Looked up along the exception's MRO (most specific first).
ERRORS: dict[type, ErrorRule] = {
    # no answer / unknown outcome: SUSPECT, verify the order state before anything else
    ccxt.RequestTimeout: ErrorRule(RequestTimeout, "timeout", R.FAULT_TIMEOUT, _V.TIMEOUT),
    ccxt.NetworkError: ErrorRule(RequestTimeout, "network", R.FAULT_NETWORK, _V.TIMEOUT),
    ccxt.OperationFailed: ErrorRule(RequestTimeout, "unknown_outcome", R.FAULT_NETWORK, _V.TIMEOUT),
    # a timestamp outside the venue's recvWindow that re-measuring the clock offset did not cure
    # (the client re-syncs and sends once more first): nothing signed works, QUARANTINED
    ccxt.InvalidNonce: ErrorRule(VenueUnavailable, "clock_skew", R.FAULT_REJECTED, _V.MAINTENANCE),
    ccxt.ChecksumError: ErrorRule(MalformedResponse, "checksum", R.FAULT_MALFORMED),
    # throttled: THROTTLED venue, DEGRADED engine (hedges keep priority)
    ccxt.DDoSProtection: ErrorRule(
        RateLimited, "rate_limited", R.FAULT_RATE_LIMITED, _V.RATE_LIMITED, _N.RATE_LIMITED
    ),
    ccxt.RateLimitExceeded: ErrorRule(
        RateLimited, "rate_limited", R.FAULT_RATE_LIMITED, _V.RATE_LIMITED, _N.RATE_LIMITED
    ),
    # maintenance / outage: QUARANTINED
    ccxt.ExchangeNotAvailable: ErrorRule(
        VenueUnavailable, "unavailable", R.FAULT_UNAVAILABLE, _V.MAINTENANCE
    ),
    ccxt.OnMaintenance: ErrorRule(VenueUnavailable, "maintenance", R.FAULT_UNAVAILABLE, _V.MAINTENANCE),
    # unreadable answers
    ccxt.BadResponse: ErrorRule(MalformedResponse, "malformed", R.FAULT_MALFORMED),
    ccxt.NullResponse: ErrorRule(MalformedResponse, "malformed", R.FAULT_MALFORMED),
    # credentials: nothing will work until a person fixes them
    ccxt.AuthenticationError: ErrorRule(AuthenticationFailed, "auth", R.FAULT_AUTH, _V.DISCONNECTED),
    # refusals of one request
    ccxt.InsufficientFunds: ErrorRule(
        OrderRejected, "insufficient_funds", R.FAULT_REJECTED, reason="insufficient_funds"
    ),
    ccxt.OrderImmediatelyFillable: ErrorRule(
        OrderRejected, "post_only_would_cross", R.FAULT_REJECTED, reason="post_only_would_cross"
    ),
    ccxt.OrderNotFound: ErrorRule(OrderNotFound, "unknown_order", R.FAULT_NOT_FOUND),
    ccxt.DuplicateOrderId: ErrorRule(OrderRejected, "duplicate", R.FAULT_REJECTED, reason="venue_reject"),
    ccxt.InvalidOrder: ErrorRule(OrderRejected, "invalid_order", R.FAULT_REJECTED, reason="venue_reject"),
    ccxt.BadSymbol: ErrorRule(OrderRejected, "bad_symbol", R.FAULT_REJECTED, reason="bad_input"),
    ccxt.BadRequest: ErrorRule(OrderRejected, "bad_request", R.FAULT_REJECTED, reason="venue_reject"),
    ccxt.OperationRejected: ErrorRule(
        OrderRejected, "operation_rejected", R.FAULT_REJECTED, reason="venue_reject"
    ),
    ccxt.MarketClosed: ErrorRule(OrderRejected, "market_closed", R.FAULT_REJECTED, reason="venue_unhealthy"),
    ccxt.NotSupported: ErrorRule(VenueError, "not_supported", R.FAULT_REJECTED),
    ccxt.ExchangeError: ErrorRule(VenueError, "venue_error", R.FAULT_REJECTED),
    ccxt.BaseError: ErrorRule(VenueError, "ccxt_error", R.FAULT_REJECTED),
}


def rule_for(exc: BaseException) -> ErrorRule | None:
    """The rule of the most specific ccxt class `exc` is an instance of (None: not a ccxt error)."""
    return most_specific(exc, ERRORS)


#: the venue's exact message -> (our code, RejectReason name). Binance spot and USDⓈ-M.
VENUE_MESSAGES: dict[str, tuple[str, str]] = {
    "Filter failure: LOT_SIZE": ("lot_size", "lot_size"),
    "Filter failure: PRICE_FILTER": ("price_filter", "bad_input"),
    "Filter failure: NOTIONAL": ("min_notional", "min_notional"),
    "Filter failure: MIN_NOTIONAL": ("min_notional", "min_notional"),
    "Order would immediately match and take.": ("post_only_would_cross", "post_only_would_cross"),
    # Binance USDⓈ-M (-5022): a GTX order that would take, which ccxt raises as InvalidOrder
    "Due to the order could not be executed as maker, the Post Only order will be rejected.": (
        "post_only_would_cross",
        "post_only_would_cross",
    ),
    "Account has insufficient balance for requested action.": ("insufficient_funds", "insufficient_funds"),
    "Duplicate order sent.": ("duplicate", "venue_reject"),
    "Unknown order sent.": ("unknown_order", "venue_reject"),
    "Order does not exist.": ("unknown_order", "venue_reject"),
}

# -- limits ------------------------------------------------------------------------------------

#: every endpoint the adapter calls (router endpoint ids follow this order)
ENDPOINT_NAMES = (
    "markets",
    "book",
    "balances",
    "order",
    "fetch_order",
    "cancel",
    "open_orders",
    "fills",
    "time",
    "order_fills",
)

#: Binance spot limits at 90 %: pool -> (limit, window_s, burst)
BINANCE_POOLS = {
    "weight_1m": (5400.0, 60.0, 0.25),
    "orders_10s": (90.0, 10.0, 0.25),
    "orders_1d": (180_000.0, 86_400.0, 0.25),
}
#: endpoint -> {pool: weight}; Binance spot's published request weights
BINANCE_ENDPOINTS = {
    "markets": {"weight_1m": 20},
    "book": {"weight_1m": 5},
    "balances": {"weight_1m": 20},
    "order": {"weight_1m": 1, "orders_10s": 1, "orders_1d": 1},
    "fetch_order": {"weight_1m": 4},
    "cancel": {"weight_1m": 1},
    "open_orders": {"weight_1m": 6},
    "fills": {"weight_1m": 20},
    "time": {"weight_1m": 1},
    "order_fills": {"weight_1m": 5},  # myTrades of one order (orderId given)
}

#: the share of a pool's refill the REST fill poll (user_data "rest") may take: polled every
#: `poll_s`, Binance spot's trade list (weight 20) would take twice the whole request weight at
#: 0.1 s, and every order queued behind those polls (queries go first) would wait for seconds
FILL_POLL_SHARE = 0.25
#: the share of a venue's published limit we allow ourselves (the defaults above are Binance's
#: at this share); a published limit lower than a configured one replaces it at start
LIMIT_SHARE = 0.9
#: exchangeInfo `rateLimitType` -> the name prefix of the pools that count it (weight_1m ...)
POOL_PREFIX = {"REQUEST_WEIGHT": "weight", "ORDERS": "orders", "RAW_REQUESTS": "raw"}
#: exchangeInfo `interval` -> seconds; usage headers name it by its first letter (1M, 10S, 1D)
INTERVAL_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86_400}
#: usage header prefix (lower case) -> the rateLimitType it reports, e.g. X-MBX-USED-WEIGHT-1M:
#: the request weight the venue counted for our address in its current 1-minute window
USAGE_HEADERS = {"x-mbx-used-weight-": "REQUEST_WEIGHT", "x-mbx-order-count-": "ORDERS"}

#: the HTTP status of an IP ban (Binance: after 429s were ignored), and where its end is written
#: in the answer ("IP(1.2.3.4) banned until 1700000000000", venue time in ms)
BAN_STATUS = 418
BAN_UNTIL = re.compile(r"banned until (\d{12,})")
#: how long a ban that names no end is waited out (Binance's shortest ban is 2 minutes)
BAN_DEFAULT_S = 120.0
#: the rule of a 418 (it raises ccxt's DDoSProtection, like a 429): DOWN, not THROTTLED
BAN_RULE = ErrorRule(IpBanned, "ip_banned", R.FAULT_RATE_LIMITED, VenueEvent.DISCONNECTED)

# -- orders ------------------------------------------------------------------------------------

#: ccxt unified order status -> basis_core.venue.OrderStatus value (partial fills are told apart
#: by filled > 0); Binance's raw PENDING_NEW passes through ccxt unchanged and means open
STATUS = {
    "open": "open",
    "closed": "filled",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
    "PENDING_NEW": "open",
    "NEW": "open",
}

# -- balances ----------------------------------------------------------------------------------

#: exchange -> (key of its raw balance answer holding one row per asset, the row's asset field,
#: its free field, its locked field). Where an exchange has a row here, balances are read from
#: these rows, each checked: ccxt's unified balance cannot tell an asset missing from the answer
#: (or an answer without rows: an empty 200 reads as no balances) from one the account lacks
BALANCE_ROWS = {"binance": ("balances", "asset", "free", "locked")}

# -- answer shapes -----------------------------------------------------------------------------

#: a JSON object: key -> the JSON type its value must have; Decimal: a string holding a finite
#: number (Binance writes prices, quantities and amounts as decimal strings)
Fields = dict[str, type]
_ORDER: Fields = {
    "orderId": int,
    "clientOrderId": str,
    "price": Decimal,
    "origQty": Decimal,
    "executedQty": Decimal,
    "status": str,
    "side": str,
    "type": str,
}
_TRADE: Fields = {
    "id": int,
    "orderId": int,
    "price": Decimal,
    "qty": Decimal,
    "commission": Decimal,
    "commissionAsset": str,
    "time": int,
}
#: (Binance spot names a trade's side isBuyer and its side of the book isMaker, USDⓈ-M buyer
#: and maker)
_DEPTH: Fields = {"lastUpdateId": int, "bids": list, "asks": list}
#: exchange -> {REST path: the shape of a success answer}: an object's fields (`Fields`), or a
#: list of rows each with its fields (`[Fields]`). ccxt reads a missing key or a wrong type as
#: nothing (an absent "bids" as an empty side, a missing price as a market order, a missing
#: commission as no fee, a missing executedQty of a FILLED order as 0): an answer to one of these
#: paths without its shape is BadResponse before ccxt reads it
ANSWER_SHAPES: dict[str, dict[str, Fields | list[Fields]]] = {
    "binance": {
        "/api/v3/depth": _DEPTH,
        "/api/v3/order": dict(_ORDER, cummulativeQuoteQty=Decimal),
        "/api/v3/openOrders": [dict(_ORDER, cummulativeQuoteQty=Decimal)],
        "/api/v3/myTrades": [dict(_TRADE, isBuyer=bool, isMaker=bool)],
        "/api/v3/account": {"balances": list},
        "/api/v3/time": {"serverTime": int},
    },
    "binanceusdm": {
        "/fapi/v1/depth": _DEPTH,
        "/fapi/v1/order": dict(_ORDER, cumQuote=Decimal, avgPrice=Decimal),
        "/fapi/v1/openOrders": [dict(_ORDER, cumQuote=Decimal, avgPrice=Decimal)],
        "/fapi/v1/userTrades": [dict(_TRADE, side=str, buyer=bool, maker=bool)],
        "/fapi/v1/income": [
            {"symbol": str, "incomeType": str, "income": Decimal, "asset": str, "time": int, "tranId": int}
        ],
        "/fapi/v1/fundingRate": [
            {"symbol": str, "fundingRate": Decimal, "fundingTime": int, "markPrice": Decimal}
        ],
        "/fapi/v1/premiumIndex": {
            "symbol": str,
            "markPrice": Decimal,
            "indexPrice": Decimal,
            "lastFundingRate": Decimal,
            "nextFundingTime": int,
            "time": int,
        },
        "/fapi/v3/positionRisk": [
            {
                "symbol": str,
                "positionAmt": Decimal,
                "entryPrice": Decimal,
                "markPrice": Decimal,
                "unRealizedProfit": Decimal,
            }
        ],
        "/fapi/v3/account": {"assets": list},
        "/fapi/v1/leverageBracket": [{"symbol": str, "brackets": list}],
        "/fapi/v1/time": {"serverTime": int},
    },
}

#: exchange -> (REST path of its positions answer, a row's market id field, its signed size
#: field): a row there with a size that ccxt's positions do not show (ccxt drops a row it cannot
#: parse, and a perp with no row reads as flat) makes the answer malformed
POSITION_ROWS = {"binanceusdm": ("/fapi/v3/positionRisk", "symbol", "positionAmt")}

#: user-data event type -> the fields its order (an executionReport itself; an
#: ORDER_TRADE_UPDATE's "o") must have, with their JSON types; a TRADE ("x") also its
#: commission asset ("N"). ccxt.pro reads a wrong type as a value (an order id "nan", a missing
#: executed quantity as 0)
_EVENT_ORDER: Fields = {
    "s": str,
    "c": str,
    "S": str,
    "o": str,
    "x": str,
    "X": str,
    "i": int,
    "q": Decimal,
    "p": Decimal,
    "l": Decimal,
    "z": Decimal,
    "L": Decimal,
    "n": Decimal,
    "T": int,
    "t": int,
    "m": bool,
}
EVENT_SHAPES: dict[str, Fields] = {
    "executionReport": dict(_EVENT_ORDER, Z=Decimal, O=int),
    "ORDER_TRADE_UPDATE": dict(_EVENT_ORDER, ap=Decimal),
}
TRADE_EVENT_FIELDS: Fields = {"N": str}
#: an outboundAccountPosition: its update time and its balance rows
BALANCE_EVENT_FIELDS: Fields = {"u": int, "B": list}

#: exchange -> {websocket event type: its fields}: a message of that type without them ends its
#: connection (BadResponse: every watch on it fails, the book is marked stale and a fresh
#: snapshot taken); ccxt.pro would skip it or apply it in part, the book wrong from then on.
#: A depth diff's levels are also checked: [price, quantity] strings, price > 0, quantity >= 0
_DEPTH_FRAME: Fields = {"E": int, "s": str, "U": int, "u": int, "b": list, "a": list}
FRAME_SHAPES: dict[str, dict[str, Fields]] = {
    "binance": {"depthUpdate": _DEPTH_FRAME},
    "binanceusdm": {"depthUpdate": _DEPTH_FRAME},
}
