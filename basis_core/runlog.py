"""The run's structured log: one JSON object per line, human lines on the terminal.

Every line of RUN_DIR/log.jsonl is one event:

    {"ts": 1767225600123456789, "run": "default-20260101-000000", "component": "runner",
     "level": "info", "event": "progress", "msg": "t=  2.0s events=...", ...fields}

`ts` is the wall clock in ns (the time the line was written; the run's own clock, virtual or
real, goes in a field where it matters), `run` the run directory's name. `say` writes the line
and hands `msg` to the terminal (the progress lines a person watches); `event` only writes the
line. Strings registered with `redact` (a venue's API key, a signing key) are replaced by
"***" in every line before it is written, wherever they appear. A log without a path writes
nothing: code that logs needs no run directory (`NULL_LOG`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import redact

LEVELS = ("debug", "info", "warning", "error")
REDACTED = "***"


class RunLog:
    """Writes log.jsonl (see module docstring); `terminal` shows the human lines."""

    def __init__(
        self,
        path: Path | None,
        run_id: str = "",
        terminal: Callable[[str], None] | None = None,
    ):
        self.path = path
        self.run_id = run_id
        self.terminal = terminal
        self.lines = 0
        self._secrets: list[str] = []
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()

    def redact(self, *secrets: str) -> None:
        """Never write these strings (shorter than 4 characters: ignored, they would mangle text)."""
        self._secrets.extend(s for s in secrets if s and len(s) >= 4 and s not in self._secrets)

    def event(self, component: str, event: str, level: str = "info", **fields: Any) -> None:
        """One line in the file."""
        if self._file is None:
            return
        if level not in LEVELS:
            raise ValueError(f"log level {level!r} is not one of {LEVELS}")
        line: dict[str, Any] = {
            "ts": time.time_ns(),
            "run": self.run_id,
            "component": component,
            "level": level,
            "event": event,
        }
        line.update(fields)
        data = orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS)
        for s in self._secrets:
            data = data.replace(orjson.dumps(s)[1:-1], REDACTED.encode())
        self._file.write(data + b"\n")
        self.lines += 1

    def say(self, component: str, event: str, msg: str, level: str = "info", **fields: Any) -> None:
        """One line in the file, and `msg` on the terminal."""
        self.event(component, event, level, msg=msg, **fields)
        if self.terminal is not None:
            self.terminal(redact(msg, self._secrets))

    def progress(self, component: str) -> Callable[[str], None]:
        """A `progress(line)` callable for code that prints human lines: each goes to the terminal
        and, as a "progress" event of `component`, to the file."""
        return lambda msg: self.say(component, "progress", msg)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


#: a log that writes nothing (no run directory)
NULL_LOG = RunLog(None)
