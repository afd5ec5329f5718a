"""Request weights and rate limits of the emulated venue, with Binance's escalation: 429, then 418.

Limits are fixed windows aligned on multiples of their length from the emulator's start, like
the venue's own minute and 10-second windows (sizes are configurable so tests can use short
windows). Every request adds its endpoint's weight to the request-weight window, every new order
adds one to each order window. A request that would push a window past its limit is refused
with HTTP 429 and `Retry-After` (whole seconds until the window resets) and is not executed.

Abuse: once a 429 was sent, every further request before that window reset is a violation;
after `ban_after` violations the client is banned: HTTP 418 with `Retry-After` for `ban_s`
seconds, during which every request gets 418.
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
        """Count one request; the verdict says whether to serve it."""
        if now < self.banned_until:
            return self._refuse(
                418, -1003, "Way too many requests; IP banned until further notice.", self.banned_until - now
            )
        if now < self.throttled_until:
            self.violations += 1
            if self.violations >= self.config.ban_after:
                self.banned_until = now + self.config.ban_s
                self.violations = 0
                return self._refuse(
                    418, -1003, "Way too many requests; IP banned until further notice.", self.config.ban_s
                )
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
        full from `now` for `window_s` (default: the configured window)."""
        w = self.weight
        if window_s is not None:
            w.length_s = window_s
        w.start, w.used = now, w.limit

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

    def headers(self) -> dict[str, str]:
        """The usage headers Binance sends with every answer."""
        return {
            "X-MBX-USED-WEIGHT-1M": str(self.weight.used),
            "X-MBX-ORDER-COUNT-10S": str(self.orders.used),
            "X-MBX-ORDER-COUNT-1D": str(self.orders_day.used),
        }
