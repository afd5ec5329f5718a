"""One error hierarchy for the whole engine.

Hot-path outcomes ("ring full", "signal rejected") are return values or reason codes, not
exceptions. Exceptions are for conditions a caller must not ignore: broken config, bad venue
answers, impossible state transitions, reconciliation mismatches. No exception message may carry
a secret; `redact` is applied by every adapter before it builds one.
"""

from __future__ import annotations


class BasisError(Exception):
    """Root of every error basis raises on purpose."""


class ConfigError(BasisError):
    """A configuration file or value is invalid. `path` is the dotted key path (e.g. venues.binance.fee_bps)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SchemaError(BasisError):
    """A record does not match the event schema (wrong size, unknown kind, bad field)."""


class UnknownName(BasisError):
    """A venue, instrument or asset name (or id) that the registry does not know."""


class RingError(BasisError):
    """Misuse of a shared-memory ring (bad geometry, attaching to a foreign segment)."""


class ProducerDead(RingError):
    """The producer of a ring stopped publishing heartbeats or its process is gone."""


class ConsumerGone(RingError):
    """The process that consumes a ring is gone: a producer waiting for room would wait forever."""


class JournalError(BasisError):
    """A journal directory or segment cannot be opened, written or read."""


class JournalCorrupt(JournalError):
    """A journal record failed its CRC in the middle of a segment (not a torn tail)."""


class InvalidTransition(BasisError):
    """A (state, event) pair that a state-machine table does not allow."""

    def __init__(self, machine: str, state: str, event: str):
        self.machine, self.state, self.event = machine, state, event
        super().__init__(f"{machine}: no transition for event {event} in state {state}")


class VenueError(BasisError):
    """A venue answered with an error, or did not answer in a usable way."""

    def __init__(self, venue: str, code: str, message: str = ""):
        self.venue, self.code = venue, code
        super().__init__(f"{venue}: {code}" + (f": {message}" if message else ""))


class RequestTimeout(VenueError):
    """No answer in time: the request may or may not have taken effect; verify before acting.

    On a chain, a send that timed out carries the transaction it may have delivered (`tx_hash`,
    `nonce`) so the caller can look it up instead of sending again."""

    tx_hash: str | None = None
    nonce: int | None = None


class RateLimited(VenueError):
    """The venue throttled us. `retry_after_s` is what it asked for, if it said."""

    def __init__(self, venue: str, code: str, message: str = "", retry_after_s: float | None = None):
        super().__init__(venue, code, message)
        self.retry_after_s = retry_after_s


class IpBanned(RateLimited):
    """The venue banned our address (HTTP 418, rate limits ignored): nothing may be sent to it
    before `until_ns` (wall clock, `time.time_ns`); `retry_after_s` is the wait from the answer.
    Unlike a 429 the venue is DOWN, not throttled, until then."""

    def __init__(
        self,
        venue: str,
        code: str,
        message: str = "",
        retry_after_s: float | None = None,
        until_ns: int = 0,
    ):
        super().__init__(venue, code, message, retry_after_s)
        self.until_ns = until_ns


class VenueUnavailable(VenueError):
    """Maintenance or outage: the venue is not accepting requests."""


class OrderRejected(VenueError):
    """The venue refused an order. `reason` is one of basis_core.schema.RejectReason names."""

    def __init__(self, venue: str, code: str, message: str = "", reason: str = "venue_reject"):
        super().__init__(venue, code, message)
        self.reason = reason


class InsufficientFunds(BasisError):
    """A ledger operation would make a balance negative (a simulated venue turns it into a reject)."""

    def __init__(self, owner: str, asset: str, need: int, have: int):
        self.owner, self.asset, self.need, self.have = owner, asset, need, have
        super().__init__(f"{owner}: needs {need} atoms of {asset}, has {have}")


class OrderNotFound(VenueError):
    """The venue does not know the order we asked about."""


class MalformedResponse(VenueError):
    """A venue answer that parses but is not usable (no order id, no status, NaN price...)."""


class DataFileError(BasisError):
    """A recorded market-data file (CSV/Parquet) cannot be used. `row` is the 1-based line
    (header = line 1) of the first bad row, `column` the offending column, when known."""

    def __init__(self, path: str, message: str, row: int | None = None, column: str | None = None):
        self.path, self.row, self.column = path, row, column
        where = path + (f":{row}" if row is not None else "") + (f" [{column}]" if column else "")
        super().__init__(f"{where}: {message}")


class SignalFileError(BasisError):
    """A line of an external signal file (JSON lines) is not a valid signal, or the file cannot
    be read. `line` is the 1-based line, when known."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path, self.line = path, line
        super().__init__(f"{path}: " + (f"line {line}: " if line is not None else "") + message)


