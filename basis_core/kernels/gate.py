"""One decision per signal: freshness -> eligibility gate -> sizing -> risk -> order records.

State is a handful of preallocated arrays (`DecisionState`), columns named below. A SIGNAL's buy
leg is (venue, instrument), its sell leg (sell_venue, sell_instrument), aux = strategy id.
Checks, in order, each with its RejectReason:

    BAD_INPUT         unknown ids, same market on both legs, NaN edge/qty hint, created in the future
    STALE             now - created_ns > ttl_us
    RISK_STATE        engine risk state >= PROTECTIVE, or either instrument at LEVEL_HALT
    VENUE_UNHEALTHY   either venue's health >= SUSPECT
    TRANSFER_PENDING  the strategy waits on a pending transfer
    BOOK_UNUSABLE     either book flagged (snapshot, crossed, bad input), stale, or one-sided
    EDGE_GONE         top-of-book edge after taker fees < min edge
    CAPITAL           the strategy's free budget is below the buy leg's min notional
    then sizing (sizing.size_two_leg_nb) with bounds = best * (1 +- band * bound scale of the
    risk level), quantity capped by sell-venue base inventory * size scale and the signal's qty
    hint, notional capped by per-order notional, venue and global exposure headroom.

On success two ORDER_NEW records are written: leg 0 buys (the primary), leg 1 sells and
depends on leg 0's coid; coid = make_coid(opportunity id, leg). The decision then books the
buy notional against the strategy budget and both venues' and the global exposure, and locks
the buy cost incl. fee (quote) and the quantity (base) out of the free balances.
counters[reason] += 1 for every decision (counters[NONE] counts accepted ones).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import schema
from ..schema import RejectReason as R
from .book import usable_nb
from .risk import LEVEL_HALT
from .sizing import N_OUT, O_BUY_LIMIT, O_NOTIONAL, O_QTY, O_SELL_LIMIT, lot_units, size_two_leg_nb

# venue_f columns
VF_FEE_BPS, VF_SLIP_BPS, VF_EXPOSURE, VF_EXPOSURE_LIMIT = 0, 1, 2, 3
N_VF = 4
# venue health (venue_h), the VenueState order of the engine
HEALTH_UP, HEALTH_THROTTLED, HEALTH_SUSPECT, HEALTH_QUARANTINED, HEALTH_DOWN = 0, 1, 2, 3, 4
# inst_f / inst_i columns
IF_TICK, IF_MIN_NOTIONAL = 0, 1
N_IF = 2
II_LOT_UNITS, II_BASE, II_QUOTE, II_RISK_LEVEL = 0, 1, 2, 3
N_II = 4
# strat columns
SF_BUDGET, SF_USED, SF_BLOCKED = 0, 1, 2
N_SF = 3
# policy columns
(
    P_MIN_EDGE_BPS,
    P_MAX_BOOK_AGE_NS,
    P_MAX_ORDER_NOTIONAL,
    P_BAND_BPS,
    P_EXPOSURE,
    P_EXPOSURE_LIMIT,
    P_RISK_STATE,
) = range(7)
P_BOUND_SCALE = 7  # 4 entries, one per risk level
P_SIZE_SCALE = 11  # 4 entries, one per risk level
N_P = 15
# engine risk state values (policy[P_RISK_STATE])
RISK_NORMAL, RISK_DEGRADED, RISK_PROTECTIVE, RISK_UNWINDING, RISK_RECONCILING, RISK_HALTED = range(6)
# seqs
S_NEXT_OPP, S_NEXT_SEQ = 0, 1

N_REASONS = max(int(r) for r in R) + 1
_BAD_INPUT = int(R.BAD_INPUT)
_BOOK_UNUSABLE = int(R.BOOK_UNUSABLE)
_CAPITAL = int(R.CAPITAL)
_EDGE_GONE = int(R.EDGE_GONE)
_EXPOSURE_LIMIT = int(R.EXPOSURE_LIMIT)
_RISK_STATE = int(R.RISK_STATE)
_STALE = int(R.STALE)
_TRANSFER_PENDING = int(R.TRANSFER_PENDING)
_VENUE_UNHEALTHY = int(R.VENUE_UNHEALTHY)
_ORDER_NEW = int(schema.Kind.ORDER_NEW)
_IOC = int(schema.OrderType.IOC)
_LEG_BITS = schema.LEG_BITS


@njit(cache=True, inline="always")
def gate_nb(
    vb,
    ib,
    vs,
    is_,
    strat,
    created_ns,
    ttl_us,
    edge_bps,
    qty_hint,
    now_ns,
    cnt,
    ts,
    status,
    venue_h,
    inst_i,
    strat_f,
    policy,
):
    """Freshness and eligibility checks; RejectReason code, 0 = eligible."""
    nv, ni = cnt.shape[0], cnt.shape[1]
    if (
        vb <= 0
        or vb >= nv
        or vs <= 0
        or vs >= nv
        or ib <= 0
        or ib >= ni
        or is_ <= 0
        or is_ >= ni
        or strat < 0
        or strat >= strat_f.shape[0]
        or (vb == vs and ib == is_)
        or edge_bps != edge_bps
        or not (qty_hint >= 0.0)
        or created_ns > now_ns
    ):
        return _BAD_INPUT
    if now_ns - created_ns > np.int64(ttl_us) * 1000:
        return _STALE
    if (
        policy[P_RISK_STATE] >= RISK_PROTECTIVE
        or inst_i[ib, II_RISK_LEVEL] >= LEVEL_HALT
        or inst_i[is_, II_RISK_LEVEL] >= LEVEL_HALT
    ):
        return _RISK_STATE
    if venue_h[vb] >= HEALTH_SUSPECT or venue_h[vs] >= HEALTH_SUSPECT:
        return _VENUE_UNHEALTHY
    if strat_f[strat, SF_BLOCKED] != 0.0:
        return _TRANSFER_PENDING
    max_age = np.int64(policy[P_MAX_BOOK_AGE_NS])
    if not (
        usable_nb(cnt, ts, status, vb, ib, now_ns, max_age)
        and usable_nb(cnt, ts, status, vs, is_, now_ns, max_age)
    ):
        return _BOOK_UNUSABLE
    return 0


@njit(cache=True)
def decide_nb(
    vb,
    ib,
    vs,
    is_,
    strat,
    created_ns,
    ttl_us,
    edge_bps,
    qty_hint,
    now_ns,
    source,
    px,
    qty,
    cnt,
    ts,
    status,
    venue_f,
    venue_h,
    inst_f,
    inst_i,
    balance,
    strat_f,
    policy,
    seqs,
    counters,
    work,
    out,
    out_pos,
):
    """Decide one signal; writes 0 or 2 ORDER_NEW records at out[out_pos]; returns the reason."""
    r = gate_nb(
        vb,
        ib,
        vs,
        is_,
        strat,
        created_ns,
        ttl_us,
        edge_bps,
        qty_hint,
        now_ns,
        cnt,
        ts,
        status,
        venue_h,
        inst_i,
        strat_f,
        policy,
    )
    if r == 0:
        r = _size_and_emit(
            vb,
            ib,
            vs,
            is_,
            strat,
            qty_hint,
            now_ns,
            source,
            px,
            qty,
            cnt,
            venue_f,
            inst_f,
            inst_i,
            balance,
            strat_f,
            policy,
            seqs,
            work,
            out,
            out_pos,
        )
    counters[r] += 1
    return r


@njit(cache=True, inline="always")
def _size_and_emit(
    vb,
    ib,
    vs,
    is_,
    strat,
    qty_hint,
    now_ns,
    source,
    px,
    qty,
    cnt,
    venue_f,
    inst_f,
    inst_i,
    balance,
    strat_f,
    policy,
    seqs,
    work,
    out,
    out_pos,
):
    fee_b = venue_f[vb, VF_FEE_BPS]
    fee_s = venue_f[vs, VF_FEE_BPS]
    ask = px[vb, ib, 1, 0]
    bid = px[vs, is_, 0, 0]
    min_edge = policy[P_MIN_EDGE_BPS]
    if not ((bid * (1.0 - fee_s * 1e-4) - ask * (1.0 + fee_b * 1e-4)) / ask * 1e4 >= min_edge):
        return _EDGE_GONE
    capital_free = strat_f[strat, SF_BUDGET] - strat_f[strat, SF_USED]
    if not capital_free >= inst_f[ib, IF_MIN_NOTIONAL]:
        return _CAPITAL
    lvl_b = inst_i[ib, II_RISK_LEVEL]
    lvl_s = inst_i[is_, II_RISK_LEVEL]
    lvl = lvl_b if lvl_b > lvl_s else lvl_s
    band = policy[P_BAND_BPS] * policy[P_BOUND_SCALE + lvl] * 1e-4
    base_avail = balance[vs, inst_i[is_, II_BASE]] * policy[P_SIZE_SCALE + lvl]
    if qty_hint > 0.0 and qty_hint < base_avail:
        base_avail = qty_hint
    cap = policy[P_MAX_ORDER_NOTIONAL]
    for head in (
        venue_f[vb, VF_EXPOSURE_LIMIT] - venue_f[vb, VF_EXPOSURE],
        venue_f[vs, VF_EXPOSURE_LIMIT] - venue_f[vs, VF_EXPOSURE],
        policy[P_EXPOSURE_LIMIT] - policy[P_EXPOSURE],
    ):
        if head < cap:
            cap = head
    if cap < 0.0:
        return _EXPOSURE_LIMIT
    r = size_two_leg_nb(
        px,
        qty,
        cnt,
        vb,
        ib,
        vs,
        is_,
        inst_i[ib, II_LOT_UNITS],
        inst_i[is_, II_LOT_UNITS],
        inst_f[ib, IF_TICK],
        inst_f[is_, IF_TICK],
        inst_f[ib, IF_MIN_NOTIONAL],
        inst_f[is_, IF_MIN_NOTIONAL],
        fee_b,
        fee_s,
        venue_f[vb, VF_SLIP_BPS],
        venue_f[vs, VF_SLIP_BPS],
        ask * (1.0 + band),
        bid * (1.0 - band),
        min_edge,
        base_avail,
        balance[vb, inst_i[ib, II_QUOTE]],
        capital_free,
        cap,
        work,
    )
    if r != 0:
        return r
    if out_pos + 2 > out.shape[0]:
        return _BAD_INPUT  # no room for the orders (a caller bug): nothing is booked
    opp = seqs[S_NEXT_OPP]
    seqs[S_NEXT_OPP] = opp + 1
    q = work[O_QTY]
    primary = (opp << _LEG_BITS) | 0
    for leg in range(2):
        o = out[out_pos + leg]
        o.seq = seqs[S_NEXT_SEQ]
        seqs[S_NEXT_SEQ] += 1
        o.ts_ns = now_ns
        o.kind = _ORDER_NEW
        o.source = source
        o.venue = vb if leg == 0 else vs
        o.sub = leg  # Side: BUY = 0, SELL = 1
        o.instrument = ib if leg == 0 else is_
        o.aux = _IOC
        o.coid = (opp << _LEG_BITS) | leg
        o.price = work[O_BUY_LIMIT] if leg == 0 else work[O_SELL_LIMIT]
        o.qty = q
        o.depends_on = 0 if leg == 0 else primary
        o.max_slip_bps = venue_f[vb, VF_SLIP_BPS] if leg == 0 else venue_f[vs, VF_SLIP_BPS]
        o.check = 0
    notional = work[O_NOTIONAL]
    strat_f[strat, SF_USED] += notional
    venue_f[vb, VF_EXPOSURE] += notional
    venue_f[vs, VF_EXPOSURE] += notional
    policy[P_EXPOSURE] += notional
    balance[vb, inst_i[ib, II_QUOTE]] -= notional * (1.0 + fee_b * 1e-4)
    balance[vs, inst_i[is_, II_BASE]] -= q
    return 0


@njit(cache=True)
def decide_batch_nb(
    signals,
    now_ns,
    source,
    px,
    qty,
    cnt,
    ts,
    status,
    venue_f,
    venue_h,
    inst_f,
    inst_i,
    balance,
    strat_f,
    policy,
    seqs,
    counters,
    work,
    out,
):
    """Decide every SIGNAL record in a batch (other kinds are skipped); returns orders written."""
    pos = 0
    for k in range(signals.shape[0]):
        s = signals[k]
        if s.kind != 4:
            continue
        r = decide_nb(
            np.int64(s.venue),
            np.int64(s.instrument),
            np.int64(s.sell_venue),
            np.int64(s.sell_instrument),
            np.int64(s.aux),
            s.created_ns,
            np.int64(s.ttl_us),
            s.edge_bps,
            s.qty_hint,
            now_ns,
            source,
            px,
            qty,
            cnt,
            ts,
            status,
            venue_f,
            venue_h,
            inst_f,
            inst_i,
            balance,
            strat_f,
            policy,
            seqs,
            counters,
            work,
            out,
            pos,
        )
        if r == 0:
            pos += 2
    return pos


class DecisionState:
    """The preallocated arrays a decision reads and books into (ids index rows; 0 = none)."""

    def __init__(self, n_venues: int, n_instruments: int, n_assets: int, n_strategies: int = 1):
        self.venue_f = np.zeros((n_venues + 1, N_VF))
        self.venue_h = np.full(n_venues + 1, HEALTH_DOWN, dtype=np.int64)
        self.inst_f = np.zeros((n_instruments + 1, N_IF))
        self.inst_i = np.zeros((n_instruments + 1, N_II), dtype=np.int64)
        self.balance = np.zeros((n_venues + 1, n_assets + 1))
        self.strat_f = np.zeros((n_strategies, N_SF))
        self.policy = np.zeros(N_P)
        self.policy[P_BOUND_SCALE : P_BOUND_SCALE + 4] = 1.0
        self.policy[P_SIZE_SCALE : P_SIZE_SCALE + 4] = 1.0
        self.policy[P_SIZE_SCALE + LEVEL_HALT] = 0.0
        self.policy[P_MAX_BOOK_AGE_NS] = 1e9
        self.seqs = np.array([1, 1], dtype=np.int64)
        self.counters = np.zeros(N_REASONS, dtype=np.int64)
        self.work = np.zeros(N_OUT)

    def set_venue(
        self, venue: int, *, fee_bps: float, slip_bps: float, exposure_limit: float, health: int = HEALTH_UP
    ) -> None:
        _finite("fee_bps", fee_bps, 0.0, 1000.0)
        _finite("slip_bps", slip_bps, 0.0, 10_000.0)
        _finite("exposure_limit", exposure_limit, 0.0)
        self.venue_f[venue] = (fee_bps, slip_bps, 0.0, exposure_limit)
        self.venue_h[venue] = health

    def set_instrument(
        self, instrument: int, *, tick: float, lot: float, min_notional: float, base: int, quote: int
    ) -> None:
        _finite("tick", tick, 0.0)
        _finite("min_notional", min_notional, 0.0)
        if tick <= 0:
            raise ValueError(f"tick must be > 0, got {tick}")
        self.inst_f[instrument] = (tick, min_notional)
        self.inst_i[instrument] = (lot_units(lot), base, quote, 0)

    def set_strategy(self, strategy: int, *, budget: float, blocked: bool = False) -> None:
        _finite("budget", budget, 0.0)
        self.strat_f[strategy] = (budget, 0.0, 1.0 if blocked else 0.0)

    def set_policy(
        self,
        *,
        min_edge_bps: float,
        max_book_age_ns: int,
        max_order_notional: float,
        band_bps: float,
        exposure_limit: float,
        risk_state: int = RISK_NORMAL,
        bound_scale: tuple[float, ...] = (1.0, 0.5, 0.5, 0.0),
        size_scale: tuple[float, ...] = (1.0, 1.0, 0.5, 0.0),
    ) -> None:
        _finite("min_edge_bps", min_edge_bps)
        _finite("max_order_notional", max_order_notional, 0.0)
        _finite("band_bps", band_bps, 0.0, 10_000.0)
        _finite("exposure_limit", exposure_limit, 0.0)
        if len(bound_scale) != 4 or len(size_scale) != 4:
            raise ValueError("bound_scale and size_scale need one entry per risk level (4)")
        for x in (*bound_scale, *size_scale):
            _finite("scale", x, 0.0, 1.0)
        self.policy[:P_BOUND_SCALE] = (
            min_edge_bps,
            max_book_age_ns,
            max_order_notional,
            band_bps,
            0.0,
            exposure_limit,
            risk_state,
        )
        self.policy[P_BOUND_SCALE : P_BOUND_SCALE + 4] = bound_scale
        self.policy[P_SIZE_SCALE : P_SIZE_SCALE + 4] = size_scale

    def arrays(self):
        """venue_f, venue_h, inst_f, inst_i, balance, strat_f, policy, seqs, counters, work."""
        return (
            self.venue_f,
            self.venue_h,
            self.inst_f,
            self.inst_i,
            self.balance,
            self.strat_f,
            self.policy,
            self.seqs,
            self.counters,
            self.work,
        )

    def reasons(self) -> dict[str, int]:
        """Counts per RejectReason name (NONE = accepted), zeros left out."""
        return {R(k).name: int(c) for k, c in enumerate(self.counters) if c}


def _finite(name: str, x: float, lo: float | None = None, hi: float | None = None) -> None:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {x!r}")
