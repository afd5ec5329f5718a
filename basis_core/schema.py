"""The event schema: every record that crosses a ring or enters the journal.

Every record is exactly 64 bytes (one cache line) and starts with the same header, so a ring
or a journal stores untyped 64-byte slots and a reader dispatches on `kind`:

    offset  size  field
    0       8     seq         u64   sequence number assigned by the record's producer
    8       8     ts_ns       i64   ingest timestamp, ns (CLOCK_REALTIME via time.time_ns)
    16      1     kind        u8    Kind
    17      1     source      u8    Source: who wrote it (venue io, engine, runner, signal)
    18      1     venue       u8    venue id (Registry)
    19      1     sub         u8    kind-specific code (side, event type, status, command)
    20      2     instrument  u16   instrument id (Registry)
    22      2     aux         u16   kind-specific small field (level index, asset id ...)
    24      36    payload     kind-specific, see each dtype below
    60      4     check       u32   CRC-32 of bytes 0..59, filled by `seal`; 0 = unsealed

Prices and quantities are float64 in natural units (USDT per coin, coins). Client order ids
are u64 and deterministic: `make_coid(opportunity_id, leg)`.
"""

from __future__ import annotations

import enum
import zlib

import numpy as np

from .errors import SchemaError

RECORD_SIZE = 64
ALIGNMENT = 64

_HEADER = [
    ("seq", "<u8", 0),
    ("ts_ns", "<i8", 8),
    ("kind", "u1", 16),
    ("source", "u1", 17),
    ("venue", "u1", 18),
    ("sub", "u1", 19),
    ("instrument", "<u2", 20),
    ("aux", "<u2", 22),
]
_CHECK = ("check", "<u4", 60)


def _record(name: str, payload: list[tuple[str, str, int]]) -> np.dtype:
    fields = _HEADER + payload + [_CHECK]
    offsets = [off for _, _, off in fields]
    dt = np.dtype(
        {
            "names": [f for f, _, _ in fields],
            "formats": [t for _, t, _ in fields],
            "offsets": offsets,
            "itemsize": RECORD_SIZE,
        }
    )
    end = 24
    for fname, ftype, off in payload:
        if off < end or off + np.dtype(ftype).itemsize > 60:
            raise SchemaError(f"{name}.{fname} overlaps its neighbour or the check field")
        end = off + np.dtype(ftype).itemsize
    return dt


class Source(enum.IntEnum):
    """`source` of a record: which part of the system wrote it (the numbers are in journals)."""

    VENUE = 1  # the io process, for a venue: market data, execution reports, balances
    ENGINE = 2  # the engine: commands (orders, cancels, requests to the io side)
    RUNNER = 3  # the runner: batch-closing timers, controls, starting balances
    SIGNAL = 4  # a signal fed to the engine (built-in or recorded)


class Kind(enum.IntEnum):
    BOOK_LEVEL = 1
    TOP_OF_BOOK = 2
    TRADE = 3
    SIGNAL = 4
    ORDER_NEW = 5
    ORDER_CANCEL = 6
    ORDER_EVENT = 7
    VENUE_STATUS = 8
    BALANCE_UPDATE = 9
    TRANSFER_UPDATE = 10
    TIMER = 11
    CONTROL = 12
    FUNDING = 13
    ORDER_QUERY = 14


class Side(enum.IntEnum):
    BUY = 0  # for book records: bid
    SELL = 1  # for book records: ask


class BookAction(enum.IntEnum):
    """`action` of a BOOK_LEVEL record."""

    SET = 0  # set the level at `price` to `qty` (qty 0 deletes it)
    SNAPSHOT_BEGIN = 1  # clear this side; following SETs rebuild it
    SNAPSHOT_END = 2  # the snapshot is complete; the book is usable again


class OrderType(enum.IntEnum):
    LIMIT = 0
    MARKET = 1
    IOC = 2
    POST_ONLY = 3


class Purpose(enum.IntEnum):
    """Why an order exists (high byte of ORDER_NEW.aux): routing priority follows it."""

    ENTRY = 0
    HEDGE = 1
    UNWIND = 2
    RESTORE = 3  # buys back base a venue kept as fees (engine/fees.py)


class OrderEventType(enum.IntEnum):
    """`sub` of an ORDER_EVENT record: what a venue (or the io path, for TIMEOUT) reported about
    one order. The order state machine's triggers are `state.tables.OrderEvent`."""

    ACK = 0
    PARTIAL_FILL = 1
    FILL = 2
    REJECT = 3
    CANCELED = 4
    EXPIRED = 5
    CANCEL_REJECT = 6
    TIMEOUT = 7  # a request about this order got no answer: its effect is unknown
    NOT_FOUND = 8  # a query by client order id: the venue does not have the order


