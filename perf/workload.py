"""Workloads of the end-to-end and peer benchmarks, and the venue side that answers the engine.

`quote_ticks(n, every_k)`: `n` TOP_OF_BOOK records alternating between two venues on one
instrument (the NautilusTrader peer's stream). Ordinary ticks quote both venues about one mid
(half spread ~1 bp, a few ticks of noise). Every `every_k` records there is one opportunity:
record `j` with `j % every_k == every_k - 2` quotes its venue's bid ARB_BPS above the other
venue's ask, and the next record re-quotes the same venue normally. The mid follows a sine of
period `n`, so the stream can be replayed in a loop with no jump at the seam. Records carry
seq = index + 1, ts_ns = 0 and exch_age_us unknown; whoever feeds them stamps seq and ts_ns.

`BookMarket`: the default scenario's three books (alpha and beta BTC/USDT spot, gamma BTC perp)
as the io side of `basis run` would publish them: BOOK_LEVEL records (snapshots and level
updates, VenueIO.book_records' form). `pattern(blocks)` is a replayable stream of blocks of
EVERY_K records: a snapshot of the perp's book with its grid moved DISLOCATION_BPS up (even
blocks) or down (odd blocks), level updates, the perp's book back on the spot grid half a block
later, more level updates. While the perp is moved, selling it and buying spot (or the other
way) clears both taker fees and the policy's min_edge: a real cross-venue opportunity, one per
block, in alternating directions so the inventory swings back. Only the perp moves, so the
BTC mark (the median of the spot mids) never does and the volatility levels stay at 0; level
updates change sizes at every level and delete / restore levels behind the touch.

`VenueAnswers`: what a venue that fills every order at once sends back through the io side
(VenueIO's record forms): an ACK and one execution for each ORDER_NEW (the whole quantity at
its limit, taker fee in the venue's fee asset), CANCELED for a cancel, the order's status for a
query, and a clean reconciliation pass for a RECONCILE request.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from basis_core import schema as S
from basis_core.config import Config, load
from basis_core.engine.build import rules_of
from basis_core.engine.core import INITIAL_BALANCE
from basis_core.registry import Registry
from basis_core.scenarios import DEFAULT

TICK = 0.01
ARB_BPS = 25.0

# -- the quote-tick stream (peer suite) --------------------------------------------------------


def opportunity_index(n: int, every_k: int) -> np.ndarray:
    """Indices of the records that carry an opportunity in `quote_ticks(n, every_k)`."""
    return np.arange(every_k - 2, n, every_k)


def quote_ticks(
    n: int,
    every_k: int = 100,
    venues: tuple[int, int] = (1, 2),
    instrument: int = 1,
    seed: int = 7,
    mid: float = 1000.0,
) -> np.ndarray:
    """`n` TOP_OF_BOOK records (see the module docstring); `every_k` >= 4."""
    if every_k < 4:
        raise ValueError(f"every_k must be >= 4, got {every_k}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    j = np.arange(n)
    va, vb = venues
    venue = np.where(j % 2 == 0, va, vb)
    restore = (j % every_k == every_k - 1) & (j > 0)
    venue[restore] = venue[np.maximum(j[restore] - 1, 0)]
    m = mid + 0.005 * mid * np.sin(2 * np.pi * j / n)
    noise = rng.integers(-3, 4, n) * TICK
    bid = np.round((m - 0.1 + noise) / TICK) * TICK
    ask = np.round((m + 0.1 + noise) / TICK) * TICK
    bid_q = np.round(rng.uniform(0.1, 2.0, n), 3)
    ask_q = np.round(rng.uniform(0.1, 2.0, n), 3)
    arb = opportunity_index(n, every_k)
    # the other venue's ask at an opportunity is the previous record's (it quotes the other venue)
    prev_ask = ask[np.maximum(arb - 1, 0)]
    bid[arb] = np.round(prev_ask * (1 + ARB_BPS * 1e-4) / TICK) * TICK
    ask[arb] = bid[arb] + 2 * TICK
    recs = S.empty(S.Kind.TOP_OF_BOOK, n)
    recs["seq"] = j + 1
    recs["venue"] = venue
    recs["instrument"] = instrument
    recs["bid_px"], recs["ask_px"] = bid, ask
    recs["bid_qty"], recs["ask_qty"] = bid_q, ask_q
    recs["exch_age_us"] = 0xFFFFFFFF
    return recs


# -- the default scenario's engine inputs ------------------------------------------------------

CENTER = 60_000.0
STEP = 0.5  # grid step; the best bid / ask sit one step from the center
LEVELS = 10
EVERY_K = 200  # records per block: the perp moved up for its first half, down for the second
DISLOCATION_BPS = 30.0  # perp grid move: ~17 bps of edge net of fees against beta, 15 against alpha
SNAPSHOT = 2 * LEVELS + 3  # records of one book snapshot


def scenario(clock: str = "real", engine_core: int = -1, io_core: int = -1) -> Config:
    """The default scenario's config (policy, limits, venues, journal, checkpoints) with the
    clock and the core placement a benchmark asks for."""
    cfg = load(DEFAULT)
    return replace(
        cfg,
        run=replace(cfg.run, clock=clock),
        cpu=replace(cfg.cpu, engine=engine_core, io=io_core),
    )


def registry_of(cfg: Config) -> Registry:
    """The registry a run of `cfg` gives its engine: venues, instruments, every balance asset."""
    reg = cfg.registry()
    for v in cfg.venues.values():
        for asset in v.balances:
            reg.assets.add(asset)
        fee_asset = getattr(v, "fee_asset", "")
        if fee_asset and fee_asset not in ("quote", "received"):
            reg.assets.add(fee_asset)
    return reg


class BookMarket:
    """The default scenario's books as BOOK_LEVEL records (see the module docstring)."""

    def __init__(self, cfg: Config, reg: Registry):
        self.cfg, self.reg = cfg, reg
        self.rules = rules_of(cfg)
        self.books = [(reg.venue(r.venue), reg.instrument(n)) for n, r in self.rules.items()]
        perps = [k for k, r in enumerate(self.rules.values()) if r.kind == "perp"]
        if len(perps) != 1 or len(self.books) != 3:
            raise ValueError("BookMarket expects the default scenario: two spot books and one perp")
        self.perp = perps[0]

    def initial_balances(self, ts_ns: int) -> np.ndarray:
        """The starting inventory as the runner journals it first (Runner.start)."""
        out = []
        for venue, v in sorted(self.cfg.venues.items()):
            for asset, amount in sorted(v.balances.items()):
                rec = S.empty(S.Kind.BALANCE_UPDATE)
                rec["ts_ns"], rec["source"], rec["sub"] = ts_ns, S.Source.RUNNER, INITIAL_BALANCE
                rec["venue"], rec["aux"], rec["free"] = self.reg.venue(venue), self.reg.asset(asset), amount
                out.append(rec.view(S.GENERIC))
        return np.concatenate(out).view(S.GENERIC)

    def snapshot(self, book: int, shift_bps: float) -> np.ndarray:
        """A full snapshot of one book, its grid moved by shift_bps (VenueIO.book_records' form)."""
        v, i = self.books[book]
        c = CENTER * (1 + shift_bps / 1e4)
        recs = S.empty(S.Kind.BOOK_LEVEL, SNAPSHOT)
        rows = (
            [(S.Side.BUY, S.BookAction.SNAPSHOT_BEGIN, 0.0), (S.Side.SELL, S.BookAction.SNAPSHOT_BEGIN, 0.0)]
            + [(S.Side.BUY, S.BookAction.SET, c - STEP * (k + 1)) for k in range(LEVELS)]
            + [(S.Side.SELL, S.BookAction.SET, c + STEP * (k + 1)) for k in range(LEVELS)]
            + [(S.Side.BUY, S.BookAction.SNAPSHOT_END, 0.0)]
        )
        for k, (side, action, px) in enumerate(rows):
            recs["sub"][k], recs["action"][k], recs["price"][k] = int(side), int(action), px
            recs["qty"][k] = 1.0 if action == S.BookAction.SET else 0.0
        recs["venue"], recs["instrument"], recs["aux"] = v, i, 0xFFFF
        recs["source"] = S.Source.VENUE
        return recs.view(S.GENERIC)

    def prologue(self) -> np.ndarray:
        """Snapshots of every book on the center grid: a run's first records."""
        return np.concatenate([self.snapshot(b, 0.0) for b in range(len(self.books))]).view(S.GENERIC)

    def pattern(
        self, blocks: int, every_k: int = EVERY_K, hold: int | None = None, seed: int = 11
    ) -> tuple[np.ndarray, np.ndarray]:
        """`blocks` blocks of `every_k` records and the index of each move's opportunity record
        (the SNAPSHOT_END of the moved perp book); the pattern replays in a loop.

        hold=None: the perp is moved DISLOCATION_BPS up for the first half of each block and
        down for the second, so it is always dislocated (an engine taking thousands of records
        per batch still finds an opportunity in most of its batches). hold=H: each block starts
        with one move (up in even blocks, down in odd ones) that a snapshot H records later
        undoes; the rest of the block is quiet."""
        if blocks < 1 or (hold is not None and blocks % 2):
            raise ValueError(f"blocks must be >= 1 (even with a hold), got {blocks}")
        if every_k < 4 * SNAPSHOT or (hold is not None and not SNAPSHOT <= hold <= every_k - 2 * SNAPSHOT):
            raise ValueError(f"every_k {every_k} too short for snapshots (or hold {hold} outside it)")
        rng = np.random.default_rng(seed)
        half = every_k // 2
        out, opps = [], []
        for b in range(blocks):
            start = b * every_k
            if hold is None:
                parts = [(DISLOCATION_BPS, half), (-DISLOCATION_BPS, every_k - half)]
            else:
                move = DISLOCATION_BPS if b % 2 == 0 else -DISLOCATION_BPS
                parts = [(move, hold), (0.0, every_k - hold)]
            for move, length in parts:
                if move:
                    opps.append(start + SNAPSHOT - 1)
                out += [self.snapshot(self.perp, move), self._updates(rng, length - SNAPSHOT, move)]
                start += length
        recs = np.concatenate(out).view(S.GENERIC)
        recs["kind"] = S.Kind.BOOK_LEVEL
        return recs, np.array(opps, dtype=np.int64)

    def _updates(self, rng: np.random.Generator, n: int, perp_shift_bps: float) -> np.ndarray:
        """n level updates on random books, sides and levels of their grids: sizes change at every
        level, levels behind the touch are deleted now and then (so the touch never moves)."""
        vids = np.array([v for v, _ in self.books])
        iids = np.array([i for _, i in self.books])
        upd = S.empty(S.Kind.BOOK_LEVEL, n)
        j = rng.integers(len(self.books), size=n)
        side = rng.integers(2, size=n)
        level = rng.integers(LEVELS, size=n)
        c = np.where(j == self.perp, CENTER * (1 + perp_shift_bps / 1e4), CENTER)
        upd["venue"], upd["instrument"], upd["sub"] = vids[j], iids[j], side
        upd["price"] = np.where(side == 0, c - STEP * (level + 1), c + STEP * (level + 1))
        qty = np.round(rng.random(n) * 2 + 0.01, 3)
        upd["qty"] = np.where((level > 0) & (rng.random(n) < 0.15), 0.0, qty)
        upd["action"], upd["aux"], upd["source"] = S.BookAction.SET, 0xFFFF, S.Source.VENUE
        return upd.view(S.GENERIC)


