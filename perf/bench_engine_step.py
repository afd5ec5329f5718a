"""EngineCore.step on market-data batches: the compiled market step beside the Python scan path
it replaced, side by side in one pyperf run.

    batch (B-1 BOOK_LEVEL + the runner's closing TIMER)
      numba:  EngineCore.step ── market_step_nb (time, books, marks, volatility, pair scan)
                               ── timed checks ── candidate (none here)
      python: EngineCore.step ── kind masks ── book kernel ── np.unique ── marks/EWMA in Python
                               ── TIMER (_rare) ── timed checks ── pair scan in Python

The engine is the default scenario's (alpha and beta BTC/USDT spot, gamma BTC perp: 3 books,
6 pairs). Each batch holds B-1 level updates on random books, sides and levels of a 10-level
grid (15% deletes, so the touch and the marks move) and the TIMER that closes every input batch
of a run; timestamps move 1 ms per batch. Books never cross by more than the taker fees, so no
signal fires and the figure is the per-event market work of a step. `PythonScanCore` below is
the engine step as it was before the market step was compiled (kind masks, `MarketState.apply`,
`_update_mark` and `_scan_signals` in Python), kept here as the baseline.

Before any figure counts, both engines run the same streams with dislocations (a venue's grid
jumps 25 bps for a few batches, so signals fire, are gated, sized and sent, or rejected when the
engine holds no inventory) and the timed stream, and must agree on every command (decision
digest), every counter (signals, reject reasons, orders), and every mark and volatility level.

Benchmarks: EngineStepThroughput[<impl>,batch=<B>] for impl python (the baseline) and numba,
B = 8 (about what a `basis run` batch holds) and 64. pyperf's value is seconds per event
(inner_loops = B); `basis bench engine-step` prints events/s and the speed-up.

    .venv/bin/python perf/bench_engine_step.py --fast -o engine-step.json
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyperf

from basis_core import schema as S
from basis_core.config import load
from basis_core.engine.build import policy_of, rules_of
from basis_core.engine.core import EngineCore
from basis_core.engine.market import MarketState, NoMark
from basis_core.scenarios import DEFAULT
from basis_core.state.tables import NO_NEW_EXPOSURE, EngineState
from basis_core.units import MS

BATCHES = (8, 64)
LEVELS = 10
CENTER = 60_000.0
STEP = 0.5  # grid step (about 0.08 bps); best bid/ask 0.5 from the center
T0 = 1_767_225_600_000_000_000


# -- the baseline: the engine step before the market step was compiled ------------------------


class PythonMarket(MarketState):
    """MarketState with the per-batch work in Python: sets, dicts, np.median, a pair loop."""

    now = 0  # plain attributes here, not views of the kernel's arrays
    start_ns = 0

    def __init__(self, registry, rules, depth, policy, start_ns=0, fixed_marks=None):
        super().__init__(registry, rules, depth, policy, start_ns, fixed_marks)
        self.now = self.start_ns = start_ns
        self.name_of = {iid: name for name, (_, iid) in self.ids.items()}
        self._changed: set[int] = set()
        self._marks: dict[str, float] = dict(self._fixed_marks)
        self._last_mark: dict[str, tuple[int, float]] = {}
        self._var: dict[str, float] = {}
        self._level: dict[str, int] = {}

    def apply(self, records: np.ndarray, now_ns: int) -> None:
        if not self.start_ns:
            self.start_ns = int(records["ts_ns"][0])
        self.now = now_ns
        self.books.apply(records)
        kinds = records["kind"]
        touched = np.unique(
            records["instrument"][(kinds == S.Kind.BOOK_LEVEL) | (kinds == S.Kind.TOP_OF_BOOK)]
        )
        self._changed.update(int(i) for i in touched)
        for base in {self.rules[self.name_of[i]].base for i in touched if int(i) in self.name_of}:
            self._update_mark(base, now_ns)

    def _update_mark(self, base: str, now_ns: int) -> None:
        mids, perp_mids = [], []
        for name in self.by_base[base]:
            top = self.top(*self.ids[name])
            if top is None:
                continue
            mid = 0.5 * (top[0] + top[2])
            (mids if self.rules[name].kind == "spot" else perp_mids).append(mid)
        chosen = mids or perp_mids
        if not chosen:
            return
        mark = float(np.median(chosen))
        self._marks[base] = mark
        last = self._last_mark.get(base)
        if last is not None and now_ns > last[0]:
            dt_s = (now_ns - last[0]) / 1e9
            r_bps = math.log(mark / last[1]) * 1e4
            alpha = 1.0 - math.exp(-dt_s * math.log(2) / (self.policy.vol_halflife_ms / 1e3))
            var = self._var.get(base, 0.0)
            var = (1 - alpha) * var + alpha * (r_bps * r_bps / max(dt_s, 1e-3))
            self._var[base] = var
            self._level[base] = self._vol_to_level(math.sqrt(var))
        self._last_mark[base] = (now_ns, mark)

    def _vol_to_level(self, vol_bps: float) -> int:
        p = self.policy
        for level, threshold in (
            (4, p.vol_halt_bps),
            (3, p.vol_protect_bps),
            (2, p.vol_reduce_bps),
            (1, p.vol_tighten_bps),
        ):
            if vol_bps >= threshold:
                return level
        return 0

    def take_changed(self) -> set[int]:
        out, self._changed = self._changed, set()
        return out

    def pairs_touching(self, changed: set[int]):
        for base, names in self.by_base.items():
            for buy in names:
                for sell in names:
                    if buy == sell:
                        continue
                    if self.ids[buy][1] in changed or self.ids[sell][1] in changed:
                        yield buy, sell

    def quick_edge_bps(self, buy: str, sell: str) -> float | None:
        """Touch-to-touch edge of buying `buy` and selling `sell`, net of both taker fees."""
        tb, ts = self.top(*self.ids[buy]), self.top(*self.ids[sell])
        if tb is None or ts is None:
            return None
        ask, bid = tb[2], ts[0]
        return (bid - ask) / ask * 1e4 - self.rules[buy].taker_fee_bps - self.rules[sell].taker_fee_bps

    def mark(self, asset: str) -> float:
        try:
            return self._marks[asset]
        except KeyError:
            raise NoMark(f"no mark for {asset} yet") from None

    def volatility_bps(self, base: str) -> float:
        return math.sqrt(self._var.get(base, 0.0))

    def vol_level(self, base: str) -> int:
        return self._level.get(base, 0)

    def vol_level_max(self) -> int:
        return max(self._level.values(), default=0)


class PythonScanCore(EngineCore):
    """EngineCore with the step and the signal scan as they were before the compiled step."""

    def __init__(self, registry, rules, policy, balances, start_ns, **kwargs):
        super().__init__(registry, rules, policy, balances, start_ns, **kwargs)
        self.market = PythonMarket(registry, rules, 10, policy, start_ns, kwargs.get("fixed_marks"))
        self.market.warm_up()
        self.decider = None  # the gate and sizing in Python too (the compiled call reads the kernel's arrays)

    def step(self, batch: np.ndarray) -> np.ndarray:
        gen = batch.view(S.GENERIC)
        n = len(gen)
        if n == 0:
            return S.aligned_empty(0)
        self.counters.events += n
        self.now = max(self.now, int(gen["ts_ns"].max()))
        kinds = gen["kind"]
        md = (
            (kinds == S.Kind.BOOK_LEVEL)
            | (kinds == S.Kind.TOP_OF_BOOK)
            | (kinds == S.Kind.TRADE)
            | (kinds == S.Kind.FUNDING)
        )
        if md.any():
            self.market.apply(gen[md], self.now)
        for i in np.flatnonzero(~md):
            self._rare(gen[i : i + 1])
        self._timed_checks()
        if self.builtin_signals and self.engine.state not in NO_NEW_EXPOSURE and not self.stop_new:
            self._scan_signals()
        return self._flush()

    def _scan_signals(self) -> None:
        changed = self.market.take_changed()
        if not changed:
            return
        p = self.policy
        if self.engine.state == EngineState.DEGRADED:
            if self.now - self.last_entry_ns < int(50 * MS / p.degraded_rate_factor):
                return
        best = None
        for buy_name, sell_name in self.market.pairs_touching(changed):
            edge = self.market.quick_edge_bps(buy_name, sell_name)
            if edge is None or edge < p.min_edge_bps:
                continue
            if best is None or edge > best[0]:
                best = (edge, buy_name, sell_name)
        if best is not None:
            self._builtin_signal(*best)


IMPLS = {"python": PythonScanCore, "numba": EngineCore}

# -- the workload ------------------------------------------------------------------------------


class Workload:
    """The default scenario's engine inputs: books on a fixed grid, batches of level updates."""

    def __init__(self):
        cfg = load(DEFAULT)
        self.reg = cfg.registry()
        for v in cfg.venues.values():
            for asset in v.balances:
                self.reg.assets.add(asset)
        self.rules, self.policy = rules_of(cfg), policy_of(cfg)
        self.balances = {
            (name, asset): float(q) for name, v in cfg.venues.items() for asset, q in v.balances.items()
        }
        self.books = [(self.reg.venue(r.venue), self.reg.instrument(name)) for name, r in self.rules.items()]

    def core(self, impl: str, funded: bool = True) -> EngineCore:
        core = IMPLS[impl](self.reg, self.rules, self.policy, dict(self.balances) if funded else {}, T0)
        core.step(self.snapshots(T0, [0.0] * len(self.books)))
        return core

    def snapshots(self, ts_ns: int, shifts_bps: list[float]) -> np.ndarray:
        """A full snapshot of every book (its grid moved by shifts_bps), closed by a TIMER."""
        per = 2 * LEVELS + 3
        recs = S.empty(S.Kind.BOOK_LEVEL, per * len(self.books))
        for j, ((v, i), shift) in enumerate(zip(self.books, shifts_bps)):
            c = CENTER * (1 + shift / 1e4)
            rows = (
                [(0, 1, 0.0), (1, 1, 0.0)]
                + [(0, 0, c - STEP * (k + 1)) for k in range(LEVELS)]
                + [(1, 0, c + STEP * (k + 1)) for k in range(LEVELS)]
                + [(0, 2, 0.0)]
            )
            for k, (side, action, px) in enumerate(rows):
                r = recs[j * per + k]
                r["venue"], r["instrument"], r["sub"], r["action"] = v, i, side, action
                r["price"], r["qty"], r["ts_ns"] = px, 1.0 if action == 0 else 0.0, ts_ns
        return np.concatenate([recs.view(S.GENERIC), S.timer_record(ts_ns)])

    def batches(self, n: int, size: int, seed: int, dislocate: bool = False) -> list[np.ndarray]:
        """n input batches of `size` records (size-1 level updates and a TIMER), 1 ms apart.
        With `dislocate`, every 40th batch is instead a snapshot with one book's grid 25 bps
        up, undone 4 batches later (a real cross-venue opportunity while it lasts)."""
        rng = np.random.default_rng(seed)
        out = []
        vids = np.array([v for v, _ in self.books])
        iids = np.array([i for _, i in self.books])
        shifts = [0.0] * len(self.books)
        for b in range(n):
            ts = T0 + (b + 1) * MS
            if dislocate and b % 40 in (20, 24):
                shifts = [0.0] * len(self.books)
                if b % 40 == 20:
                    shifts[rng.integers(len(self.books))] = 25.0
                out.append(self.snapshots(ts, shifts))
                continue
            recs = S.aligned_empty(size)
            lv = recs[: size - 1].view(S.BOOK_LEVEL)
            j = rng.integers(len(self.books), size=size - 1)
            side = rng.integers(2, size=size - 1)
            level = rng.integers(LEVELS, size=size - 1)
            c = CENTER * (1 + np.asarray(shifts) / 1e4)[j]
            lv["kind"], lv["ts_ns"], lv["sub"] = S.Kind.BOOK_LEVEL, ts, side
            lv["venue"], lv["instrument"] = vids[j], iids[j]
            lv["price"] = np.where(side == 0, c - STEP * (level + 1), c + STEP * (level + 1))
            lv["qty"] = np.where(
                rng.random(size - 1) < 0.15, 0.0, np.round(rng.random(size - 1) * 2 + 0.01, 3)
            )
            recs[size - 1] = S.timer_record(ts)[0]
            out.append(recs)
        return out


