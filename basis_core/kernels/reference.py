"""Plain-Python references for every kernel, and the COMPARISONS table.

Each reference states the kernel's math readably, on Python lists and numbers, following the
contract in the kernel module's docstring (same checks, same order of floating-point operations
where a float result is compared). COMPARISONS maps a kernel name to a pair of callables with
the same signature, `kernel(case)` and `reference(case)`, and the tolerance their results must
agree to; the parity tests (tests/test_kernels_parity.py) are driven from it, and
tests/test_kernels_decision.py calls two of its entries. perf/bench_kernels.py does not use the
table: it times `RefBook` and `decide` directly beside the compiled kernels.

A `case` is a dict built by the caller (the parity tests build them with hypothesis).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import schema
from ..schema import RejectReason as R
from . import amm, book, gate, risk, sizing, symmetry

# -- pool math ----------------------------------------------------------------------------


def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_num: int, fee_den: int) -> int:
    """getAmountOut, or -1 for inputs the contract would refuse."""
    if amount_in < 0 or reserve_in <= 0 or reserve_out <= 0 or not 0 < fee_num <= fee_den <= amm.FEE_DEN_MAX:
        return amm.AMM_BAD_INPUT
    with_fee = amount_in * fee_num
    return (with_fee * reserve_out) // (reserve_in * fee_den + with_fee)


# -- book ---------------------------------------------------------------------------------


class RefBook:
    """Books as sorted lists of (price, qty) per (venue, instrument), top `depth` kept."""

    def __init__(self, n_venues: int, n_instruments: int, depth: int):
        self.nv, self.ni, self.depth = n_venues + 1, n_instruments + 1, depth
        self.sides: dict[tuple[int, int], list[list[tuple[float, float]]]] = {}
        self.ts: dict[tuple[int, int], int] = {}
        self.status: dict[tuple[int, int], int] = {}
        self.counters = [0] * book.N_EV

    def _book(self, v, i):
        return self.sides.setdefault((v, i), [[], []])

    def _cross(self, v, i):
        st = self.status.get((v, i), book.NEED_SNAPSHOT)
        if st & (book.NEED_SNAPSHOT | book.SNAP_BID | book.SNAP_ASK):
            return
        bids, asks = self._book(v, i)
        crossed = bool(bids) and bool(asks) and bids[0][0] >= asks[0][0]
        self.status[(v, i)] = (st | book.CROSSED) if crossed else (st & ~book.CROSSED)

    def _bad(self, v, i, mark: bool):
        self.counters[book.EV_BAD] += 1
        if mark:
            self.status[(v, i)] = self.status.get((v, i), book.NEED_SNAPSHOT) | book.BAD

    def level(self, v, i, side, action, price, qty, ts_ns):
        if not (0 < v < self.nv and 0 < i < self.ni):
            return self._bad(v, i, False)
        good = lambda p: math.isfinite(p) and p > 0
        if side > 1 or action > 2 or (action == 0 and not (good(price) and math.isfinite(qty) and qty >= 0)):
            return self._bad(v, i, True)
        self.ts[(v, i)] = ts_ns
        st = self.status.get((v, i), book.NEED_SNAPSHOT)
        levels = self._book(v, i)[side]
        if action == schema.BookAction.SNAPSHOT_BEGIN:
            levels.clear()
            self.status[(v, i)] = st | (book.SNAP_BID if side == 0 else book.SNAP_ASK)
        elif action == schema.BookAction.SNAPSHOT_END:
            self.status[(v, i)] = st & ~(book.NEED_SNAPSHOT | book.SNAP_BID | book.SNAP_ASK | book.BAD)
        else:
            prices = [p for p, _ in levels]
            if price in prices:
                k = prices.index(price)
                if qty == 0:
                    del levels[k]
                else:
                    levels[k] = (price, qty)
            elif qty > 0:
                better = (lambda p: p > price) if side == 0 else (lambda p: p < price)
                k = sum(1 for p in prices if better(p))
                if k >= self.depth:
                    self.counters[book.EV_BEYOND_DEPTH] += 1
                    self._cross(v, i)
                    return
                levels.insert(k, (price, qty))
                del levels[self.depth :]
        self._cross(v, i)
        self.counters[book.EV_APPLIED] += 1

    def top(self, v, i, bid_px, bid_q, ask_px, ask_q, ts_ns, age_us):
        if not (0 < v < self.nv and 0 < i < self.ni):
            return self._bad(v, i, False)
        okq = lambda q: math.isfinite(q) and q >= 0
        okp = lambda p: math.isfinite(p) and p > 0
        if (
            not (okq(bid_q) and okq(ask_q))
            or (bid_q > 0 and not okp(bid_px))
            or (ask_q > 0 and not okp(ask_px))
        ):
            return self._bad(v, i, True)
        self.sides[(v, i)] = [[(bid_px, bid_q)] if bid_q > 0 else [], [(ask_px, ask_q)] if ask_q > 0 else []]
        self.ts[(v, i)] = ts_ns - age_us * 1000 if age_us != 0xFFFFFFFF else ts_ns
        self.status[(v, i)] = 0
        self._cross(v, i)
        self.counters[book.EV_APPLIED] += 1

    def apply(self, records: np.ndarray) -> None:
        levels = schema.view(records, schema.Kind.BOOK_LEVEL)
        tops = schema.view(records, schema.Kind.TOP_OF_BOOK)
        for lv, tp in zip(levels, tops):
            if lv["kind"] == schema.Kind.BOOK_LEVEL:
                self.level(
                    int(lv["venue"]),
                    int(lv["instrument"]),
                    int(lv["sub"]),
                    int(lv["action"]),
                    float(lv["price"]),
                    float(lv["qty"]),
                    int(lv["ts_ns"]),
                )
            elif lv["kind"] == schema.Kind.TOP_OF_BOOK:
                self.top(
                    int(tp["venue"]),
                    int(tp["instrument"]),
                    float(tp["bid_px"]),
                    float(tp["bid_qty"]),
                    float(tp["ask_px"]),
                    float(tp["ask_qty"]),
                    int(tp["ts_ns"]),
                    int(tp["exch_age_us"]),
                )
            else:
                self.counters[book.EV_IGNORED] += 1


# -- sizing -------------------------------------------------------------------------------


def _walk(levels, q, limit, side):
    """Cost of q over (price, qty) levels inside limit, or None when the depth is short."""
    left, cost = q, 0.0
    for p, avail in levels:
        if (side == 1 and p > limit) or (side == 0 and p < limit):
            break
        take = avail if avail < left else left
        cost += take * p
        left -= take
        if left <= 0.0:
            return cost
    return None


def size_two_leg(
    asks,
    bids,
    lot_b,
    lot_s,
    tick_b,
    tick_s,
    min_not_b,
    min_not_s,
    fee_b,
    fee_s,
    slip_b,
    slip_s,
    buy_bound,
    sell_bound,
    min_edge_bps,
    base_avail,
    quote_avail,
    capital_free,
    notional_cap,
):
    """(reason, result) for buying on `asks` and selling on `bids`; result has qty, limits, vwaps."""
    fin = math.isfinite
    if not all(fin(x) and x > 0 for x in (tick_b, tick_s, buy_bound, sell_bound)):
        return int(R.BAD_INPUT), None
    if not all(
        fin(x) and x >= 0
        for x in (
            min_not_b,
            min_not_s,
            fee_b,
            fee_s,
            slip_b,
            slip_s,
            base_avail,
            quote_avail,
            capital_free,
            notional_cap,
        )
    ) or not fin(min_edge_bps):
        return int(R.BAD_INPUT), None
    if buy_bound / tick_b >= sizing.MAX_TICKS or sell_bound / tick_s >= sizing.MAX_TICKS:
        return int(R.BAD_INPUT), None
    if not asks or not bids:
        return int(R.BOOK_UNUSABLE), None
    if lot_b <= 0 or lot_s <= 0 or math.lcm(lot_b, lot_s) > (1 << 62):
        return int(R.LOT_SIZE), None
    lot = math.lcm(lot_b, lot_s)
    buy_limit = sizing.floor_to_tick(buy_bound, tick_b)
    sell_limit = sizing.ceil_to_tick(sell_bound, tick_s)
    best_ask, best_bid = asks[0][0], bids[0][0]
    if buy_limit < best_ask or sell_limit > best_bid:
        return int(R.SLIPPAGE), None

    def check(n):
        q = (n * lot) / sizing.QTY_SCALE
        cost, rev = _walk(asks, q, buy_limit, 1), _walk(bids, q, sell_limit, 0)
        if cost is None or rev is None:
            return int(R.SLIPPAGE), None
        vwap_b, vwap_s = cost / q, rev / q
        if (vwap_b / best_ask - 1.0) * 1e4 > slip_b or (1.0 - vwap_s / best_bid) * 1e4 > slip_s:
            return int(R.SLIPPAGE), None
        edge = (rev * (1.0 - fee_s * 1e-4) - cost * (1.0 + fee_b * 1e-4)) / cost * 1e4
        if not edge >= min_edge_bps:
            return int(R.EDGE_GONE), None
        if cost * (1.0 + fee_b * 1e-4) > quote_avail:
            return int(R.NO_INVENTORY), None
        if cost > capital_free:
            return int(R.CAPITAL), None
        if cost > notional_cap:
            return int(R.EXPOSURE_LIMIT), None
        return 0, dict(qty=q, buy_vwap=vwap_b, sell_vwap=vwap_s, edge_bps=edge, notional=cost)

    inside = lambda levels, side, lim: sum(a for p, a in _prefix_inside(levels, side, lim))
    depth = min(inside(asks, 1, buy_limit), inside(bids, 0, sell_limit))
    n_f = min(min(depth, base_avail) * sizing.QTY_SCALE / lot * (1.0 + 1e-12), 4e18)
    hi = math.floor(n_f)
    if hi < 1:
        return (int(R.NO_INVENTORY) if base_avail * sizing.QTY_SCALE < lot else int(R.SLIPPAGE)), None
    reason, _ = check(1)
    if reason:
        return reason, None
    lo = hi if check(hi)[0] == 0 else 1  # largest feasible n by bisection
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if check(mid)[0] == 0:
            lo = mid
        else:
            hi = mid
    _, res = check(lo)
    if res["notional"] < min_not_b or res["qty"] * res["sell_vwap"] < min_not_s:
        return int(R.MIN_NOTIONAL), None
    res.update(buy_limit=buy_limit, sell_limit=sell_limit, lots=lo)
    return 0, res


def _prefix_inside(levels, side, limit):
    for p, a in levels:
        if (side == 1 and p > limit) or (side == 0 and p < limit):
            return
        yield p, a


# -- symmetry and volatility --------------------------------------------------------------


def symmetry_one(
    target,
    fa,
    fb,
    mark,
    first_fill_ns,
    window_ns,
    now_ns,
    ratio_degrade,
    ratio_breach,
    resid_degrade,
    resid_breach,
):
    """(ratio_a, ratio_b, residual_usdt, elapsed_ns, signal) for one hedged pair."""
    fin = math.isfinite
    if not (
        fin(target)
        and target > 0
        and fin(fa)
        and fa >= 0
        and fin(fb)
        and fb >= 0
        and fin(mark)
        and mark > 0
        and window_ns >= 0
        and first_fill_ns >= 0
    ):
        return 0.0, 0.0, 0.0, 0, symmetry.SYM_BAD
    ra, rb = fa / target, fb / target
    imbalance, resid = abs(ra - rb), abs(fa - fb) * mark
    elapsed = now_ns - first_fill_ns if first_fill_ns > 0 else 0
    if imbalance > ratio_breach or resid > resid_breach or (imbalance > 0 and elapsed > window_ns):
        sig = symmetry.SYM_BREACH
    elif imbalance > ratio_degrade or resid > resid_degrade:
        sig = symmetry.SYM_DEGRADE
    else:
        sig = symmetry.SYM_OK
    return ra, rb, resid, elapsed, sig


def ewma(observations, n_instruments, tau_s, t1, t2, t3):
    """Fold [(instrument, mid, ts_ns)] into {instrument: (var, level)} and a bad count."""
    last: dict[int, tuple[float, int]] = {}
    var: dict[int, float] = {}
    level: dict[int, int] = {}
    bad = 0
    for i, m, t in observations:
        if not (0 < i <= n_instruments) or not (math.isfinite(m) and m > 0):
            bad += 1
            continue
        if i not in last:
            last[i] = (m, t)
            continue
        m0, t0 = last[i]
        if t <= t0:
            bad += 1
            continue
        dt = (t - t0) * 1e-9
        r = math.log(m / m0)
        alpha = 1.0 - math.exp(-dt / tau_s)
        v = var.get(i, 0.0)
        var[i] = v + alpha * (r * r / dt - v)
        last[i] = (m, t)
        vol = 1e4 * math.sqrt(var[i])
        level[i] = 3 if vol >= t3 else 2 if vol >= t2 else 1 if vol >= t1 else 0
    return var, level, bad


# -- the engine's market step -------------------------------------------------------------


class RefMarket:
    """scan.market_step_nb in plain Python: books as a RefBook, marks and volatility per base in
    dicts, changed instruments in a set, pairs scanned with a Python loop (the way the engine's
    market state read before the step was compiled).

    `rules` lists (venue id, instrument id, base, is_spot, taker fee bps); `pairs` (buy, sell)
    rule indexes in scan order; `thresholds` (tighten, reduce, protect, halt) in bps."""

    def __init__(
        self,
        n_venues,
        n_instruments,
        depth,
        rules,
        pairs,
        min_edge_bps,
        halflife_ms,
        thresholds,
        max_age_ns,
        start_ns=0,
    ):
        self.book = RefBook(n_venues, n_instruments, depth)
        self.rules, self.pairs = list(rules), list(pairs)
        self.min_edge, self.halflife_ms, self.thresholds = min_edge_bps, halflife_ms, thresholds
        self.max_age_ns, self.now, self.start_ns = max_age_ns, start_ns, start_ns
        self.changed: set[int] = set()
        self.marks: dict[str, float] = {}
        self.var: dict[str, float] = {}
        self.level: dict[str, int] = {}
        self.last_mark: dict[str, tuple[int, float]] = {}
        self.candidate = None

    def usable(self, v, i, now_ns):
        bids, asks = self.book.sides.get((v, i), [[], []])
        return (
            self.book.status.get((v, i), book.NEED_SNAPSHOT) == 0
            and now_ns - self.book.ts.get((v, i), 0) <= self.max_age_ns
            and bool(bids)
            and bool(asks)
        )

    def top(self, v, i):
        """(bid, ask) of a usable book at the market clock, else None."""
        if not self.usable(v, i, self.now):
            return None
        bids, asks = self.book.sides[(v, i)]
        return bids[0][0], asks[0][0]

    def step(self, records, now_ns, scan):
        """Apply one batch; returns the indices of the records that are neither market data
        nor TIMERs (which only move the time)."""
        gen = records.view(schema.GENERIC)
        kinds = [int(k) for k in gen["kind"]]
        md_kinds = (schema.Kind.BOOK_LEVEL, schema.Kind.TOP_OF_BOOK, schema.Kind.TRADE, schema.Kind.FUNDING)
        md = [r for r, k in enumerate(kinds) if k in md_kinds]
        rare = [r for r, k in enumerate(kinds) if k not in md_kinds and k != schema.Kind.TIMER]
        if md:
            if not self.start_ns:
                self.start_ns = int(gen["ts_ns"][md[0]])
            self.now = now_ns
            self.book.apply(gen[md])
            touched = {int(gen["instrument"][r]) for r in md if kinds[r] in md_kinds[:2]}
            self.changed |= touched
            for base in {b for _, i, b, _, _ in self.rules if i in touched}:
                self._update_mark(base, now_ns)
        self.candidate = self._scan() if scan else None
        return rare

    def _update_mark(self, base, now_ns):
        mids: list[float] = []
        perp_mids: list[float] = []
        for v, i, b, is_spot, _ in self.rules:
            top = self.top(v, i) if b == base else None
            if top is not None:
                (mids if is_spot else perp_mids).append(0.5 * (top[0] + top[1]))
        chosen = sorted(mids or perp_mids)
        if not chosen:
            return
        m = len(chosen) // 2
        mark = chosen[m] if len(chosen) % 2 else (chosen[m - 1] + chosen[m]) / 2.0
        self.marks[base] = mark
        last = self.last_mark.get(base)
        if last is not None and now_ns > last[0]:
            dt_s = (now_ns - last[0]) / 1e9
            r_bps = math.log(mark / last[1]) * 1e4
            alpha = 1.0 - math.exp(-dt_s * math.log(2) / (self.halflife_ms / 1e3))
            var = (1 - alpha) * self.var.get(base, 0.0) + alpha * (r_bps * r_bps / max(dt_s, 1e-3))
            self.var[base] = var
            vol = math.sqrt(var)
            self.level[base] = next(
                (lvl for lvl, t in zip((4, 3, 2, 1), self.thresholds[::-1]) if vol >= t), 0
            )
        self.last_mark[base] = (now_ns, mark)

    def _scan(self):
        best = None
        for kb, ks in self.pairs:
            (bv, bi, _, _, fee_b), (sv, si, _, _, fee_s) = self.rules[kb], self.rules[ks]
            if bi not in self.changed and si not in self.changed:
                continue
            tb, ts = self.top(bv, bi), self.top(sv, si)
            if tb is None or ts is None:
                continue
            edge = (ts[0] - tb[1]) / tb[1] * 1e4 - fee_b - fee_s
            if edge < self.min_edge:
                continue
            if best is None or edge > best[0]:
                best = (edge, kb, ks)
        return best

    def take(self):
        self.changed = set()
        return self.candidate


# -- one decision -------------------------------------------------------------------------


def decide(sig: dict, books: dict, st: dict, now_ns: int, source: int):
    """(reason, orders) for one signal, following gate.decide_nb; mutates `st` on success.

    books: {(v, i): {"bids": [...], "asks": [...], "status": int, "ts": int}};
    st: plain dict of lists copied from a DecisionState (see `state_as_lists`)."""
    G = gate
    vb, ib, vs, is_, strat = (
        sig["venue"],
        sig["instrument"],
        sig["sell_venue"],
        sig["sell_instrument"],
        sig["strategy"],
    )
    nv, ni = len(st["venue_h"]), len(st["inst_i"])
    if (
        not (0 < vb < nv and 0 < vs < nv and 0 < ib < ni and 0 < is_ < ni and 0 <= strat < len(st["strat_f"]))
        or (vb == vs and ib == is_)
        or math.isnan(sig["edge_bps"])
        or not sig["qty_hint"] >= 0
        or sig["created_ns"] > now_ns
    ):
        return int(R.BAD_INPUT), []
    if now_ns - sig["created_ns"] > sig["ttl_us"] * 1000:
        return int(R.STALE), []
    pol, inst_i = st["policy"], st["inst_i"]
    halted = max(inst_i[ib][G.II_RISK_LEVEL], inst_i[is_][G.II_RISK_LEVEL]) >= risk.LEVEL_HALT
    if pol[G.P_RISK_STATE] >= G.RISK_PROTECTIVE or halted:
        return int(R.RISK_STATE), []
    if st["venue_h"][vb] >= G.HEALTH_SUSPECT or st["venue_h"][vs] >= G.HEALTH_SUSPECT:
        return int(R.VENUE_UNHEALTHY), []
    if st["strat_f"][strat][G.SF_BLOCKED] != 0:
        return int(R.TRANSFER_PENDING), []

    def usable(b):
        return (
            b["status"] == 0 and now_ns - b["ts"] <= int(pol[G.P_MAX_BOOK_AGE_NS]) and b["bids"] and b["asks"]
        )

    bb, bs = books[(vb, ib)], books[(vs, is_)]
    if not (usable(bb) and usable(bs)):
        return int(R.BOOK_UNUSABLE), []
    vf, inst_f, bal = st["venue_f"], st["inst_f"], st["balance"]
    fee_b, fee_s = vf[vb][G.VF_FEE_BPS], vf[vs][G.VF_FEE_BPS]
    ask, bid = bb["asks"][0][0], bs["bids"][0][0]
    if not (bid * (1.0 - fee_s * 1e-4) - ask * (1.0 + fee_b * 1e-4)) / ask * 1e4 >= pol[G.P_MIN_EDGE_BPS]:
        return int(R.EDGE_GONE), []
    capital_free = st["strat_f"][strat][G.SF_BUDGET] - st["strat_f"][strat][G.SF_USED]
    if not capital_free >= inst_f[ib][G.IF_MIN_NOTIONAL]:
        return int(R.CAPITAL), []
    lvl = max(inst_i[ib][G.II_RISK_LEVEL], inst_i[is_][G.II_RISK_LEVEL])
    band = pol[G.P_BAND_BPS] * pol[G.P_BOUND_SCALE + lvl] * 1e-4
    base_avail = bal[vs][inst_i[is_][G.II_BASE]] * pol[G.P_SIZE_SCALE + lvl]
    if 0.0 < sig["qty_hint"] < base_avail:
        base_avail = sig["qty_hint"]
    cap = min(
        pol[G.P_MAX_ORDER_NOTIONAL],
        vf[vb][G.VF_EXPOSURE_LIMIT] - vf[vb][G.VF_EXPOSURE],
        vf[vs][G.VF_EXPOSURE_LIMIT] - vf[vs][G.VF_EXPOSURE],
        pol[G.P_EXPOSURE_LIMIT] - pol[G.P_EXPOSURE],
    )
    if cap < 0.0:
        return int(R.EXPOSURE_LIMIT), []
    reason, res = size_two_leg(
        bb["asks"],
        bs["bids"],
        inst_i[ib][G.II_LOT_UNITS],
        inst_i[is_][G.II_LOT_UNITS],
        inst_f[ib][G.IF_TICK],
        inst_f[is_][G.IF_TICK],
        inst_f[ib][G.IF_MIN_NOTIONAL],
        inst_f[is_][G.IF_MIN_NOTIONAL],
        fee_b,
        fee_s,
        vf[vb][G.VF_SLIP_BPS],
        vf[vs][G.VF_SLIP_BPS],
        ask * (1.0 + band),
        bid * (1.0 - band),
        pol[G.P_MIN_EDGE_BPS],
        base_avail,
        bal[vb][inst_i[ib][G.II_QUOTE]],
        capital_free,
        cap,
    )
    if reason:
        return reason, []
    opp = st["seqs"][G.S_NEXT_OPP]
    st["seqs"][G.S_NEXT_OPP] += 1
    orders = []
    for leg, (v, i, price) in enumerate(((vb, ib, res["buy_limit"]), (vs, is_, res["sell_limit"]))):
        orders.append(
            dict(
                seq=st["seqs"][G.S_NEXT_SEQ],
                ts_ns=now_ns,
                kind=int(schema.Kind.ORDER_NEW),
                source=source,
                venue=v,
                sub=leg,
                instrument=i,
                aux=int(schema.OrderType.IOC),
                coid=schema.make_coid(opp, leg),
                price=price,
                qty=res["qty"],
                depends_on=0 if leg == 0 else schema.make_coid(opp, 0),
                max_slip_bps=float(np.float32(vf[v][G.VF_SLIP_BPS])),
            )
        )
        st["seqs"][G.S_NEXT_SEQ] += 1
    n = res["notional"]
    st["strat_f"][strat][G.SF_USED] += n
    vf[vb][G.VF_EXPOSURE] += n
    vf[vs][G.VF_EXPOSURE] += n
    pol[G.P_EXPOSURE] += n
    bal[vb][inst_i[ib][G.II_QUOTE]] -= n * (1.0 + fee_b * 1e-4)
    bal[vs][inst_i[is_][G.II_BASE]] -= res["qty"]
    return 0, orders


def state_as_lists(ds) -> dict:
    """A DecisionState's arrays as nested Python lists (for the reference)."""
    return {
        name: getattr(ds, name).tolist()
        for name in ("venue_f", "venue_h", "inst_f", "inst_i", "balance", "strat_f", "policy", "seqs")
    }


