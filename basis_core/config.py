"""The run configuration: one TOML file (a *scenario*), loaded into frozen, validated objects.

Sections (all optional except where noted; defaults are safe for the embedded simulation):

    [run]          name, seed, duration_s, out_dir, clock ("virtual" | "real"), start_ns
    [journal]      segment_records, fsync ("every_n" | "segment" | "never"), fsync_every,
                   checkpoint_every_records (engine state snapshots, 0 = none), checkpoint_keep
    [rings]        md_slots, order_slots, exec_slots (powers of two), wait ("spin" | "yield" | "sleep")
    [cpu]          engine, io (core numbers, -1 = do not pin), feeds (array), realtime
    [venues.NAME]  kind ("sim" | "ccxt" | "web3"), taker_fee_bps, maker_fee_bps,
                   fee_asset ("quote" | "received" | an asset such as "BNB"), fee_asset_price,
                   funding_interval_s, balances (table asset = amount),
                   queue_model ("pro_rata" | "back": where other participants' cancels
                   leave a price level's queue, ahead of our resting order or behind it;
                   seeded by run.seed; adapters/sim/queue.py),
                   [venues.NAME.latency] request_ms, response_ms, jitter_ms, fill_ms, market_ms,
                   balance_lag_ms, timeout_ms
                   [venues.NAME.ccxt] (kind "ccxt") exchange, base_url, credentials ...
                   (adapters/ccxt/config.py)
                   [venues.NAME.web3] (kind "web3") rpc_url, chain_id, pools, tokens, key_env ...
                   (adapters/web3/config.py)
    [instruments.NAME]  venue, symbol, base, quote, kind ("spot" | "perp"), tick, lot,
                   min_notional, max_qty (0 = none), leverage (perps)
    [limits]       max_order_usdt, max_position_usdt, max_residual_usdt, hedge_window_s,
                   unwind_window_s, max_slippage_bps, min_edge_bps
    [transfers]    delay_s, confirmations, confirm_interval_s
    [market]       source ("synthetic" | "recorded"); synthetic: the generator's parameters
                   (see MarketConfig); recorded: books, trades (CSV/Parquet paths, relative to
                   the scenario file)
    [[faults]]     kind, venue, instrument, start_s, duration_s, on, nth, count, probability,
                   retry_after_s, reached, reason, delay_s, magnitude (see FaultConfig)
    [policy]       the rest of the execution policy (basis_core/engine/policy.py): dispatch
                   ("simultaneous" | "primary_then_hedge"), execution ("taker" | "sliced" |
                   "maker_taker", with slice_interval_ms, slice_residual_fraction, max_slices;
                   maker_ttl_ms, maker_reprice_bps, maker_max_quotes, maker_max_rejects),
                   fill_ratio_degrade/breach, volatility
                   levels, verification and reconciliation intervals ...; the seven limits
                   above are set in [limits] only
    [signals]      builtin (the cross-venue spread / basis scanner), file (JSON lines of
                   external signals, relative to the scenario file)
    [alerts]       command (run with the alert as JSON on stdin) or webhook_env (the environment
                   variable holding the http(s) URL the alert is POSTed to), min_interval_s (per
                   kind of alert, on the run's clock)
    [observe]      metrics_port (Prometheus text on 127.0.0.1, 0 = off), status_port (the live
                   status page on 127.0.0.1, 0 = off), sample_ms (how often the run is read)
    [cluster]      shared limits through NATS JetStream: servers, engine_id, venues, instruments,
                   credentials' variable names, bucket, lease_s, chunk_fraction, on_halted
                   (basis_core/cluster/config.py)

`basis check FILE` validates a file and prints each error with its key path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .cluster.config import ClusterConfig
from .configio import build, load_toml, require
from .engine.policy import PolicyConfig
from .errors import ConfigError
from .registry import Registry
from .schema import RejectReason

#: the longest run (seconds of the scenario's clock): a generated market is made for the whole run
#: up front, and every timestamp of the run stays far inside int64 nanoseconds
MAX_DURATION_S = 86_400.0
MAX_START_NS = 2**62  # the virtual clock's latest origin (year 2116): start + duration fits int64
MAX_SEED = 2**32 - 1
MAX_MARKET_CELLS = 2**24  # steps x levels of a generated market (its depth noise: 256 MiB)


@dataclass(frozen=True)
class RunConfig:
    name: str = "default"
    seed: int = 7
    duration_s: float = 10.0
    out_dir: str = "runs"
    clock: Literal["virtual", "real"] = "virtual"  # virtual: simulated venues' time drives the run
    start_ns: int = 1_767_225_600_000_000_000  # virtual clock origin (2026-01-01T00:00:00Z)

    def _validate(self, path):
        require(
            0 < self.duration_s <= MAX_DURATION_S, f"{path}.duration_s", f"must be in (0, {MAX_DURATION_S:g}]"
        )
        require(0 <= self.start_ns <= MAX_START_NS, f"{path}.start_ns", "must be in [0, 2**62]")
        require(0 <= self.seed <= MAX_SEED, f"{path}.seed", f"must be in 0..{MAX_SEED}")


@dataclass(frozen=True)
class JournalConfig:
    segment_records: int = 1 << 20
    fsync: Literal["every_n", "segment", "never"] = "segment"
    fsync_every: int = 4096
    #: the engine writes a checkpoint of its state every this many journaled records (0 = none)
    checkpoint_every_records: int = 200_000
    #: checkpoints kept (the newest ones; a restart falls back to an older one if the newest is bad)
    checkpoint_keep: int = 2

    def _validate(self, path):
        require(self.segment_records >= 16, f"{path}.segment_records", "must be >= 16")
        require(self.fsync_every >= 1, f"{path}.fsync_every", "must be >= 1")
        require(self.checkpoint_every_records >= 0, f"{path}.checkpoint_every_records", "must be >= 0")
        require(self.checkpoint_keep >= 1, f"{path}.checkpoint_keep", "must be >= 1")


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class RingsConfig:
    md_slots: int = 1 << 16
    order_slots: int = 1 << 12
    exec_slots: int = 1 << 12
    wait: Literal["spin", "yield", "sleep"] = "yield"

    def _validate(self, path):
        for name in ("md_slots", "order_slots", "exec_slots"):
            require(_pow2(getattr(self, name)), f"{path}.{name}", "must be a power of two")


@dataclass(frozen=True)
class CpuConfig:
    engine: int = -1
    io: int = -1
    feeds: tuple[int, ...] = ()
    realtime: bool = False


@dataclass(frozen=True)
class LatencyConfig:
    """Delays of a simulated venue, in milliseconds; the simulated venue takes this object as it is
    (adapters.sim.venue.Latency) and turns a delay into seconds where it sleeps."""

    request_ms: float = 4.0
    response_ms: float = 4.0
    jitter_ms: float = 1.0
    fill_ms: float = 2.0
    market_ms: float = 1.0
    balance_lag_ms: float = 250.0
    timeout_ms: float = 1000.0

    def _validate(self, path):
        for name in ("request_ms", "response_ms", "jitter_ms", "fill_ms", "market_ms", "balance_lag_ms"):
            require(getattr(self, name) >= 0, f"{path}.{name}", "must be >= 0")
        require(
            self.timeout_ms > self.request_ms + self.response_ms,
            f"{path}.timeout_ms",
            "must be longer than request_ms + response_ms",
        )


@dataclass(frozen=True)
class VenueConfig:
    kind: Literal["sim", "ccxt", "web3"] = "sim"
    taker_fee_bps: float = 10.0
    maker_fee_bps: float = 2.0
    fee_asset: str = "quote"  # "quote" | "received" | an asset name (valued at fee_asset_price)
    fee_asset_price: float = 0.0  # quote per unit of a named fee asset
    funding_interval_s: float = 28_800.0
    balances: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    #: simulated (and paper) venues: where other participants' cancels leave a price level that
    #: holds our resting order (adapters/sim/queue.py). "pro_rata": each cancelled lot is any of
    #: the level's other lots with equal probability (draws seeded by run.seed), so our place
    #: improves by the share ahead of us on average; "back": cancels leave from the back of the
    #: queue (behind us first). Either way we join the back, trades take the queue from the
    #: front and growth joins behind us
    queue_model: Literal["pro_rata", "back"] = "pro_rata"
    #: kind "ccxt": the `[venues.NAME.ccxt]` table (exchange, base_url, credentials ...), checked
    #: by adapters/ccxt/config.py when the run builds the venue
    ccxt: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: kind "web3": the `[venues.NAME.web3]` table (RPC URLs, chain id, pools, tokens, key source,
    #: gas caps, confirmations), checked by adapters/web3/config.py when the run builds the venue
    web3: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def _validate(self, path):
        require(
            not self.ccxt or self.kind == "ccxt",
            f"{path}.ccxt",
            f"a venue of kind {self.kind!r} takes no ccxt table",
        )
        require(
            not self.web3 or self.kind == "web3",
            f"{path}.web3",
            f"a venue of kind {self.kind!r} takes no web3 table",
        )
        require(0 <= self.taker_fee_bps < 1000, f"{path}.taker_fee_bps", "must be in [0, 1000)")
        require(-100 < self.maker_fee_bps < 1000, f"{path}.maker_fee_bps", "must be in (-100, 1000)")
        require(bool(self.fee_asset), f"{path}.fee_asset", "must be quote, received or an asset name")
        if self.fee_asset not in ("quote", "received"):
            require(
                self.fee_asset_price > 0,
                f"{path}.fee_asset_price",
                f"must be > 0 when fees are charged in {self.fee_asset}",
            )
        require(self.funding_interval_s > 0, f"{path}.funding_interval_s", "must be > 0")
        for asset, amount in self.balances.items():
            require(amount >= 0, f"{path}.balances.{asset}", "must be >= 0")


DEFAULT_LEVERAGE = 5.0  # a perp's leverage when its [instruments.NAME] does not set one


@dataclass(frozen=True)
class InstrumentConfig:
    venue: str
    symbol: str
    base: str
    quote: str = "USDT"
    kind: Literal["spot", "perp"] = "spot"
    tick: float = 0.01
    lot: float = 1e-5
    min_notional: float = 5.0
    max_qty: float = 0.0  # 0 = no maximum
    leverage: float = DEFAULT_LEVERAGE  # perps: margin = notional / leverage

    def _validate(self, path):
        for name in ("tick", "lot"):
            require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
        require(self.min_notional >= 0, f"{path}.min_notional", "must be >= 0")
        require(self.max_qty >= 0, f"{path}.max_qty", "must be >= 0 (0 = no maximum)")
        require(0 < self.leverage <= 125, f"{path}.leverage", "must be in (0, 125]")
        require(self.base != self.quote, f"{path}.quote", "must differ from base")
        # the simulated venues need whole atoms (1e-8) per lot and per tick*lot
        for name, value in (("lot", self.lot), ("tick", self.tick * self.lot)):
            atoms = value * 1e8
            require(
                atoms < 2**53 and abs(atoms - round(atoms)) <= 1e-6 and round(atoms) >= 1,
                f"{path}.{name}",
                f"{'lot' if name == 'lot' else 'tick*lot'} = {value:g} is not a whole number of 1e-8 units"
                " (below 2**53 of them)",
            )


@dataclass(frozen=True)
class LimitsConfig:
    """Risk limits of the run, in USDT and seconds (the orchestrator enforces them)."""

    max_order_usdt: float = 5_000.0
    max_position_usdt: float = 20_000.0
    max_residual_usdt: float = 2_000.0
    hedge_window_s: float = 2.0
    unwind_window_s: float = 10.0
    max_slippage_bps: float = 10.0
    min_edge_bps: float = 5.0

    def _validate(self, path):
        for name in (
            "max_order_usdt",
            "max_position_usdt",
            "max_residual_usdt",
            "hedge_window_s",
            "unwind_window_s",
            "max_slippage_bps",
        ):
            require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
        require(
            self.max_order_usdt <= self.max_position_usdt,
            f"{path}.max_order_usdt",
            "must be <= max_position_usdt",
        )


@dataclass(frozen=True)
class TransfersConfig:
    delay_s: float = 30.0
    confirmations: int = 3
    confirm_interval_s: float = 10.0

    def _validate(self, path):
        require(self.delay_s >= 0, f"{path}.delay_s", "must be >= 0")
        require(self.confirmations >= 1, f"{path}.confirmations", "must be >= 1")
        require(self.confirm_interval_s > 0, f"{path}.confirm_interval_s", "must be > 0")


@dataclass(frozen=True)
class MarketConfig:
    """The market the simulated venues see (adapters/sim/market.py documents the model)."""

    source: Literal["synthetic", "recorded"] = "synthetic"
    books: str = ""  # recorded: CSV/Parquet of level changes
    trades: str = ""  # recorded: CSV/Parquet of public trades
    start_price: float = 50_000.0
    step_s: float = 0.1
    vol_bps: float = 3.0  # common factor, bps per sqrt(second)
    noise_bps: float = 1.0  # per-listing mean-reverting noise
    revert_s: float = 1.5  # half-life of dislocations
    dislocations_per_min: float = 6.0
    dislocation_bps: float = 25.0  # mean jump size (exponential)
    basis_bps: float = 8.0  # perp premium over spot, mean
    basis_noise_bps: float = 2.0
    basis_jumps_per_min: float = 1.0
    basis_jump_bps: float = 25.0
    funding_factor: float = 1.0  # funding rate per interval = premium * factor
    funding_update_s: float = 1.0
    levels: int = 10
    half_spread_bps: float = 0.5
    level_step_bps: float = 0.5
    level_qty: float = 0.5  # base units at the touch
    depth_growth: float = 0.3
    depth_noise: float = 0.25
    trades_per_s: float = 4.0  # other participants' market orders, per listing
    trade_qty: float = 0.05

    def _validate(self, path):
        if self.source == "recorded":
            require(
                bool(self.books or self.trades),
                f"{path}.books",
                "a recorded market needs books and/or trades",
            )
        require(
            math.isfinite(self.start_price) and self.start_price > 0, f"{path}.start_price", "must be > 0"
        )
        require(0 < self.step_s <= 60, f"{path}.step_s", "must be in (0, 60]")
        for name in (
            "vol_bps",
            "noise_bps",
            "dislocations_per_min",
            "dislocation_bps",
            "basis_noise_bps",
            "basis_jumps_per_min",
            "basis_jump_bps",
            "half_spread_bps",
            "depth_growth",
            "depth_noise",
            "trades_per_s",
        ):
            require(getattr(self, name) >= 0, f"{path}.{name}", "must be >= 0")
        for name in ("revert_s", "funding_update_s", "level_step_bps", "level_qty", "trade_qty"):
            require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
        require(1 <= self.levels <= 1000, f"{path}.levels", "must be in 1..1000")


FAULT_KINDS = (
    "timeout",
    "rate_limit",
    "maintenance",
    "reject",
    "ack_lost",
    "cancel_fill_race",
    "fill_after_cancel_ack",
    "balance_delay",
    "balance_reorder",
    "transfer_delay",
    "volatility_spike",
    "price_gap",
)
WINDOW_FAULTS = ("rate_limit", "maintenance", "balance_delay", "volatility_spike", "price_gap")
FAULT_EVENTS = ("submit", "cancel", "request", "balance", "transfer")


@dataclass(frozen=True)
class FaultConfig:
    """One `[[faults]]` entry (adapters/sim/faults.py documents each kind)."""

    kind: str
    venue: str = "*"
    instrument: str = "*"
    start_s: float = 0.0
    duration_s: float = math.inf
    on: str = ""
    nth: int = 0
    count: int = 1
    probability: float = 1.0
    retry_after_s: float = 1.0
    reached: str = "random"
    reason: str = "insufficient_funds"
    delay_s: float = 5.0
    magnitude: float = 3.0

    def _validate(self, path):
        require(
            self.kind in FAULT_KINDS,
            f"{path}.kind",
            f"must be one of {', '.join(FAULT_KINDS)}, got {self.kind!r}",
        )
        require(0 <= self.start_s <= MAX_DURATION_S, f"{path}.start_s", f"must be in [0, {MAX_DURATION_S:g}]")
        require(
            0 < self.duration_s <= MAX_DURATION_S or self.duration_s == math.inf,
            f"{path}.duration_s",
            f"must be in (0, {MAX_DURATION_S:g}], or left out for a window without an end",
        )
        require(self.on in ("",) + FAULT_EVENTS, f"{path}.on", f"must be one of {', '.join(FAULT_EVENTS)}")
        require(self.nth >= 0, f"{path}.nth", "must be >= 0")
        require(self.count >= 0, f"{path}.count", "must be >= 0 (0 = unlimited)")
        require(0 < self.probability <= 1, f"{path}.probability", "must be in (0, 1]")
        require(self.retry_after_s >= 0, f"{path}.retry_after_s", "must be >= 0")
        require(self.reached in ("yes", "no", "random"), f"{path}.reached", "must be yes, no or random")
        require(
            self.reason.upper() in RejectReason.__members__,
            f"{path}.reason",
            f"must be a reject reason ({', '.join(r.name.lower() for r in RejectReason)})",
        )
        require(self.delay_s >= 0, f"{path}.delay_s", "must be >= 0")
        require(
            self.kind != "price_gap" or math.isfinite(self.duration_s),
            f"{path}.duration_s",
            "a price_gap needs a finite duration (how long prices are not published)",
        )
        if self.kind in WINDOW_FAULTS:
            require(not self.on, f"{path}.on", f"{self.kind} is a time window; it takes no event trigger")

    @property
    def trigger(self) -> str:
        return self.on or _DEFAULT_ON.get(self.kind, "")

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


_DEFAULT_ON = {
    "timeout": "submit",
    "reject": "submit",
    "ack_lost": "submit",
    "cancel_fill_race": "cancel",
    "fill_after_cancel_ack": "cancel",
    "balance_reorder": "balance",
    "transfer_delay": "transfer",
}


@dataclass(frozen=True)
class AlertsConfig:
    """Who hears of HALTED, PROTECTIVE, a reconciliation mismatch or a venue DOWN while a run goes
    on (basis_core/engine/alerts.py): a command (split like a shell line, run without one, the
    alert as one JSON object on its stdin) or a webhook (the JSON POSTed), never both; each
    kind of alert at most once every `min_interval_s` of the run's clock (the ones in between are
    counted into the next). A webhook URL usually carries a token, so the config names the
    environment variable that holds it (`webhook_env`), never the URL: it stays out of
    scenario.json and every other file the run writes."""

    command: str = ""
    webhook_env: str = ""
    min_interval_s: float = 60.0

    def _validate(self, path):
        require(
            not (self.command and self.webhook_env),
            f"{path}.webhook_env",
            "set command or webhook_env, not both",
        )
        require(
            not self.webhook_env or self.webhook_env.replace("_", "").isalnum(),
            f"{path}.webhook_env",
            "must be the name of an environment variable (letters, digits, _)",
        )
        require(
            math.isfinite(self.min_interval_s) and 0 <= self.min_interval_s <= MAX_DURATION_S,
            f"{path}.min_interval_s",
            f"must be in [0, {MAX_DURATION_S:g}] s",
        )


@dataclass(frozen=True)
class SignalsConfig:
    """Where signals come from: the built-in cross-venue spread and basis scanner, and/or a
    JSON-lines file of external signals (one object per line, see basis_core/engine/signals.py)."""

    builtin: bool = True
    file: str = ""


@dataclass(frozen=True)
class ObserveConfig:
    """What a running engine shows (basis_core/observe/): Prometheus metrics and the live status
    page, each on its own port of 127.0.0.1 only (0 = not served), read from the run every
    `sample_ms` of the run's clock."""

    metrics_port: int = 0
    status_port: int = 0
    sample_ms: float = 500.0

    def _validate(self, path):
        for name in ("metrics_port", "status_port"):
            require(
                0 <= getattr(self, name) <= 65535, f"{path}.{name}", "must be a port in 0..65535 (0 = off)"
            )
        require(
            self.metrics_port == 0 or self.metrics_port != self.status_port,
            f"{path}.status_port",
            "must differ from metrics_port",
        )
        require(10.0 <= self.sample_ms <= 60_000.0, f"{path}.sample_ms", "must be in [10, 60000] ms")