class RejectReason(enum.IntEnum):
    """Why a signal was not acted on or an order was refused. Counted per reason."""

    NONE = 0
    STALE = 1
    EDGE_GONE = 2
    VENUE_UNHEALTHY = 3
    NO_INVENTORY = 4
    RISK_STATE = 5
    CAPITAL = 6
    TRANSFER_PENDING = 7
    BOOK_UNUSABLE = 8
    BAD_INPUT = 9
    LOT_SIZE = 10
    MIN_NOTIONAL = 11
    EXPOSURE_LIMIT = 12
    INSUFFICIENT_FUNDS = 13
    POST_ONLY_WOULD_CROSS = 14
    RATE_LIMITED = 15
    VENUE_REJECT = 16
    TIMEOUT = 17
    SLIPPAGE = 18
    FEE_ASSET_EXHAUSTED = 19  # a leg's venue ran out of its fee asset (on_fee_asset_exhausted = "stop")
    EXPIRED = 20  # an on-chain trade's deadline passed before it was mined
    GAS_CAP = 21  # the gas or fee a transaction needs is above the configured cap: not sent
    NONCE_CONFLICT = 22  # the node's account nonce contradicts ours: not sent
    CLUSTER_RESERVE = 23  # a clustered engine holds too little of a shared limit (engine/allowance.py)


class Liquidity(enum.IntEnum):
    UNKNOWN = 0
    MAKER = 1
    TAKER = 2


class VenueReport(enum.IntEnum):
    """`sub` of a VENUE_STATUS record: what an adapter observed."""

    OK = 0
    RATE_LIMITED = 1
    TIMEOUT = 2
    MAINTENANCE = 3
    DISCONNECTED = 4
    ERROR = 5


class TransferState(enum.IntEnum):
    REQUESTED = 0
    SENT = 1
    CONFIRMING = 2
    CONFIRMED = 3
    FAILED = 4


class ControlCommand(enum.IntEnum):
    """`sub` of a CONTROL record. From the operator or the io side (source != Source.ENGINE) they
    are inputs; from the engine (Source.ENGINE) they are requests to the io side."""

    HALT = 0
    RESUME = 1
    SHUTDOWN = 2  # input: open nothing new, let working orders settle
    RECONCILE = 3  # input: a pass's outcome (aux = mismatches, operator = 1 if clean); request: run one
    RATE_FACTOR = 4  # request: scale every venue's routing rate by aux / 1000
    EXIT = 5  # input: the engine process finishes its step and exits
    RECOVERED = 6  # input: the engine restarted from its journal; reconcile before any dispatch
    READY = 7  # engine -> io: kernels compiled, state built, the engine takes records now
    # operator commands (`basis ctl`), inputs like HALT and RESUME; `operator` = the peer's uid
    FLATTEN = 8  # halt, and isolate and unwind every open position that is not hedged
    CANCEL_ALL = 9  # cancel every working order
    PAUSE_VENUE = 10  # venue = the venue: no new order goes there (cancels and queries still do)
    RESUME_VENUE = 11  # venue = the venue: new orders may go there again
    SET_LIMIT = 12  # aux = the [limits] key's index (config.LIMIT_FIELDS order), value = new value
    # io -> engine in a clustered run (engine/allowance.py): what this engine holds of one shared
    # limit; operator = the limit's kind, venue / aux (asset) / instrument name it, value = the total
    CLUSTER_GRANT = 13


#: the CONTROL commands an operator may send (`basis ctl`); the others come from the io side
OPERATOR_COMMANDS = frozenset(
    {
        ControlCommand.HALT,
        ControlCommand.RESUME,
        ControlCommand.FLATTEN,
        ControlCommand.CANCEL_ALL,
        ControlCommand.PAUSE_VENUE,
        ControlCommand.RESUME_VENUE,
        ControlCommand.SET_LIMIT,
    }
)


# -- record dtypes ------------------------------------------------------------------------

GENERIC = _record("generic", [("payload", "V36", 24)])

