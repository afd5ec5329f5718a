"""Several engines sharing capital and global risk limits through NATS JetStream (issue #20).

Not yet part of a run: `basis run` refuses a config with a `[cluster]` table (ConfigError naming
`cluster`: clustered runs are not built). What exists is the first, tested step:

- `config.py` the `[cluster]` table: NATS server URLs, this engine's id, its shard (venues and
  instruments), the names of the environment variables holding its credentials, the bucket
  and the lease; and `connect`'s options built from it.
- `reservations.py` global limits in a JetStream key-value bucket: an engine reserves capacity
  in chunks by compare-and-set, spends it locally without a round trip, returns what it does not
  use; a silent engine keeps what it holds until an operator releases it or its own
  reconciliation confirms its positions.

This package imports `nats` (the `cluster` extra) only in `reservations.py`; `config.py` does not,
so a config can be read without it.
"""
