"""The compiled engine hot loop: md ring → book → spread check → sizing → ORDER_NEW into the order ring.

    md ring (consumer end)                                         order ring (producer end)
    ┌──────────┐  claim ≤ B  ┌────────────┐ touched ┌──────────┐ pass ┌────────┐ sized ┌──────────┐
    │ BOOK_LEVEL│ ──────────▶ │ book apply │ ──────▶ │ spread   │ ───▶ │ sizing │ ────▶ │ 2 × ORDER│
    │ TOP_OF_BK │             │ (kernels.  │  books  │ check    │      │ kernel │       │ _NEW     │
    └──────────┘  release     │  book)     │         └──────────┘      └────────┘       └──────────┘
                                                  all inside one compiled call per batch

`run_batch` is that one compiled function: Python only loops calling it (`HotLoop.step`). It
reads the md records in place in the ring slots (no copy), applies each with
`kernels.book.apply_record_nb`, and, for a record that touched one of the two
strategy venues, runs the decision of `hotloop.params` on that venue pair. Each sized
opportunity claims two order slots, writes both legs and publishes them with one release store;
right after, CLOCK_MONOTONIC is read (`rings.atomics.monotonic_ns`) and `now - ts_ns` of the
triggering md record is kept as a tick-to-order latency sample.

Orders are never dropped: before a record is applied the loop makes sure two order slots are
free (spinning up to `max_spins` polls); if the consumer does not free them, the batch stops
there, the unapplied records stay in the md ring, and `state[S_BLOCKED]` is set, so the next
call resumes exactly where this one stopped.

ORDER_NEW fields: seq = 1-based order count of this loop, ts_ns = the triggering md record's
ts_ns (the ingest time travels with the decision), source = params.source, venue/instrument of
the leg, sub = Side, aux = OrderType.IOC | Purpose << 8, coid = make_coid(opp, leg), price =
the leg's limit (tick-rounded bound), qty = the sized common quantity, depends_on = leg 0's coid
on leg 1, max_slip_bps = the venue's slippage cap, check = 0 (unsealed).
"""

from __future__ import annotations

import time
import types as pytypes

import numba
import numpy as np
from numba import types
from numba.core import cgutils

from .. import schema
from ..errors import RingError
from ..kernels import book as kbook
from ..kernels import sizing
from ..rings import CONSUMER, PRODUCER, Ring, pid_alive
from ..rings.atomics import compiled_intrinsic, monotonic_ns
from ..rings.kernels import load_word, read_claim, read_release, write_claim, write_publish
from ..rings.layout import OWN, W_CONSUMER_PID
from ..rings.wait import idle_poll
from .params import (
    F_BASE_AVAIL,
    F_BOUND_BPS,
    F_CAPITAL_FREE,
    F_FEE_A,
    F_FEE_B,
    F_MIN_EDGE_BPS,
    F_MIN_NOTIONAL_A,
    F_MIN_NOTIONAL_B,
    F_NOTIONAL_CAP,
    F_QUOTE_AVAIL,
    F_SLIP_A,
    F_SLIP_B,
    F_TICK_A,
    F_TICK_B,
    F_TRIGGER_BPS,
    I_INSTRUMENT,
    I_LOT_A,
    I_LOT_B,
    I_MAX_AGE_NS,
    I_SOURCE,
    I_VENUE_A,
    I_VENUE_B,
    HotParams,
)

# state vector (int64)
S_NEXT_OPP = 0  # next opportunity id
S_ORDERS = 1  # ORDER_NEW records published
S_DECISIONS = 2  # spread checks that passed (sizing ran)
S_SIZED = 3  # opportunities sized and sent (2 orders each)
S_MD = 4  # md records consumed
S_LAT_N = 5  # latency samples taken (the array keeps the last len(lat))
S_BLOCKED = 6  # 1 when the last call stopped because the order ring stayed full
N_S = 8
N_REASONS = 32

_ORDER_NEW = int(schema.Kind.ORDER_NEW)
_LEG_BITS = schema.LEG_BITS
_BUY = int(schema.Side.BUY)
_SELL = int(schema.Side.SELL)
_AUX_ENTRY = int(schema.OrderType.IOC) | int(schema.Purpose.ENTRY) << 8
_AUX_HEDGE = int(schema.OrderType.IOC) | int(schema.Purpose.HEDGE) << 8


