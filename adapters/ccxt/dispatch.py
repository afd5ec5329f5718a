"""The asyncio face of the Cython router for one venue: every request waits here for its turn.

`Gate.admit(endpoint, priority)` queues the caller in `basis_ext.router.Router` and returns the
command's sequence number once the venue's `basis_ext.throttle.Throttle` lets it go. One pump
task per gate hands out turns in the router's order: strict priority (cancels, hedges, queries,
entries), FIFO within a priority. A venue's `Retry-After` blocks the whole gate (`penalize`);
`degrade` lowers its refill rates while the engine is DEGRADED. ccxt's own `enableRateLimit` is
off: this is the only limiter.

The venue's own word on its limits is taken as it comes (`Limits`):

- at start, the limits it publishes (Binance's exchangeInfo `rateLimits`) replace configured ones
  that are higher (`Limits.learn`, at `LIMIT_SHARE` of the published figure); a published window
  no pool counts gets a pool of its own; the gate is rebuilt on them (`Gate.retune`);
- after every answer, its usage headers (`X-MBX-USED-WEIGHT-1M`: what the venue counted for our
  address in its current window) correct the local count (`Gate.observe`): when what the bucket
  could still let through before the venue's window resets is more than the venue has left, the
  pool is emptied and, if need be, held until the venue's count is low enough to fit;
- an IP ban (HTTP 418) closes the gate until the ban's end (`Gate.ban`): every request is refused
  at once with `IpBanned`, nothing is sent.

Configuration problems are found when the throttle is built (at construction and at start, after
learning): a weight that exceeds a pool's burst, or a pool that never refills (burst 1), is a
ConfigError then; a queued request never meets one later.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import cast

from basis_core.errors import ConfigError, IpBanned, MalformedResponse, RateLimited, VenueError
from basis_ext import router as R
from basis_ext.throttle import NEVER, Throttle

from .constants import INTERVAL_S, LIMIT_SHARE, POOL_PREFIX, USAGE_HEADERS


def build_throttle(pools: dict, endpoints: dict, now_ns: int, names: tuple[str, ...]) -> Throttle:
    """A Throttle with `pools` {name: (limit, window_s, burst)} and `endpoints` {name: {pool: w}}
    declared in `names` order (so endpoint ids are their index). ConfigError when an endpoint's
    weight can never fit a pool, or a pool never refills (burst 1: once spent, every request
    through it would wait forever)."""
    thr = Throttle()
    for name, (limit, window_s, burst) in pools.items():
        if burst >= 1:
            raise ConfigError(
                f"pools.{name}.burst",
                "1 means the pool never refills: once spent, nothing through it could be sent again",
            )
        try:
            thr.add_pool(name, float(limit), float(window_s), float(burst), now_ns)
        except ValueError as exc:
            raise ConfigError(f"pools.{name}", str(exc)) from None
    for name in names:
        try:
            thr.add_endpoint(name, {k: float(v) for k, v in endpoints[name].items()})
        except ValueError as exc:
            raise ConfigError(f"endpoints.{name}", str(exc)) from None
        if thr.wait_ns(thr.endpoint(name), now_ns) == NEVER:
            raise ConfigError(
                f"endpoints.{name}", "weight exceeds a pool's burst capacity: it could never be sent"
            )
    return thr


# -- the venue's limits ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """One budget: `limit` units per `window_s` for us; `venue_limit` is what the venue publishes
    for the same window (0: not published, its usage headers are then not read)."""

    limit: float
    window_s: float
    burst: float = 0.25
    venue_limit: float = 0.0


@dataclass(frozen=True)
class Published:
    """One published limit: `limit` units of `kind` (REQUEST_WEIGHT, ORDERS ...) per `window_s`."""

    kind: str
    window_s: float
    limit: float


def kind_of(pool: str) -> str:
    """The rateLimitType a pool counts, from its name (weight_1m -> REQUEST_WEIGHT), "" if none."""
    for kind, prefix in POOL_PREFIX.items():
        if pool == prefix or pool.startswith(prefix + "_"):
            return kind
    return ""


def published_limits(venue: str, info) -> list[Published]:
    """The `rateLimits` of an exchangeInfo answer; MalformedResponse on a row it cannot read.
    Kinds we do not count (e.g. a connection limit) are skipped."""
    rows = info.get("rateLimits") if isinstance(info, dict) else None
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise MalformedResponse(venue, "malformed", "rateLimits is not a list")
    out = []
    for row in rows:
        try:
            kind = row["rateLimitType"]
            window_s = INTERVAL_S[row["interval"]] * int(row.get("intervalNum", 1))
            limit = float(row["limit"])
        except (KeyError, TypeError, ValueError):
            raise MalformedResponse(venue, "malformed", f"unreadable rateLimits row {row!r}") from None
        if kind not in POOL_PREFIX:
            continue
        if not (math.isfinite(limit) and limit > 0 and window_s > 0):
            raise MalformedResponse(venue, "malformed", f"rateLimits row {row!r}")
        out.append(Published(kind, float(window_s), limit))
    return out


def window_name(window_s: float) -> str:
    """A window as the venue's usage headers name it: 60 -> "1m", 10 -> "10s", 86400 -> "1d"."""
    for unit, secs in (("d", 86_400), ("h", 3600), ("m", 60)):
        if window_s >= secs and window_s % secs == 0:
            return f"{int(window_s // secs)}{unit}"
    return f"{int(window_s)}s"