#: [limits] key -> the PolicyConfig field it sets (and that [policy] must then leave alone)
LIMIT_FIELDS = {
    "min_edge_bps": "min_edge_bps",
    "max_slippage_bps": "max_slippage_bps",
    "max_order_usdt": "max_order_notional_usdt",
    "max_position_usdt": "max_exposure_usdt",
    "max_residual_usdt": "max_residual_usdt",
    "hedge_window_s": "hedge_window_ms",
    "unwind_window_s": "unwind_window_ms",
}


def policy_limit(key: str, value: float) -> tuple[str, float]:
    """A [limits] key and value as the PolicyConfig field it sets and that field's value (the
    windows are seconds in [limits], milliseconds in the policy). A KeyError for another key."""
    return LIMIT_FIELDS[key], value * 1e3 if key.endswith("_s") else value


def limit_key(index: int) -> str:
    """The [limits] key that a SET_LIMIT control names by its index (LIMIT_FIELDS order)."""
    return list(LIMIT_FIELDS)[index]


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    rings: RingsConfig = field(default_factory=RingsConfig)
    cpu: CpuConfig = field(default_factory=CpuConfig)
    venues: Mapping[str, VenueConfig] = field(default_factory=lambda: MappingProxyType({}))
    instruments: Mapping[str, InstrumentConfig] = field(default_factory=lambda: MappingProxyType({}))
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    transfers: TransfersConfig = field(default_factory=TransfersConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    faults: tuple[FaultConfig, ...] = ()
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    #: several engines sharing limits through NATS (not yet run: `basis run` refuses it)
    cluster: ClusterConfig | None = None
    #: directory of the file this config came from (relative data paths resolve against it)
    base_dir: str = field(default="", init=False, compare=False)

    def _validate(self, path):
        if self.market.source == "synthetic":
            # the generated market is made for the whole run up front: depth for every step and level
            size = self.run.duration_s / self.market.step_s * self.market.levels
            require(
                size <= MAX_MARKET_CELLS,
                "market.step_s",
                f"run.duration_s / step_s * levels = {size:,.0f} depth cells, more than the "
                f"{MAX_MARKET_CELLS:,} a generated market holds: a longer step_s or fewer levels",
            )
        default = PolicyConfig()
        for key, fname in LIMIT_FIELDS.items():
            require(
                getattr(self.policy, fname) == getattr(default, fname),
                f"policy.{fname}",
                f"set this limit in [limits].{key}",
            )
        for name, inst in self.instruments.items():
            require(
                inst.venue in self.venues,
                f"instruments.{name}.venue",
                f"names venue {inst.venue!r}, which is not in [venues] ({', '.join(self.venues) or 'none'})",
            )
        for i, fault in enumerate(self.faults):
            require(
                fault.venue == "*" or fault.venue in self.venues,
                f"faults[{i}].venue",
                f"names venue {fault.venue!r}, which is not in [venues]",
            )
            require(
                fault.instrument == "*" or fault.instrument in self.instruments,
                f"faults[{i}].instrument",
                f"names instrument {fault.instrument!r}, which is not in [instruments]",
            )
        if self.cluster is not None:
            self.cluster.check_shard(self.venues, self.instruments, "cluster")

    def registry(self) -> Registry:
        """Ids for this config's venues, instruments and assets, in file order."""
        reg = Registry()
        for name in self.venues:
            reg.venues.add(name)
        for name, inst in self.instruments.items():
            reg.instruments.add(name)
            reg.assets.add(inst.base)
            reg.assets.add(inst.quote)
        for venue in self.venues.values():
            for asset in venue.balances:
                reg.assets.add(asset)
            if venue.fee_asset not in ("quote", "received"):
                reg.assets.add(venue.fee_asset)
        return reg

    def data_path(self, relative: str) -> Path:
        """A data file named in the config, resolved against the config file's directory."""
        p = Path(relative)
        return p if p.is_absolute() or not self.base_dir else Path(self.base_dir) / p


def load(path: str | Path) -> Config:
    """Load and validate a config file. Raises ConfigError naming the offending key path."""
    cfg = build(Config, load_toml(path))
    object.__setattr__(cfg, "base_dir", str(Path(path).resolve().parent))
    return cfg


def from_dict(data: dict, base_dir: str = "") -> Config:
    cfg = build(Config, data)
    object.__setattr__(cfg, "base_dir", base_dir)
    return cfg


__all__ = [
    "Config",
    "ConfigError",
    "CpuConfig",
    "FaultConfig",
    "InstrumentConfig",
    "JournalConfig",
    "LatencyConfig",
    "LimitsConfig",
    "MarketConfig",
    "RingsConfig",
    "RunConfig",
    "TransfersConfig",
    "VenueConfig",
    "from_dict",
    "load",
]