# sub = Side (bid/ask), aux = level index hint (0 = best) or 0xFFFF when price-keyed
BOOK_LEVEL = _record(
    "book_level",
    [
        ("price", "<f8", 24),
        ("qty", "<f8", 32),
        ("exch_ts_ns", "<i8", 40),
        ("update_id", "<u8", 48),
        ("action", "u1", 56),
    ],
)
TOP_OF_BOOK = _record(
    "top_of_book",
    [
        ("bid_px", "<f8", 24),
        ("bid_qty", "<f8", 32),
        ("ask_px", "<f8", 40),
        ("ask_qty", "<f8", 48),
        ("exch_age_us", "<u4", 56),  # venue-timestamp age at ingest, us (0xFFFFFFFF = unknown)
    ],
)
# sub = aggressor Side
TRADE = _record(
    "trade",
    [
        ("price", "<f8", 24),
        ("qty", "<f8", 32),
        ("exch_ts_ns", "<i8", 40),
        ("trade_id", "<u8", 48),
    ],
)
# venue/instrument = the buy leg; sell_venue/sell_instrument = the sell leg; aux = strategy id;
# sub = strategy kind (0 cross-venue spread, 1 basis, 2 funding, 3 external)
SIGNAL = _record(
    "signal",
    [
        ("signal_id", "<u4", 24),
        ("sell_venue", "u1", 28),
        ("flags", "u1", 29),
        ("sell_instrument", "<u2", 30),
        ("created_ns", "<i8", 32),
        ("edge_bps", "<f8", 40),
        ("qty_hint", "<f8", 48),
        ("ttl_us", "<u4", 56),
    ],
)
# sub = Side, aux = OrderType | Purpose << 8; price is the bound (worst acceptable limit)
ORDER_NEW = _record(
    "order_new",
    [
        ("coid", "<u8", 24),
        ("price", "<f8", 32),
        ("qty", "<f8", 40),
        ("depends_on", "<u8", 48),  # coid of the leg this hedge depends on; 0 = none
        ("max_slip_bps", "<f4", 56),
    ],
)
# sub = RejectReason-like cause for the cancel (0 = none)
ORDER_CANCEL = _record("order_cancel", [("coid", "<u8", 24), ("requested_ns", "<i8", 32)])
# sub = OrderEventType, aux = fee asset id. Executions have fill_no >= 1 (numbered per order)
# and carry last_px/last_qty/fee of that execution. Status reports (fill_no == 0: an ACK, a
# cancel or expiry, a query's answer) carry the venue's cumulative filled quantity in last_qty
# and its average price in last_px, so a fill we have not seen yet still counts.
ORDER_EVENT = _record(
    "order_event",
    [
        ("coid", "<u8", 24),
        ("last_px", "<f8", 32),
        ("last_qty", "<f8", 40),
        ("fee", "<f8", 48),
        ("reason", "u1", 56),
        ("liquidity", "u1", 57),
        ("fill_no", "<u2", 58),
    ],
)
# sub = VenueReport
VENUE_STATUS = _record(
    "venue_status",
    [
        ("retry_after_ms", "<u4", 24),
        ("http_status", "<u2", 28),
        ("venue_code", "<i2", 30),
        ("latency_ns", "<i8", 32),
        ("until_ns", "<i8", 40),
    ],
)
# aux = asset id
BALANCE_UPDATE = _record(
    "balance_update",
    [
        ("free", "<f8", 24),
        ("locked", "<f8", 32),
        ("venue_ts_ns", "<i8", 40),
        ("update_id", "<u8", 48),
    ],
)
# venue = from venue, sub = TransferState, aux = asset id
TRANSFER_UPDATE = _record(
    "transfer_update",
    [
        ("transfer_id", "<u8", 24),
        ("amount", "<f8", 32),
        ("eta_ns", "<i8", 40),
        ("to_venue", "u1", 48),
        ("confirmations", "<u2", 50),
        ("required", "<u2", 52),
    ],
)
# engine → io: ask the venue for the order's state by client order id
ORDER_QUERY = _record("order_query", [("coid", "<u8", 24)])
TIMER = _record("timer", [("timer_id", "<u8", 24), ("deadline_ns", "<i8", 32)])
# sub = ControlCommand, aux = reason code (SET_LIMIT: the limit), value = SET_LIMIT's new value
CONTROL = _record("control", [("operator", "<u8", 24), ("value", "<f8", 32)])
# perp funding/mark: venue/instrument = the perp
FUNDING = _record(
    "funding",
    [
        ("mark_px", "<f8", 24),
        ("index_px", "<f8", 32),
        ("rate", "<f8", 40),
        ("next_ns", "<i8", 48),
    ],
)

DTYPES: dict[Kind, np.dtype] = {
    Kind.BOOK_LEVEL: BOOK_LEVEL,
    Kind.TOP_OF_BOOK: TOP_OF_BOOK,
    Kind.TRADE: TRADE,
    Kind.SIGNAL: SIGNAL,
    Kind.ORDER_NEW: ORDER_NEW,
    Kind.ORDER_CANCEL: ORDER_CANCEL,
    Kind.ORDER_EVENT: ORDER_EVENT,
    Kind.VENUE_STATUS: VENUE_STATUS,
    Kind.BALANCE_UPDATE: BALANCE_UPDATE,
    Kind.TRANSFER_UPDATE: TRANSFER_UPDATE,
    Kind.TIMER: TIMER,
    Kind.CONTROL: CONTROL,
    Kind.FUNDING: FUNDING,
    Kind.ORDER_QUERY: ORDER_QUERY,
}


def empty(kind: Kind, n: int = 1) -> np.ndarray:
    """A zeroed, 64-byte-aligned array of `n` records of `kind`, with `kind` set."""
    arr = aligned_empty(n, DTYPES[kind])
    arr["kind"] = int(kind)
    return arr