@dataclass(frozen=True)
class Limits:
    """Pools and endpoint weights of one venue, in endpoint-id order (`names`)."""

    pools: Mapping[str, Pool]
    endpoints: Mapping[str, Mapping[str, float]]
    names: tuple[str, ...]
    share: float = LIMIT_SHARE
    #: usage header (lower case) -> pool it reports on; filled by `learn`
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, pools: Mapping, endpoints: Mapping, names: tuple[str, ...]) -> Limits:
        """From a config's pools ({name: PoolConfig or (limit, window_s, burst)}) and endpoints."""
        out = {}
        for name, p in pools.items():
            limit, window_s, burst = (p.limit, p.window_s, p.burst) if hasattr(p, "limit") else p
            out[name] = Pool(float(limit), float(window_s), float(burst))
        return cls(out, {k: dict(v) for k, v in endpoints.items()}, names)

    def throttle(self, now_ns: int) -> Throttle:
        return build_throttle(
            {k: (p.limit, p.window_s, p.burst) for k, p in self.pools.items()},
            dict(self.endpoints),
            now_ns,
            self.names,
        )

    def period_s(self, endpoint: str, share: float) -> float:
        """The shortest period at which a request through `endpoint`, repeated, takes no more than
        `share` of the refill of any pool it draws (0 when it draws none)."""
        weights = self.endpoints.get(endpoint, {})
        return max(
            (w * p.window_s / (p.limit * share) for n, w in weights.items() if (p := self.pools.get(n))),
            default=0.0,
        )

    def learn(self, published: Iterable[Published]) -> Limits:
        """These limits with the venue's published ones applied: a pool of the same kind and window
        is lowered to `share` of the published limit when that is lower; a published window no
        pool counts gets a new pool (`<prefix>_<window>`), drawn by every endpoint that draws the
        kind (RAW_REQUESTS: every endpoint, weight 1). Usage headers are mapped to the pools."""
        pools = dict(self.pools)
        endpoints = {k: dict(v) for k, v in self.endpoints.items()}
        headers = dict(self.headers)
        for pub in published:
            mine = self.share * pub.limit
            name = next(
                (n for n, p in pools.items() if kind_of(n) == pub.kind and p.window_s == pub.window_s),
                None,
            )
            if name is not None:
                p = pools[name]
                pools[name] = replace(p, limit=min(p.limit, mine), venue_limit=pub.limit)
            else:
                name = f"{POOL_PREFIX[pub.kind]}_{window_name(pub.window_s)}"
                pools[name] = Pool(mine, pub.window_s, 0.25, pub.limit)
                for weights in endpoints.values():
                    same = [w for n, w in weights.items() if kind_of(n) == pub.kind]
                    if pub.kind == "RAW_REQUESTS":
                        weights[name] = 1.0
                    elif same:
                        weights[name] = max(same)
            for prefix, kind in USAGE_HEADERS.items():
                if kind == pub.kind:
                    headers[prefix + window_name(pub.window_s)] = name
        for name, p in pools.items():  # a lowered limit's burst still holds the heaviest request
            heaviest = max((endpoints[e].get(name, 0.0) for e in self.names), default=0.0)
            if p.venue_limit and heaviest > p.burst * p.limit and heaviest < p.limit:
                pools[name] = replace(p, burst=min(0.9, heaviest / p.limit))
        for name in [n for n in pools if _dominated(n, pools, endpoints)]:
            del pools[name]
            for weights in endpoints.values():
                weights.pop(name, None)
        headers = {h: n for h, n in headers.items() if n in pools}
        return Limits(pools, endpoints, self.names, self.share, headers)