def _state(core: EngineCore) -> tuple:
    c, m = core.counters, core.market
    return (
        core.digest,
        c.events,
        c.signals_seen,
        sorted(c.rejected.items()),
        c.orders_submitted,
        core.engine.state,
        m.now,
        m.mark("BTC"),
        m.volatility_bps("BTC"),
        m.vol_level("BTC"),
        [int(x) for x in m.books.counters],
    )


def check(work: Workload, size: int) -> None:
    """Both engines on the same streams decide the same: dislocations with inventory (a signal
    is sized and sent, and its pair stays busy), dislocations without (every signal is
    counted and rejected), and the timed stream (no signal)."""
    for dislocate, funded in ((True, True), (True, False), (False, True)):
        cores = {impl: work.core(impl, funded) for impl in IMPLS}
        stream = work.batches(400, size, seed=size, dislocate=dislocate)
        for batch in stream:
            outs = [core.step(batch).tobytes() for core in cores.values()]
            if outs[0] != outs[1]:
                raise AssertionError(f"batch={size}: the engines decided differently")
        states = [_state(core) for core in cores.values()]
        if states[0] != states[1]:
            raise AssertionError(f"batch={size}: the engines disagree: {states}")
        signals, orders = states[1][2], states[1][4]
        if dislocate and not (orders if funded else signals > 5):
            raise AssertionError("the dislocated stream gave no decision: the check would prove nothing")
        if not dislocate and signals:
            raise AssertionError("the timed stream gave a signal: it would time decisions, not market work")