# -- the venue side --------------------------------------------------------------------------------


class VenueAnswers:
    """Answers to the engine's commands, as VenueIO would record a venue filling every order at
    once (see the module docstring). Remembers the last MEMORY orders (for queries)."""

    MEMORY = 1 << 16

    def __init__(self, cfg: Config, reg: Registry):
        self.reg = reg
        self.seq = 0
        self.fee_bps = np.zeros(256)
        self.fee_asset = np.zeros(256, np.int64)
        self.fee_price = np.ones(256)
        usdt = reg.asset("USDT")
        for name, v in cfg.venues.items():
            vid = reg.venue(name)
            self.fee_bps[vid] = v.taker_fee_bps
            self.fee_asset[vid] = usdt
            asset = getattr(v, "fee_asset", "")
            if asset and asset not in ("quote", "received") and getattr(v, "fee_asset_price", 0):
                self.fee_asset[vid] = reg.asset(asset)
                self.fee_price[vid] = float(v.fee_asset_price)
        self.orders: dict[int, tuple[int, int, float, float]] = {}  # coid -> venue, inst, qty, px
        self.counts = {"new": 0, "cancel": 0, "query": 0, "reconcile": 0, "other": 0}

    def answer(self, cmds: np.ndarray, now_ns: int) -> np.ndarray:
        """The exec-ring records a venue (and the io side) sends back for `cmds`."""
        out = []
        for k in range(len(cmds)):
            rec = cmds[k : k + 1]
            kind = int(rec["kind"][0])
            if kind == S.Kind.ORDER_NEW:
                o = rec.view(S.ORDER_NEW)[0]
                coid, vid, inst = int(o["coid"]), int(o["venue"]), int(o["instrument"])
                qty, px = float(o["qty"]), float(o["price"])
                self._remember(coid, (vid, inst, qty, px))
                out.append(self._event(vid, inst, coid, S.OrderEventType.ACK, 0.0, 0.0))
                fill = self._event(vid, inst, coid, S.OrderEventType.PARTIAL_FILL, px, qty)
                f = fill.view(S.ORDER_EVENT)
                f["fill_no"], f["liquidity"] = 1, int(S.Liquidity.TAKER)
                f["fee"] = px * qty * self.fee_bps[vid] * 1e-4 / self.fee_price[vid]
                f["aux"] = self.fee_asset[vid]
                out.append(fill)
                self.counts["new"] += 1
            elif kind in (S.Kind.ORDER_CANCEL, S.Kind.ORDER_QUERY):
                coid = int(rec.view(S.ORDER_CANCEL)["coid"][0])
                known = self.orders.get(coid)
                vid, inst = int(rec["venue"][0]), int(rec["instrument"][0])
                if known is None:
                    out.append(self._event(vid, inst, coid, S.OrderEventType.NOT_FOUND, 0.0, 0.0))
                else:
                    # every order filled at once: a cancel comes too late, a query finds it filled
                    _, _, qty, px = known
                    event = (
                        S.OrderEventType.CANCEL_REJECT
                        if kind == S.Kind.ORDER_CANCEL
                        else S.OrderEventType.FILL
                    )
                    out.append(self._event(vid, inst, coid, event, px, qty))
                self.counts["cancel" if kind == S.Kind.ORDER_CANCEL else "query"] += 1
            elif kind == S.Kind.CONTROL and int(rec["sub"][0]) == S.ControlCommand.RECONCILE:
                out.append(S.control_record(now_ns, S.ControlCommand.RECONCILE, 0, 1))
                self.counts["reconcile"] += 1
            else:
                self.counts["other"] += 1
        if not out:
            return S.aligned_empty(0)
        recs = np.concatenate(out).view(S.GENERIC)
        recs["ts_ns"] = now_ns
        return recs

    def _remember(self, coid: int, what: tuple[int, int, float, float]) -> None:
        if len(self.orders) >= self.MEMORY:
            self.orders.pop(next(iter(self.orders)))
        self.orders[coid] = what

    def _event(
        self, vid: int, inst: int, coid: int, event: S.OrderEventType, px: float, qty: float
    ) -> np.ndarray:
        rec = S.empty(S.Kind.ORDER_EVENT)
        self.seq += 1
        rec["seq"], rec["source"] = self.seq, S.Source.VENUE
        rec["venue"], rec["instrument"], rec["sub"], rec["coid"] = vid, inst, int(event), coid
        rec["last_px"], rec["last_qty"] = px, qty
        return rec.view(S.GENERIC)
