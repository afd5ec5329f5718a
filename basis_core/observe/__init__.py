"""What a running engine shows its operators: metrics, a live status page, its log of changes.

Modules: `sample.py` (Sampler: one look at a running engine as plain data, taken on an interval
of the run's clock, never per record; writes the state changes it finds to the run's log),
`metrics.py` (a sample in Prometheus' exposition format), `page.py` (the self-contained status
page), `server.py` (Observer: serves both on 127.0.0.1 from a thread of its own).
"""