def books_as_lists(bs) -> dict:
    return {
        (v, i): {
            "bids": bs.levels(v, i, 0),
            "asks": bs.levels(v, i, 1),
            "status": int(bs.status[v, i]),
            "ts": int(bs.ts[v, i]),
        }
        for v in range(1, bs.px.shape[0])
        for i in range(1, bs.px.shape[1])
    }


ORDER_FIELDS = (
    "seq",
    "ts_ns",
    "kind",
    "source",
    "venue",
    "sub",
    "instrument",
    "aux",
    "coid",
    "price",
    "qty",
    "depends_on",
    "max_slip_bps",
)


def _k_decide(c):
    bs, ds = c["books"], copy.deepcopy(c["state"])
    out = schema.empty(schema.Kind.ORDER_NEW, 2 * len(c["signals"]))
    before = ds.counters.copy()
    # mypy cannot match an argument after *args (numba's typed call)
    n = gate.decide_batch_nb(c["signals"], c["now_ns"], 1, *bs.arrays()[:5], *ds.arrays(), out)  # type: ignore[call-arg]
    orders = [{f: out[k][f].item() for f in ORDER_FIELDS} for k in range(n)]
    return orders, (ds.counters - before).tolist(), state_as_lists(ds)


def _r_decide(c):
    st, books = state_as_lists(c["state"]), books_as_lists(c["books"])
    counts = [0] * gate.N_REASONS
    orders = []
    for s in c["signals"]:
        if s["kind"] != schema.Kind.SIGNAL:
            continue
        sig = {
            k: s[k].item()
            for k in (
                "venue",
                "instrument",
                "sell_venue",
                "sell_instrument",
                "created_ns",
                "ttl_us",
                "edge_bps",
                "qty_hint",
            )
        }
        sig["strategy"] = int(s["aux"])
        reason, o = decide(sig, books, st, c["now_ns"], 1)
        counts[reason] += 1
        orders += o
    return orders, counts, st


