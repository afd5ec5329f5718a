"""A peer in the same run: one quote workload through NautilusTrader's backtest engine and
through basis's own engine.

The workload is perf/workload.py quote_ticks: N quote ticks alternating between two venues on
one instrument, one opportunity every EVERY_K ticks (a bid ARB_BPS over the other venue's ask).

NautilusTrader: a Strategy keeps the last quote per venue, runs the spread check on every tick
(best bid of one venue over the best ask of the other by at least TRIGGER_BPS) and, when it
passes, submits two IOC market orders (buy where it is cheap, sell where it is dear) for the
smaller top-of-book size. Both venues are simulated NautilusTrader venues (SIM_A, SIM_B) with
L1 books fed by the ticks.

basis: the product's engine (EngineCore, the default scenario's policy: full dispatch-time gate,
sizing, hedge monitoring and state machines), each tick one input batch closed by its TIMER as
the engine process journals and decides them (the journal appended, `procs._emit`: EngineCore.step,
the commands journaled). The ticks become alpha's and beta's BTC/USDT books (instrument = venue);
alpha and beta hold enough inventory for the whole stream; every order is answered at once with
an ACK and a fill (perp/workload.py VenueAnswers) in the next batch, as the io side would.
Ticks are TICK_NS apart in record time (the engine reads no clock).

    PeerThroughput[nautilus]   pyperf value: seconds per quote tick of `BacktestEngine.run()`
                               over the tick stream, orders included (events/s = 1 / value).
                               The engine is built and the ticks are loaded outside the timed
                               part; each run resets the engine and replays the same ticks.
    PeerThroughput[nautilus,noorders]   the same stream with the spread check only.
    PeerThroughput[basis]      seconds per quote tick through basis's engine (a fresh engine and
                               journal per run, built outside the timed part), orders answered.

Before a value counts, each side must have seen every tick and made exactly the number of
decisions the workload holds (N // EVERY_K): NautilusTrader's venues must have produced a fill
or a rejection event for every order submitted; basis's engine must have sent two orders per
decision, all filled, every hedge completed.

NautilusTrader is an optional extra (`pip install 'basis[peers]'`); without it this suite says
so and exits with status 75 (`basis_core.bench.SKIPPED`: `basis bench` reports the suite as
skipped) and writes no JSON.

    .venv/bin/python perf/peers/bench_nautilus.py -o peers.json [--fast] [--ticks N]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyperf

try:
    import nautilus_trader
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.data import QuoteTick
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide, TimeInForce
    from nautilus_trader.model.identifiers import TraderId, Venue
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy
except ImportError:  # optional extra not installed
    nautilus_trader = None

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workload import VenueAnswers, quote_ticks, registry_of, scenario

from basis_core import schema as S
from basis_core.bench import SKIPPED
from basis_core.engine.build import fixed_marks_of, policy_of, rules_of
from basis_core.engine.core import INITIAL_BALANCE, EngineCore
from basis_core.engine.procs import _emit
from basis_core.journal import JournalWriter

EVERY_K = 100
TRIGGER_BPS = 5.0
SIZE_SCALE = 100_000  # quote_ticks sizes (coins, 3 decimals) -> whole units of the FX pair
TICK_NS = 5_000_000  # basis side: record time between ticks
T0 = 1_700_000_000_000_000_000


if nautilus_trader is not None:

    class SpreadConfig(StrategyConfig, frozen=True):
        venue_a: str = "SIM_A"
        venue_b: str = "SIM_B"
        trigger_bps: float = TRIGGER_BPS
        send_orders: bool = True

    class SpreadStrategy(Strategy):
        """Spread check on every tick; two IOC market orders when it passes."""

        def __init__(self, config: SpreadConfig, ids):
            super().__init__(config)
            self.ids = ids  # {venue name: InstrumentId}
            self.last = {}
            self.ticks = 0
            self.decisions = 0
            self.submitted = 0
            self.outcomes = 0

        def on_start(self):
            for iid in self.ids.values():
                self.subscribe_quote_ticks(iid)

        def on_quote_tick(self, tick):
            self.ticks += 1
            iid = tick.instrument_id
            self.last[iid] = tick
            if len(self.last) < 2:
                return
            other = self.ids["SIM_B"] if iid == self.ids["SIM_A"] else self.ids["SIM_A"]
            for buy, sell in ((iid, other), (other, iid)):
                ask = self.last[buy].ask_price.as_double()
                bid = self.last[sell].bid_price.as_double()
                if (bid - ask) / ask * 1e4 >= self.config.trigger_bps:
                    self.decisions += 1
                    if self.config.send_orders:
                        qty = min(self.last[buy].ask_size, self.last[sell].bid_size)
                        for side, inst in ((OrderSide.BUY, buy), (OrderSide.SELL, sell)):
                            order = self.order_factory.market(inst, side, qty, time_in_force=TimeInForce.IOC)
                            self.submit_order(order)
                            self.submitted += 1
                    return

        def on_order_filled(self, event):
            self.outcomes += 1

        def on_order_rejected(self, event):
            self.outcomes += 1

        def on_order_denied(self, event):
            self.outcomes += 1


def build(n_ticks: int, send_orders: bool):
    """(engine, strategy) with both venues, both instruments and the tick stream loaded."""
    cfg = BacktestEngineConfig(
        trader_id=TraderId("BASIS-PEER-001"), logging=LoggingConfig(bypass_logging=True)
    )
    engine = BacktestEngine(config=cfg)
    ids, insts = {}, {}
    for name in ("SIM_A", "SIM_B"):
        venue = Venue(name)
        engine.add_venue(
            venue=venue,
            oms_type=OmsType.NETTING,
            account_type=AccountType.MARGIN,
            base_currency=USD,
            starting_balances=[Money(10_000_000_000, USD)],
        )
        inst = TestInstrumentProvider.default_fx_ccy("AUD/USD", venue)
        engine.add_instrument(inst)
        ids[name], insts[name] = inst.id, inst
    recs = quote_ticks(n_ticks, EVERY_K)
    names = {1: "SIM_A", 2: "SIM_B"}
    ticks = []
    t0 = 1_700_000_000_000_000_000
    for k, r in enumerate(recs.tolist()):
        inst = insts[names[r[4]]]
        ts = t0 + k * 1000
        ticks.append(
            QuoteTick(
                inst.id,
                Price(r[8], inst.price_precision),
                Price(r[10], inst.price_precision),
                Quantity(round(r[9] * SIZE_SCALE), inst.size_precision),
                Quantity(round(r[11] * SIZE_SCALE), inst.size_precision),
                ts,
                ts,
            )
        )
    engine.add_data(ticks)
    strategy = SpreadStrategy(SpreadConfig(send_orders=send_orders), ids)
    engine.add_strategy(strategy)
    return engine, strategy


# -- basis's engine on the same ticks -------------------------------------------------------------


class BasisSide:
    """The quote ticks as engine input batches, and a fresh engine and journal per run."""

    def __init__(self, n_ticks: int):
        cfg = scenario("virtual")
        venues = dict(cfg.venues)
        for name in ("alpha", "beta"):  # inventory for the whole stream (it trades one way)
            venues[name] = replace(venues[name], balances={**venues[name].balances, "BTC": 1e6, "USDT": 1e9})
        self.cfg = replace(cfg, venues=venues)
        self.reg = registry_of(self.cfg)
        ticks = quote_ticks(n_ticks, EVERY_K).view(S.GENERIC).copy()
        ticks["instrument"] = ticks["venue"]  # alpha-BTCUSDT is instrument 1 on venue 1, beta's 2 on 2
        ticks["ts_ns"] = T0 + (np.arange(n_ticks) + 1) * TICK_NS
        ticks["source"] = S.Source.VENUE
        self.ticks = ticks
        self.timers = [S.timer_record(int(t)) for t in ticks["ts_ns"]]

    def engine(self, root: Path) -> tuple[EngineCore, JournalWriter, VenueAnswers]:
        cfg, reg = self.cfg, self.reg
        core = EngineCore(
            reg,
            rules_of(cfg),
            policy_of(cfg),
            {},
            T0,
            fixed_marks=fixed_marks_of(cfg),
            builtin_signals=cfg.signals.builtin,
        )
        journal = JournalWriter(root / "journal", cfg.journal)
        start = []
        for venue, v in sorted(cfg.venues.items()):
            for asset, amount in sorted(v.balances.items()):
                rec = S.empty(S.Kind.BALANCE_UPDATE)
                rec["ts_ns"], rec["source"], rec["sub"] = T0, S.Source.RUNNER, INITIAL_BALANCE
                rec["venue"], rec["aux"], rec["free"] = reg.venue(venue), reg.asset(asset), amount
                start.append(rec.view(S.GENERIC))
        batch = np.concatenate([*start, S.timer_record(T0)]).view(S.GENERIC)
        journal.append(batch)
        _emit(core, batch, journal, None)
        return core, journal, VenueAnswers(cfg, reg)

    def run(self) -> float:
        """Seconds to decide every tick (one batch each, journaled), answers fed back."""
        root = Path(tempfile.mkdtemp(prefix="basis-peer-"))
        try:
            core, journal, venue = self.engine(root)
            ticks, timers, n = self.ticks, self.timers, len(self.ticks)
            answers = S.aligned_empty(0)
            t0 = time.perf_counter()
            for k in range(n):
                batch = np.concatenate([answers, ticks[k : k + 1], timers[k]]).view(S.GENERIC)
                journal.append(batch)
                cmds = _emit(core, batch, journal, None)
                answers = venue.answer(cmds, int(timers[k]["ts_ns"][0])) if len(cmds) else answers[:0]
            elapsed = time.perf_counter() - t0
            journal.close()
        finally:
            shutil.rmtree(root, ignore_errors=True)
        c, want = core.counters, n // EVERY_K
        if c.signals_seen != want or c.orders_submitted != 2 * want:
            raise AssertionError(
                f"basis peer: {c.signals_seen} decisions, {c.orders_submitted} orders "
                f"(the workload holds {want} opportunities) rejected: {c.rejected}"
            )
        if c.orders_filled != 2 * want or c.hedges_completed != want:
            raise AssertionError(
                f"basis peer: {c.orders_filled} orders filled, {c.hedges_completed} hedges completed of {want}"
            )
        return elapsed


_basis: dict[int, BasisSide] = {}


def run_basis(loops: int) -> float:
    n = _opts["ticks"]
    side = _basis.setdefault(n, BasisSide(n))
    return sum(side.run() for _ in range(loops))


_engines: dict[bool, tuple] = {}
_opts = {"ticks": 100_000}


def run(loops: int, send_orders: bool) -> float:
    """Seconds for `loops` runs of the whole stream (pyperf's inner loops = ticks per run)."""
    if send_orders not in _engines:
        _engines[send_orders] = build(_opts["ticks"], send_orders)
    engine, strategy = _engines[send_orders]
    n = _opts["ticks"]
    total = 0.0
    for _ in range(loops):
        engine.reset()
        strategy.ticks = strategy.decisions = strategy.submitted = strategy.outcomes = 0
        t0 = time.perf_counter()
        engine.run()
        total += time.perf_counter() - t0
        want = n // EVERY_K
        if strategy.ticks != n or strategy.decisions != want:
            raise AssertionError(
                f"nautilus peer: {strategy.ticks} of {n} ticks seen, {strategy.decisions} "
                f"decisions (the workload holds {want})"
            )
        if send_orders and (strategy.submitted != 2 * want or strategy.outcomes != strategy.submitted):
            raise AssertionError(
                f"nautilus peer: {strategy.submitted} orders submitted, {strategy.outcomes} "
                f"filled or rejected (want {2 * want} of each)"
            )
    return total


def _add_args(cmd, args) -> None:
    cmd.extend(["--ticks", str(args.ticks)])


def main() -> int:
    if nautilus_trader is None:
        print(
            "peers: NautilusTrader is not installed (pip install 'basis[peers]' or nautilus_trader); "
            "skipping the peer suite",
            file=sys.stderr,
        )
        return SKIPPED
    runner = pyperf.Runner(processes=2, values=3, add_cmdline_args=_add_args)
    runner.argparser.add_argument(
        "--ticks", type=int, default=None, help="quote ticks per run (default 100,000; --fast 20,000)"
    )
    args = runner.parse_args()
    if args.ticks is None:
        args.ticks = 20_000 if args.fast else 100_000
    _opts["ticks"] = args.ticks
    runner.metadata["peer"] = f"nautilus_trader {nautilus_trader.__version__} BacktestEngine"
    runner.metadata["peer_workload"] = f"{args.ticks} quote ticks, 2 venues, one opportunity every {EVERY_K}"
    runner.metadata["peer_basis"] = (
        "EngineCore.step per tick (default scenario policy), journal on, procs._emit; orders answered"
    )
    runner.bench_time_func("PeerThroughput[nautilus]", run, True, inner_loops=args.ticks)
    runner.bench_time_func("PeerThroughput[nautilus,noorders]", run, False, inner_loops=args.ticks)
    runner.bench_time_func("PeerThroughput[basis]", run_basis, inner_loops=args.ticks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
