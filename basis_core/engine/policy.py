"""Execution policy: the thresholds every decision and every escalation is measured against.

Loaded from the `[policy]` table of a scenario; defaults are conservative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..configio import require


@dataclass(frozen=True)
class PolicyConfig:
    # signal handling
    min_edge_bps: float = 5.0  # net of taker fees and expected slippage
    signal_ttl_ms: float = 250.0  # built-in signals live this long
    stale_book_ms: float = 500.0  # a book older than this is unusable
    # order construction
    max_slippage_bps: float = 10.0  # per leg, against the touch at decision time
    max_order_notional_usdt: float = 25_000.0
    strategy_budget_usdt: float = 100_000.0
    max_exposure_usdt: float = 50_000.0  # per venue, gross
    # coordinated CEX execution
    dispatch: Literal["simultaneous", "primary_then_hedge"] = "simultaneous"
    # execution style: "taker" sends an opportunity as one pair of IOC legs; "sliced" splits it
    # into child slices, each completed (or unwound) before the next, each no larger than the
    # residual limit allows in flight (slice_residual_fraction of max_residual_usdt over the
    # leg's price) and than both books hold inside the slippage cap, slice_interval_ms apart
    # (from one slice's dispatch to the next), at most max_slices per opportunity
    # "maker_taker" rests a post-only primary (the buy leg) at the best price that keeps
    # min_edge_bps after the hedge leg's taker fee and slippage cap, sized like a slice, and
    # hedges each of its fills at once with a taker IOC on the other venue; the quote is
    # repriced (cancelled, then a new one) when that price falls below it or rises
    # maker_reprice_bps above it, and the opportunity ends when the price would sit behind the
    # best bid, after maker_ttl_ms, maker_max_quotes quotes or maker_max_rejects post-only
    # rejects in a row (engine/maker.py)
    execution: Literal["taker", "sliced", "maker_taker"] = "taker"
    # "taker" with taker_residual_cap: each opportunity is sized no larger than a slice (one leg
    # filled alone, valued at the highest price it can be valued at now, stays within
    # slice_residual_fraction of max_residual_usdt, less what open positions already put in
    # flight), so the residual limit holds by construction; off: sized to max_order_usdt
    taker_residual_cap: bool = True
    slice_interval_ms: float = 100.0
    slice_residual_fraction: float = 0.9
    max_slices: int = 50
    maker_ttl_ms: float = 5_000.0
    maker_reprice_bps: float = 2.0
    maker_max_quotes: int = 50
    maker_max_rejects: int = 3
    # the leg a maker_taker quote rests on: "buy" (a post-only buy, hedged by selling), "sell"
    # (a post-only sell, hedged by buying on the buy leg's venue) or "best" (per opportunity,
    # the side whose quote keeps more edge after both fees at its price; the buy on a tie)
    maker_side: Literal["buy", "sell", "best"] = "buy"
    # iceberg: a maker_taker quote shows only this fraction of its size (whole lots, at least
    # the venues' minimum notional); once that display part has filled and been hedged, the next
    # one is posted as a new order, at the back of its price level's queue (1.0: no iceberg)
    maker_display_fraction: float = 1.0
    hedge_window_ms: float = 1_500.0  # time from the first fill to a matched hedge
    fill_ratio_degrade: float = 0.95  # min(filled)/max(filled) below this: degrade
    fill_ratio_breach: float = 0.80  # below this at the end of the hedge window: breach
    max_residual_usdt: float = 2_000.0  # unhedged exposure tolerated inside the window
    hedge_max_retries: int = 3  # re-sends of a missing hedge quantity inside the window
    residual_tolerance_usdt: float = 5.0  # below this a position counts as flat
    unwind_window_ms: float = 3_000.0
    unwind_max_retries: int = 3
    unwind_aggression_bps: float = 30.0  # flatten with an IOC this far through the touch
    # failure modes
    healthy_window_ms: float = 2_000.0  # venue must be healthy this long before normal
    degraded_rate_factor: float = 0.25  # routing frequency while rate limited
    reroute_on_maintenance: bool = False
    # a venue's fee asset (BNB ...) ran out and its fees fall back to another asset: "restore"
    # trades on and buys back the base the venue kept as fees once it is a lot and the min
    # notional (engine/fees.py); "fallback" trades on and leaves that base short (counted as
    # exposure); "stop" refuses new entries there
    on_fee_asset_exhausted: Literal["restore", "fallback", "stop"] = "restore"
    verify_interval_ms: float = 250.0  # how often an UNKNOWN order is queried
    lost_after_ms: float = 3_000.0  # not found for this long after a timeout: never placed
    # volatility
    vol_halflife_ms: float = 2_000.0
    vol_tighten_bps: float = 15.0  # per-sqrt-second EWMA vol above which bounds tighten
    vol_reduce_bps: float = 30.0  # ... size is halved
    vol_protect_bps: float = 60.0  # ... no new exposure (PROTECTIVE)
    vol_halt_bps: float = 150.0  # ... HALTED
    # reconciliation
    reconcile_interval_ms: float = 1_000.0
    balance_lag_ms: float = 1_500.0

    def _validate(self, path):
        require(
            0 < self.fill_ratio_breach <= self.fill_ratio_degrade <= 1,
            f"{path}.fill_ratio_breach",
            "need 0 < fill_ratio_breach <= fill_ratio_degrade <= 1",
        )
        require(
            self.vol_tighten_bps <= self.vol_reduce_bps <= self.vol_protect_bps <= self.vol_halt_bps,
            f"{path}.vol_tighten_bps",
            "volatility levels must be ordered tighten <= reduce <= protect <= halt",
        )
        for name in (
            "signal_ttl_ms",
            "stale_book_ms",
            "hedge_window_ms",
            "unwind_window_ms",
            "healthy_window_ms",
            "verify_interval_ms",
            "reconcile_interval_ms",
            "max_order_notional_usdt",
            "strategy_budget_usdt",
            "max_exposure_usdt",
            "max_residual_usdt",
        ):
            require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
        require(self.unwind_max_retries >= 1, f"{path}.unwind_max_retries", "must be >= 1")
        require(self.slice_interval_ms >= 0, f"{path}.slice_interval_ms", "must be >= 0")
        require(0 < self.slice_residual_fraction <= 1, f"{path}.slice_residual_fraction", "must be in (0, 1]")
        require(1 <= self.max_slices <= 10_000, f"{path}.max_slices", "must be in [1, 10000]")
        require(self.maker_ttl_ms > 0, f"{path}.maker_ttl_ms", "must be > 0")
        require(self.maker_reprice_bps > 0, f"{path}.maker_reprice_bps", "must be > 0")
        require(1 <= self.maker_max_quotes <= 10_000, f"{path}.maker_max_quotes", "must be in [1, 10000]")
        require(self.maker_max_rejects >= 1, f"{path}.maker_max_rejects", "must be >= 1")
        require(0 < self.maker_display_fraction <= 1, f"{path}.maker_display_fraction", "must be in (0, 1]")
        require(0 < self.degraded_rate_factor <= 1, f"{path}.degraded_rate_factor", "must be in (0, 1]")
