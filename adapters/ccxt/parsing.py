"""ccxt's unified structures (orders, trades, balances, markets) into `basis_core.venue` types.

Every function checks what it reads: an order without an id or a status, a NaN or negative
quantity, an unknown status or side is a MalformedResponse, never a guessed value. ccxt turns a
venue's HTTP 200 `{}` into an order whose id and status are None; `order` refuses it.
"""

from __future__ import annotations

import math
from decimal import Decimal

from basis_core.errors import MalformedResponse
from basis_core.schema import Liquidity, OrderType, Side
from basis_core.venue import Balance, Fill, InstrumentInfo, OrderStatus, VenueOrder, require_finite

from .constants import STATUS

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def _bad(venue: str, message: str) -> MalformedResponse:
    return MalformedResponse(venue, "malformed", message)


#: no price, quantity, balance or amount a venue reports is this large: one beyond is garbled
MAX_AMOUNT = 1e18


def number(venue: str, what: str, value, *, signed: bool = False) -> float:
    """`value` as a float: finite, within MAX_AMOUNT, non-negative unless `signed`; a JSON true
    or false is not a number. Else MalformedResponse naming `what`."""
    if isinstance(value, bool):
        raise _bad(venue, f"{what} is not a number: {value!r}")
    out = require_finite(venue, what, value)
    if abs(out) > MAX_AMOUNT:
        raise _bad(venue, f"{what} is out of range: {value!r}")
    if out < 0 and not signed:
        raise _bad(venue, f"{what} is negative: {value!r}")
    return out


def _num(venue: str, what: str, value, default: float | None = None) -> float:
    if value is None and default is not None:
        return default
    return number(venue, what, value)


def shape_error(obj, fields: dict[str, type]) -> str | None:
    """What keeps `obj` from being a JSON object holding each of `fields` with its JSON type
    (a bool is no number, a string is not empty); None when nothing does."""
    if not isinstance(obj, dict):
        return f"{type(obj).__name__} where an object belongs"
    for key, kind in fields.items():
        value = obj.get(key)
        if kind is Decimal:  # a decimal string
            try:
                if not isinstance(value, str) or not math.isfinite(float(value)):
                    raise ValueError
            except ValueError:
                return f"{key} is {value!r}, not a decimal number"
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            return f"{key} is {type(value).__name__}, not {kind.__name__}"
        if isinstance(value, int) and not -1 <= value < 2**63:  # ids and times: int64s (-1: none)
            return f"{key} is {value}, out of range"
        if kind is str and not value:
            return f"{key} is empty"
    return None


def require_fields(venue: str, what: str, obj, fields: dict[str, type]) -> None:
    """`obj` has `fields` (`shape_error`), else MalformedResponse naming `what` and the field."""
    problem = shape_error(obj, fields)
    if problem is not None:
        raise _bad(venue, f"{what}: {problem}")


def diff_error(frame) -> str | None:
    """What makes a depth diff's levels unusable: a level that is not [price, quantity] strings
    of numbers, a price <= 0 or a quantity < 0 (0 takes the level out); None when nothing."""
    for side in ("b", "a"):
        for level in frame.get(side) or ():
            if (
                not isinstance(level, list)
                or len(level) < 2
                or not all(isinstance(x, str) for x in level[:2])
            ):
                return f"{side} level {level!r}"
            try:
                price, qty = float(level[0]), float(level[1])
            except ValueError:
                return f"{side} level {level!r}"
            if not (
                math.isfinite(price)
                and math.isfinite(qty)
                and 0 < price <= MAX_AMOUNT
                and 0 <= qty <= MAX_AMOUNT
            ):
                return f"{side} level {level!r}"
    return None


def levels(venue: str, what: str, rows) -> tuple[tuple[float, float], ...]:
    """(price, quantity) levels of a book snapshot, each price and quantity > 0."""
    try:
        pairs = [(p, q) for p, q, *_ in rows]
    except (TypeError, ValueError):
        raise _bad(venue, f"{what} of the book are not [price, quantity] levels") from None
    out = tuple((number(venue, f"{what} price", p), number(venue, f"{what} quantity", q)) for p, q in pairs)
    if not all(p > 0 and q > 0 for p, q in out):
        raise _bad(venue, f"{what} of the book hold a level with a zero price or quantity")
    return out


#: the latest time in ms a venue may stamp (ns in an int64 after the conversion)
MAX_MS = (2**63 - 1) // 1_000_000


