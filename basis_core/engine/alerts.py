"""Alerts: a command or a webhook told when the engine goes HALTED or PROTECTIVE, when a
reconciliation pass finds a mismatch, or when a venue goes DOWN ([alerts] in the config).

The runner calls `Alerts.watch` after each engine step, on the io side: it reads the state
changes the engine recorded since the last call (the shadow core's on the real clock) and the
reconciliation's mismatch count, and queues an alert for each kind that has not fired within
`min_interval_s` of the run's clock; the ones held back are counted into the next alert of that
kind, so a flapping venue sends one alert per interval, not one per flap. A thread of its own
runs the command (the alert as one JSON object on its stdin) or POSTs the JSON to the webhook:
nothing on the decision path waits for it, and a full queue drops (and counts) an alert rather
than block. The alert holds the run's name, the kind, the time and what changed, never a
secret: the webhook URL comes from the environment variable `[alerts] webhook_env` names, is
read once at start (a missing or non-http(s) one is a ConfigError naming the key) and is never
repeated in an alert, a log line or an error.
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from ..config import AlertsConfig
from ..errors import ConfigError

#: (machine, state entered) -> the kind of alert
KINDS: dict[tuple[str, str], str] = {
    ("engine", "HALTED"): "halted",
    ("engine", "PROTECTIVE"): "protective",
    ("venue", "DOWN"): "venue_down",
}
RECONCILE_MISMATCH = "reconcile_mismatch"
#: alerts waiting for the delivery thread; beyond this they are dropped and counted
QUEUE_SIZE = 256
#: the longest a command or a webhook call may take
DELIVERY_TIMEOUT_S = 10.0


def webhook_url(cfg: AlertsConfig) -> str:
    """The webhook URL from the environment variable `cfg.webhook_env` ("" when none is named)."""
    if not cfg.webhook_env:
        return ""
    url = os.environ.get(cfg.webhook_env, "")
    if not url:
        raise ConfigError("alerts.webhook_env", f"environment variable {cfg.webhook_env} is not set")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            "alerts.webhook_env", f"environment variable {cfg.webhook_env} does not hold an http(s) URL"
        )
    return url


def command_argv(cfg: AlertsConfig) -> list[str]:
    """`cfg.command` split like a shell line, once ([] when none; one that cannot be split is a
    ConfigError naming the key, not a delivery thread that dies on the first alert)."""
    try:
        return shlex.split(cfg.command)
    except ValueError as exc:
        raise ConfigError("alerts.command", f"cannot be split like a shell line: {exc}") from None


class Alerts:
    """Watches one run and delivers its alerts (see module docstring)."""

    def __init__(self, cfg: AlertsConfig, run_name: str, core: Callable[[], Any], stats: Any, now_ns):
        self.cfg = cfg
        self.webhook = webhook_url(cfg)
        self.argv = command_argv(cfg)
        self.run_name = run_name
        self._core = core  # the runner's engine core (a restart may replace the shadow)
        self._stats = stats  # the runner's RunStats (reconcile_mismatches by layer)
        self._now_ns = now_ns
        self.min_interval_ns = int(cfg.min_interval_s * 1e9)
        self.last_ns: dict[str, int] = {}  # kind -> when its last alert went out
        self.held: dict[str, int] = {}  # kind -> alerts held back since then
        self.queued = self.dropped = self.delivered = 0
        self.failures: list[str] = []  # the last few delivery failures
        self._seen_changes = 0
        self.missed_changes = 0  # changes that left the core's window before a watch saw them
        self._seen_mismatches = 0
        self._queue: queue.Queue[dict | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._deliver_all, name="basis-alerts", daemon=True)
        self._thread.start()

    def watch(self) -> None:
        """Queue an alert for what changed since the last call (called after each engine step)."""
        core = self._core()
        # a cursor into the run's changes (a replaced core with fewer starts over): right after
        # the core dropped old ones from its window; changes it dropped unseen are counted
        changes, missed, self._seen_changes = core.transitions.since(self._seen_changes)
        self.missed_changes += missed
        for ch in changes:
            kind = KINDS.get((ch.machine, ch.dst))
            if kind is not None:
                who = ch.machine if ch.machine == "engine" else f"{ch.machine} {ch.key}"
                self.fire(kind, ch.t_ns, f"{who}: {ch.src} -> {ch.dst} ({ch.cause})")
        by_layer = self._stats.reconcile_mismatches
        mismatches = sum(by_layer.values())
        if mismatches > self._seen_mismatches:
            new = mismatches - self._seen_mismatches
            self._seen_mismatches = mismatches
            layers = ", ".join(f"{layer} {n}" for layer, n in sorted(by_layer.items()))
            self.fire(RECONCILE_MISMATCH, self._now_ns(), f"{new} new mismatch(es); so far {layers}")

    def fire(self, kind: str, t_ns: int, what: str) -> bool:
        """Queue one alert of `kind` unless one went out less than min_interval_s ago (then it
        is counted into the next). True when queued."""
        last = self.last_ns.get(kind)
        if last is not None and t_ns - last < self.min_interval_ns:
            self.held[kind] = self.held.get(kind, 0) + 1
            return False
        alert = {
            "run": self.run_name,
            "kind": kind,
            "t_ns": t_ns,
            "what": what,
            "held_back": self.held.pop(kind, 0),  # alerts of this kind not sent since the last one
        }
        self.last_ns[kind] = t_ns
        try:
            self._queue.put_nowait(alert)
            self.queued += 1
        except queue.Full:
            self.dropped += 1
        return True

    def close(self, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        """Deliver what is queued (waiting at most about `timeout_s`), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    # -- the delivery thread ------------------------------------------------------------------

    def _deliver_all(self) -> None:
        while (alert := self._queue.get()) is not None:
            body = orjson.dumps(alert)
            try:
                if self.argv:
                    subprocess.run(
                        self.argv,
                        input=body + b"\n",
                        capture_output=True,
                        timeout=DELIVERY_TIMEOUT_S,
                        check=True,
                    )
                elif self.webhook:
                    req = urllib.request.Request(
                        self.webhook, data=body, headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(req, timeout=DELIVERY_TIMEOUT_S):
                        pass
                self.delivered += 1
            except Exception as exc:  # any failure is counted; the thread lives on
                # the reason, not the URL (it may hold a token); http.client.HTTPException and a
                # ValueError are not OSErrors and would otherwise end the thread silently
                self.failures = [*self.failures[-9:], f"{alert['kind']}: {type(exc).__name__}"]
