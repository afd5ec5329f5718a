"""The io side: venues in, records out; engine commands in, venue calls out.

`VenueIO` is the only part of the engine that touches venues. It turns what venues say
(book updates, trades, funding, our order updates and fills, balances, transfers, errors) into
schema records and hands them to `sink` — the engine's inbox, or the md/exec rings when the
engine runs in its own process. It takes the engine's ORDER_NEW / ORDER_CANCEL / ORDER_QUERY
records and routes them through the Cython router: per-venue token buckets, strict priorities
(cancels, then hedges and unwinds, then queries, then entries), deterministic sequence numbers.

Failures become records, never exceptions: a timeout on a submit is an ORDER_EVENT TIMEOUT
plus a VENUE_STATUS TIMEOUT (the engine then verifies the order by client order id); a rate
limit blocks the venue's throttle for Retry-After and re-queues the same command (same client
order id: the venue cannot see it twice); a reject is an ORDER_EVENT REJECT with its reason.
Which records each error type leaves, per call, is the table `basis_core.venue_errors.ON_ERROR`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable

import numpy as np

from basis_core.venue import (
    BalanceUpdate,
    BookUpdate,
    Charge,
    Fill,
    FundingPayment,
    FundingUpdate,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    TradePrint,
    TransferInfo,
    Venue,
    VenueOrder,
    VenueStatus,
    coid_from_wire,
    coid_to_wire,
)
from basis_ext.router import CANCEL, ENTRY, HEDGE, QUERY, Router
from basis_ext.sequencer import Sequencer
from basis_ext.throttle import Throttle

from .. import schema as S
from ..errors import VenueError
from ..registry import Registry
from ..runlog import NULL_LOG, RunLog
from ..venue_errors import Call, Status, outcome_of, report_of
from .supervisor import Supervisor

_STATUS_EVENT = {
    OrderStatus.OPEN: S.OrderEventType.ACK,
    OrderStatus.PARTIALLY_FILLED: S.OrderEventType.ACK,
    OrderStatus.FILLED: S.OrderEventType.FILL,
    OrderStatus.CANCELED: S.OrderEventType.CANCELED,
    OrderStatus.EXPIRED: S.OrderEventType.EXPIRED,
    OrderStatus.REJECTED: S.OrderEventType.REJECT,
}
_REASON = {r.name.lower(): r for r in S.RejectReason}
_PRIORITY = {
    S.Purpose.ENTRY: ENTRY,
    S.Purpose.HEDGE: HEDGE,
    S.Purpose.UNWIND: HEDGE,
    S.Purpose.RESTORE: HEDGE,
}
OK_EVERY_NS = 100_000_000
#: a venue stream that failed with a venue error is subscribed again after this pause, doubling
#: up to the second figure while it keeps failing (seconds)
STREAM_RETRY_S = (0.5, 8.0)
#: fills asked of a venue per page when looking for an order's missing fills
FILLS_PAGE = 1000


def stable_id(text: str) -> int:
    """A u63 id for a venue's string id, the same in every process and run."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def default_throttle(now_ns: int, orders_per_10s: float = 50, weight_per_min: float = 1200) -> Throttle:
    """A conservative venue budget: request weight per minute, orders per 10 s."""
    thr = Throttle()
    thr.add_pool("weight", weight_per_min, 60.0, 0.25, now_ns)
    thr.add_pool("orders", orders_per_10s, 10.0, 0.5, now_ns)
    thr.add_endpoint("submit", {"weight": 1, "orders": 1})
    thr.add_endpoint("cancel", {"weight": 1})
    thr.add_endpoint("query", {"weight": 2})
    return thr


