"""Pinned-core process layout: which core runs the engine, the io process and feed processes.

`[cpu]` in the config names cores (-1 = leave unpinned). `plan` turns that into a per-role
placement for this host, degrading with a stated reason when the host has fewer cores than the
layout asks for (two roles sharing a core is allowed, but said). `apply` pins the calling
process with os.sched_setaffinity and, when asked and permitted, raises it to SCHED_FIFO.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .config import CpuConfig


@dataclass(frozen=True)
class Placement:
    role: str
    core: int | None  # None: not pinned
    note: str = ""


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def plan(cfg: CpuConfig, cores: list[int] | None = None) -> list[Placement]:
    """Decide where each role runs on this host. Never raises for a too-small host: says so."""
    cores = available_cores() if cores is None else cores
    wanted = [("engine", cfg.engine), ("io", cfg.io)] + [(f"feed{i}", c) for i, c in enumerate(cfg.feeds)]
    out: list[Placement] = []
    used: dict[int, str] = {}
    for role, core in wanted:
        if core < 0:
            out.append(Placement(role, None, "not pinned ([cpu] leaves it to the scheduler)"))
            continue
        if core not in cores:
            fallback = cores[-1] if role == "engine" else cores[0]
            out.append(
                Placement(
                    role, fallback, f"core {core} is not available here (have {cores}); using {fallback}"
                )
            )
            core = fallback
        else:
            note = f"shares core {core} with {used[core]}" if core in used else ""
            out.append(Placement(role, core, note))
        used.setdefault(core, role)
    return out


def apply(placement: Placement, realtime: bool = False) -> str:
    """Pin the calling process per `placement`; returns a one-line description for the run output."""
    parts = [f"{placement.role}:"]
    if placement.core is None:
        parts.append("unpinned")
    else:
        os.sched_setaffinity(0, {placement.core})
        parts.append(f"core {placement.core}")
    if placement.note:
        parts.append(f"({placement.note})")
    if realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            parts.append("SCHED_FIFO")
        except (PermissionError, OSError) as exc:
            parts.append(f"realtime priority refused ({exc.strerror or exc}); running SCHED_OTHER")
    return " ".join(parts)


def _core_ticks() -> dict[int, tuple[int, int]]:
    ticks: dict[int, tuple[int, int]] = {}
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                name, *fields = line.split()
                vals = [int(v) for v in fields]
                idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
                ticks[int(name[3:])] = (sum(vals), idle)
    return ticks


def core_busy_fraction(core: int, window_s: float = 0.2) -> float | None:
    """Fraction of `window_s` that `core` spent busy (any process), from /proc/stat; None if unknown."""
    try:
        a = _core_ticks()
        time.sleep(window_s)
        b = _core_ticks()
    except OSError:
        return None
    if core not in a or core not in b:
        return None
    total = b[core][0] - a[core][0]
    idle = b[core][1] - a[core][1]
    return None if total <= 0 else max(0.0, min(1.0, 1.0 - idle / total))


def busy_warning(core: int | None, threshold: float = 0.5, window_s: float = 0.2) -> str | None:
    """A warning line if the engine's core is already busy with other work before the engine starts."""
    if core is None:
        return None
    frac = core_busy_fraction(core, window_s)
    if frac is not None and frac >= threshold:
        return (
            f"warning: engine core {core} was {frac:.0%} busy before start; other processes share it "
            f"(isolate it with isolcpus= or pick another core in [cpu])"
        )
    return None
