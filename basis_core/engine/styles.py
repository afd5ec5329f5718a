"""One scenario under each execution style, side by side (`basis styles`).

Each built style runs the same config (same seed, same market, same faults) through
`scenario.run_simulated`, the code path of `basis run`, into its own run directory, with only
`[policy] execution` changed; the figures compared are those of each run's report.json:
implementation shortfall (USDT and bps), realized PnL, fees, max residual exposure against
`max_residual_usdt`, asymmetric episodes and positions left open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config

#: every execution style issue #19 names, in the order compared
STYLES = ("taker", "sliced", "maker_taker")
#: the styles the engine has (`[policy] execution`)
BUILT = ("taker", "sliced", "maker_taker")


def with_style(cfg: Config, style: str) -> Config:
    """`cfg` with `[policy] execution = style` (its data paths still relative to its file); a
    style the engine does not have is a ConfigError."""
    if style not in BUILT:
        raise ConfigError("policy.execution", f"{style!r} is not built (built: {', '.join(BUILT)})")
    execution: Any = style  # PolicyConfig's Literal; its values are BUILT
    out = replace(cfg, policy=replace(cfg.policy, execution=execution))
    object.__setattr__(out, "base_dir", cfg.base_dir)  # not an init field: replace drops it
    return out


def run_styles(cfg: Config, out_dir: Path, progress: Callable[[str], None] = print) -> dict[str, dict | None]:
    """Run `cfg` under every built style into OUT_DIR/STYLE; each style's report (None: not built)."""
    from .scenario import run_simulated

    out: dict[str, dict | None] = {}
    for style in STYLES:
        if style not in BUILT:
            out[style] = None
            continue
        progress(f"{style}: running into {Path(out_dir) / style}")
        out[style] = run_simulated(with_style(cfg, style), Path(out_dir) / style, progress=progress)
    return out


def style_table(reports: dict[str, dict | None], limit_usdt: float) -> str:
    """The side-by-side table `basis styles` prints."""
    head = (
        "style",
        "shortfall USDT",
        "shortfall bps",
        "realized PnL",
        "fees",
        "max residual",
        "asym",
        "open",
    )
    rows = [head]
    for style, r in reports.items():
        if r is None:
            rows.append((style, "not built", "", "", "", "", "", ""))
            continue
        sf = r.get("implementation_shortfall") or {}
        residual = r["max_residual_exposure_usdt"]
        rows.append(
            (
                style,
                f"{sf.get('shortfall_usdt', float('nan')):,.2f}",
                f"{sf.get('shortfall_bps', float('nan')):.2f}",
                f"{r['realized_pnl_usdt']:,.2f}",
                f"{r['fees_usdt']:,.2f}",
                f"{residual:,.2f}" + (" OVER" if residual > limit_usdt else ""),
                str(r["asymmetric_episodes"]),
                str(len(r["open_positions"])),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.append(f"(USDT; max residual against max_residual_usdt = {limit_usdt:,.2f})")
    return "\n".join(lines)
