"""Waiting in async tests: a bounded asyncio.run and a poll until a condition holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def run_within(coro: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
    """asyncio.run(coro), failing (TimeoutError) if it takes longer than `timeout_s`."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def until(cond: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll `cond` every 10 ms until it is true; AssertionError naming `what` after `timeout_s`."""
    end = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