_POOL: dict[int, list[np.ndarray]] = {}


def step_batches(loops: int, impl: str, size: int, work: Workload) -> float:
    """Time `loops` steps of a fresh engine over distinct batches (timestamps keep moving)."""
    pool = _POOL.setdefault(size, work.batches(4096, size, seed=1000 + size))
    core = work.core(impl)
    batches = []
    for b in range(loops):
        batch = pool[b % len(pool)].copy()
        batch["ts_ns"] = T0 + (b + 1) * MS
        batches.append(batch)
    step, before = core.step, core.counters.events
    t0 = time.perf_counter()
    for batch in batches:
        step(batch)
    elapsed = time.perf_counter() - t0
    if core.counters.events - before != loops * size or core.counters.signals_seen:
        raise AssertionError(f"{impl}: {core.counters.events} events, {core.counters.signals_seen} signals")
    return elapsed


def main() -> None:
    runner = pyperf.Runner()
    args = runner.parse_args()
    work = Workload()
    results = {}
    for size in BATCHES:
        if not args.worker:
            check(work, size)
        for impl in IMPLS:
            bench = runner.bench_time_func(
                f"EngineStepThroughput[{impl},batch={size}]", step_batches, impl, size, work, inner_loops=size
            )
            if bench is not None:
                results[(impl, size)] = bench
    if results and not args.worker:
        print()
        print(f"{'engine step':<12}{'batch':>6}{'ns/event':>10}{'events/s':>14}{'speed-up':>10}")
        for (impl, size), bench in results.items():
            base = results.get(("python", size))
            ratio = f"{base.median() / bench.median():.1f}x" if base is not None else "-"
            print(f"{impl:<12}{size:>6}{bench.median() * 1e9:>10.0f}{1 / bench.median():>14,.0f}{ratio:>10}")


if __name__ == "__main__":
    main()