# -- the comparison table -----------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    kernel: Callable[[dict], Any]
    reference: Callable[[dict], Any]
    #: absolute tolerance for float results; 0 = exact
    atol: float = 0.0


def _k_amount_out(c):
    return int(
        amm.amount_out_nb(c["amount_in"], c["reserve_in"], c["reserve_out"], c["fee_num"], c["fee_den"])
    )


def _r_amount_out(c):
    return amount_out(c["amount_in"], c["reserve_in"], c["reserve_out"], c["fee_num"], c["fee_den"])


def _k_two_pool(c):
    # mypy cannot match an argument after *args (numba's typed call)
    return int(amm.optimal_two_pool_input_nb(*c["reserves"], 997, 1000))  # type: ignore[call-arg]


def _r_two_pool(c):
    return amm.optimal_two_pool_input(*c["reserves"])


def _k_book(c):
    st = book.BookState(c["n_venues"], c["n_instruments"], c["depth"])
    st.apply(c["records"])
    return _book_view(st.levels, st.status, st.ts, st.counters, c)


def _r_book(c):
    rb = RefBook(c["n_venues"], c["n_instruments"], c["depth"])
    rb.apply(c["records"])
    return {
        "levels": {
            (v, i, s): rb.sides.get((v, i), [[], []])[s]
            for v in range(1, rb.nv)
            for i in range(1, rb.ni)
            for s in (0, 1)
        },
        "status": {
            (v, i): rb.status.get((v, i), book.NEED_SNAPSHOT)
            for v in range(1, rb.nv)
            for i in range(1, rb.ni)
        },
        "ts": {(v, i): rb.ts.get((v, i), 0) for v in range(1, rb.nv) for i in range(1, rb.ni)},
        "counters": list(rb.counters),
    }