def time_ms(venue: str, what: str, value) -> int:
    """A venue timestamp in ms (or another count that must fit: an update id): missing is 0
    (not stamped), else a whole number in [0, MAX_MS]."""
    if value is None:
        return 0
    out = require_finite(venue, what, value)
    if not 0 <= out <= MAX_MS:
        raise _bad(venue, f"{what} is out of range: {value!r}")
    return int(out)


def _fee(venue: str, o: dict) -> tuple[float, str]:
    """Total fee of an order or trade (ccxt's `fees` list or single `fee`) and its asset; fees in
    several assets keep the first asset's total (the venue charges one asset per order here)."""
    fees = o.get("fees") or ([o["fee"]] if o.get("fee") else [])
    total, asset = 0.0, ""
    for f in fees:
        if not isinstance(f, dict) or f.get("cost") is None:
            continue
        cost = number(venue, "fee", f["cost"], signed=True)  # (negative: a rebate)
        cur = f.get("currency") or ""
        if not cur and cost:
            raise _bad(venue, f"fee {f['cost']!r} without its asset")
        if asset and cur != asset:
            continue
        asset = cur
        total += cost
    return total, asset


def order_type(o: dict) -> OrderType:
    """Our order type from ccxt's type, timeInForce and postOnly."""
    if o.get("postOnly") or o.get("timeInForce") == "PO" or str(o.get("type", "")).lower() == "limit_maker":
        return OrderType.POST_ONLY
    if str(o.get("type", "")).lower() == "market":
        return OrderType.MARKET
    return OrderType.IOC if o.get("timeInForce") in ("IOC", "FOK") else OrderType.LIMIT


def order(
    venue: str, o, instrument: str, coid: str | None = None, known_type: OrderType | None = None
) -> VenueOrder:
    """A VenueOrder from one ccxt order. `coid` overrides the answer's client id (cancel replies
    carry the cancel's own id); `known_type` is the type we sent (ccxt cannot tell a protected
    market order from a limit IOC)."""
    if not isinstance(o, dict):
        raise _bad(venue, f"order answer is not an object: {type(o).__name__}")
    oid, raw_status = o.get("id"), o.get("status")
    if not oid or raw_status is None:
        raise _bad(venue, "answer without order id or status is not an order")
    status = STATUS.get(raw_status)
    if status is None:
        raise _bad(venue, f"unknown order status {raw_status!r}")
    side = _SIDES.get(o.get("side", ""))
    if side is None:
        raise _bad(venue, f"unknown order side {o.get('side')!r}")
    cid = coid or o.get("clientOrderId")
    if not cid:
        raise _bad(venue, f"order {oid} has no client order id")
    qty = _num(venue, "amount", o.get("amount"))
    if qty <= 0:
        raise _bad(venue, f"order {oid} has amount {qty}")
    filled = _num(venue, "filled", o.get("filled"))  # (missing: not known to be 0)
    if filled > qty * (1 + 1e-9):
        raise _bad(venue, f"order {oid} filled {filled} of {qty}")
    if status == OrderStatus.FILLED.value and filled < qty * (1 - 1e-9):
        raise _bad(venue, f"order {oid} is filled with {filled} of {qty} executed")
    cost = o.get("cost")
    if not filled and cost is not None and _num(venue, "cost", cost) > 0:
        raise _bad(venue, f"order {oid} cost {cost} with nothing executed")
    price = o.get("price")
    price = _num(venue, "price", price) if price not in (None, 0, 0.0) else None
    avg = _num(venue, "average", o.get("average")) if filled else 0.0
    if filled and avg <= 0:
        raise _bad(venue, f"order {oid} filled {filled} at average price {avg}")
    fee, fee_asset = _fee(venue, o)
    st = OrderStatus(status)
    if st == OrderStatus.OPEN and filled > 0:
        st = OrderStatus.PARTIALLY_FILLED
    ts = time_ms(venue, "order time", o.get("timestamp"))
    upd = (
        time_ms(venue, "order update time", o.get("lastUpdateTimestamp") or o.get("lastTradeTimestamp")) or ts
    )
    return VenueOrder(
        coid=str(cid),
        instrument=instrument,
        side=side,
        type=known_type or order_type(o),
        qty=qty,
        price=price,
        status=st,
        filled_qty=filled,
        avg_price=avg,
        fee=fee,
        fee_asset=fee_asset,
        venue_order_id=str(oid),
        created_ns=ts * 1_000_000,
        updated_ns=upd * 1_000_000,
    )


