"""Top-N order books per (venue, instrument), as preallocated struct-of-arrays state.

Layout (V = n_venues + 1, I = n_instruments + 1, ids index directly, 0 = none):

    px, qty   float64[V, I, 2, N]   side 0 = bids (best first, descending), side 1 = asks (ascending)
    cnt       int32[V, I, 2]        levels present per side (0..N)
    ts        int64[V, I]           ingest time of the last applied record (ns)
    status    uint8[V, I]           bit flags below; the book is usable only when status == 0
    counters  int64[N_EV]           records applied / bad / beyond depth / ignored

Records: BOOK_LEVEL (sub = side; action SET / SNAPSHOT_BEGIN / SNAPSHOT_END; qty 0 deletes the
level) and TOP_OF_BOOK (a complete one-level snapshot of both sides). A book starts as
NEED_SNAPSHOT. SNAPSHOT_BEGIN clears its side and marks it in snapshot; SNAPSHOT_END completes the
snapshot and heals BAD. A record with a NaN/inf/non-positive price, a NaN/inf/negative quantity,
an unknown side/action or unknown ids never enters the book: it is counted as bad and the book
(if its ids are valid) is marked BAD until the next snapshot. A crossed book (best bid >= best ask)
is marked CROSSED until the cross resolves. Staleness is judged at use time (`usable_nb`).
A price level that would fall below the N best is dropped (counted as beyond depth).

The per-record helpers are inlined into the batch loop (`inline="always"`): a call between
compiled functions passes every array by value with a reference-count update each, which cost
more than the level update itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import schema
from .finite import finite_nonneg, finite_pos

NEED_SNAPSHOT = 1
SNAP_BID = 2
SNAP_ASK = 4
CROSSED = 8
BAD = 16

EV_APPLIED = 0
EV_BAD = 1
EV_BEYOND_DEPTH = 2
EV_IGNORED = 3
N_EV = 4

_KIND_LEVEL = int(schema.Kind.BOOK_LEVEL)
_KIND_TOB = int(schema.Kind.TOP_OF_BOOK)
_SET = int(schema.BookAction.SET)
_BEGIN = int(schema.BookAction.SNAPSHOT_BEGIN)
_END = int(schema.BookAction.SNAPSHOT_END)
_AGE_UNKNOWN = 0xFFFFFFFF
MIN_DEPTH = 10


_SNAPPING = NEED_SNAPSHOT | SNAP_BID | SNAP_ASK
_KEEP_NOT_CROSSED = 0xFF ^ CROSSED
_KEEP_AFTER_SNAPSHOT = 0xFF ^ (_SNAPPING | BAD)


@njit(cache=True, inline="always")
def _check_cross(px, cnt, status, v, i):
    st = np.int64(status[v, i])
    if st & _SNAPPING:
        return
    if cnt[v, i, 0] > 0 and cnt[v, i, 1] > 0 and px[v, i, 0, 0] >= px[v, i, 1, 0]:
        status[v, i] = st | CROSSED
    else:
        status[v, i] = st & _KEEP_NOT_CROSSED


@njit(cache=True, inline="always")
def set_level_nb(px, qty, cnt, v, i, side, price, q):
    """Set one price level (q == 0 deletes it). Returns 0 applied, 1 beyond depth (dropped)."""
    n = cnt[v, i, side]
    depth = px.shape[3]
    k = 0
    while k < n:
        p = px[v, i, side, k]
        if p == price:
            if q == 0.0:
                for j in range(k, n - 1):
                    px[v, i, side, j] = px[v, i, side, j + 1]
                    qty[v, i, side, j] = qty[v, i, side, j + 1]
                cnt[v, i, side] = n - 1
            else:
                qty[v, i, side, k] = q
            return 0
        if (side == 0 and p < price) or (side == 1 and p > price):
            break
        k += 1
    if q == 0.0:
        return 0  # deleting a level we do not hold
    if k >= depth:
        return 1
    last = n if n < depth else depth - 1
    for j in range(last, k, -1):
        px[v, i, side, j] = px[v, i, side, j - 1]
        qty[v, i, side, j] = qty[v, i, side, j - 1]
    px[v, i, side, k] = price
    qty[v, i, side, k] = q
    cnt[v, i, side] = last + 1
    return 0


@njit(cache=True, inline="always")
def apply_level_nb(px, qty, cnt, ts, status, counters, v, i, side, action, price, q, ts_ns):
    """Apply one BOOK_LEVEL record's fields; returns the EV_* code it was counted under."""
    nv, ni = px.shape[0], px.shape[1]
    if v <= 0 or v >= nv or i <= 0 or i >= ni:
        counters[EV_BAD] += 1
        return EV_BAD
    if side > 1 or action > 2 or (action == _SET and not (finite_pos(price) and finite_nonneg(q))):
        counters[EV_BAD] += 1
        status[v, i] = np.int64(status[v, i]) | BAD
        return EV_BAD
    ts[v, i] = ts_ns
    if action == _BEGIN:
        cnt[v, i, side] = 0
        status[v, i] = np.int64(status[v, i]) | (SNAP_BID if side == 0 else SNAP_ASK)
    elif action == _END:
        status[v, i] = np.int64(status[v, i]) & _KEEP_AFTER_SNAPSHOT
    elif set_level_nb(px, qty, cnt, v, i, side, price, q) == 1:
        counters[EV_BEYOND_DEPTH] += 1
        _check_cross(px, cnt, status, v, i)
        return EV_BEYOND_DEPTH
    _check_cross(px, cnt, status, v, i)
    counters[EV_APPLIED] += 1
    return EV_APPLIED


