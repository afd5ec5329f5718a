"""`basis run` with a `[cluster]` table: the run's side of the cluster link.

Built by scenario.py after `Runner.start` and before the first batch: the link
(basis_core/cluster/link.py) looks up and reserves the run's shared limits
(basis_core/cluster/limits.py) from its own thread, and `watch`, called after each engine step
on the io side like the other watchers, hands the engine what it now holds (CONTROL
CLUSTER_GRANT records through `Runner.send_control`, journaled first like any input, so a
replay decides the same), copies to the link what the engine's positions use, and turns the
link's notices (degraded, resumed, limits not set) into progress lines and log events. After
the run has settled, `close` returns what the engine's positions do not use and writes
RUN_DIR/cluster.json.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import orjson

from .. import schema as S
from ..cluster.limits import run_limits
from ..cluster.link import ClusterLink, Grant, Halt
from ..config import Config
from ..errors import ClusterError, ConfigError
from ..runlog import RunLog
from ..state.tables import EngineState
from .allowance import grant_record
from .report import STREAMS_DIR
from .runner import Runner

#: how often the run's result files are flushed for the link to publish (wall seconds)
FLUSH_EVERY_S = 0.25
#: CONTROL HALT `aux` of the halt a cluster-wide halt puts into this engine
FROM_CLUSTER = 1


def check_clusterable(cfg: Config, resume: bool, paper: bool) -> None:
    """What a clustered run cannot do yet, refused before anything starts."""
    if cfg.cluster is None:
        return
    if resume:
        raise ConfigError("--resume", "not yet: a clustered run cannot be resumed (its holds are per run)")
    if paper:
        raise ConfigError("cluster", "not yet: a paper run does not join a cluster")
    if cfg.policy.execution == "maker_taker":
        raise ConfigError(
            "policy.execution",
            "not yet: a clustered run sends 'taker' or 'sliced' entries, not 'maker_taker'",
        )


class Clustered:
    def __init__(self, runner: Runner, cfg: Config, log: RunLog, run_dir: Path):
        assert cfg.cluster is not None
        self.runner, self.log, self.run_dir = runner, log, run_dir
        self.cluster = cfg.cluster
        self.say = log.progress("cluster")
        self.link = ClusterLink(
            cfg.cluster,
            run_limits(runner.rules),
            results_dir=run_dir / STREAMS_DIR,
            run_id=f"{cfg.cluster.engine_id}/{run_dir.name}",
        )
        self._next_flush = 0.0
        self.grants = 0
        self.halts_obeyed: list[str] = []  # who halted the cluster, as this engine obeyed
        self.halts_sent = 0
        self._was_halted = False
        self._announced = False  # the next HALTED is one the cluster already knows of
        runner.control_hooks.append(self._operator_control)
        self.degraded_notices = 0

    def open(self) -> None:
        c = self.cluster
        self.say(
            f"cluster: engine {c.engine_id}, bucket {c.bucket}, {len(self.link.limits)} limits to reserve"
        )
        self.link.open()
        self.watch()

    def _operator_control(self, rec) -> None:
        """`basis ctl halt` on this engine halts the whole cluster."""
        if (
            int(rec["kind"][0]) == S.Kind.CONTROL
            and int(rec["sub"][0]) == S.ControlCommand.HALT
            and int(rec["aux"][0]) != FROM_CLUSTER  # (not the halt this engine obeys)
        ):
            self._send_halt("operator halt (basis ctl)")
            self._announced = True

    def _send_halt(self, reason: str) -> None:
        self.halts_sent += 1
        self.link.publish_halt(reason)
        self.log.event("cluster", "halt_sent", "warning", reason=reason)
        self.say(f"cluster: halting every engine ({reason})")

    def _used(self) -> dict[str, float]:
        a = self.runner.core.allowance
        return a.in_use(self.runner.core.positions) if a is not None else {}

    def watch(self) -> None:
        runner = self.runner
        for item in self.link.drain():
            if isinstance(item, Grant):
                runner.send_control(grant_record(runner.reg, runner.now_ns(), item.limit, item.total))
                self.grants += 1
            elif isinstance(item, Halt):  # another engine or an operator halted the cluster
                self.halts_obeyed.append(item.by)
                self._announced = True  # (not this engine's own HALTED: not sent back out)
                runner.send_control(S.control_record(runner.now_ns(), S.ControlCommand.HALT, FROM_CLUSTER, 0))
                self.log.event("cluster", "halt_obeyed", "warning", by=item.by, reason=item.reason)
                self.say(f"cluster: halted by {item.by} ({item.reason})")
            else:
                self.degraded_notices += item.event == "degraded"
                self.log.event("cluster", item.event, item.level, **item.fields)
                self.say(item.line)
        if runner.streams is not None and time.monotonic() >= self._next_flush:
            runner.streams.flush()  # the results the link publishes are the files' whole lines
            self._next_flush = time.monotonic() + FLUSH_EVERY_S
        halted = runner.core.engine.state == EngineState.HALTED
        if halted and not self._was_halted:
            if not self._announced and self.cluster.on_halted == "halt_all":
                self._send_halt("engine HALTED (on_halted = halt_all)")
            self._announced = False
        self._was_halted = halted
        a = getattr(runner.core, "allowance", None)
        if a is None and self.grants and runner.stats.batches > 1:  # an engine deaf to its grants
            raise ClusterError(
                "", "not yet: this engine core takes no CLUSTER_GRANT (it would trade unlimited)"
            )
        if a is not None:
            self.link.note_usage(a.in_use(runner.core.positions), a.granted)

    def close(self) -> dict:
        """After the run settled: give back what is unused, say what stays held, write cluster.json."""
        used = self._used()
        if self.runner.streams is not None:
            self.runner.streams.flush()
        self.link.close(used)
        self.watch()
        a = self.runner.core.allowance
        kept = {k: str(v) for k, v in sorted(self.link.kept.items()) if v > 0}
        out = {
            "engine_id": self.cluster.engine_id,
            "limits": sorted(self.link.limited),
            "unlimited": sorted(self.link.unlimited),
            "granted": {k: g for k, g in a.granted.items() if math.isfinite(g)} if a else {},
            "peak_granted": {k: g for k, g in a.peak.items() if math.isfinite(g)} if a else {},
            "used_at_end": used,
            "returned": {k: str(v) for k, v in sorted(self.link.returned.items())},
            "kept": kept,
            "grant_records": self.grants,
            "reserve_calls": self.link.reserve_calls,
            "opened_beyond_held": a.over if a else 0,
            "degraded_notices": self.degraded_notices,
            "rejected_cluster_reserve": self.runner.core.counters.rejected.get("cluster_reserve", 0),
            "results_published": self.link.published,
            "halts_sent": self.halts_sent,
            "halts_obeyed": self.halts_obeyed,
        }
        (self.run_dir / "cluster.json").write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        held = ", ".join(f"{k} {v}" for k, v in kept.items()) or "nothing"
        self.say(f"cluster: unused reservations returned; still held for open positions: {held}")
        return out


def operate(cfg: Config, action: str, args: list[str], environ=None) -> list[str]:
    """`basis cluster`: an operator's calls on the cluster a config's [cluster] table names
    (show, set-limit KEY VALUE, release KEY ENGINE [force], halt REASON, lift-halt); the lines
    to print. The bucket is made by set-limit when missing."""
    import asyncio

    from ..cluster.reservations import HALT_KEY, LimitsBucket, connect

    if cfg.cluster is None:
        raise ConfigError("cluster", "the config has no [cluster] table")
    c = cfg.cluster

    async def go() -> list[str]:
        nc = await connect(c, environ)
        try:
            bucket = await LimitsBucket.open(nc, c.bucket, c.request_timeout_s, create=action == "set-limit")
            if action == "set-limit":
                t = await bucket.set_limit(args[0], args[1])
                return [f"{t.key}: limit {t.limit}, held {t.held()}"]
            if action == "release":
                freed = await bucket.release(args[0], args[1], force=len(args) > 2 and args[2] == "force")
                return [f"{args[0]}: {freed} held by {args[1]} released"]
            if action == "halt":
                return [f"cluster halted ({await bucket.halt('operator', ' '.join(args) or 'operator')})"]
            if action == "lift-halt":
                await bucket.lift_halt()
                return ["cluster halt lifted (resume each engine with `basis ctl RUN_DIR resume`)"]
            out = []
            halt = await bucket.read_halt()
            out.append(f"halt: {halt['by']}: {halt['reason']}" if halt else "halt: none")
            for key in sorted(await bucket.kv.keys()):
                if key == HALT_KEY:
                    continue
                t = await bucket.read(key)
                silent = set(t.silent(time.time_ns()))
                holds = ", ".join(
                    f"{e} {h.amount}{' (silent)' if e in silent else ''}" for e, h in sorted(t.holds.items())
                )
                out.append(f"{key}: limit {t.limit}, held {t.held()}, free {t.free()}: {holds or 'no holds'}")
            return out
        finally:
            await nc.close()

    return asyncio.run(go())