def fill(venue: str, t, instrument: str, coid: str) -> Fill:
    """A Fill from one ccxt trade of ours."""
    if not isinstance(t, dict) or not t.get("id"):
        raise _bad(venue, "trade without id")
    side = _SIDES.get(t.get("side", ""))
    if side is None:
        raise _bad(venue, f"trade {t.get('id')}: unknown side {t.get('side')!r}")
    price, qty = _num(venue, "trade price", t.get("price")), _num(venue, "trade amount", t.get("amount"))
    if price <= 0 or qty <= 0:
        raise _bad(venue, f"trade {t['id']}: price {price} amount {qty}")
    fee, asset = _fee(venue, t)
    liq = {"maker": Liquidity.MAKER, "taker": Liquidity.TAKER}.get(
        t.get("takerOrMaker", ""), Liquidity.UNKNOWN
    )
    return Fill(
        venue=venue,
        instrument=instrument,
        coid=coid,
        trade_id=str(t["id"]),
        side=side,
        price=price,
        qty=qty,
        fee=fee,
        fee_asset=asset,
        liquidity=liq,
        ts_ns=time_ms(venue, f"trade {t['id']} time", t.get("timestamp")) * 1_000_000,
    )


def balances(venue: str, b, rows: tuple[str, str, str, str] | None = None) -> dict[str, Balance]:
    """Balances by asset from ccxt's fetch_balance (free and used per currency); with `rows`
    (`constants.BALANCE_ROWS` of the exchange) from the venue's own rows in the answer."""
    if not isinstance(b, dict) or not isinstance(b.get("free"), dict):
        raise _bad(venue, "balance answer without free amounts")
    if rows is not None:
        return _balance_rows(venue, b.get("info"), *rows)
    used = b.get("used") or {}
    out = {}
    for asset, free in b["free"].items():
        if free is None:
            continue
        out[asset] = Balance(
            asset, _num(venue, f"{asset} free", free), _num(venue, f"{asset} used", used.get(asset), 0.0)
        )
    return out


def _balance_rows(venue: str, info, key: str, asset_key: str, free_key: str, locked_key: str):
    """One Balance per row of `info[key]`: every row names its asset once, with a finite,
    non-negative free and locked amount."""
    listed = info.get(key) if isinstance(info, dict) else None
    if not isinstance(listed, list):
        raise _bad(venue, f"balance answer without its {key!r} list")
    out: dict[str, Balance] = {}
    for row in listed:
        asset = row.get(asset_key) if isinstance(row, dict) else None
        if not isinstance(asset, str) or not asset:
            raise _bad(venue, f"balance row without an asset: {row!r}")
        if asset in out:
            raise _bad(venue, f"balance of {asset} listed twice")
        out[asset] = Balance(
            asset,
            _num(venue, f"{asset} free", row.get(free_key)),
            _num(venue, f"{asset} locked", row.get(locked_key)),
        )
    return out


def instrument(venue: str, name: str, m: dict) -> InstrumentInfo:
    """Trading rules from a ccxt market (precision given as tick sizes, as Binance's is)."""
    try:
        prec, limits = m["precision"], m.get("limits") or {}
        tick, lot = float(prec["price"]), float(prec["amount"])
    except (KeyError, TypeError, ValueError):
        raise _bad(venue, f"market {m.get('symbol')!r} without price/amount precision") from None
    if not (math.isfinite(tick) and tick > 0 and math.isfinite(lot) and lot > 0 and tick < 1e6 and lot < 1e6):
        raise _bad(venue, f"market {m.get('symbol')!r}: tick {tick} lot {lot}")
    min_cost = (limits.get("cost") or {}).get("min") or 0.0
    max_amt = (limits.get("amount") or {}).get("max") or math.inf
    return InstrumentInfo(
        name=name,
        symbol=m["symbol"],
        base=m["base"],
        quote=m["quote"],
        kind="spot" if m.get("spot", True) else "perp",
        tick=tick,
        lot=lot,
        min_notional=float(min_cost),
        max_qty=float(max_amt),
    )


def on_grid(value: float, step: float) -> bool:
    """True when `value` is a whole multiple of `step` (to 1e-9 relative)."""
    n = round(value / step)
    return n > 0 and abs(n * step - value) <= 1e-9 * max(1.0, abs(value))