@compiled_intrinsic
def unmanaged(typingctx, arr):
    """The same array (data, shape, strides) without its memory-manager handle: numba then
    skips the atomic reference-count update it makes on every binding or call that passes an
    array (~7 ns each here, tens per event). Only for arrays that outlive the compiled call
    using the view: `run_batch` applies it to its own arguments and never returns the views."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()

    return arr(arr), codegen


def _inlined(kernel, module, helpers=()):
    """`kernel`'s own Python source compiled again with inline="always", and the `helpers` it
    calls from `module` likewise: the same code merged into the caller's body, so the
    per-event path makes no compiled call (with `unmanaged` arrays, the book update then costs
    ~10 ns per record instead of ~100)."""
    glb = dict(vars(module))

    def again(kernel):
        f = kernel.py_func
        return numba.njit(inline="always", nogil=True)(
            pytypes.FunctionType(f.__code__, glb, f.__name__, f.__defaults__, f.__closure__)
        )

    for name in helpers:  # helpers that call helpers find the recompiled ones in glb too
        glb[name] = again(getattr(module, name))
    return again(kernel)


# (the scalar input checks of kernels.finite, inline="always" already, stay as they are)
_HELPERS = ("_check_cross", "set_level_nb", "apply_level_nb", "apply_top_nb")
_apply_record = _inlined(kbook.apply_record_nb, kbook, _HELPERS)
_usable = _inlined(kbook.usable_nb, kbook)


@numba.njit(cache=True, nogil=True, inline="always")
def _write_order(recs, r, seq, ts_ns, source, venue, inst, side, aux, coid, price, q, depends, slip):
    o = recs[r]
    o.seq = np.uint64(seq)
    o.ts_ns = np.int64(ts_ns)
    o.kind = np.uint8(_ORDER_NEW)
    o.source = np.uint8(source)
    o.venue = np.uint8(venue)
    o.sub = np.uint8(side)
    o.instrument = np.uint16(inst)
    o.aux = np.uint16(aux)
    o.coid = np.uint64(coid)
    o.price = price
    o.qty = q
    o.depends_on = np.uint64(depends)
    o.max_slip_bps = np.float32(slip)
    o.check = np.uint32(0)


@numba.njit(cache=True, nogil=True, inline="always")
def decide_nb(px, qty, cnt, ts, status, ip, fp, vb, vs, now_ns, out):
    """Spread check and sizing for buying on venue `vb`, selling on `vs` (the strategy's
    instrument). Returns -1 when the books are not usable or the spread is below the trigger
    (no decision), else the sizing RejectReason (0 = sized into `out`)."""
    inst = ip[I_INSTRUMENT]
    age = ip[I_MAX_AGE_NS]
    if not (
        _usable(cnt, ts, status, vb, inst, now_ns, age) and _usable(cnt, ts, status, vs, inst, now_ns, age)
    ):
        return -1
    ask = px[vb, inst, 1, 0]
    bid = px[vs, inst, 0, 0]
    if not (bid - ask) / ask * 1e4 >= fp[F_TRIGGER_BPS]:
        return -1
    b_is_a = vb == ip[I_VENUE_A]
    lot_b, lot_s = (ip[I_LOT_A], ip[I_LOT_B]) if b_is_a else (ip[I_LOT_B], ip[I_LOT_A])
    tick_b, tick_s = (fp[F_TICK_A], fp[F_TICK_B]) if b_is_a else (fp[F_TICK_B], fp[F_TICK_A])
    mn_b, mn_s = (
        (fp[F_MIN_NOTIONAL_A], fp[F_MIN_NOTIONAL_B])
        if b_is_a
        else (fp[F_MIN_NOTIONAL_B], fp[F_MIN_NOTIONAL_A])
    )
    fee_b, fee_s = (fp[F_FEE_A], fp[F_FEE_B]) if b_is_a else (fp[F_FEE_B], fp[F_FEE_A])
    slip_b, slip_s = (fp[F_SLIP_A], fp[F_SLIP_B]) if b_is_a else (fp[F_SLIP_B], fp[F_SLIP_A])
    buy_bound = ask * (1.0 + fp[F_BOUND_BPS] * 1e-4)
    sell_bound = bid * (1.0 - fp[F_BOUND_BPS] * 1e-4)
    return sizing.size_two_leg_nb(
        px,
        qty,
        cnt,
        vb,
        inst,
        vs,
        inst,
        lot_b,
        lot_s,
        tick_b,
        tick_s,
        mn_b,
        mn_s,
        fee_b,
        fee_s,
        slip_b,
        slip_s,
        buy_bound,
        sell_bound,
        fp[F_MIN_EDGE_BPS],
        fp[F_BASE_AVAIL],
        fp[F_QUOTE_AVAIL],
        fp[F_CAPITAL_FREE],
        fp[F_NOTIONAL_CAP],
        out,
    )


@numba.njit(cache=True, nogil=True)
def run_batch(
    md_header,
    md_slots,
    md_local,
    md_levels,
    md_tops,
    od_header,
    od_slots,
    od_local,
    od_recs,
    px,
    qty,
    cnt,
    ts,
    status,
    counters,
    ip,
    fp,
    state,
    rejects,
    lat,
    out,
    max_batch,
    max_spins,
):
    """Consume up to `max_batch` md records and act on each, claiming whatever is ready and
    waiting for more while fewer than `max_spins` consecutive polls found nothing (PAUSE, then
    sched_yield: `idle_poll`): the whole wait-and-decide loop stays compiled.
    Returns how many were consumed (0 = none arrived, or the order ring stayed full: see
    state[S_BLOCKED]; a blocked call stops early). `md_levels` / `md_tops` are BOOK_LEVEL /
    TOP_OF_BOOK views of the md ring's slot memory, `od_recs` an ORDER_NEW view of the order
    ring's."""
    md_header, md_slots, md_local = unmanaged(md_header), unmanaged(md_slots), unmanaged(md_local)
    md_levels, md_tops = unmanaged(md_levels), unmanaged(md_tops)
    od_header, od_slots = unmanaged(od_header), unmanaged(od_slots)
    od_local, od_recs = unmanaged(od_local), unmanaged(od_recs)
    px, qty, cnt, ts = unmanaged(px), unmanaged(qty), unmanaged(cnt), unmanaged(ts)
    status, counters = unmanaged(status), unmanaged(counters)
    ip, fp, state, rejects = unmanaged(ip), unmanaged(fp), unmanaged(state), unmanaged(rejects)
    lat, out = unmanaged(lat), unmanaged(out)
    state[S_BLOCKED] = 0
    md_mask = md_slots.shape[0] - 1
    od_mask = od_slots.shape[0] - 1
    va, vb_, inst = ip[I_VENUE_A], ip[I_VENUE_B], ip[I_INSTRUMENT]
    source = ip[I_SOURCE]
    total = 0
    spins = 0
    while total < max_batch:
        k = read_claim(md_header, md_slots, md_local, max_batch - total)
        if k == 0:
            if spins >= max_spins:
                break
            spins += 1
            idle_poll(spins)
            continue
        spins = 0
        tail = md_local[OWN]
        done = 0
        for j in range(k):
            if write_claim(od_header, od_slots, od_local, 2) < 2:
                room = 0
                for w in range(max_spins):
                    room = write_claim(od_header, od_slots, od_local, 2)
                    if room >= 2:
                        break
                    idle_poll(w)
                if room < 2:
                    state[S_BLOCKED] = 1
                    break
            s = (tail + j) & md_mask
            t_ns = md_levels[s].ts_ns
            ev = _apply_record(md_levels, md_tops, s, px, qty, cnt, ts, status, counters)
            done += 1
            if ev < 0:
                counters[kbook.EV_IGNORED] += 1
                continue
            v, i = np.int64(md_levels[s].venue), np.int64(md_levels[s].instrument)
            if i != inst or (v != va and v != vb_):
                continue
            other = vb_ if v == va else va
            # the touched venue as buyer, then as seller: at most one direction can pass
            buy_v, sell_v = v, other
            r = decide_nb(px, qty, cnt, ts, status, ip, fp, buy_v, sell_v, t_ns, out)
            if r == -1:
                buy_v, sell_v = other, v
                r = decide_nb(px, qty, cnt, ts, status, ip, fp, buy_v, sell_v, t_ns, out)
            if r == -1:
                continue
            state[S_DECISIONS] += 1
            if r != 0:
                rejects[r] += 1
                continue
            opp = state[S_NEXT_OPP]
            state[S_NEXT_OPP] = opp + 1
            c0 = (opp << _LEG_BITS) | 0
            c1 = (opp << _LEG_BITS) | 1
            q = out[sizing.O_QTY]
            head = od_local[OWN]
            nord = state[S_ORDERS]
            b_is_a = buy_v == va
            _write_order(
                od_recs,
                head & od_mask,
                nord + 1,
                t_ns,
                source,
                buy_v,
                inst,
                _BUY,
                _AUX_ENTRY,
                c0,
                out[sizing.O_BUY_LIMIT],
                q,
                0,
                fp[F_SLIP_A] if b_is_a else fp[F_SLIP_B],
            )
            _write_order(
                od_recs,
                (head + 1) & od_mask,
                nord + 2,
                t_ns,
                source,
                sell_v,
                inst,
                _SELL,
                _AUX_HEDGE,
                c1,
                out[sizing.O_SELL_LIMIT],
                q,
                c0,
                fp[F_SLIP_B] if b_is_a else fp[F_SLIP_A],
            )
            write_publish(od_header, od_local, 2)
            now = monotonic_ns()
            state[S_ORDERS] = nord + 2
            state[S_SIZED] += 1
            n = state[S_LAT_N]
            lat[n % lat.shape[0]] = now - t_ns
            state[S_LAT_N] = n + 1
        read_release(md_header, md_local, done)
        state[S_MD] += done
        total += done
        if state[S_BLOCKED]:
            break
    return total