@njit(cache=True, inline="always")
def apply_top_nb(px, qty, cnt, ts, status, counters, v, i, bid_px, bid_q, ask_px, ask_q, ts_ns, age_us):
    """Apply one TOP_OF_BOOK record's fields (a one-level snapshot of both sides)."""
    nv, ni = px.shape[0], px.shape[1]
    if v <= 0 or v >= nv or i <= 0 or i >= ni:
        counters[EV_BAD] += 1
        return EV_BAD
    bad = not (finite_nonneg(bid_q) and finite_nonneg(ask_q))
    if not bad:
        bad = (bid_q > 0.0 and not finite_pos(bid_px)) or (ask_q > 0.0 and not finite_pos(ask_px))
    if bad:
        counters[EV_BAD] += 1
        status[v, i] = np.int64(status[v, i]) | BAD
        return EV_BAD
    cnt[v, i, 0] = 0
    cnt[v, i, 1] = 0
    if bid_q > 0.0:
        px[v, i, 0, 0] = bid_px
        qty[v, i, 0, 0] = bid_q
        cnt[v, i, 0] = 1
    if ask_q > 0.0:
        px[v, i, 1, 0] = ask_px
        qty[v, i, 1, 0] = ask_q
        cnt[v, i, 1] = 1
    ts[v, i] = ts_ns - np.int64(age_us) * 1000 if age_us != _AGE_UNKNOWN else ts_ns
    status[v, i] = np.uint8(0)
    _check_cross(px, cnt, status, v, i)
    counters[EV_APPLIED] += 1
    return EV_APPLIED


@njit(cache=True, inline="always")
def apply_record_nb(levels, tops, r, px, qty, cnt, ts, status, counters):
    """Apply record r of a batch given as BOOK_LEVEL and TOP_OF_BOOK views of the same memory;
    returns the EV_* code it was counted under, or -1 for a record of another kind (not counted:
    the caller decides what such a record means)."""
    kind = levels[r].kind
    if kind == _KIND_LEVEL:
        rec = levels[r]
        return apply_level_nb(
            px,
            qty,
            cnt,
            ts,
            status,
            counters,
            np.int64(rec.venue),
            np.int64(rec.instrument),
            np.int64(rec.sub),
            np.int64(rec.action),
            rec.price,
            rec.qty,
            rec.ts_ns,
        )
    if kind == _KIND_TOB:
        t = tops[r]
        return apply_top_nb(
            px,
            qty,
            cnt,
            ts,
            status,
            counters,
            np.int64(t.venue),
            np.int64(t.instrument),
            t.bid_px,
            t.bid_qty,
            t.ask_px,
            t.ask_qty,
            t.ts_ns,
            np.int64(t.exch_age_us),
        )
    return -1