def _book_view(levels, status, ts, counters, c):
    keys = [(v, i) for v in range(1, c["n_venues"] + 1) for i in range(1, c["n_instruments"] + 1)]
    return {
        "levels": {(v, i, s): levels(v, i, s) for v, i in keys for s in (0, 1)},
        "status": {(v, i): int(status[v, i]) for v, i in keys},
        "ts": {(v, i): int(ts[v, i]) for v, i in keys},
        "counters": [int(x) for x in counters],
    }


def _size_args(c):
    return (
        c["lot_b"],
        c["lot_s"],
        c["tick_b"],
        c["tick_s"],
        c["min_not_b"],
        c["min_not_s"],
        c["fee_b"],
        c["fee_s"],
        c["slip_b"],
        c["slip_s"],
        c["buy_bound"],
        c["sell_bound"],
        c["min_edge_bps"],
        c["base_avail"],
        c["quote_avail"],
        c["capital_free"],
        c["notional_cap"],
    )


def _k_size(c):
    st = book.BookState(2, 2, max(book.MIN_DEPTH, len(c["asks"]), len(c["bids"])))
    for side, levels, v, i in ((1, c["asks"], 1, 1), (0, c["bids"], 2, 2)):
        for k, (p, q) in enumerate(levels):
            st.px[v, i, side, k], st.qty[v, i, side, k] = p, q
        st.cnt[v, i, side] = len(levels)
    out = np.zeros(sizing.N_OUT)
    # mypy cannot match an argument after *args (numba's typed call)
    r = sizing.size_two_leg_nb(st.px, st.qty, st.cnt, 1, 1, 2, 2, *_size_args(c), out)  # type: ignore[call-arg]
    if r:
        return r, None
    return r, dict(
        qty=out[sizing.O_QTY],
        buy_vwap=out[sizing.O_BUY_VWAP],
        sell_vwap=out[sizing.O_SELL_VWAP],
        edge_bps=out[sizing.O_EDGE_BPS],
        notional=out[sizing.O_NOTIONAL],
        buy_limit=out[sizing.O_BUY_LIMIT],
        sell_limit=out[sizing.O_SELL_LIMIT],
        lots=int(out[sizing.O_LOTS]),
    )