class HotLoop:
    """Owns the books and counters of one compiled hot loop between an md ring (this process is
    its consumer) and an order ring (this process is its producer). Call `step()` in a loop, or
    `drain()` to run until the md producer has closed and everything was consumed. `release()`
    before closing the rings (the loop holds views of their slot memory)."""

    def __init__(
        self, params: HotParams, md: Ring, orders: Ring, latency_samples: int = 1 << 16, opp_base: int = 1
    ):
        if md.role != CONSUMER or orders.role != PRODUCER:
            raise RingError(
                "HotLoop needs the consumer end of the md ring and the producer end of the order ring"
            )
        if orders.capacity < 2:
            raise RingError("the order ring needs at least 2 slots (one opportunity = 2 orders)")
        if not 0 < opp_base < (1 << 59):
            raise RingError(f"opp_base {opp_base} out of range")
        self.params = params
        self.md, self.orders = md, orders
        self.book = kbook.BookState(params.n_venues, params.n_instruments, params.depth)
        self.ip, self.fp = params.arrays()
        self.state = np.zeros(N_S, np.int64)
        self.state[S_NEXT_OPP] = opp_base
        self.rejects = np.zeros(N_REASONS, np.int64)
        self.lat = np.zeros(max(1, latency_samples), np.int64)
        self.out = np.zeros(sizing.N_OUT, np.float64)
        flat = md.slots.reshape(-1)
        self._levels = flat.view(schema.BOOK_LEVEL)
        self._tops = flat.view(schema.TOP_OF_BOOK)
        self._orders = orders.slots.reshape(-1).view(schema.ORDER_NEW)
        self._released = False

    def step(self, max_batch: int = 256, max_spins: int = 0) -> int:
        """One compiled call: consume up to `max_batch` md records; returns how many."""
        if self._released:
            raise RingError("HotLoop was released")
        return int(
            # mypy cannot match an argument after *args (numba's typed call)
            run_batch(  # type: ignore[call-arg]
                self.md.header,
                self.md.slots,
                self.md.local,
                self._levels,
                self._tops,
                self.orders.header,
                self.orders.slots,
                self.orders.local,
                self._orders,
                *self.book.arrays(),
                self.ip,
                self.fp,
                self.state,
                self.rejects,
                self.lat,
                self.out,
                max_batch,
                max_spins,
            )
        )

    def drain(self, max_batch: int = 256, max_spins: int = 100_000, timeout_s: float | None = None) -> int:
        """Run until the md producer closed its end and every record was consumed; returns the
        records consumed by this call. Raises ProducerDead when the md producer died, RingError
        when the order consumer is gone while the order ring is full or `timeout_s` passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        total = 0
        while True:
            k = self.step(max_batch, max_spins)
            total += k
            if k:
                continue
            if self.state[S_BLOCKED]:
                cpid = int(load_word(self.orders.header, W_CONSUMER_PID))
                if cpid and not pid_alive(cpid):
                    raise RingError(
                        f"order ring {self.orders.name!r}: consumer pid {cpid} is gone and the ring is full"
                    )
            elif self.md.producer_closed:
                k = self.step(max_batch, 0)
                total += k
                if k == 0 and not self.state[S_BLOCKED]:
                    return total
                continue
            else:
                self.md.check_producer()
            if deadline is not None and time.monotonic() >= deadline:
                raise RingError(f"hot loop: no progress before the {timeout_s} s timeout")

    def stats(self) -> dict[str, int | dict[str, int]]:
        s = self.state
        return {
            "md": int(s[S_MD]),
            "decisions": int(s[S_DECISIONS]),
            "sized": int(s[S_SIZED]),
            "orders": int(s[S_ORDERS]),
            "next_opp": int(s[S_NEXT_OPP]),
            "rejects": {schema.RejectReason(r).name: int(n) for r, n in enumerate(self.rejects) if n},
        }

    def latencies_ns(self) -> np.ndarray:
        """The tick-to-order latency samples kept (the last len(lat) of them), in ns."""
        n = int(self.state[S_LAT_N])
        return self.lat[:n].copy() if n <= self.lat.shape[0] else self.lat.copy()

    def release(self) -> None:
        """Drop the views of the ring memory (required before the rings close); the loop cannot
        step any more. Idempotent."""
        self._released = True
        self._levels = np.empty(0, schema.BOOK_LEVEL)
        self._tops = np.empty(0, schema.TOP_OF_BOOK)
        self._orders = np.empty(0, schema.ORDER_NEW)
