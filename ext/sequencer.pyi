"""Type stubs for the compiled module basis_ext.sequencer (ext/sequencer.pyx)."""

class Sequencer:
    """One monotonically increasing u64 counter per venue id (0..255)."""

    def __init__(self) -> None: ...
    def next(self, venue: int) -> int:
        """Return the next sequence number for `venue` and advance it."""

    def peek(self, venue: int) -> int:
        """The number `next(venue)` would return, without advancing."""

    def restore(self, venue: int, last_used: int) -> None:
        """After replay: continue after `last_used` (never moves backwards)."""
