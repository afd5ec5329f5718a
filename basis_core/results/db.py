"""Results of runs in one SQLite file (RUN_DIR/results.sqlite), through the stdlib sqlite3.

Tables (every row carries its run_id, so several runs can share a file):

    runs            run_id, name, seed, started_ns, ended_ns, config (JSON), version
    opportunities   one row per opportunity: strategy, expected edge, realized PnL, fees,
                    slippage, funding, bought/sold, fill symmetry, outcome
    orders          one row per (venue, client order id), upserted as the order moves
    fills           one row per (venue, client order id, fill id); a repeat is ignored
    transitions     state-machine transitions: t_ns, machine, key, from_state, to_state, cause
    recon_exceptions  reconciliation mismatches: layer, key, ours, theirs, cause, resolved_ns
    series          time series samples (name, t_ns, value): cumulative PnL, residual exposure
    histograms      binned distributions (name, lo, hi, count): decision latency
    shortfall       implementation shortfall per opportunity (results/shortfall.py): planned
                    qty, decision mids, VWAP per leg, execution / fees / unfilled cost, USDT and bps

The file is opened in WAL mode with synchronous=NORMAL: a reader (`basis report`) can read
while a run writes, and a crash loses at most the last uncommitted batch. Writers batch rows
and call `commit()` from housekeeping, never per event on the hot path.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..errors import ResultsError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, seed INTEGER NOT NULL, started_ns INTEGER NOT NULL,
    ended_ns INTEGER, config TEXT NOT NULL DEFAULT '{}', version TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS opportunities (
    run_id TEXT NOT NULL, opportunity_id INTEGER NOT NULL, strategy TEXT NOT NULL,
    first_ts_ns INTEGER NOT NULL, last_ts_ns INTEGER NOT NULL, expected_edge_usdt REAL NOT NULL,
    realized_pnl_usdt REAL NOT NULL, fees_usdt REAL NOT NULL, slippage_usdt REAL NOT NULL,
    funding_usdt REAL NOT NULL, fills INTEGER NOT NULL, bought TEXT NOT NULL, sold TEXT NOT NULL,
    symmetry REAL NOT NULL, outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, opportunity_id));
CREATE TABLE IF NOT EXISTS orders (
    run_id TEXT NOT NULL, venue TEXT NOT NULL, coid TEXT NOT NULL, instrument TEXT NOT NULL,
    side TEXT NOT NULL, type TEXT NOT NULL, qty REAL NOT NULL, price REAL, status TEXT NOT NULL,
    filled_qty REAL NOT NULL, avg_price REAL NOT NULL, opportunity_id INTEGER NOT NULL,
    submitted_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL, origin TEXT NOT NULL DEFAULT 'ours',
    PRIMARY KEY (run_id, venue, coid));
CREATE TABLE IF NOT EXISTS fills (
    run_id TEXT NOT NULL, venue TEXT NOT NULL, coid TEXT NOT NULL, fill_id TEXT NOT NULL,
    instrument TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL,
    fee REAL NOT NULL, fee_asset TEXT NOT NULL, fee_usdt REAL NOT NULL, ts_ns INTEGER NOT NULL,
    opportunity_id INTEGER NOT NULL,
    PRIMARY KEY (run_id, venue, coid, fill_id));
CREATE TABLE IF NOT EXISTS transitions (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, t_ns INTEGER NOT NULL, machine TEXT NOT NULL,
    key TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, cause TEXT NOT NULL,
    PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS recon_exceptions (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, t_ns INTEGER NOT NULL, layer TEXT NOT NULL,
    key TEXT NOT NULL, ours TEXT NOT NULL, theirs TEXT NOT NULL, cause TEXT NOT NULL,
    resolved_ns INTEGER,
    PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS series (
    run_id TEXT NOT NULL, name TEXT NOT NULL, t_ns INTEGER NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_name ON series (run_id, name, t_ns);
CREATE TABLE IF NOT EXISTS shortfall (
    run_id TEXT NOT NULL, opportunity_id INTEGER NOT NULL, strategy TEXT NOT NULL,
    slices INTEGER NOT NULL, qty REAL NOT NULL, mid_buy REAL NOT NULL, mid_sell REAL NOT NULL,
    bought REAL NOT NULL, sold REAL NOT NULL, vwap_buy REAL NOT NULL, vwap_sell REAL NOT NULL,
    execution_usdt REAL NOT NULL, fees_usdt REAL NOT NULL, unfilled_usdt REAL NOT NULL,
    shortfall_usdt REAL NOT NULL, shortfall_bps REAL NOT NULL, paper_notional_usdt REAL NOT NULL,
    PRIMARY KEY (run_id, opportunity_id));
CREATE TABLE IF NOT EXISTS histograms (
    run_id TEXT NOT NULL, name TEXT NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, count INTEGER NOT NULL);
"""


