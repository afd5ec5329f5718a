"""Recorded books and trades from CSV (or Parquet, when pyarrow is installed), and their replay.

Both files have the same columns, in any order, with a header line:

    ts_ns,venue,instrument,side,price,qty

* books: one row per level change; `side` is bid|ask; `qty` 0 empties the level. Rows with the
  same (ts_ns, venue, instrument) form one update.
* trades: one row per public trade; `side` is the aggressor, buy|sell; `qty` > 0.

`ts_ns` is an integer (nanoseconds, any epoch below 2**63: replay starts at the first timestamp)
and rows are in time order (equal timestamps allowed). Every row is checked when the file is
loaded: a missing column, a non-number, a NaN or negative price or size, an unknown side, a row
earlier than the one before it → a DataFileError naming the file, the line (header = line 1) and
the column. `check` then holds every row against the scenario before anything runs: a venue or
instrument the scenario does not have, a price off the instrument's tick grid, a size off its lot
grid (or beyond 2**53 ticks or lots) is a DataFileError at that row. Nothing is skipped.

`RecordedMarket.run` replays both files into SimVenues on the loop's clock: book rows set the
participants' depth level by level, trade rows become participants' IOC orders at the recorded
price (so they fill our resting orders that stand at that price or better, in queue order).
"""

from __future__ import annotations

import asyncio
import csv
import decimal
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from basis_core.errors import DataFileError
from basis_core.schema import Side

from .matching import grid_steps

COLUMNS = ("ts_ns", "venue", "instrument", "side", "price", "qty")
_SIDES = {"books": {"bid": Side.BUY, "ask": Side.SELL}, "trades": {"buy": Side.BUY, "sell": Side.SELL}}
ROW = np.dtype(
    [("ts_ns", "<i8"), ("listing", "<u2"), ("side", "u1"), ("price", "<f8"), ("qty", "<f8"), ("line", "<u4")]
)
MAX_TS_NS = 2**63 - 1  # ts_ns is an int64
MAX_STEPS = 2**53  # a price in ticks or a size in lots must stay exact in a float64

#: (venue, instrument) -> (tick, lot) of the scenario's listings, what `check` holds rows against
Grids = dict[tuple[str, str], tuple[float, float]]


@dataclass
class Recording:
    """Rows of one file, sorted by time (stable); `listings[i]` is (venue, instrument)."""

    path: str
    kind: str
    rows: np.ndarray
    listings: list[tuple[str, str]]


def load_csv(path: str | Path, kind: str) -> Recording:
    """Load a books or trades CSV (see module docstring)."""
    if kind not in _SIDES:
        raise ValueError(f"kind must be 'books' or 'trades', got {kind!r}")
    p = str(path)
    try:
        fh = open(p, "rb")  # noqa: SIM115 (closed by the with-block below)
    except OSError as exc:
        raise DataFileError(p, f"cannot open: {exc.strerror}") from None
    with fh:
        reader = csv.reader(_text_lines(p, fh))
        try:
            return _recording(p, kind, list(_rows(p, kind, reader)))
        except csv.Error as exc:  # a NUL, a field beyond the csv module's size limit
            raise DataFileError(p, f"unreadable line: {exc}", row=reader.line_num) from None