def aligned_empty(n: int, dtype: np.dtype = GENERIC) -> np.ndarray:
    """A zeroed array of `n` records whose first byte sits on a 64-byte boundary."""
    raw = np.zeros(n * RECORD_SIZE + ALIGNMENT, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    return raw[start : start + n * RECORD_SIZE].view(dtype)


def view(records: np.ndarray, kind: Kind) -> np.ndarray:
    """Reinterpret 64-byte records (any record dtype or uint8/uint64 rows) as `kind`'s dtype."""
    if records.dtype.itemsize == RECORD_SIZE:
        return records.view(DTYPES[kind])
    flat = np.ascontiguousarray(records).reshape(-1).view(np.uint8)
    if flat.size % RECORD_SIZE:
        raise SchemaError(f"{flat.size} bytes is not a whole number of {RECORD_SIZE}-byte records")
    return flat.view(DTYPES[kind])


def crc(record: np.ndarray) -> int:
    """CRC-32 of bytes 0..59 of one record (a 0-d or 1-element record array)."""
    return zlib.crc32(np.asarray(record).reshape(-1)[:1].view(np.uint8)[:60].tobytes())


def seal(records: np.ndarray) -> np.ndarray:
    """Fill the `check` field of every record with its CRC-32 (in place); returns the array."""
    raw = records.reshape(-1).view(np.uint8).reshape(-1, RECORD_SIZE)
    checks = records.reshape(-1).view(GENERIC)
    for i in range(raw.shape[0]):
        checks["check"][i] = zlib.crc32(raw[i, :60].tobytes())
    return records


def verify(records: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a record's `check` equals the CRC-32 of its bytes 0..59."""
    raw = records.reshape(-1).view(np.uint8).reshape(-1, RECORD_SIZE)
    checks = records.reshape(-1).view(GENERIC)["check"]
    return np.array([zlib.crc32(raw[i, :60].tobytes()) == checks[i] for i in range(raw.shape[0])], dtype=bool)


# A client order id (u64; its wire form is the decimal string, basis_core.venue.coid_to_wire):
# the opportunity id in the high bits, the leg in the low LEG_BITS. Legs 0 and 1 are the entry
# and the hedge, 2..MAX_LEG the unwinds. Compiled code builds it as (opp << LEG_BITS) | leg.
LEG_BITS = 4
MAX_LEG = (1 << LEG_BITS) - 1  # 15
MAX_OPPORTUNITY = (1 << (64 - LEG_BITS - 1)) - 1


def make_coid(opportunity_id: int, leg: int) -> int:
    """Deterministic client order id: opportunity id in the high bits, leg (0..MAX_LEG) in the low
    LEG_BITS."""
    if not 0 <= leg <= MAX_LEG:
        raise SchemaError(f"leg {leg} out of range 0..{MAX_LEG}")
    if not 0 < opportunity_id <= MAX_OPPORTUNITY:
        raise SchemaError(f"opportunity id {opportunity_id} out of range")
    return (opportunity_id << LEG_BITS) | leg


def split_coid(coid: int) -> tuple[int, int]:
    """Inverse of make_coid: (opportunity_id, leg)."""
    return coid >> LEG_BITS, coid & MAX_LEG


def opportunity_of(coid: int) -> int:
    """The opportunity id of a client order id made by make_coid."""
    return coid >> LEG_BITS


# -- record builders of the runner's own inputs ----------------------------------------------


def timer_record(now_ns: int) -> np.ndarray:
    """The TIMER record that closes an input batch (the boundary a replay steps on)."""
    t = empty(Kind.TIMER)
    t["ts_ns"], t["deadline_ns"], t["source"] = now_ns, now_ns, Source.RUNNER
    return t.view(GENERIC)


def control_record(
    now_ns: int, cmd: ControlCommand, aux: int = 0, operator: int = 0, *, venue: int = 0, value: float = 0.0
) -> np.ndarray:
    """A CONTROL input from the io side / runner (or an operator, through it)."""
    rec = empty(Kind.CONTROL)
    rec["ts_ns"], rec["source"], rec["sub"], rec["aux"], rec["operator"] = (
        now_ns,
        Source.RUNNER,
        int(cmd),
        aux,
        operator,
    )
    rec["venue"], rec["value"] = venue, value
    return rec.view(GENERIC)


def batch_ends(records: np.ndarray) -> np.ndarray:
    """Indices of the TIMER records that close input batches."""
    return np.flatnonzero((records["source"] == Source.RUNNER) & (records["kind"] == Kind.TIMER))


def kind_of(records: np.ndarray) -> np.ndarray:
    """The `kind` column of any 64-byte records."""
    return records.reshape(-1).view(GENERIC)["kind"]
