# cython: language_level=3
"""Token-bucket throttles of one venue: pools of request budget linked through endpoint weights.

A venue publishes limits as "at most L units per window W" (Binance: REQUEST_WEIGHT 6000 per
minute, ORDERS 100 per 10 s, ORDERS 200 000 per day). Each limit is a *pool*. Each endpoint
draws a weight from one or more pools at once (placing an order costs 1 request weight, 1 of
the 10-second order pool and 1 of the daily order pool): an acquisition is all-or-nothing over
every pool the endpoint is linked to.

Bucket math, per pool with limit L, window W and burst fraction b (0 < b <= 1):

    capacity C = b * L            (tokens available in one burst)
    refill   r = (1 - b) * L / W  (tokens per ns, continuous)

so that any interval of length W admits at most C + r * W = L units: the bucket never lets
through more than the venue's own fixed- or sliding-window limit, whatever the phase of the
venue's window. b = 1 gives a bucket that refills nothing (a per-day budget for a run shorter
than a day).

Time is injected: every call takes `now_ns` (any monotonic clock in ns). Calls with a time
earlier than the last one see no refill; nothing ever moves backwards. No method allocates
Python objects on the acquisition path.
"""
from libc.math cimport ceil
from libc.stdint cimport int64_t

cdef enum:
    MAX_POOLS = 8
    MAX_LINKS = 4
    MAX_ENDPOINTS = 64

#: returned by `try_acquire` / `wait_ns` when the endpoint can never be served (weight > capacity)
NEVER = -1