def _text_lines(p: str, fh):
    """The file's lines as text, each decoded alone so that bytes that are not UTF-8 are
    reported at their line."""
    for line, raw in enumerate(fh, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFileError(p, f"not UTF-8 text (byte {exc.start + 1} of the line)", row=line) from None


def _rows(p: str, kind: str, reader):
    header = next(reader, None)
    if header is None:
        raise DataFileError(p, "empty file (expected a header line)", row=1)
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataFileError(p, f"missing column(s) {', '.join(missing)}; need {','.join(COLUMNS)}", row=1)
    cols = {c: header.index(c) for c in COLUMNS}
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        yield _parse_row(p, kind, reader.line_num, fields, cols, len(header))


def load_parquet(path: str | Path, kind: str) -> Recording:
    """Load a books or trades Parquet file with the CSV's columns. Needs pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(
            str(path), "reading Parquet needs pyarrow (pip install pyarrow), or convert the file to CSV"
        ) from None
    import pyarrow as pa

    p = str(path)
    try:
        table = pq.read_table(p)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise DataFileError(p, f"missing column(s) {', '.join(missing)}")
        data = {c: table.column(c).to_pylist() for c in COLUMNS}
    except (pa.ArrowException, OSError, ValueError) as exc:  # not Parquet, cut off, unreadable
        raise DataFileError(p, f"not a readable Parquet file: {type(exc).__name__}") from None
    cols = {c: i for i, c in enumerate(COLUMNS)}
    records = [
        _parse_row(p, kind, i + 2, [_cell(p, i + 2, c, data[c][i]) for c in COLUMNS], cols, len(COLUMNS))
        for i in range(table.num_rows)
    ]
    return _recording(p, kind, records)


def _cell(p: str, line: int, column: str, value) -> str:
    """One Parquet cell as the CSV's text: a name column holds text, a number column a number
    (int, float, or text); a null, or a true/false, is a DataFileError at its row and column.
    (`line` counts as the CSV's would: the first row is line 2.)"""
    if value is None:
        raise DataFileError(p, f"{column} is null", row=line, column=column)
    if column in ("venue", "instrument", "side"):
        if not isinstance(value, str):
            raise DataFileError(
                p, f"{column} must be text, got {type(value).__name__}", row=line, column=column
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str | decimal.Decimal):
        raise DataFileError(
            p, f"{column} must be a number, got {type(value).__name__}", row=line, column=column
        )
    if column == "ts_ns" and isinstance(value, float):
        raise DataFileError(p, f"ts_ns must be an integer, got {value!r}", row=line, column=column)
    return repr(value) if isinstance(value, float) else str(value)


def load(path: str | Path, kind: str) -> Recording:
    """CSV or Parquet by file suffix."""
    return load_parquet(path, kind) if str(path).endswith((".parquet", ".pq")) else load_csv(path, kind)


def _parse_row(p: str, kind: str, line: int, fields: list[str], cols: dict[str, int], width: int):
    if len(fields) != width:
        raise DataFileError(p, f"expected {width} fields, got {len(fields)}", row=line)
    get = {c: fields[i].strip() for c, i in cols.items()}
    try:
        ts = int(get["ts_ns"])
    except ValueError:
        raise DataFileError(
            p, f"ts_ns must be an integer, got {get['ts_ns']!r}", row=line, column="ts_ns"
        ) from None
    if not 0 <= ts <= MAX_TS_NS:
        raise DataFileError(p, f"ts_ns must be in [0, 2**63), got {ts}", row=line, column="ts_ns")
    for c in ("venue", "instrument"):
        if not get[c]:
            raise DataFileError(p, f"{c} is empty", row=line, column=c)
    side = _SIDES[kind].get(get["side"].lower())
    if side is None:
        raise DataFileError(
            p, f"side must be {' or '.join(_SIDES[kind])}, got {get['side']!r}", row=line, column="side"
        )
    values = {}
    for c in ("price", "qty"):
        try:
            v = float(get[c])
        except ValueError:
            raise DataFileError(p, f"{c} is not a number: {get[c]!r}", row=line, column=c) from None
        if (
            not math.isfinite(v)
            or v < 0
            or (c == "price" and v == 0)
            or (c == "qty" and kind == "trades" and v == 0)
        ):
            raise DataFileError(
                p,
                f"{c} must be finite and > 0{' (or 0 to empty a level)' if c == 'qty' and kind == 'books' else ''}, got {get[c]!r}",
                row=line,
                column=c,
            )
        values[c] = v
    return ts, (get["venue"], get["instrument"]), int(side), values["price"], values["qty"], line


def _recording(p: str, kind: str, records: list) -> Recording:
    listings: dict[tuple[str, str], int] = {}
    rows = np.zeros(len(records), dtype=ROW)
    last_ts, last_line = -1, 0
    for i, (ts, key, side, price, qty, line) in enumerate(records):
        if ts < last_ts:
            # a row out of order would move the replay's time origin or jump its clock back
            raise DataFileError(
                p,
                f"ts_ns {ts} is earlier than {last_ts} on line {last_line}: rows must be in time order",
                row=line,
                column="ts_ns",
            )
        last_ts, last_line = ts, line
        if len(listings) > np.iinfo(ROW["listing"]).max and key not in listings:
            raise DataFileError(p, "more than 65536 venue/instrument pairs", row=line, column="instrument")
        rows[i] = (ts, listings.setdefault(key, len(listings)), side, price, qty, line)
    return Recording(p, kind, rows, list(listings))


def check(rec: Recording, grids: Grids) -> None:
    """Hold every row of `rec` against the scenario's listings (see module docstring); the first
    bad row is a DataFileError naming its line and column."""
    known = [grids.get(key) for key in rec.listings]
    for listing, price, qty, line in zip(
        rec.rows["listing"].tolist(),
        rec.rows["price"].tolist(),
        rec.rows["qty"].tolist(),
        rec.rows["line"].tolist(),
    ):
        grid = known[listing]
        if grid is None:
            venue, inst = rec.listings[listing]
            raise DataFileError(
                rec.path,
                f"names {venue}/{inst}, which is not a venue/instrument of this scenario",
                row=line,
                column="venue" if all(v != venue for v, _ in grids) else "instrument",
            )
        tick, lot = grid
        _on_grid(rec, line, "price", price, tick, "tick")
        if qty:  # a book row's 0 empties its level
            _on_grid(rec, line, "qty", qty, lot, "lot")


def _on_grid(rec: Recording, line: int, column: str, value: float, step: float, unit: str) -> None:
    n = grid_steps(value, step)
    if n is None or n > MAX_STEPS:
        raise DataFileError(
            rec.path,
            f"{column} {value!r} is not a whole number of {unit}s ({unit} {step:g}, at most 2**53 of them)",
            row=line,
            column=column,
        )


class RecordedMarket:
    """Replays recorded books and trades into venues (keyed by venue name)."""

    def __init__(self, books: Recording | None = None, trades: Recording | None = None):
        self.books, self.trades = books, trades
        starts = [r.rows["ts_ns"][0] for r in (books, trades) if r is not None and len(r.rows)]
        self.t0_ns = int(min(starts)) if starts else 0

    async def run(self, venues: dict) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        plan: list[tuple[int, int, int, Recording]] = []  # (ts, books before trades, row, file)
        grids = grids_of(venues)
        for rec in (self.books, self.trades):
            if rec is None:
                continue
            check(rec, grids)
            plan.extend(
                (int(r["ts_ns"]), 0 if rec.kind == "books" else 1, i, rec) for i, r in enumerate(rec.rows)
            )
        plan.sort(key=lambda x: (x[0], x[1], x[2]))
        i = 0
        while i < len(plan):
            ts, _, _, rec = plan[i]
            when = t0 + (ts - self.t0_ns) / 1e9
            if when > loop.time():
                await asyncio.sleep(when - loop.time())
            if rec.kind == "trades":
                self._trade(venues, rec, plan[i][2])
                i += 1
                continue
            j = i
            group: dict[int, list[np.void]] = {}  # listing -> its rows at this instant
            while j < len(plan) and plan[j][0] == ts and plan[j][3] is rec:
                r = rec.rows[plan[j][2]]
                group.setdefault(int(r["listing"]), []).append(r)
                j += 1
            for listing, rows in group.items():
                self._levels(venues, rec, listing, rows)
            i = j

    def _levels(self, venues: dict, rec: Recording, listing: int, rows: list) -> None:
        venue_name, inst = rec.listings[listing]
        venue = venues[venue_name]
        eng = venue.exchange.engine(inst)
        sides: tuple[dict[int, int], dict[int, int]] = ({}, {})  # bids, asks: price ticks -> lots
        for r in rows:
            sides[int(r["side"])][_price_ticks(rec, eng, r)] = round(float(r["qty"]) / eng.spec.lot)
        venue.apply_book(inst, sides[0], sides[1], replace=False)

    def _trade(self, venues: dict, rec: Recording, index: int) -> None:
        r = rec.rows[index]
        venue_name, inst = rec.listings[int(r["listing"])]
        venue = venues[venue_name]
        eng = venue.exchange.engine(inst)
        px = _price_ticks(rec, eng, r)
        lots = round(float(r["qty"]) / eng.spec.lot)  # on the lot grid: `check` made sure
        venue.participant_trade(inst, Side(int(r["side"])), lots, limit=px)


def _price_ticks(rec: Recording, eng, r) -> int:
    """Row r's price in ticks of the engine's grid; DataFileError (at the row) when off the grid."""
    px = eng.to_ticks(float(r["price"]))
    if px is None:
        raise DataFileError(
            rec.path,
            f"price {float(r['price'])} is not on the tick grid {eng.spec.tick}",
            row=int(r["line"]),
            column="price",
        )
    return px


def grids_of(venues: dict) -> Grids:
    """The tick and lot of every listing of these simulated venues (keyed by venue name)."""
    return {
        (name, inst): (venue.exchange.engine(inst).spec.tick, venue.exchange.engine(inst).spec.lot)
        for name, venue in venues.items()
        for inst in venue.instruments()
    }
