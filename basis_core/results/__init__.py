"""Results of runs: the SQLite results database, report.json, and the HTML report.

db.py          ResultsDB: runs, opportunities, orders, fills, transitions, reconciliation
               exceptions, series, histograms, shortfall (stdlib sqlite3, WAL)
record.py      write a Ledger / mismatches / latencies into the database
reportjson.py  report.json fields, validation and atomic writing (orjson)
shortfall.py   implementation shortfall per opportunity against the mids at decision
stats.py       percentiles of latency samples (the report's and the benchmarks' one method)
svg.py         inline SVG plots
report.py      `basis report RUN_DIR`: summary on stdout, self-contained report.html
"""

from .db import ResultsDB
from .reportjson import FIELDS, RunReport, read_report, validate, write_report

__all__ = ["FIELDS", "ResultsDB", "RunReport", "read_report", "validate", "write_report"]
