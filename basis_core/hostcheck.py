"""`basis host-check`: what a tuned Linux host needs for basis, and what this host has.

Each line is `ok` or `warn` with the fix. Nothing here changes the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import CpuConfig
from .cpu import available_cores, plan


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str
    fix: str = ""


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpulist(text: str | None) -> set[int]:
    cores: set[int] = set()
    for part in (text or "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cores.update(range(int(lo), int(hi) + 1))
        elif part.isdigit():
            cores.add(int(part))
    return cores


def checks(cpu: CpuConfig, root: str = "/") -> list[Check]:
    """Run every check. `root` lets tests point at a fake /sys and /proc tree."""
    r = root.rstrip("/")
    out: list[Check] = []
    cores = available_cores()
    out.append(
        Check(
            "cores available",
            len(cores) >= 2,
            f"{len(cores)} ({cores})",
            "" if len(cores) >= 2 else "give the process at least 2 cores (engine + io)",
        )
    )

    isolated = _cpulist(_read(f"{r}/sys/devices/system/cpu/isolated"))
    cmdline = _read(f"{r}/proc/cmdline") or ""
    nohz = next((tok.split("=", 1)[1] for tok in cmdline.split() if tok.startswith("nohz_full=")), "")
    engine_isolated = cpu.engine >= 0 and cpu.engine in isolated
    out.append(
        Check(
            "isolated cores",
            engine_isolated,
            f"isolcpus={sorted(isolated) or 'none'} nohz_full={nohz or 'none'}",
            ""
            if engine_isolated
            else "boot with isolcpus=N nohz_full=N rcu_nocbs=N for the engine core and set [cpu] engine = N",
        )
    )

    governors = {}
    for c in cores:
        g = _read(f"{r}/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor")
        if g:
            governors[c] = g
    if governors:
        perf = all(g == "performance" for g in governors.values())
        out.append(
            Check(
                "cpu frequency governor",
                perf,
                ", ".join(f"cpu{c}={g}" for c, g in governors.items()),
                "" if perf else "cpupower frequency-set -g performance",
            )
        )
    else:
        out.append(
            Check("cpu frequency governor", True, "no cpufreq interface (virtual machine or fixed clock)")
        )

    thp = _read(f"{r}/sys/kernel/mm/transparent_hugepage/enabled") or "unknown"
    thp_mode = thp[thp.find("[") + 1 : thp.find("]")] if "[" in thp else thp
    out.append(
        Check(
            "transparent huge pages",
            thp_mode in ("madvise", "never"),
            thp_mode,
            ""
            if thp_mode in ("madvise", "never")
            else "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (avoids khugepaged stalls)",
        )
    )

    try:
        st = os.statvfs(f"{r}/dev/shm")
        shm = st.f_blocks * st.f_frsize
        out.append(
            Check(
                "/dev/shm size",
                shm >= 256 << 20,
                f"{shm / (1 << 20):.0f} MiB",
                "" if shm >= 256 << 20 else "mount -o remount,size=1G /dev/shm (rings live there)",
            )
        )
    except OSError:
        out.append(Check("/dev/shm size", False, "missing", "mount a tmpfs at /dev/shm"))

    clock = _read(f"{r}/sys/devices/system/clocksource/clocksource0/current_clocksource") or "unknown"
    out.append(
        Check(
            "clock source",
            clock == "tsc",
            clock,
            "" if clock == "tsc" else "boot with clocksource=tsc tsc=reliable (cheap, monotonic timestamps)",
        )
    )

    rt = _read(f"{r}/proc/sys/kernel/sched_rt_runtime_us")
    period = _read(f"{r}/proc/sys/kernel/sched_rt_period_us") or "1000000"
    throttled = rt not in (None, "-1")
    found = "off" if rt == "-1" else ("unknown" if rt is None else f"{rt} of every {period} µs")
    if cpu.realtime and throttled:
        fix = (
            "a SCHED_FIFO engine that spins is stopped for the rest of each period (ms latency tails): "
            "on a host whose engine core is isolated, echo -1 > /proc/sys/kernel/sched_rt_runtime_us"
        )
    else:
        fix = ""
        found += "" if cpu.realtime else " ([cpu] realtime is off)"
    out.append(Check("real-time throttling", not fix, found, fix))

    placements = plan(cpu, cores)
    problems = [f"{p.role}: {p.note}" for p in placements if p.note and not p.note.startswith("not pinned")]
    out.append(
        Check(
            "[cpu] layout fits",
            not problems,
            "; ".join(f"{p.role}={'-' if p.core is None else p.core}" for p in placements)
            + (" — " + "; ".join(problems) if problems else ""),
            "" if not problems else "pick distinct cores from the available list in [cpu]",
        )
    )
    return out


def render(results: list[Check]) -> str:
    lines = []
    for c in results:
        status = "ok  " if c.ok else "warn"
        line = f"{status}  {c.name:<24} {c.found}"
        if c.fix:
            line += f"\n      fix: {c.fix}"
        lines.append(line)
    return "\n".join(lines)
