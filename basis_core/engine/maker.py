"""The `maker_taker` execution style: a post-only quote on the primary leg, each of its fills
hedged at once with a taker IOC on the other venue.

An opportunity (a MakerParent, sized like a taker pair by the dispatch-time sizing) quotes in
turns. Each turn is one position (`HedgedPosition.maker`): a POST_ONLY buy on the buy leg's
venue, at the best price that keeps `min_edge_bps` after both legs' fees (the primary's venue's
taker fee stands in for its maker fee, an upper bound) when the hedge sells at the hedge venue's
bid less the slippage cap, and never at or through the primary venue's ask. With `maker_side`
"sell" (or "best" when that side keeps more edge at its price) the quote is the mirror image: a
POST_ONLY sell on the sell leg's venue at the lowest price that keeps `min_edge_bps` when the
hedge buys at the buy venue's ask plus the slippage cap, never at or through its bid; its fills
are hedged by buys there (`HedgedPosition.maker_sell`). It is no larger than a slice
(`slice_residual_fraction` of `max_residual_usdt` at the highest price the exposure can be
valued at now, the quote's own price included), so what it can leave unhedged stays within the
residual limit.

An iceberg (`maker_display_fraction` < 1): each quote shows only that fraction of the size it
could have; once it has filled and its fills are hedged, the next quote (the next display part)
is a new order priced on the books then, which the venue's queue puts at the back of its
level. So what rests visibly, and what can be unhedged, is one display part at a time.

While a quote works, every batch looks at the books: a price that fell below the quote (the
hedge venue's book took the edge away) or rose `maker_reprice_bps` above it cancels the quote
for a new one; a price that would sit behind the best bid, `maker_ttl_ms` since the first
quote, no new exposure allowed or the hedge venue unusable end the opportunity. A new quote
leaves only once the last one's primary is terminal and its fills are hedged, so two quotes of
one opportunity never work at once.

Fills (`_hedge_maker_fills`, called from the position's update): what the primary filled and is
not yet sold is hedged by one IOC at a time on the hedge venue, in whole lots of the hedge
instrument; a remainder below its lot or minimum notional waits for more fills (half the hedge
window at most: then the quote is cancelled), and once the primary is done it is sold back on
the primary's own venue (an unwind) when it can be. This
is what makes the maker leg's failures safe: a cancel that loses the race with a fill (the
venue answers FILLED), a partial fill then a cancel, and a fill reported after the cancel's
acknowledgement (the acknowledgement's cumulative quantity already counts it; the report is
booked by trade id) all reach the hedge through the order's filled quantity, whatever the
position's state. A post-only reject (the book moved through the price) ends the quote with
nothing filled: the next quote is priced on the new books, up to `maker_max_rejects` in a row.

A mixin of EngineCore (basis_core/engine/core.py), as decisions.py is; state in engine/parts.py.
"""

from __future__ import annotations

import numpy as np

from .. import schema as S
from ..state.tables import NO_NEW_EXPOSURE, EngineState, HedgeEvent, HedgeState, OrderState
from ..units import MS
from .actions import fire_hedge
from .orders import ManagedOrder
from .parts import EngineParts
from .positions import HedgedPosition, Leg, MakerParent, new_position

#: hedge and unwind orders one quote may use (legs 1 .. MAX_LEG); past this many hedges the
#: quote is cancelled, and the legs left are the position's own hedge completion and unwinds
MAKER_HEDGE_LEGS = 10
#: states in which a quote's fills are hedged here (else the position's machinery decides)
_HEDGED_HERE = (
    HedgeState.LEG_WORKING,
    HedgeState.HEDGING,
    HedgeState.COMPLETE,
    HedgeState.CLOSED,
    HedgeState.RECONCILED,
)
_DONE = (HedgeState.COMPLETE, HedgeState.CLOSED, HedgeState.RECONCILED)


def _floor_to(x: float, step: float) -> float:
    """`x` down to a whole number of `step`, as the double nearest the decimal."""
    return round(float(np.floor(x / step + 1e-9)) * step, 12)


def _ceil_to(x: float, step: float) -> float:
    """`x` up to a whole number of `step`, as the double nearest the decimal."""
    return round(float(np.ceil(x / step - 1e-9)) * step, 12)


def quote_legs(pos: HedgedPosition) -> tuple[Leg, Leg]:
    """A maker quote's (primary, hedge) legs: the buy then the sell, or with `maker_sell` the
    sell then the buy."""
    return (pos.sell, pos.buy) if pos.maker_sell else (pos.buy, pos.sell)


