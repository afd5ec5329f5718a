"""basis: execution orchestration for hedged, cross-venue crypto trading."""

__version__ = "0.1.0"
