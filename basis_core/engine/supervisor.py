"""The tasks of a run, watched: the first one to fail stops the run with its error.

A run's background tasks (the market, each venue's pumps and dispatcher, the calls in flight,
reconciliation passes, external signals) are nobody's awaited result until the run ends. A
task that raised used to die alone ("Task exception was never retrieved") while the run went
on without it, to a normal-looking report. Each is started (`spawn`) or watched (`watch`) here
instead: the first failure is kept and the run woken (`on_failure`); `raise_failure`, which
the runner's loop calls on every step and the scenario once more at the end, cancels the
other watched tasks and raises it, so the run stops with that error. A cancelled task has not
failed; a task that ends without an exception is forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class Supervisor:
    """Watches a run's tasks; the first exception one of them raises is the run's."""

    def __init__(self, on_failure: Callable[[], None] | None = None):
        self.on_failure = on_failure
        #: the first exception a watched task raised, and that task's name
        self.failure: BaseException | None = None
        self.failed_task = ""
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task:
        """Start `coro` as a watched task on the running loop."""
        return self.watch(asyncio.get_running_loop().create_task(coro, name=name))

    def watch(self, task: asyncio.Task) -> asyncio.Task:
        """Watch a task started elsewhere (e.g. the market a venue world plays)."""
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here, so never "never retrieved"
        if exc is None or self.failure is not None:
            return
        self.failure, self.failed_task = exc, task.get_name()
        exc.add_note(f"raised by the run's task {self.failed_task}")
        if self.on_failure is not None:
            self.on_failure()

    def raise_failure(self) -> None:
        """Nothing while every watched task is running or ended cleanly; after a failure, cancel
        the other watched tasks and raise it."""
        if self.failure is None:
            return
        for task in list(self._tasks):
            task.cancel()
        raise self.failure
