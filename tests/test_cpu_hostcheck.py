import multiprocessing as mp
import os

from basis_core import cpu
from basis_core.config import CpuConfig
from basis_core.hostcheck import checks, render


def test_plan_uses_configured_cores_when_present():
    placements = cpu.plan(CpuConfig(engine=1, io=0), cores=[0, 1])
    assert [(p.role, p.core, p.note) for p in placements] == [("engine", 1, ""), ("io", 0, "")]


def test_plan_degrades_with_a_reason_on_a_small_host():
    placements = cpu.plan(CpuConfig(engine=5, io=0, feeds=(7,)), cores=[0, 1])
    engine, io, feed = placements
    assert engine.core == 1 and "core 5 is not available" in engine.note
    assert io.core == 0 and io.note == ""
    assert feed.core == 0 and "not available" in feed.note


def test_plan_says_when_roles_share_a_core():
    engine, io = cpu.plan(CpuConfig(engine=0, io=0), cores=[0, 1])
    assert io.note == "shares core 0 with engine"


def _pin_child(core, q):
    msg = cpu.apply(cpu.Placement("engine", core), realtime=False)
    q.put((msg, sorted(os.sched_getaffinity(0))))


def test_apply_pins_the_calling_process():
    core = cpu.available_cores()[-1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_pin_child, args=(core, q))
    p.start()
    msg, affinity = q.get(timeout=30)
    p.join(10)
    assert affinity == [core]
    assert f"core {core}" in msg


def test_busy_fraction_is_a_fraction_or_unknown():
    frac = cpu.core_busy_fraction(cpu.available_cores()[0], window_s=0.05)
    assert frac is None or 0.0 <= frac <= 1.0


def _fake_host(root, governor="powersave", thp="[always] madvise never", isolated="1", clock="hpet"):
    (root / "sys/devices/system/cpu/cpu0/cpufreq").mkdir(parents=True)
    (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").write_text(governor)
    (root / "sys/devices/system/cpu/isolated").write_text(isolated)
    (root / "sys/kernel/mm/transparent_hugepage").mkdir(parents=True)
    (root / "sys/kernel/mm/transparent_hugepage/enabled").write_text(thp)
    (root / "sys/devices/system/clocksource/clocksource0").mkdir(parents=True)
    (root / "sys/devices/system/clocksource/clocksource0/current_clocksource").write_text(clock)
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text("quiet isolcpus=1 nohz_full=1")
    (root / "dev/shm").mkdir(parents=True)


def test_host_check_warns_with_fixes_on_an_untuned_host(tmp_path):
    _fake_host(tmp_path)
    by_name = {c.name: c for c in checks(CpuConfig(engine=1, io=0), root=str(tmp_path))}
    if 0 in cpu.available_cores():
        assert (
            not by_name["cpu frequency governor"].ok
            and "performance" in by_name["cpu frequency governor"].fix
        )
    assert not by_name["transparent huge pages"].ok
    assert not by_name["clock source"].ok and "tsc" in by_name["clock source"].fix
    assert by_name["isolated cores"].ok and "nohz_full=1" in by_name["isolated cores"].found
    text = render(list(by_name.values()))
    assert "warn" in text and "fix:" in text


def test_host_check_passes_a_tuned_host(tmp_path):
    _fake_host(tmp_path, governor="performance", thp="always [madvise] never", clock="tsc")
    by_name = {c.name: c for c in checks(CpuConfig(engine=1, io=0), root=str(tmp_path))}
    for name in ("cpu frequency governor", "transparent huge pages", "clock source", "isolated cores"):
        assert by_name[name].ok, by_name[name]


def test_host_check_warns_when_real_time_throttling_would_stop_a_fifo_engine(tmp_path):
    _fake_host(tmp_path)
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    knob = tmp_path / "proc/sys/kernel/sched_rt_runtime_us"
    knob.write_text("950000")
    fifo = {c.name: c for c in checks(CpuConfig(engine=1, io=0, realtime=True), root=str(tmp_path))}
    assert not fifo["real-time throttling"].ok and "sched_rt_runtime_us" in fifo["real-time throttling"].fix
    other = {c.name: c for c in checks(CpuConfig(engine=1, io=0), root=str(tmp_path))}
    assert other["real-time throttling"].ok and "realtime is off" in other["real-time throttling"].found
    knob.write_text("-1")
    fifo = {c.name: c for c in checks(CpuConfig(engine=1, io=0, realtime=True), root=str(tmp_path))}
    assert fifo["real-time throttling"].ok and fifo["real-time throttling"].found == "off"
