"""SIGINT and SIGTERM during `basis run`: the first stops the run in order, a second at once.

    stop = StopSignals(say)               # `say`: a terminal line
    stop.install(runner)                  # on the run's loop, in the task running the run
    ...                                   # the run
    stop.remove()
    stop.requested, stop.immediate        # "" or the signal that stopped it in order / at once

The first signal asks the runner to end its main phase (`Runner.request_stop`): the run then
finishes as it does after its duration, with the engine told through journaled CONTROL records
(SHUTDOWN and HALT: nothing new opens, working entries are cancelled, hedges and unwinds go on),
settles, cancels what still works, reconciles a last time and writes its results. A second
signal cancels the task running the run: nothing more is settled, the caller's clean-up closes
the journal (whole records only; on the real clock the engine process is sent EXIT) and the
run directory is left for `basis replay` and a restart. Later signals are ignored: the run is
already on its way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import Runner

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Turns SIGINT / SIGTERM into an orderly stop, then an immediate one (module docstring)."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        #: the signal that asked for the orderly stop, and the one that stopped the run at once
        self.requested = ""
        self.immediate = ""
        self._runner: Runner | None = None
        self._task: asyncio.Task | None = None

    def install(self, runner: Runner) -> None:
        """Handle the signals on the running loop (its own handlers, so the run's loop wakes for
        them) for `runner`, run by the current task, until `remove`. Off the main thread, where
        no signal handler can be set, nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        self._runner, self._task = runner, asyncio.current_task()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def remove(self) -> None:
        """The signals' previous handling back (idempotent)."""
        if self._runner is None:
            return
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        self._runner = self._task = None

    def _on_signal(self, sig: signal.Signals) -> None:
        name = sig.name
        if not self.requested:
            self.requested = name
            runner = self._runner
            if runner is not None:
                runner.request_stop(name)
                self.say(f"stopping ({name}): {self._what(runner)}; {name} again stops at once")
            return
        if self.immediate:
            return
        self.immediate = name
        self.say(f"stopping at once ({name}): no settling; the journal is closed at its last whole record")
        if self._task is not None:
            self._task.cancel()

    @staticmethod
    def _what(runner: Runner) -> str:
        if not hasattr(runner, "core"):
            return "the run has not started trading; closing"
        positions, orders = runner.unsettled()
        return (
            f"no new entries, settling {positions} position(s) and {orders} working order(s), "
            "then cancelling what still works, reconciling and writing the report"
        )


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside the block (the run's results being written: they are
    written whole or the run was stopped at once before), their handling restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
