"""Several engines sharing capital and global risk limits through NATS JetStream (issue #20).

`basis run` with a `[cluster]` table reserves the run's shared limits ahead of need and its
engine spends only what it holds (the engine package: allowance and clustered). Not built yet:
results streamed to JetStream and a cluster-wide halt.

- `config.py` the `[cluster]` table: NATS server URLs, this engine's id, its shard (venues and
  instruments), the names of the environment variables holding its credentials, the bucket,
  the lease and the chunk size; and `connect`'s options built from it.
- `reservations.py` global limits in a JetStream key-value bucket: an engine reserves capacity
  in chunks by compare-and-set, spends it locally without a round trip, returns what it does not
  use; a silent engine keeps what it holds until an operator releases it or its own
  reconciliation confirms its positions.
- `limits.py` which limits a run draws on (capital per venue and asset, position per
  instrument, residual) and what one position uses of each; no network, read by the engine.
- `link.py` a clustered run's io-side thread: the first chunks reserved before the first batch,
  more ahead of need, degraded (no new exposure beyond what is held) while NATS does not answer,
  the unused returned at the end.

This package imports `nats` (the `cluster` extra) only in `reservations.py` and `link.py`;
`config.py` and `limits.py` do not, so a config can be read and an engine decide without it.
"""
