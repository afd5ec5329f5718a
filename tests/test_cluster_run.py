"""`basis run` with a `[cluster]` table (issue #20): engines reserving shared limits from a real
nats-server with JetStream on loopback, each engine a real `basis run` process on the virtual
clock with the simulated venues.

One engine (NATS restarted under it: degraded, then resumed): its entries are capped to what it holds (the CLUSTER_RESERVE reason counted when
the reserve is short), it never uses more than it was granted, returns what it does not use at
the end, and `basis replay` decides the same from its journal (the grants are journaled inputs).
Three engines sharing the limits: a watcher reading every revision of the limits' keys finds the
holds within the limit each time; one engine SIGSTOPped past its lease keeps its hold (listed
silent) and the others do not take it; one SIGKILLed mid-run keeps its hold after the others have
returned theirs; a second engine under a running one's id is refused; `basis ctl halt` on one
halts the others. BASIS_SOAK=full runs them longer.
The halt's rules on a stub run: an engine going HALTED halts the cluster only with on_halted =
"halt_all", an obeyed halt is not published back, an operator's halt is published once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from basis_core.scenarios import DEFAULT
from tests.soak import SOAK

nats = pytest.importorskip("nats", reason="the cluster extra (nats-py) is not installed")

import nats.errors  # noqa: F811  (the module importorskip returned)

from basis_core.cluster.reservations import LimitsBucket, Table, connect
from tests.test_cluster_reservations import NatsServer, _cluster

BASIS = [sys.executable, "-m", "basis_core"]
RESIDUAL = "residual"
CAPITAL = "capital.alpha.USDT"


@pytest.fixture
def server(tmp_path):
    srv = NatsServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def _config(tmp: Path, url: str, engine: str, seed: int, duration_s: float, lease_s: float = 10.0) -> Path:
    text = Path(DEFAULT).read_text().replace("seed = 7", f"seed = {seed}", 1)
    text = text.replace("duration_s = 60.0", f"duration_s = {duration_s}", 1)
    text += (
        f'\n[cluster]\nservers = ["{url}"]\nengine_id = "{engine}"\nvenues = ["alpha", "beta", "gamma"]\n'
        f"lease_s = {lease_s}\nchunk_fraction = 0.1\nrequest_timeout_s = 0.5\n"
    )
    path = tmp / f"{engine}.toml"
    path.write_text(text)
    return path


async def _limits(url: str, limits: dict[str, str]) -> None:
    nc = await connect(_cluster(url, "operator"), {}, reconnect_wait_s=0.05)
    bucket = await LimitsBucket.open(nc, "basis_limits", timeout_s=1.0, create=True)
    for key, value in limits.items():
        await bucket.set_limit(key, value)
    await nc.close()


async def _tables(url: str) -> dict[str, Table]:
    nc = await connect(_cluster(url, "reader"), {}, reconnect_wait_s=0.05)
    bucket = await LimitsBucket.open(nc, "basis_limits", timeout_s=1.0)
    out = {k: await bucket.read(k) for k in (RESIDUAL, CAPITAL)}
    await nc.close()
    return out


class Watcher:
    """Every revision of the limits' keys as it is written (a KV watch from its own thread): the
    holds each one records, checked against its limit."""

    def __init__(self, url: str):
        self.url, self.seen, self.over = url, 0, []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)  # the last writes' updates
        self._stop.set()
        self._thread.join(10)

    async def _main(self) -> None:
        nc = await connect(_cluster(self.url, "watcher"), {}, reconnect_wait_s=0.05)
        kv = await nc.jetstream().key_value("basis_limits")
        w = await kv.watchall()
        self._ready.set()
        while not self._stop.is_set():
            try:
                entry = await w.updates(timeout=0.1)
            except nats.errors.TimeoutError:
                continue
            if entry is None or not entry.value or entry.key == "halt":
                continue
            t = Table.decode(entry.key, entry.value, entry.revision or 0)
            self.seen += 1
            if t.held() > t.limit:
                self.over.append(t)
        await w.stop()
        await nc.close()


async def _results(url: str) -> list[tuple[str, str, bytes]]:
    """Every message of the results stream: (subject, Nats-Msg-Id, data), in stream order."""
    nc = await connect(_cluster(url, "reader"), {}, reconnect_wait_s=0.05)
    js = nc.jetstream()
    info = await js.stream_info("basis_results")
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        m = await js.get_msg("basis_results", seq)
        out.append((m.subject, (m.headers or {}).get("Nats-Msg-Id", ""), m.data or b""))
    await nc.close()
    return out


def _streamed_once(msgs: list[tuple[str, str, bytes]], engine: str, run_dir: Path, whole: bool = True) -> int:
    """The results stream holds each line of each of the run's stream files once, in order, with
    its id (all of them when `whole`, else the first ones: an engine killed mid-run)."""
    assert len({m[1] for m in msgs}) == len(msgs)  # no id twice
    n = 0
    for path in sorted((run_dir / "streams").glob("*.jsonl")):
        lines = path.read_bytes().splitlines()
        got = [(i, d) for subj, i, d in msgs if subj == f"basis.results.{engine}.{path.stem}"]
        assert [d for _, d in got] == (lines if whole else lines[: len(got)]), path.stem
        assert [i for i, _ in got] == [
            f"{engine}/{run_dir.name}/{path.stem}/{k}" for k in range(1, len(got) + 1)
        ]
        n += len(got)
    assert n > 0
    return n


def _run(cfg: Path, run_dir: Path) -> subprocess.Popen:
    log = (run_dir.parent / f"{run_dir.name}.log").open("wb")
    return subprocess.Popen([*BASIS, "run", str(cfg), "--run-dir", str(run_dir)], stdout=log, stderr=log)


def _summary(run_dir: Path) -> dict:
    return orjson.loads((run_dir / "cluster.json").read_bytes())


def test_one_engine_spends_only_what_it_reserved_returns_the_rest_and_replays(server, tmp_path):
    asyncio.run(_limits(server.url, {RESIDUAL: "300", CAPITAL: "100000"}))
    cfg = _config(tmp_path, server.url, "e1", 7, 80.0)
    # alpha's position limit is below any order: every pair with alpha is refused for it
    out = subprocess.run(
        [*BASIS, "cluster", str(cfg), "set-limit", "position.alpha-BTCUSDT", "1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "position.alpha-BTCUSDT: limit 1" in out.stdout, out.stdout + out.stderr
    run_dir = tmp_path / "run"
    with Watcher(server.url) as watch:
        proc = _run(cfg, run_dir)
        _wait_holding(server.url, ["e1"], RESIDUAL)
        server.stop()  # NATS goes away mid-run, and comes back
        time.sleep(0.8)
        server.start()
        assert proc.wait(180) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert watch.seen > 4 and not watch.over
    log = (tmp_path / "run.log").read_text()
    assert "cluster: NATS unreachable" in log and "no new exposure beyond what is reserved" in log, log[
        -3000:
    ]
    assert "cluster: NATS answers again" in log
    s = _summary(run_dir)
    assert s["limits"] == [CAPITAL, "position.alpha-BTCUSDT", RESIDUAL]
    assert "position.beta-BTCUSDT" in s["unlimited"]  # a key no operator set is not limited
    assert s["opened_beyond_held"] == 0
    assert s["rejected_cluster_reserve"] > 0
    assert 0 < s["granted"][RESIDUAL] <= 300
    report = orjson.loads((run_dir / "report.json").read_bytes())
    assert report["signals_rejected"]["cluster_reserve"] == s["rejected_cluster_reserve"]
    assert report["signals_rejected"].get("no_inventory", 0) == 0  # each one short of the reserve

    # what positions neither flat nor hedged at the end use stays held; the rest went back
    tables = asyncio.run(_tables(server.url))
    for key, t in tables.items():
        assert t.holds["e1"].amount == Decimal(s["kept"][key]) if key in s["kept"] else "e1" not in t.holds
    # the results streamed, NATS restart and all: each line of each stream file once, in order
    msgs = asyncio.run(_results(server.url))
    assert len(msgs) == s["results_published"]
    _streamed_once(msgs, "e1", run_dir)
    show = subprocess.run([*BASIS, "cluster", str(cfg), "show"], capture_output=True, text=True).stdout
    assert "halt: none" in show and "residual: limit 300" in show, show
    # the grants are journaled inputs: a replay decides the same
    out = subprocess.run([*BASIS, "replay", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "0 batch(es) decided differently" in out.stdout, out.stdout + out.stderr


def _holds(url: str) -> dict[str, dict[str, Decimal]]:
    return {k: {e: h.amount for e, h in t.holds.items()} for k, t in asyncio.run(_tables(url)).items()}


def _wait_holding(url: str, engines: list[str], key: str, timeout_s: float = 150.0) -> dict[str, Decimal]:
    """Until each engine holds some of `key` (bounded for a cold numba cache: the kernels compile first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holds = _holds(url)[key]
        if all(holds.get(e, 0) > 0 for e in engines):
            return holds
        time.sleep(0.05)
    raise AssertionError(f"not every engine of {engines} holds {key}: {holds}")


def test_three_engines_share_the_limits_a_paused_one_keeps_its_hold_a_killed_one_too(server, tmp_path):
    duration = 900.0 if SOAK == "full" else 180.0
    asyncio.run(_limits(server.url, {RESIDUAL: "1500", CAPITAL: "60000"}))
    engines = ["e1", "e2", "e3"]
    runs = {e: tmp_path / f"run-{e}" for e in engines}
    watch = Watcher(server.url).__enter__()
    procs = {
        e: _run(_config(tmp_path, server.url, e, 7 + i, duration, lease_s=1.0), runs[e])
        for i, e in enumerate(engines)
    }
    try:
        _wait_holding(server.url, engines, RESIDUAL)
        # a second engine under e1's id is refused while e1's lease is live
        twin = _run(runs["e1"].parent / "e1.toml", tmp_path / "twin")
        # e3 paused past its lease: still holding, listed silent, its hold unchanged
        os.kill(procs["e3"].pid, signal.SIGSTOP)
        before = _holds(server.url)[RESIDUAL]["e3"]
        time.sleep(1.6)
        tables = asyncio.run(_tables(server.url))
        assert "e3" in tables[RESIDUAL].silent(time.time_ns())
        assert tables[RESIDUAL].holds["e3"].amount == before
        assert tables[RESIDUAL].held() <= tables[RESIDUAL].limit
        os.kill(procs["e3"].pid, signal.SIGCONT)
        # e2 killed mid-run: what it holds stays held
        killed = _holds(server.url)[RESIDUAL]["e2"]
        os.kill(procs["e2"].pid, signal.SIGKILL)
        procs["e2"].wait(10)
        assert twin.wait(120) == 1
        err = (tmp_path / "twin.log").read_text()
        assert "holds" in err and "with a live lease: another engine runs under this id" in err, err[-2000:]
        # an operator halts e1: every engine halts (e3, still running, obeys)
        ctl = subprocess.run(
            [*BASIS, "ctl", str(runs["e1"]), "halt"], capture_output=True, text=True, timeout=30
        )
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        for e in ("e1", "e3"):
            assert procs[e].wait(180) == 0, (tmp_path / f"run-{e}.log").read_text()[-3000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        watch.__exit__()
    assert watch.seen > 10 and not watch.over, watch.over[:3]
    holds = _holds(server.url)
    assert holds[RESIDUAL].get("e2", 0) >= killed > 0  # (it may have reserved more before it died)
    orders = 0
    for e in ("e1", "e3"):
        s = _summary(runs[e])
        assert s["opened_beyond_held"] == 0
        report = orjson.loads((runs[e] / "report.json").read_bytes())
        assert report["final_engine_state"] == "HALTED"
        orders += report["orders_submitted"]
        assert report["max_residual_exposure_usdt"] <= s["peak_granted"][RESIDUAL]  # within what it held
        assert {k: Decimal(v) for k, v in s["kept"].items()} == {
            k: holds[k].get(e, Decimal(0)) for k in s["kept"]
        }
        if not s["kept"]:
            assert all(e not in h for h in holds.values()), holds
    assert orders > 0
    msgs = asyncio.run(_results(server.url))
    for e in ("e1", "e3"):
        assert _streamed_once(msgs, e, runs[e]) == _summary(runs[e])["results_published"]
    assert not (runs["e2"] / "cluster.json").exists()
    assert _summary(runs["e1"])["halts_sent"] == 1 and _summary(runs["e3"])["halts_obeyed"] == ["e1"]


class _StubLink:
    """The link's run-facing side, recorded (no thread, no server)."""

    def __init__(self) -> None:
        self.halts: list[str] = []
        self.items: list = []

    def publish_halt(self, reason: str) -> None:
        self.halts.append(reason)

    def drain(self) -> list:
        out, self.items = self.items, []
        return out

    def note_usage(self, used, granted=None) -> None:
        pass


def _stub_run(tmp_path: Path, on_halted: str):
    from types import SimpleNamespace

    from basis_core.config import from_dict
    from basis_core.configio import load_toml
    from basis_core.engine.build import rules_of
    from basis_core.engine.clustered import Clustered
    from basis_core.runlog import NULL_LOG
    from basis_core.state.tables import EngineState

    data = load_toml(DEFAULT)
    data["cluster"] = {"servers": ["nats://127.0.0.1:1"], "engine_id": "e1", "venues": ["alpha"]}
    data["cluster"]["on_halted"] = on_halted
    cfg = from_dict(data)
    sent: list = []
    core = SimpleNamespace(engine=SimpleNamespace(state=EngineState.NORMAL), allowance=None)
    runner = SimpleNamespace(
        rules=rules_of(cfg),
        control_hooks=[],
        core=core,
        streams=None,
        reg=cfg.registry(),
        now_ns=lambda: 1,
        send_control=sent.append,
        stats=SimpleNamespace(batches=0),
    )
    c = Clustered(runner, cfg, NULL_LOG, tmp_path)  # type: ignore[arg-type]
    c.link = _StubLink()  # type: ignore[assignment]
    return c, core, sent


def test_an_engine_going_halted_halts_the_cluster_only_with_halt_all_and_an_obeyed_halt_is_not_echoed(
    tmp_path,
):
    from basis_core import schema as S
    from basis_core.cluster.link import Halt
    from basis_core.state.tables import EngineState

    for on_halted, published in (("halt_all", ["engine HALTED (on_halted = halt_all)"]), ("alone", [])):
        c, core, sent = _stub_run(tmp_path, on_halted)
        c.watch()
        core.engine.state = EngineState.HALTED  # a risk check halted it
        c.watch()
        c.watch()
        assert c.link.halts == published, on_halted
    # another engine's halt: obeyed (a HALT control into the engine), not published again
    c, core, sent = _stub_run(tmp_path, "halt_all")
    c.link.items = [Halt("e2:1", "e2", "operator halt (basis ctl)")]
    c.watch()
    assert [int(r.view(S.CONTROL)["sub"][0]) for r in sent] == [S.ControlCommand.HALT]
    core.engine.state = EngineState.HALTED
    c.watch()
    assert c.link.halts == [] and c.halts_obeyed == ["e2"]
    # an operator's halt through this engine's control socket: published once, not twice
    c, core, sent = _stub_run(tmp_path, "halt_all")
    for hook in c.runner.control_hooks:
        hook(S.control_record(1, S.ControlCommand.HALT, 0, 1000))
    core.engine.state = EngineState.HALTED
    c.watch()
    assert c.link.halts == ["operator halt (basis ctl)"]