class VenueIO:
    """Venue-facing half of the engine (see module docstring)."""

    def __init__(
        self,
        venues: dict[str, Venue],
        registry: Registry,
        now_ns: Callable[[], int],
        sink: Callable[[np.ndarray], None],
        instrument_of: dict[int, str],
        max_rate_limit_retries: int = 5,
        resend_window_s: float = 1.5,
        supervisor: Supervisor | None = None,
    ):
        self.venues = venues
        self.reg = registry
        self.now_ns = now_ns
        self.sink = sink
        self.instrument_of = instrument_of  # instrument id -> config name
        self.max_rl_retries = max_rate_limit_retries
        self.resend_window_ns = int(resend_window_s * 1e9)
        self.router = Router(Sequencer())
        self.seq = 0
        self.tasks: list[asyncio.Task] = []
        #: the pumps, dispatchers and calls in flight are the run's tasks: one failing stops it
        self.supervisor = supervisor or Supervisor()
        self._inflight: set[asyncio.Task] = set()
        self.fill_hook: Callable[[Fill], None] | None = None
        #: a venue's charges outside fills (a reverted transaction's gas), once per (venue, ref)
        self.charge_hook: Callable[[Charge], None] | None = None
        self._charges: set[tuple[str, str]] = set()
        self.log: RunLog = NULL_LOG  # venue errors go to the run's log.jsonl
        self._wake: dict[int, asyncio.Event] = {}
        self._fill_no: dict[int, int] = {}
        self._booked_qty: dict[int, float] = {}  # coid -> quantity of the fills booked for it
        self._trades: set[tuple[str, str]] = set()
        self._last_ok: dict[str, int] = {}
        self.calls = {"submit": 0, "cancel": 0, "query": 0}
        t0 = now_ns()
        for name in venues:
            vid = registry.venue(name)
            self.router.add_venue(vid, default_throttle(t0))
            self._wake[vid] = asyncio.Event()

    # -- records out -------------------------------------------------------------------------

    def _new(self, kind: S.Kind, n: int = 1) -> np.ndarray:
        rec = S.empty(kind, n)
        rec["ts_ns"] = self.now_ns()
        rec["seq"] = np.arange(self.seq + 1, self.seq + n + 1)
        rec["source"] = S.Source.VENUE
        self.seq += n
        return rec

    def _emit(self, rec: np.ndarray) -> None:
        self.sink(rec.view(S.GENERIC))

    def emit_status(
        self,
        venue: str,
        report: S.VenueReport,
        retry_after_s: float | None = None,
        until_ns: int = 0,
        latency_ns: int = 0,
    ) -> None:
        """A VENUE_STATUS record; `latency_ns` is how long ago the request it answers was sent
        (the answer says how the venue was then, not now)."""
        rec = self._new(S.Kind.VENUE_STATUS)
        rec["venue"] = self.reg.venue(venue)
        rec["sub"] = int(report)
        rec["retry_after_ms"] = int(min((retry_after_s or 0.0) * 1000, 2**32 - 1))
        rec["until_ns"] = until_ns
        rec["latency_ns"] = latency_ns
        self._emit(rec)

    def _ok(self, venue: str, sent_ns: int) -> None:
        """A healthy answer to a request sent at `sent_ns` (at most one record per OK_EVERY_NS)."""
        now = self.now_ns()
        if now - self._last_ok.get(venue, -OK_EVERY_NS) >= OK_EVERY_NS:
            self._last_ok[venue] = now
            self.emit_status(venue, S.VenueReport.OK, latency_ns=max(0, now - sent_ns))

    def emit_order_event(
        self,
        venue: str,
        instrument: str,
        coid: int,
        event: S.OrderEventType,
        cum_qty: float = 0.0,
        avg_px: float = 0.0,
        reason: S.RejectReason = S.RejectReason.NONE,
    ) -> None:
        rec = self._new(S.Kind.ORDER_EVENT)
        rec["venue"] = self.reg.venue(venue)
        rec["instrument"] = self.reg.instrument(instrument) if instrument else 0
        rec["sub"] = int(event)
        rec["coid"] = coid
        rec["last_qty"] = cum_qty
        rec["last_px"] = avg_px
        rec["reason"] = int(reason)
        self._emit(rec)

    def emit_view(self, venue: str, view: VenueOrder) -> None:
        coid = coid_from_wire(view.coid)
        if coid is None:
            return  # not ours (placed by hand): reconciliation reports it, the engine ignores it
        self.emit_order_event(
            venue,
            view.instrument,
            coid,
            _STATUS_EVENT[view.status],
            view.filled_qty,
            view.avg_price,
            view.reason,
        )

    def emit_fill(self, fill: Fill) -> None:
        if (fill.venue, fill.trade_id) in self._trades:
            return
        coid = coid_from_wire(fill.coid)
        if coid is None:
            return
        self._trades.add((fill.venue, fill.trade_id))
        if self.fill_hook is not None:
            self.fill_hook(fill)
        n = self._fill_no.get(coid, 0) + 1
        self._fill_no[coid] = n
        self._booked_qty[coid] = self._booked_qty.get(coid, 0.0) + fill.qty
        rec = self._new(S.Kind.ORDER_EVENT)
        rec["venue"] = self.reg.venue(fill.venue)
        rec["instrument"] = self.reg.instrument(fill.instrument)
        rec["sub"] = int(S.OrderEventType.PARTIAL_FILL)
        rec["coid"] = coid
        rec["last_px"] = fill.price
        rec["last_qty"] = fill.qty
        rec["fee"] = fill.fee
        rec["aux"] = self.reg.assets.add(fill.fee_asset) if fill.fee_asset else 0
        rec["liquidity"] = int(fill.liquidity)
        rec["fill_no"] = min(n, 65535)
        self._emit(rec)

    def known_fill(self, fill: Fill, fill_no: int) -> None:
        """A fill the engine already holds as fill `fill_no` of its order (a resumed run's
        journal, resume.py): neither the stream nor a query's catch-up reports it again, and
        the order's next fill is numbered after it."""
        coid = coid_from_wire(fill.coid)
        if coid is None or (fill.venue, fill.trade_id) in self._trades:
            return
        self._trades.add((fill.venue, fill.trade_id))
        self._fill_no[coid] = max(self._fill_no.get(coid, 0), fill_no)
        self._booked_qty[coid] = self._booked_qty.get(coid, 0.0) + fill.qty

    def book_records(self, ev: BookUpdate) -> np.ndarray:
        levels = []
        if ev.snapshot:
            levels.append((S.Side.BUY, 0.0, 0.0, S.BookAction.SNAPSHOT_BEGIN))
            levels.append((S.Side.SELL, 0.0, 0.0, S.BookAction.SNAPSHOT_BEGIN))
        levels += [(S.Side.BUY, p, q, S.BookAction.SET) for p, q in ev.bids]
        levels += [(S.Side.SELL, p, q, S.BookAction.SET) for p, q in ev.asks]
        if ev.snapshot:
            levels.append((S.Side.BUY, 0.0, 0.0, S.BookAction.SNAPSHOT_END))
        rec = self._new(S.Kind.BOOK_LEVEL, len(levels))
        rec["venue"] = self.reg.venue(ev.venue)
        rec["instrument"] = self.reg.instrument(ev.instrument)
        rec["exch_ts_ns"] = ev.ts_ns
        rec["update_id"] = ev.update_id
        rec["aux"] = 0xFFFF
        for i, (side, px, qty, action) in enumerate(levels):
            rec["sub"][i] = int(side)
            rec["price"][i] = px
            rec["qty"][i] = qty
            rec["action"][i] = int(action)
        return rec

    # -- venue streams -----------------------------------------------------------------------

    async def _follow(self, name: str, subscribe: Callable[[], AsyncIterator], handle: Callable) -> None:
        """Hand every event of a venue stream to `handle` until the venue ends the stream. A venue
        error inside the stream (maintenance, timeout, throttling) is reported as the venue's
        health, like a failed request, and the stream is subscribed again after a pause; any other
        exception is a bug and stops the run (the supervisor)."""
        pause_s = STREAM_RETRY_S[0]
        while True:
            try:
                async for ev in subscribe():
                    handle(ev)
                    pause_s = STREAM_RETRY_S[0]
                return
            except VenueError as exc:
                self._report(name, Status.FAILED, exc, self.now_ns())
            await asyncio.sleep(pause_s)
            pause_s = min(2 * pause_s, STREAM_RETRY_S[1])

    async def pump_market(self, name: str) -> None:
        await self._follow(name, self.venues[name].market_data, lambda ev: self._market_event(name, ev))

    def _market_event(self, name: str, ev) -> None:
        if isinstance(ev, BookUpdate):
            self._emit(self.book_records(ev))
        elif isinstance(ev, TradePrint):
            rec = self._new(S.Kind.TRADE)
            rec["venue"], rec["instrument"] = self.reg.venue(name), self.reg.instrument(ev.instrument)
            rec["sub"], rec["price"], rec["qty"], rec["exch_ts_ns"] = (
                int(ev.side),
                ev.price,
                ev.qty,
                ev.ts_ns,
            )
            self._emit(rec)
        elif isinstance(ev, FundingUpdate):
            rec = self._new(S.Kind.FUNDING)
            rec["venue"], rec["instrument"] = self.reg.venue(name), self.reg.instrument(ev.instrument)
            rec["mark_px"], rec["index_px"], rec["rate"], rec["next_ns"] = (
                ev.mark_price,
                ev.index_price,
                ev.rate,
                ev.next_ns,
            )
            self._emit(rec)
        elif isinstance(ev, VenueStatus):
            self.emit_status(name, ev.state, until_ns=ev.until_ns)

    async def pump_user(self, name: str, on_funding: Callable[[FundingPayment], None] | None = None) -> None:
        await self._follow(
            name, self.venues[name].user_events, lambda ev: self._user_event(name, ev, on_funding)
        )

    def _user_event(self, name: str, ev, on_funding: Callable[[FundingPayment], None] | None) -> None:
        if isinstance(ev, OrderUpdate):
            self.emit_view(name, ev.order)
        elif isinstance(ev, Fill):
            self.emit_fill(ev)
        elif isinstance(ev, BalanceUpdate):
            rec = self._new(S.Kind.BALANCE_UPDATE)
            rec["venue"], rec["aux"] = self.reg.venue(name), self.reg.assets.add(ev.balance.asset)
            rec["free"], rec["locked"], rec["update_id"], rec["venue_ts_ns"] = (
                ev.balance.free,
                ev.balance.locked,
                ev.update_id,
                ev.ts_ns,
            )
            self._emit(rec)
        elif isinstance(ev, TransferInfo):
            rec = self._new(S.Kind.TRANSFER_UPDATE)
            rec["venue"], rec["aux"] = self.reg.venue(ev.from_venue), self.reg.assets.add(ev.asset)
            rec["sub"], rec["amount"], rec["to_venue"] = (
                int(ev.state),
                ev.amount,
                self.reg.venue(ev.to_venue),
            )
            rec["confirmations"], rec["required"], rec["eta_ns"] = (
                ev.confirmations,
                ev.required,
                ev.eta_ns,
            )
            rec["transfer_id"] = stable_id(ev.transfer_id)
            self._emit(rec)
        elif isinstance(ev, FundingPayment) and on_funding is not None:
            on_funding(ev)
        elif isinstance(ev, Charge) and (name, ev.ref) not in self._charges:
            self._charges.add((name, ev.ref))
            if self.charge_hook is not None:
                self.charge_hook(ev)

    # -- commands in ----------------------------------------------------------------------------

    def dispatch(self, records: np.ndarray) -> None:
        """Queue the engine's commands (ORDER_NEW / ORDER_CANCEL / ORDER_QUERY) per venue."""
        now = self.now_ns()
        gen = records.view(S.GENERIC)
        for i in range(len(gen)):
            kind = int(gen["kind"][i])
            vid = int(gen["venue"][i])
            rec = records[i : i + 1].copy()
            if kind == S.Kind.ORDER_NEW:
                purpose = S.Purpose(int(rec.view(S.ORDER_NEW)["aux"][0]) >> 8)
                self.router.push(vid, _PRIORITY[purpose], 0, (rec, 0), now)
            elif kind == S.Kind.ORDER_CANCEL:
                self.router.push(vid, CANCEL, 1, (rec, 0), now)
            elif kind == S.Kind.ORDER_QUERY:
                self.router.push(vid, QUERY, 2, (rec, 0), now)
            else:
                continue
            self._wake[vid].set()

    async def run_dispatcher(self, name: str) -> None:
        """Hand out this venue's commands as its throttle allows; each call runs as its own task."""
        vid = self.reg.venue(name)
        wake = self._wake[vid]
        while True:
            now = self.now_ns()
            cmd = self.router.pop_ready(vid, now)
            if cmd is not None:
                task = self.supervisor.spawn(self._execute(name, cmd.item))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                continue
            wait = self.router.wait_ns(vid, now)
            wake.clear()
            if wait > 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=min(wait, 5_000_000_000) / 1e9)
                except TimeoutError:
                    pass
            else:
                await wake.wait()

    async def _execute(self, name: str, item) -> None:
        rec, attempt = item
        kind = int(rec.view(S.GENERIC)["kind"][0])
        venue = self.venues[name]
        sent = self.now_ns()
        inst: str | None  # the instrument's name (a cancel or query may go without it)
        if kind == S.Kind.ORDER_NEW:
            o = rec.view(S.ORDER_NEW)[0]
            coid, inst = int(o["coid"]), self.instrument_of[int(o["instrument"])]
            otype = S.OrderType(int(o["aux"]) & 0xFF)
            req = OrderRequest(
                coid_to_wire(coid),
                inst,
                S.Side(int(o["sub"])),
                otype,
                float(o["qty"]),
                float(o["price"]) if o["price"] > 0 else None,
            )
            self.calls["submit"] += 1
            try:
                view = await venue.submit(req)
            except VenueError as exc:
                self._on_error(Call.SUBMIT, name, exc, sent, inst, coid, (rec, attempt))
                return
            self._ok(name, sent)
            self.emit_view(name, view)
        elif kind == S.Kind.ORDER_CANCEL:
            c = rec.view(S.ORDER_CANCEL)[0]
            coid, inst = int(c["coid"]), self.instrument_of.get(int(c["instrument"]))
            self.calls["cancel"] += 1
            try:
                view = await venue.cancel(coid_to_wire(coid), inst)
            except VenueError as exc:
                self._on_error(Call.CANCEL, name, exc, sent, inst or "", coid)
                return
            self._ok(name, sent)
            self.emit_view(name, view)
        elif kind == S.Kind.ORDER_QUERY:
            q = rec.view(S.ORDER_QUERY)[0]
            coid, inst = int(q["coid"]), self.instrument_of.get(int(q["instrument"]))
            self.calls["query"] += 1
            try:
                view = await venue.fetch_order(coid_to_wire(coid), inst)
            except VenueError as exc:
                self._on_error(Call.QUERY, name, exc, sent, inst or "", coid)
                return
            self._ok(name, sent)
            await self._catch_up_fills(name, coid, view)
            self.emit_view(name, view)

    async def _catch_up_fills(self, name: str, coid: int, view: VenueOrder) -> None:
        """Before a query's answer is reported, book the fills it implies that we have not seen:
        when the venue says the order filled more than the fills we booked for it, read the
        venue's fill list, every page, for the missing ones (rare: a fill report was lost)."""
        booked = self._booked_qty.get(coid, 0.0)
        if view.filled_qty <= booked + 1e-9 * max(view.filled_qty, 1.0):
            return
        cursor: str | None = None
        try:
            while True:
                page = await self.venues[name].fills(cursor, FILLS_PAGE)
                for fill in page.fills:
                    if fill.coid == view.coid:
                        self.emit_fill(fill)
                if not page.more or page.cursor in (None, cursor):
                    return
                cursor = page.cursor
        except VenueError:
            return  # the status record still carries the venue's cumulative quantity

    def _on_error(
        self,
        call: Call,
        name: str,
        exc: VenueError,
        sent_ns: int,
        inst: str = "",
        coid: int = 0,
        command: tuple[np.ndarray, int] | None = None,
    ) -> None:
        """The records a failed call (sent at `sent_ns`) leaves, as `venue_errors.ON_ERROR` says;
        `command` is a submit's (record, attempt), for a resend."""
        out = outcome_of(call, exc)
        self.log.event(
            "io",
            "venue_error",
            "warning",
            venue=name,
            call=call.name.lower(),
            error=type(exc).__name__,
            detail=str(exc),
            coid=coid,
            t_ns=self.now_ns(),
        )
        self._report(name, out.before, exc, sent_ns)
        resent = out.resend and command is not None and self._resend(name, *command)
        if out.event is not None and not resent:
            reason = out.reason
            if reason is None:
                reason = _REASON.get(getattr(exc, "reason", ""), S.RejectReason.VENUE_REJECT)
            self.emit_order_event(name, inst, coid, out.event, reason=reason)
        self._report(name, out.after, exc, sent_ns)

    def _report(self, name: str, status: Status, exc: VenueError, sent_ns: int) -> None:
        if status is Status.OK:
            self._ok(name, sent_ns)
        elif status is Status.FAILED:
            report = report_of(exc) or S.VenueReport.TIMEOUT
            if report == S.VenueReport.RATE_LIMITED:
                retry_after_s = getattr(exc, "retry_after_s", None)
                wait_s = retry_after_s if retry_after_s is not None else 1.0
                self.router.throttle(self.reg.venue(name)).block_until(self.now_ns() + int(wait_s * 1e9))
                self.emit_status(name, report, retry_after_s=wait_s)
            else:
                self.emit_status(name, report)

    def _resend(self, name: str, rec: np.ndarray, attempt: int) -> bool:
        """Queue a rate-limited submit again (same client order id: the venue refused it before
        execution), but only while the engine still waits for it; past that it is refused here, so
        an order the engine has given up on can never reach the venue. False: not resent."""
        o = rec.view(S.ORDER_NEW)[0]
        if attempt + 1 >= self.max_rl_retries or self.now_ns() - int(o["ts_ns"]) >= self.resend_window_ns:
            return False
        vid = self.reg.venue(name)
        self.router.push(vid, _PRIORITY[S.Purpose(int(o["aux"]) >> 8)], 0, (rec, attempt + 1), self.now_ns())
        self._wake[vid].set()
        return True

    async def run_health(self, name: str, interval_s: float) -> None:
        """Ask the venue how it is, on an interval: a venue we stopped sending to (throttled,
        quarantined, suspect) still gets a chance to show it is healthy again."""
        while True:
            await asyncio.sleep(interval_s)
            await self.check_health(name)

    async def check_health(self, name: str) -> None:
        """Ask the venue its status once; the answer is stamped with the time the request left."""
        sent = self.now_ns()
        try:
            st = await self.venues[name].status()
        except VenueError as exc:
            self._on_error(Call.STATUS, name, exc, sent)
            return
        if st.state == S.VenueReport.OK:
            self._ok(name, sent)
        else:
            self.emit_status(name, st.state, until_ns=st.until_ns, latency_ns=max(0, self.now_ns() - sent))

    def set_rate_factor(self, factor: float) -> None:
        now = self.now_ns()
        for name in self.venues:
            self.router.throttle(self.reg.venue(name)).set_rate_factor(factor, now)

    def start(self, on_funding=None, health_interval_s: float = 0.5) -> None:
        spawn = self.supervisor.spawn
        for name in self.venues:
            self.tasks.append(spawn(self.run_health(name, health_interval_s), f"health-{name}"))
            self.tasks.append(spawn(self.pump_market(name), f"market-{name}"))
            self.tasks.append(spawn(self.pump_user(name, on_funding), f"user-{name}"))
            self.tasks.append(spawn(self.run_dispatcher(name), f"dispatch-{name}"))

    async def stop(self) -> None:
        tasks = self.tasks + list(self._inflight)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