class ReconciliationMismatch(BasisError):
    """Our view and the venue's disagree at one reconciliation layer."""

    def __init__(self, layer: str, key: str, ours, theirs, cause: str = ""):
        self.layer, self.key, self.ours, self.theirs, self.cause = layer, key, ours, theirs, cause
        super().__init__(
            f"{layer} mismatch on {key}: ours={ours!r} venue={theirs!r}" + (f" ({cause})" if cause else "")
        )


def redact(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """Replace every occurrence of each non-empty secret in `text` with `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class AccountingError(BasisError):
    """Input the USDT ledger refuses to book: NaN or non-positive quantities, no mark for an asset."""


class ResultsError(BasisError):
    """A results database, report.json or run directory that is missing, malformed or incomplete."""


class EndedOutsidePolicy(BasisError):
    """A run ended with positions neither flat nor hedged within limits (a venue down, funds
    missing): everything it could write is written, and each open position is named with its cause."""


class Interrupted(BasisError):
    """A run stopped at once by a second SIGINT / SIGTERM: nothing settled, no report written; the
    journal ends at its last whole record (`basis run` exits 130)."""


class ChainRevert(VenueError):
    """An EVM call or transaction reverted. `error_name` is the decoded error ("Error" for a
    require string, "Panic" for a panic code, a contract's custom error name, or "unknown"),
    `revert_args` its decoded arguments as a tuple (BaseException.args keeps the message),
    `data` the raw revert bytes as 0x-hex."""

    def __init__(
        self, venue: str, error_name: str, revert_args: tuple = (), data: str = "", message: str = ""
    ):
        self.error_name, self.revert_args, self.data = error_name, tuple(revert_args), data
        shown = ", ".join(repr(a) for a in self.revert_args)
        super().__init__(venue, "revert", message or f"{error_name}({shown})")


class SimulationFailed(VenueError):
    """A pre-trade eth_call did not pass: the trade was not sent. `cause` is the ChainRevert
    that the simulation produced."""

    def __init__(self, venue: str, cause: ChainRevert, message: str = ""):
        self.cause = cause
        super().__init__(venue, "simulation_failed", message or str(cause))


class GasCapExceeded(VenueError):
    """The fee a transaction would need is above the configured cap: it was not sent.
    `field` is "max_fee_per_gas", "max_priority_fee_per_gas" or "gas"."""

    def __init__(self, venue: str, field: str, wanted: int, cap: int):
        self.field, self.wanted, self.cap = field, wanted, cap
        super().__init__(venue, "gas_cap", f"{field} {wanted} above cap {cap}")


class NonceConflict(VenueError):
    """The node's view of our account nonce contradicts ours in a way the manager cannot repair
    by itself (e.g. another signer used the key)."""


class ToolMissing(BasisError):
    """An external tool the caller needs (anvil, solc-js, node) is not installed."""


class CompileError(BasisError):
    """The Solidity compiler reported errors; the message lists them."""


class AuthenticationFailed(VenueError):
    """The venue refused our credentials or signature (bad key, bad secret, revoked permission).
    Retrying cannot help; the message never carries the key or the secret."""


class ClusterError(BasisError):
    """A clustered engine's shared state (the NATS JetStream key-value bucket of global limits)
    cannot do what was asked: too much contention, a table too large, a holder's lease still
    live. `key` is the limit's key in the bucket ("" when none)."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class ClusterDegraded(ClusterError):
    """The NATS server did not answer (down, restarting, JetStream not ready): no new reservation
    is made. What an engine already holds stays its own to spend; it resumes when the server is back."""


class NotReconciled(ClusterError):
    """This engine id holds a reservation from an earlier incarnation (a crash, a restart): it
    reserves nothing new until its reconciliation confirms what its positions still need."""