_SHORTFALL_COLS = (
    "run_id",
    "opportunity_id",
    "strategy",
    "slices",
    "qty",
    "mid_buy",
    "mid_sell",
    "bought",
    "sold",
    "vwap_buy",
    "vwap_sell",
    "execution_usdt",
    "fees_usdt",
    "unfilled_usdt",
    "shortfall_usdt",
    "shortfall_bps",
    "paper_notional_usdt",
)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _num(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ResultsError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class ResultsDB:
    """One results file. `ResultsDB(path)` creates it (and its tables) if needed;
    `ResultsDB(path, readonly=True)` opens an existing file for reading only."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise ResultsError(f"no results database at {self.path}")
        #: progress of incremental writers in this process (record.record_ledger); not persisted
        self.watermarks: dict[tuple[str, str], tuple[int, ...]] = {}
        try:
            self._db = self._open(readonly)
        except sqlite3.DatabaseError as exc:
            raise ResultsError(f"{self.path} is not a basis results database: {exc}") from None

    def _open(self, readonly: bool) -> sqlite3.Connection:
        if readonly:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.commit()
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            db.close()
            raise ResultsError(f"{self.path}: schema version {row and row[0]!r}, expected {SCHEMA_VERSION}")
        db.row_factory = sqlite3.Row
        return db

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def seal(self) -> None:
        """Fold the WAL into the main file and leave it in rollback-journal mode, so that the run's
        results are one self-standing file (to copy or open read-only). The next writer that opens
        it turns WAL on again."""
        self._db.commit()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.execute("PRAGMA journal_mode=DELETE")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def commit(self) -> None:
        self._db.commit()

    # -- writing -------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        name: str,
        seed: int,
        started_ns: int,
        config: dict | None = None,
        version: str = "",
    ) -> None:
        """Register a run; starting a run id again (a resumed run) keeps its first start time."""
        self._db.execute(
            "INSERT OR IGNORE INTO runs (run_id, name, seed, started_ns, config, version) "
            "VALUES (?,?,?,?,?,?)",
            (run_id, name, int(seed), int(started_ns), _json(config or {}), version),
        )
        self._db.commit()

    def end_run(self, run_id: str, ended_ns: int) -> None:
        if (
            self._db.execute("UPDATE runs SET ended_ns=? WHERE run_id=?", (int(ended_ns), run_id)).rowcount
            != 1
        ):
            raise ResultsError(f"unknown run {run_id!r}")
        self._db.commit()

    def record_opportunity(self, run_id: str, opp, outcome: str = "") -> None:
        """Insert or replace one opportunity from an accounting.OpportunityResult."""
        values = (
            run_id,
            int(opp.opportunity_id),
            opp.strategy,
            int(opp.first_ts_ns),
            int(opp.last_ts_ns),
            _num("expected_edge_usdt", opp.expected_edge_usdt),
            _num("realized_pnl_usdt", opp.realized_pnl_usdt),
            _num("fees_usdt", opp.fees_usdt),
            _num("slippage_usdt", opp.slippage_usdt),
            _num("funding_usdt", opp.funding_usdt),
            int(opp.fills),
            _json(opp.bought),
            _json(opp.sold),
            _num("symmetry", opp.symmetry),
            outcome,
        )
        self._db.execute(
            "INSERT OR REPLACE INTO opportunities VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", values
        )

    def record_order(
        self,
        run_id: str,
        venue: str,
        order,
        *,
        opportunity_id: int = 0,
        submitted_ns: int = 0,
        origin: str = "ours",
    ) -> None:
        """Upsert one order from an basis_core.venue.VenueOrder (or anything with its fields).
        `origin` is "ours" or "adopted" (found at the venue by reconciliation)."""
        price = None if order.price is None else _num("price", order.price)
        self._db.execute(
            "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, venue, coid) DO UPDATE SET "
            "status=excluded.status, filled_qty=excluded.filled_qty, avg_price=excluded.avg_price, "
            "updated_ns=excluded.updated_ns",
            (
                run_id,
                venue,
                str(order.coid),
                order.instrument,
                _name(order.side),
                _name(order.type),
                _num("qty", order.qty),
                price,
                _name(order.status),
                _num("filled_qty", order.filled_qty),
                _num("avg_price", order.avg_price),
                int(opportunity_id),
                int(submitted_ns or order.created_ns),
                int(order.updated_ns),
                origin,
            ),
        )

    def record_fill(self, run_id: str, fill, fee_usdt: float) -> bool:
        """Insert one accounting.LedgerFill; False when that (venue, coid, fill id) is already there."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                fill.venue,
                str(fill.coid),
                fill.fill_id,
                fill.instrument,
                fill.side,
                _num("qty", fill.qty),
                _num("price", fill.price),
                _num("fee", fill.fee),
                fill.fee_asset,
                _num("fee_usdt", fee_usdt),
                int(fill.ts_ns),
                int(fill.opportunity_id),
            ),
        )
        return cur.rowcount == 1

    def record_shortfall(self, run_id: str, row: dict) -> None:
        """Insert or replace one opportunity's shortfall (a results.shortfall.Shortfall.as_row())."""
        cols = _SHORTFALL_COLS
        values = [run_id, int(row["opportunity_id"]), str(row["strategy"]), int(row["slices"])]
        values += [_num(c, row[c]) for c in cols[4:]]
        self._db.execute(
            f"INSERT OR REPLACE INTO shortfall ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            values,
        )

    def record_transition(
        self, run_id: str, t_ns: int, machine: str, key: str, from_state: str, to_state: str, cause: str
    ) -> None:
        self._db.execute(
            "INSERT INTO transitions VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM transitions "
            "WHERE run_id=?), ?,?,?,?,?,?)",
            (run_id, run_id, int(t_ns), machine, str(key), _name(from_state), _name(to_state), cause),
        )

    def record_exception(self, run_id: str, mismatch) -> None:
        """Append one reconciliation mismatch (reconcile.Mismatch). Rows are never overwritten."""
        self._db.execute(
            "INSERT INTO recon_exceptions VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM recon_exceptions "
            "WHERE run_id=?), ?,?,?,?,?,?,?)",
            (
                run_id,
                run_id,
                int(mismatch.ts_ns),
                mismatch.layer,
                str(mismatch.key),
                _json(mismatch.ours),
                _json(mismatch.theirs),
                mismatch.cause,
                None,
            ),
        )

    def resolve_exception(self, run_id: str, layer: str, key: str, resolved_ns: int) -> int:
        """Mark the open exceptions of (layer, key) resolved; returns how many were."""
        return self._db.execute(
            "UPDATE recon_exceptions SET resolved_ns=? WHERE run_id=? AND layer=? AND key=? "
            "AND resolved_ns IS NULL",
            (int(resolved_ns), run_id, layer, str(key)),
        ).rowcount

    def record_series(self, run_id: str, name: str, points: Iterable[tuple[int, float]]) -> None:
        self._db.executemany(
            "INSERT INTO series VALUES (?,?,?,?)", ((run_id, name, int(t), _num(name, v)) for t, v in points)
        )

    def replace_series(self, run_id: str, name: str, points: Iterable[tuple[int, float]]) -> None:
        """Drop series `name` of the run and write `points` in its place."""
        self._db.execute("DELETE FROM series WHERE run_id=? AND name=?", (run_id, name))
        self.record_series(run_id, name, points)

    def record_histogram(self, run_id: str, name: str, edges, counts) -> None:
        """Replace histogram `name`: bins [edges[i], edges[i+1]) with counts[i]."""
        edges, counts = list(edges), list(counts)
        if len(edges) != len(counts) + 1:
            raise ResultsError(f"histogram {name}: {len(edges)} edges for {len(counts)} counts")
        self._db.execute("DELETE FROM histograms WHERE run_id=? AND name=?", (run_id, name))
        self._db.executemany(
            "INSERT INTO histograms VALUES (?,?,?,?,?)",
            [(run_id, name, float(edges[i]), float(edges[i + 1]), int(c)) for i, c in enumerate(counts)],
        )

    # -- reading -------------------------------------------------------------------------------

    def _rows(self, sql: str, args=()) -> list[dict]:
        return [dict(r) for r in self._db.execute(sql, args)]

    def runs(self) -> list[dict]:
        rows = self._rows("SELECT * FROM runs ORDER BY started_ns, run_id")
        for r in rows:
            r["config"] = orjson.loads(r["config"])
        return rows

    def opportunities(self, run_id: str) -> list[dict]:
        rows = self._rows("SELECT * FROM opportunities WHERE run_id=? ORDER BY opportunity_id", (run_id,))
        for r in rows:
            r["bought"], r["sold"] = orjson.loads(r["bought"]), orjson.loads(r["sold"])
        return rows

    def orders(self, run_id: str) -> list[dict]:
        return self._rows("SELECT * FROM orders WHERE run_id=? ORDER BY submitted_ns, venue, coid", (run_id,))

    def fills(self, run_id: str) -> list[dict]:
        return self._rows(
            "SELECT * FROM fills WHERE run_id=? ORDER BY ts_ns, venue, coid, fill_id", (run_id,)
        )

    def transitions(self, run_id: str) -> list[dict]:
        return self._rows("SELECT * FROM transitions WHERE run_id=? ORDER BY seq", (run_id,))

    def exceptions(self, run_id: str) -> list[dict]:
        rows = self._rows("SELECT * FROM recon_exceptions WHERE run_id=? ORDER BY seq", (run_id,))
        for r in rows:
            r["ours"], r["theirs"] = orjson.loads(r["ours"]), orjson.loads(r["theirs"])
        return rows

    def series(self, run_id: str, name: str) -> list[tuple[int, float]]:
        return [
            (r[0], r[1])
            for r in self._db.execute(
                "SELECT t_ns, value FROM series WHERE run_id=? AND name=? ORDER BY t_ns, rowid",
                (run_id, name),
            )
        ]

    def shortfall(self, run_id: str) -> list[dict]:
        """The run's shortfall rows by opportunity; none from a file written before the table."""
        try:
            return self._rows("SELECT * FROM shortfall WHERE run_id=? ORDER BY opportunity_id", (run_id,))
        except sqlite3.OperationalError:
            return []

    def histogram(self, run_id: str, name: str) -> tuple[list[float], list[int]]:
        rows = self._db.execute(
            "SELECT lo, hi, count FROM histograms WHERE run_id=? AND name=? ORDER BY lo", (run_id, name)
        ).fetchall()
        if not rows:
            return [], []
        return [r[0] for r in rows] + [rows[-1][1]], [r[2] for r in rows]


def _name(value) -> str:
    """Enum members are stored by name (Side.BUY -> "BUY"), strings as they are."""
    return value if isinstance(value, str) else getattr(value, "name", str(value))