def _r_size(c):
    return size_two_leg(c["asks"], c["bids"], *_size_args(c))


def _k_symmetry(c):
    n = len(c["pairs"])
    cols: list[tuple] = list(zip(*c["pairs"])) if n else [()] * 6
    arr = [np.array(cols[k], dtype=np.float64) for k in range(4)]
    t0, win = np.array(cols[4], dtype=np.int64), np.array(cols[5], dtype=np.int64)
    ra, rb, res = np.zeros(n), np.zeros(n), np.zeros(n)
    el, sig = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    # mypy cannot match an argument after *args (numba's typed call)
    symmetry.symmetry_nb(*arr, t0, win, c["now_ns"], *c["policy"], ra, rb, res, el, sig)  # type: ignore[call-arg]
    return [(ra[k], rb[k], res[k], int(el[k]), int(sig[k])) for k in range(n)]


def _r_symmetry(c):
    # mypy cannot match an argument after *args
    return [symmetry_one(*p, c["now_ns"], *c["policy"]) for p in c["pairs"]]  # type: ignore[call-arg]


def _k_ewma(c):
    vs = risk.VolState(c["n_instruments"], c["tau_s"], c["thresholds"])
    obs = c["observations"]
    bad = vs.update(
        np.array([o[0] for o in obs], dtype=np.int64),
        np.array([o[1] for o in obs], dtype=np.float64),
        np.array([o[2] for o in obs], dtype=np.int64),
    )
    seen = {o[0] for o in obs}
    var = {i: float(vs.var[i]) for i in seen if 0 < i <= c["n_instruments"] and vs.var[i] != 0.0}
    level = {i: int(vs.level[i]) for i in seen if 0 < i <= c["n_instruments"] and vs.last_ts[i] != 0}
    return var, level, bad


def _r_ewma(c):
    var, level, bad = ewma(c["observations"], c["n_instruments"], c["tau_s"], *c["thresholds"])
    var = {i: v for i, v in var.items() if v != 0.0}
    seen_ok = {
        o[0] for o in c["observations"] if 0 < o[0] <= c["n_instruments"] and math.isfinite(o[1]) and o[1] > 0
    }
    return var, {i: level.get(i, 0) for i in seen_ok}, bad


COMPARISONS: dict[str, Comparison] = {
    "amm.amount_out": Comparison(_k_amount_out, _r_amount_out),
    "amm.optimal_two_pool_input": Comparison(_k_two_pool, _r_two_pool),
    "book.apply": Comparison(_k_book, _r_book),
    "sizing.size_two_leg": Comparison(_k_size, _r_size),
    "symmetry": Comparison(_k_symmetry, _r_symmetry),
    "risk.ewma": Comparison(_k_ewma, _r_ewma, atol=1e-12),
    # both sides book into their own copy of the case's state and return it
    "gate.decide": Comparison(_k_decide, _r_decide),
}
