"""Request weights and rate limits of the emulated venue, with Binance's escalation: 429, then 418.

Limits are fixed windows aligned on multiples of their length on the venue's clock (epoch
seconds, with the emulator's clock skew), like the venue's own minute and 10-second windows
(sizes are configurable so tests can use short windows). The limits are published in
exchangeInfo (`published`) and every answer carries the venue's count of each window for our
address (`headers`: X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S ...). Every request adds its
endpoint's weight to the request-weight window, every new order
adds one to each order window. A request that would push a window past its limit is refused
with HTTP 429 and `Retry-After` (whole seconds until the window resets) and is not executed.

Abuse: once a 429 was sent, every further request before that window reset is a violation;
after `ban_after` violations the client is banned: HTTP 418 with `Retry-After` for `ban_s`
seconds, during which every request gets 418; its message names the ban's end in venue ms,
as Binance's does ("IP(127.0.0.1) banned until 1700000000000.").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: (method, path) -> request weight. `depth` depends on `limit` (see `depth_weight`).
WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): 6,  # 80 without a symbol
    ("GET", "/api/v3/myTrades"): 20,
}


def depth_weight(limit: int) -> int:
    """Weight of GET /api/v3/depth for `limit` levels."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


@dataclass
class RateLimitsConfig:
    """The emulated venue's request-weight and order windows and its ban (not the engine's risk
    limits, which are `basis_core.config.LimitsConfig`)."""

    weight_limit: int = 6000
    weight_window_s: float = 60.0
    orders_limit: int = 100
    orders_window_s: float = 10.0
    orders_day_limit: int = 200_000
    ban_after: int = 3  # violations after a 429 before a 418 ban
    ban_s: float = 120.0
    #: whether exchangeInfo publishes these limits (false: a venue whose clients learn its limits
    #: only from its 429s)
    publish: bool = True


@dataclass
class Verdict:
    """What the limiter decided for one request: `status` 0 = serve it, else 429/418."""

    status: int = 0
    code: int = 0
    message: str = ""
    retry_after_s: int = 0


class _Window:
    __slots__ = ("length_s", "limit", "start", "used")

    def __init__(self, limit: int, length_s: float):
        self.limit, self.length_s, self.start, self.used = limit, length_s, 0.0, 0

    def roll(self, now: float) -> None:
        if now >= self.start + self.length_s:
            self.start = math.floor(now / self.length_s) * self.length_s
            self.used = 0

    def fits(self, n: int) -> bool:
        return self.used + n <= self.limit

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.start + self.length_s - now))


def interval(window_s: float) -> tuple[str, int, str]:
    """(exchangeInfo interval, intervalNum, usage-header suffix) of a window: 60 -> MINUTE 1 1M."""
    for name, secs in (("DAY", 86_400), ("HOUR", 3600), ("MINUTE", 60)):
        if window_s >= secs and window_s % secs == 0:
            n = int(window_s // secs)
            return name, n, f"{n}{name[0]}"
    n = max(1, round(window_s))
    return "SECOND", n, f"{n}S"


class RateLimiter:
    """Windows of one emulated venue. `now` is seconds on the emulator's clock."""

    def __init__(self, config: RateLimitsConfig | None = None):
        self.config = c = config or RateLimitsConfig()
        self.weight = _Window(c.weight_limit, c.weight_window_s)
        self.orders = _Window(c.orders_limit, c.orders_window_s)
        self.orders_day = _Window(c.orders_day_limit, 86_400.0)
        self.throttled_until = 0.0
        self.banned_until = 0.0
        self.violations = 0
        self.counts = {429: 0, 418: 0}

    def check(self, now: float, weight: int, is_order: bool) -> Verdict:
        """Count one request at `now` (venue epoch seconds); the verdict says whether to serve it."""
        if now < self.banned_until:
            return self._refuse(418, -1003, self._ban_message(), self.banned_until - now)
        if now < self.throttled_until:
            self.violations += 1
            if self.violations >= self.config.ban_after:
                self.banned_until = now + self.config.ban_s
                self.violations = 0
                return self._refuse(418, -1003, self._ban_message(), self.config.ban_s)
            return self._refuse_weight(now)
        self.violations = 0
        for w in (self.weight, self.orders, self.orders_day):
            w.roll(now)
        if not self.weight.fits(weight):
            self.throttled_until = self.weight.start + self.weight.length_s
            return self._refuse_weight(now)
        self.weight.used += weight
        if is_order:
            for w in (self.orders, self.orders_day):
                if not w.fits(1):
                    self.throttled_until = w.start + w.length_s
                    return self._refuse(
                        429,
                        -1015,
                        f"Too many new orders; current limit is {w.limit} orders per window.",
                        self.throttled_until - now,
                    )
            self.orders.used += 1
            self.orders_day.used += 1
        return Verdict()

    def exhaust(self, now: float, window_s: float | None = None) -> None:
        """Another client on the same address spent the request weight: the current window is
        full from `now` for `window_s` (default: the configured window; a given one becomes the
        window's length from then on)."""
        w = self.weight
        if window_s is not None:
            w.length_s = window_s
        w.start, w.used = now, w.limit

    def use_weight(self, now: float, weight: int) -> None:
        """Another client on the same address spent `weight` of the current window."""
        self.weight.roll(now)
        self.weight.used = min(self.weight.limit, self.weight.used + weight)

    def _ban_message(self) -> str:
        until_ms = int(self.banned_until * 1000)
        return (
            f"Way too many requests; IP(127.0.0.1) banned until {until_ms}. "
            "Please use the websocket for live updates to avoid bans."
        )

    def published(self) -> list[dict]:
        """The limits as exchangeInfo publishes them (`rateLimits`)."""
        c = self.config
        out: list[dict] = []
        if not c.publish:
            return out
        for kind, window_s, limit in (
            ("REQUEST_WEIGHT", c.weight_window_s, c.weight_limit),
            ("ORDERS", c.orders_window_s, c.orders_limit),
            ("ORDERS", 86_400.0, c.orders_day_limit),
        ):
            name, n, _ = interval(window_s)
            out.append({"rateLimitType": kind, "interval": name, "intervalNum": n, "limit": limit})
        return out

    def _refuse_weight(self, now: float) -> Verdict:
        """429: the request weight of the window is used up (until throttled_until)."""
        return self._refuse(
            429,
            -1003,
            "Too much request weight used; current limit is "
            f"{self.config.weight_limit} request weight per window.",
            self.throttled_until - now,
        )

    def _refuse(self, status: int, code: int, message: str, wait_s: float) -> Verdict:
        self.counts[status] += 1
        return Verdict(status, code, message, max(1, math.ceil(wait_s)))

    def headers(self, now: float | None = None) -> dict[str, str]:
        """The usage headers Binance sends with every answer: each window's count, 0 once the
        window has ended (at `now`, when given)."""
        out = {}
        for prefix, w in (
            ("X-MBX-USED-WEIGHT-", self.weight),
            ("X-MBX-ORDER-COUNT-", self.orders),
            ("X-MBX-ORDER-COUNT-", self.orders_day),
        ):
            used = 0 if now is not None and now >= w.start + w.length_s else w.used
            out[prefix + interval(w.length_s)[2]] = str(used)
        return out