def _dominated(name: str, pools: dict[str, Pool], endpoints: dict[str, dict[str, float]]) -> bool:
    """Whether another pool of the same kind, drawn at least as much by every endpoint that draws
    `name`, already keeps `name`'s window under its limit (a 90-per-2-s bucket lets through at
    most 2 722 in a minute: a 5 400-per-minute pool beside it only costs a link)."""
    p, kind = pools[name], kind_of(name)
    for other, q in pools.items():
        if other == name or kind_of(other) != kind or other not in pools:
            continue
        if q.burst * q.limit + (1 - q.burst) * q.limit * p.window_s / q.window_s > p.limit:
            continue
        if all(w.get(other, 0.0) >= w[name] for w in endpoints.values() if name in w):
            return True
    return False


# -- the gate ----------------------------------------------------------------------------------


class Gate:
    """Priority + throttle + sequence numbers for one venue's requests."""

    def __init__(
        self,
        venue_id: int,
        throttle: Throttle,
        router: R.Router | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        name: str = "",
        max_block_s: float = 2.0,
        limits: Limits | None = None,
    ):
        self.venue_id, self.name = venue_id, name or str(venue_id)
        self.max_block_ns = int(max_block_s * 1e9)
        self.throttle = throttle
        self._own_router = router is None
        self.router = router if router is not None else R.Router()
        self.router.add_venue(venue_id, throttle)
        self.clock = clock
        self.limits = limits
        self._wake: asyncio.Event | None = None  # created with each pump task (on its loop)
        self._pump: asyncio.Task | None = None
        self._closing = False
        self.admitted: list[tuple[int, int]] = []  # (seq, priority) of the last admissions
        self._keep = 256
        self.banned_until_ns = 0  # on `clock`
        self._ban: IpBanned | None = None
        self.held_until: dict[str, int] = {}  # pool -> on `clock`, from the usage headers
        self.in_flight: dict[str, float] = {}  # pool -> weight sent and not yet answered
        self.corrections = 0  # usage headers that emptied or held a pool
        self._usage: tuple[dict, int, int] | None = None  # last headers, venue ms, clock ns
        self._counted: dict[str, tuple[int, float]] = {}  # pool -> (venue window index, used)

    async def admit(self, endpoint: int, priority: int) -> int:
        """Wait for a turn to send one request through `endpoint`; returns its sequence number.
        Refused at once: during an IP ban (IpBanned), and with RateLimited while the venue's
        Retry-After, the venue's own count of a pool the endpoint draws, or the pools' refill (a
        small daily budget spent), holds it for longer than `max_block_s` (its `retry_after_s` is what is left): a request that would wait that
        long is stale when it leaves, and the caller must learn that the venue is throttled."""
        now = self.clock()
        if now < self.banned_until_ns and self._ban is not None:
            left = (self.banned_until_ns - now) / 1e9
            raise IpBanned(
                self.name,
                "banned",
                f"banned for {left:.1f} s more: nothing is sent",
                left,
                self._ban.until_ns,
            )
        left = max(self.throttle.blocked_until - now, self.throttle.wait_ns(endpoint, now))
        for pool in self._pools_of(endpoint):
            left = max(left, self.held_until.get(pool, 0) - now)
        if left > self.max_block_ns:
            raise RateLimited(
                self.name, "throttled", "waiting out the venue's limit", retry_after_s=left / 1e9
            )
        if self._closing:
            raise RateLimited(self.name, "closed", "the venue client is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.router.push(self.venue_id, priority, endpoint, fut, self.clock())
        if self._pump is None or self._pump.done():
            self._wake = asyncio.Event()
            self._pump = loop.create_task(self._run(), name=f"gate-{self.venue_id}")
        assert self._wake is not None  # made with the running pump
        self._wake.set()
        seq = await fut
        for pool, w in self._weights(endpoint):
            self.in_flight[pool] = self.in_flight.get(pool, 0.0) + w
        return seq

    def _weights(self, endpoint: int) -> list[tuple[str, float]]:
        if self.limits is None or not 0 <= endpoint < len(self.limits.names):
            return []
        return list(self.limits.endpoints[self.limits.names[endpoint]].items())

    def _pools_of(self, endpoint: int) -> list[str]:
        return [p for p, _ in self._weights(endpoint)] if self.held_until else []

    def penalize(self, retry_after_s: float) -> None:
        """The venue asked us to wait: nothing leaves before now + `retry_after_s`."""
        self.throttle.block_until(self.clock() + int(retry_after_s * 1e9))
        if self._wake is not None:
            self._wake.set()

    def ban(self, err: IpBanned, left_s: float) -> None:
        """The venue banned us for `left_s` more seconds: nothing is sent before then; every
        request, waiting or new, is refused with `err`'s kind until it ends."""
        until = self.clock() + int(left_s * 1e9)
        if until <= self.banned_until_ns:
            return
        self.banned_until_ns, self._ban = until, err
        self.throttle.block_until(until)
        for waiter in map(_waiter, self.router.drop(self.venue_id)):
            if not waiter.done():
                waiter.set_exception(
                    IpBanned(self.name, "banned", "banned while waiting: not sent", left_s, err.until_ns)
                )

    def degrade(self, factor: float) -> None:
        """Lower (factor < 1) or restore (1.0) the routing rate."""
        self.throttle.set_rate_factor(factor, self.clock())

    def retune(self, limits: Limits) -> None:
        """Route through a throttle built on `limits` from now on (the venue's published limits,
        learned at start). ConfigError as `build_throttle`. The sequence numbers go on."""
        if not self._own_router or any(self.router.pending(self.venue_id)):
            raise ConfigError("pools", "limits can be learned only before any request waits")
        now = self.clock()
        thr = limits.throttle(now)
        thr.set_rate_factor(self.throttle.rate_factor, now)
        thr.block_until(self.throttle.blocked_until)
        router = R.Router(self.router.sequencer)
        router.add_venue(self.venue_id, thr)
        self.throttle, self.router, self.limits = thr, router, limits
        if self._usage is not None:  # the new pools start full: what the venue counted so far
            headers, venue_ms, at_ns = self._usage
            self._apply_usage(headers, venue_ms + (self.clock() - at_ns) // 1_000_000)

    def observe(self, endpoint: int, headers: Mapping[str, str] | None, venue_now_ms: int) -> None:
        """One answer to a request admitted through `endpoint` arrived (or it failed): it is no
        longer in flight, and its usage headers correct the pools they report on. `venue_now_ms`
        is the venue's clock now (its windows reset on multiples of their length)."""
        for pool, w in self._weights(endpoint):
            self.in_flight[pool] = max(0.0, self.in_flight.get(pool, 0.0) - w)
        if headers:
            self._usage = (dict(headers), venue_now_ms, self.clock())
            self._apply_usage(headers, venue_now_ms)

    def _apply_usage(self, headers: Mapping[str, str], venue_now_ms: int) -> None:
        if self.limits is None or not self.limits.headers:
            return
        for key, value in headers.items():
            pool = self.limits.headers.get(key.lower())
            if pool is None:
                continue
            try:
                used = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(used) and used >= 0:
                self._correct(pool, used, venue_now_ms)

    def _correct(self, pool: str, used: float, venue_now_ms: int) -> None:
        """The venue counted `used` in its current window of `pool`: what it has left (at our
        share, less what is in flight) bounds what may leave before its window resets."""
        assert self.limits is not None
        p = self.limits.pools.get(pool)
        if p is None or p.venue_limit <= 0:
            return
        window_ms = int(p.window_s * 1000)
        index, phase = divmod(venue_now_ms, window_ms)
        last = self._counted.get(pool)
        if last is not None and index == last[0] + 1 and phase < min(250, window_ms // 4) and used >= last[1]:
            return  # counted in the window that just ended: our estimate of its clock is that far off
        self._counted[pool] = (index, used)
        to_reset_ns = (window_ms - phase) * 1_000_000
        left = self.limits.share * p.venue_limit - used - self.in_flight.get(pool, 0.0)
        now = self.clock()
        rate = (1 - p.burst) * p.limit / (p.window_s * 1e9) * self.throttle.rate_factor  # per ns
        level = self.throttle.level(pool, now)
        if level + rate * to_reset_ns <= left:
            return  # the bucket cannot outrun the venue's count
        self.corrections += 1
        if rate * to_reset_ns <= left:
            self.throttle.drain(pool, now)  # what refills until the reset fits
            return
        # empty, and nothing refills until only what the venue has left can refill before its reset
        hold = now + to_reset_ns - int(max(left, 0.0) / rate) if rate > 0 else now + to_reset_ns
        self.throttle.drain(pool, hold)
        self.held_until[pool] = max(self.held_until.get(pool, 0), hold)
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        venue = self.venue_id
        assert self._wake is not None  # admit() makes it before it starts this pump
        while not self._closing:
            router = self.router  # retune may replace it between turns
            now = self.clock()
            cmd = router.pop_ready(venue, now)
            if cmd is not None:
                fut = _waiter(cmd)
                if not fut.done():
                    fut.set_result(cmd.seq)
                    self.admitted.append((cmd.seq, cmd.priority))
                    if len(self.admitted) > self._keep:
                        del self.admitted[: self._keep // 2]
                continue
            wait = router.wait_ns(venue, now)
            if wait == -2:  # build_throttle refuses any limits for which this could happen
                for waiter in map(_waiter, router.drop(venue)):
                    if not waiter.done():
                        waiter.set_exception(
                            VenueError(self.name, "unroutable", "a request weight exceeds a pool's capacity")
                        )
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), None if wait == -1 else wait / 1e9)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop the pump and cancel every waiting request. Never hangs: a cancellation that
        asyncio.wait_for swallows (it can, when its waiter completes at the same moment) still
        ends the pump through the closing flag."""
        self._closing = True
        if self._pump is not None:
            if self._wake is not None:
                self._wake.set()
            self._pump.cancel()
            await asyncio.wait({self._pump}, timeout=1.0)
            self._pump = None
        for waiter in map(_waiter, self.router.drop(self.venue_id)):
            if not waiter.done():
                waiter.cancel()


def ban_end_ms(text: str, pattern: re.Pattern[str]) -> int | None:
    """The venue-time end of a ban written in an answer's text (ms), if it says."""
    m = pattern.search(text)
    return int(m.group(1)) if m else None


def _waiter(cmd: R.Command) -> asyncio.Future[int]:
    """The future of the `admit` call that queued `cmd` (a gate queues nothing else)."""
    return cast("asyncio.Future[int]", cmd.item)