class Maker(EngineParts):
    # -- quotes ------------------------------------------------------------------------------

    def _start_maker(self, strategy: str, buy_name: str, sell_name: str, edge_bps: float, qty: float) -> bool:
        """A `maker_taker` opportunity for `qty` (sized as one taker pair): its first quote now.
        False (the reason counted) when not even one quote can be sent."""
        parent = MakerParent(self.next_opp, strategy, buy_name, sell_name, qty, edge_bps, started_ns=self.now)
        parent.quote_side = self._maker_side(buy_name, sell_name)
        self.making[parent.opp_id] = parent
        reason = self._next_quote(parent)
        if reason != S.RejectReason.NONE:
            del self.making[parent.opp_id]
            self.counters.reject(reason)
            return False
        self.positions[parent.opp_id].planned_qty = qty
        return True

    def _maker_side(self, buy_name: str, sell_name: str) -> S.Side:
        """The leg an opportunity's quotes rest on: `maker_side`, or for "best" the side whose
        quote keeps more edge now, resting at the best price of its own book (`_maker_quote`;
        the buy on a tie, or when neither side can quote: the first quote then says why)."""
        side = self.policy.maker_side
        if side != "best":
            return S.Side.SELL if side == "sell" else S.Side.BUY
        buy = self._maker_quote(buy_name, sell_name, S.Side.BUY)
        sell = self._maker_quote(buy_name, sell_name, S.Side.SELL)
        if sell is not None and (buy is None or sell[2] > buy[2]):
            return S.Side.SELL
        return S.Side.BUY

    def _maker_price(self, buy_name: str, sell_name: str, side: S.Side = S.Side.BUY) -> float | None:
        """The quote's price now on `side`'s leg (`_maker_quote`); None: none can rest there."""
        q = self._maker_quote(buy_name, sell_name, side)
        return None if q is None else q[0]

    def _maker_quote(self, buy_name: str, sell_name: str, side: S.Side) -> tuple[float, float, float] | None:
        """(quote price, hedge bound, edge at the touch) now. A buy quote: the highest price
        on the buy leg's tick grid that keeps min_edge_bps after both fees when the hedge sells
        at the hedge venue's bid less the slippage cap, and below the buy venue's ask. A sell
        quote: the lowest on the sell leg's grid that keeps it when the hedge buys at the buy
        venue's ask plus the slippage cap, and above the sell venue's bid. None: a book is
        unusable, or that price is behind the best bid (ask) (only a market moving through it
        would fill it). The edge at the touch: after both fees, of a quote resting at the best
        price of its own book (the best bid for a buy, the best ask for a sell) against the
        hedge bound; what `maker_side = "best"` compares."""
        p = self.policy
        bl, sl = self.rules[buy_name], self.rules[sell_name]
        tb = self.market.top(self.reg.venue(bl.venue), self.reg.instrument(buy_name))
        ts = self.market.top(self.reg.venue(sl.venue), self.reg.instrument(sell_name))
        if tb is None or ts is None:
            return None
        fees = (1 + bl.taker_fee_bps / 1e4) / (1 - sl.taker_fee_bps / 1e4)
        if side == S.Side.SELL:
            hedge_px = _ceil_to(tb[2] * (1 + self._maker_slip(bl.base) / 1e4), bl.tick)
            least = hedge_px * fees * (1 + p.min_edge_bps / 1e4)
            px = _ceil_to(max(least, ts[0] + sl.tick), sl.tick)
            if hedge_px <= 0 or px > ts[2] + 1e-9:
                return None
            return px, hedge_px, ts[2] / (hedge_px * fees) - 1.0
        hedge_px = _floor_to(ts[0] * (1 - self._maker_slip(bl.base) / 1e4), sl.tick)
        most = (  # (as written since the buy quote was built: the same doubles)
            hedge_px
            * (1 - sl.taker_fee_bps / 1e4)
            / ((1 + bl.taker_fee_bps / 1e4) * (1 + p.min_edge_bps / 1e4))
        )
        px = _floor_to(min(most, tb[2] - bl.tick), bl.tick)
        if px <= 0 or px < tb[0] - 1e-9:
            return None
        return px, hedge_px, hedge_px / (tb[0] * fees) - 1.0

    def _maker_slip(self, base: str) -> float:
        """The hedge's slippage cap, halved above the first volatility level (as sizing does)."""
        return self.policy.max_slippage_bps / (2.0 if self.market.vol_level(base) >= 1 else 1.0)

    def _maker_qty(self, parent: MakerParent, px: float, buy_px: float = 0.0) -> float:
        """The next quote's size: what the opportunity still misses, capped by the residual
        limit (a slice's cap; a sell quote's own price too), the funds on both venues, the order
        and exposure limits; whole lots of both instruments (the coarser lot); 0.0 when below
        either minimum notional. `buy_px`: a sell quote's hedge bound (the buy's price). With
        maker_display_fraction < 1 only that fraction of it (the iceberg's display part, whole
        lots, raised to the minimum notional): the rest is the next quotes' to show."""
        p = self.policy
        bl, sl = self.rules[parent.buy], self.rules[parent.sell]
        remaining = parent.planned_qty - parent.matched(self.positions, self.orders.orders)
        residual_cap = self._slice_qty_cap(parent.buy, parent.sell)
        if parent.quote_side == S.Side.SELL:  # funds, limits and minimums at the buy's price
            residual_cap = min(residual_cap, p.slice_residual_fraction * p.max_residual_usdt / px)
            px = buy_px
        quote_avail = self._free_quote(bl.venue, bl.quote) / (px * (1 + bl.taker_fee_bps / 1e4))
        if sl.kind == "spot":
            base_avail = self._free_base(sl.venue, parent.sell)
        else:  # a perp short needs margin, not coins
            base_avail = (
                self._free_quote(sl.venue, sl.quote) * sl.leverage / max(self.market.mark(bl.base), 1e-9)
            )
        notional = min(
            p.max_order_notional_usdt,
            p.max_exposure_usdt - self._venue_exposure(bl.venue),
            p.max_exposure_usdt - self._venue_exposure(sl.venue),
        )
        qty = min(
            remaining,
            residual_cap,
            quote_avail,
            base_avail,
            notional / px,
        )
        lot, least = max(bl.lot, sl.lot), max(bl.min_notional, sl.min_notional)
        qty = _floor_to(max(qty, 0.0), lot)
        if qty * px < least:
            return 0.0
        if p.maker_display_fraction < 1.0:  # an iceberg: only its display part is posted
            shown = _floor_to(qty * p.maker_display_fraction, lot)
            if shown * px < least:
                shown = min(qty, _ceil_to(least / px, lot))
            qty = shown
        return qty

    def _next_quote(self, parent: MakerParent) -> S.RejectReason:
        """Gate, price and size the opportunity's next quote on the live books; send it (a
        position of its own with a POST_ONLY primary), or say why not."""
        reason = self._gate(parent.buy, parent.sell, self.now, 1)
        if reason != S.RejectReason.NONE:
            return reason
        quote = self._maker_quote(parent.buy, parent.sell, parent.quote_side)
        if quote is None:
            return S.RejectReason.EDGE_GONE
        px, hedge_px, _ = quote
        qty = self._maker_qty(parent, px, hedge_px)
        if qty <= 0:
            return S.RejectReason.EXPOSURE_LIMIT
        bl, sl = self.rules[parent.buy], self.rules[parent.sell]
        opp = self.next_opp
        self.next_opp += 1
        tb = self.market.top(self.reg.venue(bl.venue), self.reg.instrument(parent.buy))
        ts = self.market.top(self.reg.venue(sl.venue), self.reg.instrument(parent.sell))
        pos = new_position(
            opp,
            parent.strategy,
            Leg(bl.venue, parent.buy, S.Side.BUY, tb[2] if tb else px),
            Leg(sl.venue, parent.sell, S.Side.SELL, ts[0] if ts else px),
            qty,
            parent.edge_bps,
            self.now,
            on_change=self._position_changed,
        )
        pos.mid_buy, pos.mid_sell = self._mid(parent.buy), self._mid(parent.sell)
        pos.end_mid_buy, pos.end_mid_sell = pos.mid_buy, pos.mid_sell
        pos.parent, pos.maker = parent.opp_id, True
        pos.maker_sell = parent.quote_side == S.Side.SELL
        self.positions[opp] = pos
        self.position_counts[pos.state.name] = self.position_counts.get(pos.state.name, 0) + 1
        self.open_positions[opp] = pos
        leg, _ = quote_legs(pos)
        rules = sl if pos.maker_sell else bl
        primary = self._new_order(
            opp,
            0,
            rules.venue,
            leg.instrument,
            leg.side,
            S.OrderType.POST_ONLY,
            qty,
            px,
            0.0,
            0,
            S.Purpose.ENTRY,
        )
        leg.coid = primary.coid
        parent.slices.append(opp)
        what = f"ask {qty:g} {parent.sell}" if pos.maker_sell else f"bid {qty:g} {parent.buy}"
        fire_hedge(
            self,
            pos,
            HedgeEvent.DISPATCHED,
            f"quote {len(parent.slices)} of {parent.opp_id}: {parent.strategy} {what} at {px:g}",
        )
        return S.RejectReason.NONE

    def _advance_makers(self) -> None:
        """Each working opportunity, once per batch: its working quote repriced or cancelled as
        the books say; once a quote is done (primary terminal, fills hedged), the next one (while
        rate limited, no sooner than an entry could go), or the opportunity ends (filled, went asymmetric, no new exposure, its ttl, max quotes,
        post-only rejects in a row, or no quote can be sent: why, counted in maker_ends)."""
        p = self.policy
        book = self.orders.orders
        for parent in list(self.making.values()):
            pos = self.positions[parent.slices[-1]]
            primary = book[quote_legs(pos)[0].coid]
            if not primary.terminal:
                if (
                    primary.state in (OrderState.ACKED, OrderState.PARTIALLY_FILLED)
                    and primary.filled < primary.qty
                ):
                    self._review_quote(parent, primary)
                continue
            if pos.state not in _DONE or any(not o.terminal for o in pos.orders(book)):
                continue
            if (
                self.engine.state == EngineState.DEGRADED
                and self.now - pos.created_ns < 50 * MS / p.degraded_rate_factor
            ):
                continue  # rate limited: no faster than entries
            rejected = (
                primary.state == OrderState.REJECTED and primary.reject_reason == "post_only_would_cross"
            )
            parent.rejects = parent.rejects + 1 if rejected else 0
            if pos.asymmetric_episodes:
                why = "a quote went asymmetric"
            elif self.stop_new or self.engine.state in NO_NEW_EXPOSURE:
                why = "no new exposure"
            elif parent.ending:
                why = parent.ending
            elif parent.matched(self.positions, book) >= parent.planned_qty - 1e-12:
                why = "filled"
            elif self.now - parent.started_ns >= p.maker_ttl_ms * MS:
                why = "ttl"
            elif len(parent.slices) >= p.maker_max_quotes:
                why = f"{p.maker_max_quotes} quotes"
            elif parent.rejects >= p.maker_max_rejects:
                why = f"{p.maker_max_rejects} post-only rejects"
            elif primary.state == OrderState.REJECTED and not rejected:
                why = f"quote rejected: {primary.reject_reason or 'venue'}"
            else:
                reason = self._next_quote(parent)
                if reason == S.RejectReason.NONE:
                    continue
                why = reason.name.lower()
            del self.making[parent.opp_id]
            self.maker_ends[why] = self.maker_ends.get(why, 0) + 1

    def _review_quote(self, parent: MakerParent, primary: ManagedOrder) -> None:
        """A working quote against the books now: cancelled for a reprice (the price moved
        below it, or maker_reprice_bps above it) or for good (parent.ending says why)."""
        p = self.policy
        selling = parent.quote_side == S.Side.SELL
        hedge_venue = self.rules[parent.buy if selling else parent.sell].venue
        why = ""
        if self.stop_new or self.engine.state in NO_NEW_EXPOSURE:
            why = "no new exposure"
        elif not self.board.can_dispatch(hedge_venue, self.now):
            why = "hedge venue unavailable"
        elif self.now - parent.started_ns >= p.maker_ttl_ms * MS:
            why = "ttl"
        else:
            px = self._maker_price(parent.buy, parent.sell, parent.quote_side)
            if px is None:
                why = "edge_gone"
            elif primary.price is not None and (
                (  # a sell quote: the price rose above it, or fell maker_reprice_bps below it
                    px > primary.price + 1e-9 or px < primary.price * (1 - p.maker_reprice_bps / 1e4)
                )
                if selling
                else (px < primary.price - 1e-9 or px > primary.price * (1 + p.maker_reprice_bps / 1e4))
            ):
                self._cancel(primary)  # the next quote is priced once this one is done
                return
        if why:
            parent.ending = why
            self._cancel(primary)

    # -- fills -------------------------------------------------------------------------------

    def _hedge_maker_fills(self, pos: HedgedPosition, net: float, flat: bool) -> bool:
        """A quote's position changed: hedge what its primary filled and is not yet hedged
        (sold, or for a sell quote bought back on the buy leg's venue). True when this took care
        of it (a hedge or an unwind sent, or one still working); False leaves the position to
        its own machinery (flat; or nothing can be sent: the hedge window then decides, as for
        any position)."""
        st = pos.state
        if st not in _HEDGED_HERE:
            return False
        book = self.orders.orders
        leg, hedge_leg = quote_legs(pos)
        if flat:
            if st == HedgeState.LEG_WORKING and pos.maker_sell and not hedge_leg.coid:
                if book[leg.coid].terminal and book[leg.coid].filled <= 0:
                    # (a buy quote's empty end is the position's: its hedge leg is the one missing)
                    fire_hedge(self, pos, HedgeEvent.NOTHING_FILLED, "quote filled nothing")
                    return True
                return False
            if st == HedgeState.HEDGING:
                pos.first_fill_ns = self.now  # the hedge window runs from the oldest unhedged fill
                if not hedge_leg.coid and all(o.terminal for o in pos.orders(book)):
                    # only a sold-back remainder on the other side: nothing for the legs to match
                    fire_hedge(self, pos, HedgeEvent.BOTH_FILLED, "quote's remainder sold back")
                    return True
            return False
        open_qty = -net if pos.maker_sell else net  # what the quote filled and is not yet hedged
        if open_qty < 0:
            return False  # hedged more than the quote filled: not a quote's fill, the position's machinery
        if any(not o.terminal for o in pos.orders(book) if o.purpose != "entry"):
            # one hedge (or unwind) at a time: the next looks at what it left; one in doubt past
            # the hedge window is the position's machinery's to judge (a breach)
            late = (
                st == HedgeState.HEDGING and self.now - pos.first_fill_ns > self.policy.hedge_window_ms * MS
            )
            return not late
        primary = book[leg.coid]
        if st == HedgeState.LEG_WORKING:
            fire_hedge(self, pos, HedgeEvent.LEG_FILLED, f"quote filled {primary.filled:g}")
            st = pos.state
        hr = self.rules[hedge_leg.instrument]
        if not self.board.can_dispatch(hr.venue, self.now) or len(pos.unwind_coids) >= MAKER_HEDGE_LEGS:
            self._cancel(primary)  # no more fills that cannot be hedged
            return False
        top = self.market.top(self.reg.venue(hr.venue), self.reg.instrument(hedge_leg.instrument))
        slip = self._maker_slip(hr.base)
        qty = _floor_to(open_qty, hr.lot)
        if top is None:
            price = 0.0
        elif pos.maker_sell:
            price = _ceil_to(top[2] * (1 + slip / 1e4), hr.tick)
        else:
            price = _floor_to(top[0] * (1 - slip / 1e4), hr.tick)
        if qty > 0 and price > 0 and qty * price >= hr.min_notional:
            what = f"hedge quote fill {qty:g}"
            if not hedge_leg.coid:
                pos.hedge_price, pos.hedge_slip = price, slip
                if pos.maker_sell:
                    self._send_maker_buy_hedge(pos, qty)
                else:
                    self._send_hedge(pos, qty)
            elif (
                self._aggressive(
                    pos, hr.venue, hedge_leg.instrument, hedge_leg.side, qty, S.Purpose.HEDGE, slip
                )
                is None
            ):
                return False
            if st in (HedgeState.LEG_WORKING, HedgeState.HEDGING):
                fire_hedge(self, pos, HedgeEvent.DISPATCHED, what)
            return True
        # below the hedge venue's lot or minimum: accumulate while the quote works, for half the
        # hedge window at most (then the quote is cancelled); once it is done, sell it back (buy
        # it back) where it was bought (sold), inside the window
        if not primary.terminal:
            if self.now - pos.first_fill_ns > self.policy.hedge_window_ms * MS / 2:
                self._cancel(primary)
            return False
        pr = self.rules[leg.instrument]
        if not self.board.can_dispatch(pr.venue, self.now):
            return False
        back = S.Side.BUY if pos.maker_sell else S.Side.SELL
        order = self._aggressive(
            pos,
            pr.venue,
            leg.instrument,
            back,
            open_qty,
            S.Purpose.UNWIND,
            self.policy.unwind_aggression_bps,
        )
        if order is None:
            return False
        if st in (HedgeState.LEG_WORKING, HedgeState.HEDGING):
            fire_hedge(self, pos, HedgeEvent.DISPATCHED, f"unhedgeable remainder {open_qty:g} sold back")
        return True

    def _send_maker_buy_hedge(self, pos: HedgedPosition, qty: float) -> ManagedOrder:
        """A sell quote's first hedge: a taker IOC buy on the buy leg's venue at pos.hedge_price
        (`_send_hedge`'s mirror image; later ones are `_aggressive` buys)."""
        bl = self.rules[pos.buy.instrument]
        hedge = self._new_order(
            pos.opp_id,
            1,
            bl.venue,
            pos.buy.instrument,
            S.Side.BUY,
            S.OrderType.IOC,
            qty,
            pos.hedge_price,
            pos.hedge_slip,
            pos.sell.coid,
            S.Purpose.HEDGE,
        )
        pos.buy.coid = hedge.coid
        return hedge
