"""Type stubs for the compiled module basis_ext.throttle (ext/throttle.pyx)."""

from typing import Final

#: returned by `try_acquire` / `wait_ns` when the endpoint can never be served (weight > capacity)
NEVER: Final = -1

class Throttle:
    """The pools and endpoint weights of one venue. Build with `add_pool` / `add_endpoint`."""

    def __init__(self) -> None: ...
    @property
    def pool_names(self) -> list[str]: ...
    @property
    def endpoint_names(self) -> list[str]: ...
    def add_pool(self, name: str, limit: float, window_s: float, burst: float = 0.25, now_ns: int = 0) -> int:
        """Declare a pool of `limit` units per `window_s`; returns its id. Starts full at `now_ns`."""

    def add_endpoint(self, name: str, weights: dict[str, float]) -> int:
        """Declare an endpoint drawing `weights[pool_name]` from each named pool; returns its id."""

    def endpoint(self, name: str) -> int:
        """The id of endpoint `name` (ValueError if undeclared)."""

    def wait_ns(self, endpoint: int, now_ns: int) -> int:
        """ns until `endpoint` could be served (0 = now, NEVER = weight above a pool's capacity)."""

    def try_acquire(self, endpoint: int, now_ns: int) -> int:
        """Take the endpoint's weight from every linked pool and return 0, or take nothing and
        return the ns to wait (NEVER if it can never be served)."""

    def block_until(self, until_ns: int) -> None:
        """Serve nothing before `until_ns` (a venue's Retry-After). Never shortens a block."""

    @property
    def blocked_until(self) -> int: ...
    def set_rate_factor(self, factor: float, now_ns: int) -> None:
        """Scale every refill rate by `factor` in (0, 1] from `now_ns` on."""

    @property
    def rate_factor(self) -> float: ...
    def drain(self, pool: str, now_ns: int) -> None:
        """Empty one pool at `now_ns`."""

    def level(self, pool: str, now_ns: int) -> float:
        """Tokens in `pool` at `now_ns` (refills first)."""

    def capacity(self, pool: str) -> float: ...