cdef class Throttle:
    """The pools and endpoint weights of one venue. Build with `add_pool` / `add_endpoint`."""

    cdef int _n_pools
    cdef double _cap[MAX_POOLS]
    cdef double _rate[MAX_POOLS]
    cdef double _level[MAX_POOLS]
    cdef int64_t _last[MAX_POOLS]
    cdef int _n_eps
    cdef int _ep_links[MAX_ENDPOINTS]
    cdef int _ep_pool[MAX_ENDPOINTS][MAX_LINKS]
    cdef double _ep_weight[MAX_ENDPOINTS][MAX_LINKS]
    cdef int64_t _blocked_until
    cdef double _factor
    cdef readonly object pool_names
    cdef readonly object endpoint_names


    def __cinit__(self):
        self._n_pools = 0
        self._n_eps = 0
        self._blocked_until = 0
        self._factor = 1.0
        self.pool_names = []
        self.endpoint_names = []

    def add_pool(self, str name, double limit, double window_s, double burst=0.25, int64_t now_ns=0):
        """Declare a pool of `limit` units per `window_s`; returns its id. Starts full at `now_ns`."""
        if name in self.pool_names:
            raise ValueError(f"pool {name!r} declared twice")
        if self._n_pools >= MAX_POOLS:
            raise ValueError(f"at most {MAX_POOLS} pools per venue")
        if not (limit > 0 and window_s > 0 and 0 < burst <= 1):
            raise ValueError(f"pool {name!r}: need limit > 0, window_s > 0, 0 < burst <= 1")
        cdef int i = self._n_pools
        self._cap[i] = burst * limit
        self._rate[i] = (1.0 - burst) * limit / (window_s * 1e9)
        self._level[i] = self._cap[i]
        self._last[i] = now_ns
        self._n_pools += 1
        self.pool_names.append(name)
        return i

    def add_endpoint(self, str name, dict weights):
        """Declare an endpoint drawing `weights[pool_name]` from each named pool; returns its id."""
        if name in self.endpoint_names:
            raise ValueError(f"endpoint {name!r} declared twice")
        if self._n_eps >= MAX_ENDPOINTS:
            raise ValueError(f"at most {MAX_ENDPOINTS} endpoints per venue")
        if not 0 < len(weights) <= MAX_LINKS:
            raise ValueError(f"endpoint {name!r}: link it to 1..{MAX_LINKS} pools")
        cdef int e = self._n_eps, k = 0
        for pool, weight in weights.items():
            if pool not in self.pool_names:
                raise ValueError(f"endpoint {name!r}: unknown pool {pool!r}")
            if not weight > 0:
                raise ValueError(f"endpoint {name!r}: weight for {pool!r} must be > 0")
            self._ep_pool[e][k] = self.pool_names.index(pool)
            self._ep_weight[e][k] = weight
            k += 1
        self._ep_links[e] = k
        self._n_eps += 1
        self.endpoint_names.append(name)
        return e

    def endpoint(self, str name):
        """The id of endpoint `name` (ValueError if undeclared)."""
        try:
            return self.endpoint_names.index(name)
        except ValueError:
            raise ValueError(f"unknown endpoint {name!r}") from None

    cdef inline void _refill(self, int p, int64_t now_ns) noexcept:
        cdef int64_t dt = now_ns - self._last[p]
        if dt <= 0:
            return
        cdef double lvl = self._level[p] + dt * self._rate[p] * self._factor
        self._level[p] = lvl if lvl < self._cap[p] else self._cap[p]
        self._last[p] = now_ns

    cdef int64_t _wait(self, int e, int64_t now_ns) noexcept:
        """0 when every linked pool holds the weight now; else ns until it will; NEVER if never."""
        cdef int k, p
        cdef double need, rate
        cdef int64_t wait = 0, w
        if now_ns < self._blocked_until:
            wait = self._blocked_until - now_ns
        for k in range(self._ep_links[e]):
            p = self._ep_pool[e][k]
            self._refill(p, now_ns)
            need = self._ep_weight[e][k] - self._level[p]
            if need <= 0:
                continue
            if self._ep_weight[e][k] > self._cap[p]:
                return NEVER
            rate = self._rate[p] * self._factor
            if rate <= 0:
                return NEVER
            w = <int64_t>ceil(need / rate)
            if w < 1:
                w = 1
            if w > wait:
                wait = w
        return wait

    cpdef int64_t wait_ns(self, int endpoint, int64_t now_ns) except? -2:
        """ns until `endpoint` could be served (0 = now, NEVER = weight above a pool's capacity)."""
        if endpoint < 0 or endpoint >= self._n_eps:
            raise ValueError(f"endpoint id {endpoint} out of range")
        return self._wait(endpoint, now_ns)

    cpdef int64_t try_acquire(self, int endpoint, int64_t now_ns) except? -2:
        """Take the endpoint's weight from every linked pool and return 0, or take nothing and
        return the ns to wait (NEVER if it can never be served)."""
        if endpoint < 0 or endpoint >= self._n_eps:
            raise ValueError(f"endpoint id {endpoint} out of range")
        cdef int64_t wait = self._wait(endpoint, now_ns)
        cdef int k
        if wait != 0:
            return wait
        for k in range(self._ep_links[endpoint]):
            self._level[self._ep_pool[endpoint][k]] -= self._ep_weight[endpoint][k]
        return 0

    def block_until(self, int64_t until_ns):
        """Serve nothing before `until_ns` (a venue's Retry-After). Never shortens a block."""
        if until_ns > self._blocked_until:
            self._blocked_until = until_ns

    @property
    def blocked_until(self):
        return self._blocked_until

    def set_rate_factor(self, double factor, int64_t now_ns):
        """Scale every refill rate by `factor` in (0, 1] from `now_ns` on (lower routing rate
        while DEGRADED; 1.0 restores it). Time before `now_ns` accrues at the old rate."""
        if not 0 < factor <= 1:
            raise ValueError(f"rate factor must be in (0, 1], got {factor}")
        cdef int p
        for p in range(self._n_pools):
            self._refill(p, now_ns)
        self._factor = factor

    @property
    def rate_factor(self):
        return self._factor

    def drain(self, str pool, int64_t now_ns):
        """Empty one pool at `now_ns` (the venue told us its budget is spent: a 429 we did not
        predict, or a used-weight header at the limit)."""
        cdef int p = self.pool_names.index(pool)
        self._refill(p, now_ns)
        self._level[p] = 0.0

    def level(self, str pool, int64_t now_ns):
        """Tokens in `pool` at `now_ns` (refills first)."""
        cdef int p = self.pool_names.index(pool)
        self._refill(p, now_ns)
        return self._level[p]

    def capacity(self, str pool):
        return self._cap[self.pool_names.index(pool)]
