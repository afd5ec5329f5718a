"""The compiled gate and sizing of a signal (kernels/decide.py `gate_size_nb`), as the engine
calls it: the Python path of engine/decisions.py (`_gate`, then `_size`) in one numba call.

`CompiledDecision` holds the kernel's tables: the rules (ids, scanner base, lot, tick, fees,
leverage) and the policy's limits, refreshed when the policy object changes (an operator's
set-limit). The working orders are OrderManager's table (kept as orders are created, fill and
end); the open positions' capital table is rebuilt when a position changed state. Per call the
caller's scalars go in: the engine state, the venues' health, exhausted fee assets, the four
inventory / transfer amounts the pair needs (written from many places of the engine, so read
where they live). A clustered run (`core.allowance`, engine/allowance.py) decides on the
Python path: its shared-limit cap is not in the kernel yet.

The Python path stays the reference: `BASIS_DECISION_PATH=python` (or `core.decider = None`)
decides with it, and tests require both to send byte-identical commands.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .. import schema as S
from ..kernels import decide as K
from ..kernels import sizing
from ..state.tables import NO_NEW_EXPOSURE, HedgeState
from .market import Sized
from .policy import PolicyConfig

if TYPE_CHECKING:
    from .parts import EngineParts

#: environment switch: "compiled" (the default) or "python" (the reference path)
PATH_ENV = "BASIS_DECISION_PATH"
_SETTLED = (HedgeState.RECONCILED, HedgeState.CLOSED, HedgeState.COMPLETE)
_REASONS = {int(r): r for r in S.RejectReason}
#: a creation time farther from zero than this takes the Python path (its ints do not overflow)
_SAFE_NS = 1 << 62


def wanted() -> bool:
    """Whether the compiled path is asked for (the environment switch; compiled by default)."""
    value = os.environ.get(PATH_ENV, "compiled")
    if value not in ("compiled", "python"):
        from ..errors import ConfigError

        raise ConfigError(PATH_ENV, f"{value!r}: expected 'compiled' or 'python'")
    return value == "compiled"


class CompiledDecision:
    """The engine's compiled gate and sizing (see module docstring)."""

    def __init__(self, core: EngineParts, fixed_marks: dict[str, float]):
        market = core.market
        sc = market.scanner
        self.index = {name: k for k, name in enumerate(market.names)}
        self.names = list(market.names)
        rules = core.rules
        self.rule_i = np.zeros((len(self.names), K.N_RI), dtype=np.int64)
        self.rule_f = np.zeros((len(self.names), K.N_RF), dtype=np.float64)
        #: per rule: its (venue, quote) key, and the sell leg's inventory key (base, or quote for a perp)
        self.buy_key: list[tuple[str, str]] = []
        self.sell_key: list[tuple[str, str]] = []
        for k, name in enumerate(self.names):
            r = rules[name]
            v, i = market.ids[name]
            self.rule_i[k] = (v, i, sc.base_index[r.base], r.kind == "spot", sizing.lot_units(r.lot))
            self.rule_f[k] = (r.tick, r.min_notional, r.taker_fee_bps, r.leverage)
            self.buy_key.append((r.venue, r.quote))
            self.sell_key.append((r.venue, r.base) if r.kind == "spot" else (r.venue, r.quote))
        marks = {"USDT": 1.0, **fixed_marks}
        self.base_fixed = np.array([marks.get(b, np.nan) for b in sc.bases], dtype=np.float64)
        self.base_of = {name: int(self.rule_i[k, K.RI_BASE]) for k, name in enumerate(self.names)}
        self.par = np.zeros(K.N_PAR, dtype=np.float64)
        self._policy: PolicyConfig | None = None
        self.positions = K.OpenPositions()
        self._open_len = -1
        self.out = np.zeros(K.N_DOUT, dtype=np.float64)
        b = market.books
        self.books = (b.px, b.qty, b.cnt, b.ts, b.status)
        self.scan = (sc.fstate, sc.istate)
        self.max_age_ns = market.max_age_ns

    def _refresh_policy(self, core: EngineParts) -> None:
        p = core.policy
        self.par[:] = (
            p.max_slippage_bps,
            p.min_edge_bps,
            p.strategy_budget_usdt,
            p.max_order_notional_usdt,
            p.max_exposure_usdt,
            float(self.max_age_ns),
        )
        self._policy = p

    def _rebuild_positions(self, core: EngineParts) -> None:
        base_of = self.base_of
        self.positions.rebuild(
            [
                (pos.qty, base_of[pos.buy.instrument])
                for pos in core.open_positions.values()
                if pos.state not in _SETTLED
            ]
        )
        self._open_len = len(core.open_positions)

    def gate_size(
        self,
        core: EngineParts,
        buy_name: str,
        sell_name: str,
        created_ns: int,
        ttl_us: int,
        qty_hint: float,
    ) -> tuple[Sized | None, S.RejectReason] | None:
        """(sized, reason) as `_gate` then `_size` give them; None: take the Python path (an
        asset with no mark, which that path reports; a clustered run's allowance; a signal
        created at an absurd time, whose staleness needs Python's unbounded ints)."""
        if getattr(core, "allowance", None) is not None:  # a clustered run's limits: not compiled yet
            return None
        if not -_SAFE_NS < created_ns < _SAFE_NS:  # (a SIGNAL's own time): `now - created` fits int64
            return None
        if core.policy is not self._policy:
            self._refresh_policy(core)
        if self.positions.dirty or len(core.open_positions) != self._open_len:
            self._rebuild_positions(core)
        kb, ks = self.index[buy_name], self.index[sell_name]
        rules = core.rules
        bl, sl = rules[buy_name], rules[sell_name]
        flags = 0
        if core.engine.state in NO_NEW_EXPOSURE:
            flags |= K.F_NO_NEW
        now = core.now
        board = core.board
        if not (board.can_dispatch(bl.venue, now) and board.can_dispatch(sl.venue, now)):
            flags |= K.F_NO_DISPATCH
        fe = core.fee_exhausted
        if fe and core.policy.on_fee_asset_exhausted == "stop" and (bl.venue in fe or sl.venue in fe):
            flags |= K.F_FEE_STOP
        inv, transit = core.inventory, core.in_transit
        kbuy, ksell = self.buy_key[kb], self.sell_key[ks]
        table = core.orders.table
        pos = self.positions
        out = self.out
        reason = K.gate_size_nb(
            *self.books,
            *self.scan,
            self.rule_i,
            self.rule_f,
            self.base_fixed,
            self.par,
            table.wi,
            table.wf,
            len(table.coids),
            pos.qty,
            pos.base,
            pos.n,
            kb,
            ks,
            now,
            created_ns,
            ttl_us,
            flags,
            inv.get(kbuy, 0.0),
            inv.get(ksell, 0.0),
            transit.get(kbuy, 0.0),
            transit.get(ksell, 0.0),
            qty_hint,
            out,
        )
        if reason == K.FALLBACK:
            return None
        if reason:
            return None, _REASONS[reason]
        qty, buy_limit, sell_limit, slip, touch_buy, touch_sell = out[: K.D_TOUCH_SELL + 1].tolist()
        return (qty, buy_limit, sell_limit, slip, slip, touch_buy, touch_sell), S.RejectReason.NONE

    def warm_up(self, core: EngineParts) -> None:
        """Compile (or load from cache) the kernel now; an expired signal changes nothing."""
        if self.names:
            self.gate_size(core, self.names[0], self.names[-1], 0, 0, 0.0)