@njit(cache=True)
def apply_batch_nb(levels, tops, px, qty, cnt, ts, status, counters):
    """Apply a batch of 64-byte records, given as two views of the same memory (BOOK_LEVEL and
    TOP_OF_BOOK dtypes). Records of other kinds are counted as ignored. Returns records seen."""
    for r in range(levels.shape[0]):
        if apply_record_nb(levels, tops, r, px, qty, cnt, ts, status, counters) < 0:
            counters[EV_IGNORED] += 1
    return levels.shape[0]


_I64 = 2**63  # int64's range is [-_I64, _I64)


@njit(cache=True, inline="always")
def usable_nb(cnt, ts, status, v, i, now_ns, max_age_ns):
    """True when the book has no flag set, is not older than max_age_ns, and has both sides."""
    return status[v, i] == 0 and now_ns - ts[v, i] <= max_age_ns and cnt[v, i, 0] > 0 and cnt[v, i, 1] > 0


class BookState:
    """Owns the preallocated book arrays for n_venues x n_instruments at depth N."""

    def __init__(self, n_venues: int, n_instruments: int, depth: int = 20):
        if depth < MIN_DEPTH:
            raise ValueError(f"book depth must be >= {MIN_DEPTH}, got {depth}")
        if n_venues < 1 or n_instruments < 1:
            raise ValueError("need at least one venue and one instrument")
        shape = (n_venues + 1, n_instruments + 1)
        self.depth = depth
        self.px = np.zeros(shape + (2, depth), dtype=np.float64)
        self.qty = np.zeros(shape + (2, depth), dtype=np.float64)
        self.cnt = np.zeros(shape + (2,), dtype=np.int32)
        self.ts = np.zeros(shape, dtype=np.int64)
        self.status = np.full(shape, NEED_SNAPSHOT, dtype=np.uint8)
        self.counters = np.zeros(N_EV, dtype=np.int64)

    def arrays(self):
        return self.px, self.qty, self.cnt, self.ts, self.status, self.counters

    def apply(self, records: np.ndarray) -> int:
        """Apply 64-byte records (any record dtype); returns how many were seen."""
        recs = records.reshape(-1)
        levels = schema.view(recs, schema.Kind.BOOK_LEVEL)
        tops = schema.view(recs, schema.Kind.TOP_OF_BOOK)
        return apply_batch_nb(levels, tops, *self.arrays())

    def levels(self, venue: int, instrument: int, side: int) -> list[tuple[float, float]]:
        n = int(self.cnt[venue, instrument, side])
        return [
            (float(self.px[venue, instrument, side, k]), float(self.qty[venue, instrument, side, k]))
            for k in range(n)
        ]

    def usable(self, venue: int, instrument: int, now_ns: int, max_age_ns: int) -> bool:
        """usable_nb read from Python: the same test without a compiled call, whose three array
        arguments cost ~3 µs to pass (the engine asks it of each leg of every entry). The age
        wraps at 64 bits as the kernel's int64 subtraction does; tests/test_accept_path.py holds
        the two equal."""
        age = now_ns - int(self.ts[venue, instrument])
        if not -_I64 <= age < _I64:
            age = (age + _I64) % (2 * _I64) - _I64
        return bool(
            self.status[venue, instrument] == 0
            and age <= max_age_ns
            and self.cnt[venue, instrument, 0] > 0
            and self.cnt[venue, instrument, 1] > 0
        )
