"""Type stubs for the compiled module basis_ext.router (ext/router.pyx)."""

from typing import Final

from basis_ext.sequencer import Sequencer
from basis_ext.throttle import Throttle

# priorities (lower value leaves first)
CANCEL: Final = 0
HEDGE: Final = 1
QUERY: Final = 2
ENTRY: Final = 3
PRIORITY_NAMES: Final[tuple[str, str, str, str]]

# operations
OP_SUBMIT: Final = 0
OP_CANCEL: Final = 1
OP_FETCH_ORDER: Final = 2
OP_OPEN_ORDERS: Final = 3
OP_FILLS: Final = 4
OP_BALANCES: Final = 5
OP_BOOK: Final = 6
OP_MARKETS: Final = 7
OP_NAMES: Final[tuple[str, str, str, str, str, str, str, str]]

# faults, as classified by an adapter's error table
FAULT_TIMEOUT: Final = 0
FAULT_NETWORK: Final = 1
FAULT_RATE_LIMITED: Final = 2
FAULT_UNAVAILABLE: Final = 3
FAULT_MALFORMED: Final = 4
FAULT_REJECTED: Final = 5
FAULT_NOT_FOUND: Final = 6
FAULT_AUTH: Final = 7
FAULT_NAMES: Final[tuple[str, str, str, str, str, str, str, str]]

# decisions
GIVE_UP: Final = 0
RETRY: Final = 1
VERIFY: Final = 2
ACTION_NAMES: Final[tuple[str, str, str]]

class Command:
    """One command handed out by the router, stamped with its venue sequence number."""

    @property
    def seq(self) -> int: ...
    @property
    def venue(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def endpoint(self) -> int: ...
    @property
    def item(self) -> object: ...
    @property
    def queued_ns(self) -> int: ...

class Router:
    """Priority queues and throttles for up to 256 venues, with one shared Sequencer."""

    def __init__(self, sequencer: Sequencer | None = None) -> None: ...
    @property
    def sequencer(self) -> Sequencer: ...
    def add_venue(self, venue: int, throttle: Throttle) -> None:
        """Route venue id `venue` (0..255) through `throttle`."""

    def throttle(self, venue: int) -> Throttle: ...
    def push(self, venue: int, priority: int, endpoint: int, item: object, now_ns: int = 0) -> None:
        """Queue `item` for `venue` at `priority`, to be sent through `endpoint`."""

    def pop_ready(self, venue: int, now_ns: int) -> Command | None:
        """The next command of `venue` that may leave at `now_ns`, or None."""

    def wait_ns(self, venue: int, now_ns: int) -> int:
        """ns until the head command of `venue` could leave: 0 now, -1 nothing queued, -2 never."""

    def pending(self, venue: int) -> tuple[int, int, int, int]:
        """Commands waiting for `venue`, per priority (CANCEL, HEDGE, QUERY, ENTRY)."""

    def drop(self, venue: int, priority: int = -1) -> list[Command]:
        """Remove and return the waiting commands of `venue` (one priority, or all when -1)."""

class RetryPolicy:
    """What to do after attempt number `attempt` (1-based) of operation `op` failed with `fault`."""

    def __init__(
        self, max_attempts: int = 3, base_backoff_s: float = 0.05, max_backoff_s: float = 2.0
    ) -> None: ...
    def set_max_attempts(self, op: int, attempts: int) -> None: ...
    def decide(self, op: int, fault: int, attempt: int) -> int:
        """GIVE_UP, RETRY or VERIFY."""

    def backoff_ns(self, attempt: int, retry_after_ns: int = 0) -> int:
        """Deterministic exponential backoff after `attempt` failures, at least `retry_after_ns`."""
