"""The metrics endpoint and the live status page, served on 127.0.0.1 from a thread of their own.

The run's loop hands each sample to `Observer.publish` (a reference swap under a lock, and a
wake-up of the server's loop): scrapes and page views never run on the run's loop and never
read the engine. The server thread runs its own asyncio loop with aiohttp:

    metrics_port   GET /metrics       Prometheus text (metrics.py)
    status_port    GET /              the status page (page.py), with the samples so far inside
                   GET /events        server-sent events: one "sample" event per sample
                   GET /state.json    the newest sample

Only 127.0.0.1 is bound. The page is served with a Content-Security-Policy that allows
nothing but itself and its own origin, so a browser fetches nothing else.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import ConfigError
from ..runlog import NULL_LOG, RunLog
from .metrics import exposition, registry_for
from .page import render

HOST = "127.0.0.1"
HISTORY = 2_000  # samples kept for the page's plots (at 500 ms: the last ~17 minutes)
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


def point(sample: dict[str, Any]) -> dict[str, Any]:
    """What the plots keep of a sample."""
    return {
        "t": round(sample["t_s"], 3),
        "engine": sample["engine"]["state"],
        "venues": sample["venues"],
        "pnl": sample["realized_pnl_usdt"],
        "fees": sample["fees_usdt"],
        "residual": sample["residual_usdt"],
        "events": sample["counters"]["events"],
    }


class Observer:
    """Serves a run's samples (see module docstring). `start` binds the ports or raises OSError."""

    def __init__(self, metrics_port: int, status_port: int, run_id: str, log: RunLog = NULL_LOG):
        self.metrics_port = metrics_port
        self.status_port = status_port
        self.run_id = run_id
        self.log = log
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._registry = registry_for(self.latest)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runners: list[web.AppRunner] = []
        self.scrapes = 0
        self.pages = 0

    @property
    def enabled(self) -> bool:
        return bool(self.metrics_port or self.status_port)

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self._latest

    # -- the run's side -----------------------------------------------------------------------

    def publish(self, sample: dict[str, Any]) -> None:
        with self._lock:
            self._latest = sample
            self._history.append(point(sample))
        loop = self._loop
        if loop is not None and self._clients:
            data = b"event: sample\ndata: " + orjson.dumps(sample) + b"\n\n"
            try:
                loop.call_soon_threadsafe(self._fan_out, data)
            except RuntimeError:
                pass  # the server's loop has stopped

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind the ports (ConfigError naming the key if one is taken) and serve."""
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._serve, name="basis-observe", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise OSError(f"the observe server did not start within {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        for what, port, path in (
            ("metrics", self.metrics_port, "/metrics"),
            ("status", self.status_port, "/"),
        ):
            if port:
                self.log.say(
                    "observe",
                    "listening",
                    f"{what}: http://{HOST}:{port}{path}",
                    url=f"http://{HOST}:{port}{path}",
                )

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    # -- the server's thread ------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:  # a port taken: start() raises it in the run
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _open(self) -> None:
        if self.metrics_port:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            await self._bind(app, self.metrics_port, "metrics_port")
        if self.status_port:
            app = web.Application()
            app.router.add_get("/", self._page)
            app.router.add_get("/events", self._events)
            app.router.add_get("/state.json", self._state)
            await self._bind(app, self.status_port, "status_port")

    async def _bind(self, app: web.Application, port: int, key: str) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        try:
            await web.TCPSite(runner, HOST, port, reuse_address=True).start()
        except OSError as exc:
            for r in self._runners:
                await r.cleanup()
            raise ConfigError(
                f"observe.{key}", f"cannot serve on {HOST}:{port}: {exc.strerror or exc}"
            ) from exc

    async def _shutdown(self) -> None:
        for q in list(self._clients):
            q.put_nowait(None)
        for runner in self._runners:
            await runner.cleanup()

    def _fan_out(self, data: bytes) -> None:
        for q in list(self._clients):
            if q.qsize() < 64:  # a client that stopped reading misses samples, never holds memory
                q.put_nowait(data)

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        body = exposition(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _headers(self) -> dict[str, str]:
        return {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}

    async def _page(self, request: web.Request) -> web.Response:
        self.pages += 1
        with self._lock:
            latest, history = self._latest, list(self._history)
        return web.Response(
            text=render(self.run_id, latest, history), content_type="text/html", headers=self._headers()
        )

    async def _state(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.latest()), content_type="application/json", headers=self._headers()
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **self._headers()})
        await resp.prepare(request)
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._clients.add(q)
        try:
            await resp.write(b"retry: 1000\n\n")
            while True:
                data = await q.get()
                if data is None:
                    break
                await resp.write(data)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(q)
        return resp
