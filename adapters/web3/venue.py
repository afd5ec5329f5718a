"""A constant-product pool as a `Venue`: the engine's one interface over an EVM account.

Each instrument is one pool (`PoolMarket`): base and quote are its two ERC-20 tokens. An order
is one swap, sent from our account straight to the pool, atomic by construction:

* SELL qty base: exact input `qty`; the pool must pay at least `qty * price` quote (the order's
  bound) or, for a MARKET order without a price, the expected output less `slippage_bps`.
* BUY qty base: exact output `qty`; the input is the Uniswap-V2 `getAmountIn` at the latest
  reserves, refused locally if it costs more than `price` per base. The pool's min-out is `qty`.
* LIMIT and IOC are both fill-or-kill at their price (a pool never rests an order); POST_ONLY
  is refused (a pool has no book to rest on).

Every order is simulated with eth_call first; a failing simulation is an OrderRejected and
nothing is sent. A swap that reverts when mined (the pool moved) is an OrderRejected too, with
no token exposure; its gas is spent and published as a `Charge` (the ledger books it as a fee).
Each refusal says why, as a RejectReason name: the revert's (revert.refusal_reason: "slippage"
for the pool's min-out, "insufficient_funds" for a token balance too small, "expired" for a
deadline), "gas_cap" when the fee or gas is above the caps, "nonce_conflict" when the node's
nonce contradicts ours, "insufficient_funds" when the node refuses for want of ETH. A swap
whose receipt does not come in time is replaced (below); when neither comes, RequestTimeout,
and `fetch_order` by client id then looks both transactions up. With `confirmations` > 1 a mined swap is a fill only once that many
blocks hold it, and until then it is watched for a reorg: when the block at its height is no
longer the one that held it, the swap is looked up again; mined in another block, its
confirmations count from there; mined nowhere, the same signed swap (same nonce, same bounds) is
broadcast again, as a node returns a reorg's dropped transactions to its pool, and the order is
in doubt (OPEN) until a receipt decides it. Nothing reached the engine or the ledger for it
meanwhile, so exactly one fill (or refusal) is published, for the block that stays. Each such
reorg is counted (`reorgs_total`, report.json `chain_reorgs`; the newest in `reorgs`). A reorg
after the order was settled (deeper than `confirmations`, or under a reverted swap or a mined
cancel, settled at once) is found by `status()`, which checks every settled transaction of the
last `REORG_WINDOW` blocks: counted too, a dropped transaction sent again and followed, but
what was published for the order stands (reconciliation compares it with the chain). Fills carry the gas cost as their fee, in ETH; the pool fee is inside the price.
A market's `base_decimals` / `quote_decimals`, when given, are checked at start (ConfigError
naming the config key that gave them).

`market_data()` keeps the pools' books live (books.py, streams.py): with a `ws_url`, new heads
and the pools' `Sync` logs through one `eth_subscribe` websocket, otherwise `eth_blockNumber`
polled every `poll_s` and the pools read at each new block. Every pool's book is derived again
on each new head and at once on each reserve change: the pool's curve cut into `book_levels`
price steps of `book_step_bps` on each side (taker prices, pool fee included). Our own swap's
reserve change (its receipt's `Sync` log) is handed to the market-data subscribers before its
fill is published, so the engine prices its next decision on the pool the swap left. No new
head for `head_timeout_s` (0: never) marks the books stale (empty, so unusable) and the venue
DISCONNECTED until the next head. Transfers are not supported by this venue yet (VenueError
"not_supported").

A swap still unmined `deadline_s` (the client's) after it was sent is past its deadline: the
venue (waiting in `submit`, or asked by `fetch_order`) replaces it with a 0-value transfer to
itself at the same nonce (higher fees) and reports whichever of the two is mined: the swap's
fill, or the order EXPIRED with the cancel's gas as a `Charge`; the engine's `cancel` does the
same at once for a swap still pending.

**The two-pool atomic path.** With an `executor` (an AtomicExecutor the account owns) and two
or more instruments on one base/quote pair (two pools), a BUY on one pool and a SELL of the
same quantity on another pool of that pair, submitted within `pair_window_s` of each other
(the engine's `dispatch = "simultaneous"` sends both legs of an opportunity at once), are
traded as ONE executor call: the quote token into the buy pool for at least the BUY's quantity
(its min-out), all of that base into the sell pool for at least the SELL's bound (its min-out),
reverting unless the quote comes back with a profit. Both legs are sized at one block's
reserves, their price bounds checked, the call simulated with eth_call (a revert refuses both
legs, nothing sent) and sent; the one receipt gives both legs' fills (each pool's Swap log;
the gas is the BUY leg's fee) or refuses both (a mined revert: its gas published as a
`Charge`). An order left without a partner after `pair_window_s` is a single swap as above.
The executor trades out of its own token inventory, which the venue's balances include.

Chain I/O runs in a worker thread, one request at a time (the client is not thread-safe), but
no lock is held across a wait: waiting for a receipt or for confirmations is a series of short
requests, so other orders, queries and the book feed go on meanwhile.
The thread stays (measured by perf/web3_client_io.py): the hop costs 0.1-0.25 ms, async gains
nothing on a send, and the ~1.4 ms a read loses to aiohttp is web3's HTTPProvider's, not the thread's.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from eth_abi import decode as abi_decode
from eth_utils import keccak

from basis_core.errors import (
    ChainRevert,
    ConfigError,
    GasCapExceeded,
    NonceConflict,
    OrderNotFound,
    OrderRejected,
    RequestTimeout,
    SimulationFailed,
    VenueError,
    VenueUnavailable,
)
from basis_core.kernels import amm
from basis_core.venue import (
    Balance,
    BookUpdate,
    Charge,
    Fill,
    FillsPage,
    InstrumentInfo,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    RejectReason,
    Side,
    TransferInfo,
    Venue,
    VenueOrder,
    VenueReport,
    VenueStatus,
)

from .arbitrage import PoolState, read_pools
from .books import END, PoolBooks
from .bundle import BundleRelay
from .calldata import Leg, address, encode_call
from .client import EvmClient, Receipt, SentTx
from .execution import AtomicTrader, TradePlan, plan_path
from .revert import refusal_reason
from .streams import Head, poll_events, sync_from_log, ws_events

SWAP_TOPIC = "0x" + keccak(text="Swap(address,address,uint256,uint256,address)").hex()
_SWAP_SIG = "swap(address,uint256,uint256,address)"
_SWAP_TYPES = ["address", "uint256", "uint256", "address"]
_MAX = (1 << 256) - 1


@dataclass(frozen=True)
class PoolMarket:
    """One pool traded as instrument `name`: `base_token` / `quote_token` are its ERC-20s."""

    name: str
    pool: str
    base_token: str
    quote_token: str
    base: str
    quote: str
    #: what each token's decimals() must answer, with the config key that says so (checked
    #: at start); None: whatever the token says
    base_decimals: tuple[int, str] | None = None
    quote_decimals: tuple[int, str] | None = None


def amount_in_for(amount_out: int, reserve_in: int, reserve_out: int) -> int:
    """Smallest input whose V2 output is at least `amount_out` (Uniswap-V2 getAmountIn)."""
    if not 0 < amount_out < reserve_out:
        raise ValueError(f"output {amount_out} not in (0, reserve {reserve_out})")
    return (reserve_in * amount_out * 1000) // ((reserve_out - amount_out) * 997) + 1


def to_units(qty: float, decimals: int) -> int:
    """Natural units to base units, rounded down (float -> exact decimal first)."""
    return int((Decimal(repr(float(qty))).scaleb(decimals)).to_integral_value(ROUND_FLOOR))


#: the newest reorgs a venue keeps (`Web3Venue.reorgs`; `reorgs_total` counts them all)
REORGS_KEPT = 64
#: a settled swap (or its cancel) is watched for a reorg until this many blocks lie on its own
REORG_WINDOW = 64
#: at most this many settled transactions are watched (the oldest are let go first)
SETTLED_KEPT = 256


@dataclass(frozen=True)
class Reorg:
    """A block that held one of our swaps, replaced before the swap's fill was final.

    `outcome`: "reincluded" (the swap is mined again, in block `new_block`: its confirmations
    are counted from there), "dropped" (no block holds it any more: the same signed swap is
    broadcast again and the order is in doubt until its receipt), "replaced" (the block now
    holds our cancel at its nonce, or the swap reverted there). After the order was settled
    (a reorg deeper than `confirmations`): "final_reincluded" or "final_dropped" (sent again;
    what was booked stands, reconciliation compares it with the chain)."""

    coid: str
    tx_hash: str
    block_number: int
    old_hash: str
    outcome: str
    new_block: int = 0
    ts_ns: int = 0


@dataclass
class _Pending:
    """A swap that reached (or may have reached) the node, and the cancel that replaces it."""

    order: OrderRequest
    sent: SentTx
    #: time.monotonic() past which the swap, still unmined, is replaced by a cancel
    deadline: float
    cancel: SentTx | None = None
    #: set while one call turns its receipt into the order's outcome
    settling: asyncio.Future | None = None
    #: sent as a bundle: the last block it was sent for (0: through the public mempool)
    until_block: int = 0
    #: a bundle that no block up to `until_block` included
    missed: bool = False

    def txs(self) -> tuple[SentTx, ...]:
        return (self.sent,) if self.cancel is None else (self.sent, self.cancel)


class Web3Venue(Venue):
    def __init__(
        self,
        client: EvmClient,
        markets,
        slippage_bps: int = 50,
        poll_s: float = 0.2,
        book_levels: int = 10,
        book_step_bps: float = 10.0,
        confirmations: int = 1,
        ws_url: str = "",
        head_timeout_s: float = 0.0,
        settle_wait_s: float = 0.5,
        relay: BundleRelay | None = None,
        bundle_blocks: int = 3,
        executor: str = "",
        pair_window_s: float = 0.05,
    ):
        self.client = client
        #: where swaps go as bundles instead of the public mempool (None: the mempool)
        self.relay = relay
        self.bundle_blocks = bundle_blocks
        self.name = client.venue
        self.markets = {
            m.name: replace(
                m, pool=address(m.pool), base_token=address(m.base_token), quote_token=address(m.quote_token)
            )
            for m in markets
        }
        self.slippage_bps, self.poll_s = slippage_bps, poll_s
        #: instrument -> the other instruments on its base/quote pair (two-pool path, with an executor)
        self.twins: dict[str, tuple[str, ...]] = {}
        if executor:
            for m in self.markets.values():
                twins = tuple(
                    o.name
                    for o in self.markets.values()
                    if o.name != m.name and (o.base_token, o.quote_token) == (m.base_token, m.quote_token)
                )
                if twins:
                    self.twins[m.name] = twins
        #: the executor of the two-pool path (None: every order is a single swap)
        self.trader = AtomicTrader(client, executor) if self.twins else None
        self.pair_window_s = pair_window_s
        #: legs waiting for their partner (each for at most pair_window_s): coid -> (order, outcome)
        self._waiting: dict[str, tuple[OrderRequest, asyncio.Future]] = {}
        #: executor calls sent, and those refused by their simulation (nothing sent)
        self.pairs_sent = 0
        self.pairs_refused = 0
        #: executor calls whose receipt did not come in time: each leg's coid -> (call, buy, sell)
        #: until fetch_order finds the receipt (at most two entries per call in flight)
        self._pair_pending: dict[str, tuple[_Pending, OrderRequest, OrderRequest]] = {}
        #: pre-trade eth_call simulations of single swaps, and those that refused the swap
        self.simulations = 0
        self.simulations_refused = 0
        self.confirmations = confirmations
        #: the head / log subscription's endpoint ("" : poll over the client's endpoint)
        self.ws_url = ws_url
        #: how long a fill waits for the book its swap left to be handed on (seconds)
        self.settle_wait_s = settle_wait_s
        self._io = asyncio.Lock()
        self._decimals: dict[str, int] = {}
        self.books = PoolBooks(
            self.name, self.markets, self._decimals, book_levels, book_step_bps / 1e4, head_timeout_s
        )
        self._feed: asyncio.Task | None = None
        self._orders: dict[str, VenueOrder] = {}
        self._pending: dict[str, _Pending] = {}
        self._fills: list[Fill] = []
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._closed = False
        self._started = False
        #: the newest reorgs that touched our swaps before their fills were final (bounded)
        self.reorgs: deque[Reorg] = deque(maxlen=REORGS_KEPT)
        self.reorgs_total = 0
        #: settled orders' deciding receipts, watched for a reorg (`_watch_settled`, in the
        #: worker thread only); `_just_settled` hands them over from the loop (a deque's append
        #: and popleft are thread-safe)
        self._settled: deque[tuple[_Pending, Receipt]] = deque(maxlen=SETTLED_KEPT)
        self._just_settled: deque[tuple[_Pending, Receipt]] = deque(maxlen=SETTLED_KEPT)
        #: settled transactions a reorg dropped and that were sent again: (order, tx, give-up block)
        self._resent: deque[tuple[_Pending, SentTx, int]] = deque(maxlen=SETTLED_KEPT)

    async def _run(self, fn, *args, **kw):
        """`fn` in a worker thread, one chain request (or short series) at a time."""
        async with self._io:
            return await asyncio.to_thread(fn, *args, **kw)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read token decimals, approve each pool for both its tokens (once), read the pools.
        Idempotent."""
        if self._started:
            return
        await self._run(self._prepare)
        self._started = True

    def _prepare(self) -> None:
        c = self.client
        for m in self.markets.values():
            for token, want in ((m.base_token, m.base_decimals), (m.quote_token, m.quote_decimals)):
                if token not in self._decimals:
                    self._decimals[token] = int.from_bytes(
                        c.call(token, encode_call("decimals()", [], [])), "big"
                    )
                if want is not None and want[0] != self._decimals[token]:
                    raise ConfigError(
                        want[1], f"token {token} answers decimals() = {self._decimals[token]}, not {want[0]}"
                    )
                allowed = int.from_bytes(
                    c.call(
                        token,
                        encode_call(
                            "allowance(address,address)", ["address", "address"], [c.address, m.pool]
                        ),
                    ),
                    "big",
                )
                if allowed < _MAX // 2:
                    c.transact(token, "approve(address,uint256)", ["address", "uint256"], [m.pool, _MAX])
        self.books.set_pools(read_pools(c, [m.pool for m in self.markets.values()]))

    async def close(self) -> None:
        self._closed = True
        self.books.end()
        if self._feed is not None:
            self._feed.cancel()
            await asyncio.gather(self._feed, return_exceptions=True)
            self._feed = None
        self._publish(None)

    def instruments(self) -> dict[str, InstrumentInfo]:
        out = {}
        for m in self.markets.values():
            lot = 10.0 ** -self._decimals.get(m.base_token, 18)
            out[m.name] = InstrumentInfo(
                m.name, m.pool, m.base, m.quote, "spot", tick=1e-18, lot=lot, min_notional=0.0
            )
        return out

    # -- orders ---------------------------------------------------------------------------------

    def _market(self, instrument: str) -> PoolMarket:
        m = self.markets.get(instrument)
        if m is None:
            raise OrderRejected(self.name, "unknown_instrument", instrument, reason="bad_input")
        return m

    async def submit(self, order: OrderRequest) -> VenueOrder:
        """One atomic swap (see the module docstring). Idempotent by client order id."""
        if order.coid in self._orders:
            return await self.fetch_order(order.coid, order.instrument)
        m = self._market(order.instrument)
        if order.type == OrderType.POST_ONLY:
            raise OrderRejected(
                self.name,
                "post_only",
                f"{order.coid}: a pool cannot rest an order",
                reason="post_only_would_cross",
            )
        if not self._started:
            await self.start()
        if self.trader is not None and order.instrument in self.twins:
            paired = await self._pair(order)
            if paired is not None:
                return paired
        p = await self._run(self._send_swap, order, m)
        rec = await self._final_receipt(p)
        if rec is None and p.missed:
            return self._not_included(p)
        if rec is None:
            replaced = " (replaced by a cancel past its deadline)" if p.cancel else ""
            raise RequestTimeout(
                self.name,
                "receipt_timeout",
                f"{order.coid}: swap {p.sent.tx_hash}{replaced} not mined in time",
            )
        view = await self._settle(order.coid, rec)
        return view if view is not None else self._known(order.coid)

    # -- the two-pool atomic path ----------------------------------------------------------------

    async def _pair(self, order: OrderRequest) -> VenueOrder | None:
        """`order` traded with its partner leg in one executor call (see the module docstring),
        or None when no partner came within `pair_window_s` (a single swap then)."""
        dec = self._decimals[self.markets[order.instrument].base_token]
        units = to_units(order.qty, dec)
        for coid, (other, fut) in list(self._waiting.items()):
            if (
                other.side != order.side
                and other.instrument in self.twins[order.instrument]
                and to_units(other.qty, dec) == units
                and not fut.done()
            ):
                del self._waiting[coid]
                buy, sell = (order, other) if order.side == Side.BUY else (other, order)
                try:
                    out = await self._atomic(buy, sell)
                except BaseException as exc:
                    fut.set_exception(exc)
                    raise
                fut.set_result(out[other.coid])
                return self._outcome(out[order.coid])
        fut = asyncio.get_running_loop().create_future()
        self._waiting[order.coid] = (order, fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.pair_window_s)
        except TimeoutError:
            if self._waiting.pop(order.coid, None) is not None:
                return None  # no partner: a single swap
        except Exception:
            pass  # the partner's call raised: the same error is ours (below)
        return self._outcome(await fut)

    @staticmethod
    def _outcome(got: VenueOrder | BaseException) -> VenueOrder:
        if isinstance(got, BaseException):
            raise got
        return got

    async def _atomic(self, buy: OrderRequest, sell: OrderRequest) -> dict[str, VenueOrder | BaseException]:
        """Both legs in one executor call: each leg's view, or the OrderRejected it gets."""
        try:
            p = await self._run(self._send_pair, buy, sell)
        except OrderRejected as exc:
            return self._refused(buy, sell, str(exc), exc.reason)
        rec = await self._final_receipt(p)
        if rec is None:  # both legs OPEN: fetch_order looks for the receipt again
            self._pair_pending[buy.coid] = self._pair_pending[sell.coid] = (p, buy, sell)
            raise RequestTimeout(
                self.name,
                "receipt_timeout",
                f"{buy.coid}+{sell.coid}: executor call {p.sent.tx_hash} not mined in time",
            )
        self._just_settled.append((p, rec))
        return await self._conclude_pair(p, buy, sell, rec)

    def _refused(self, buy: OrderRequest, sell: OrderRequest, why: str, reason: str, tx_hash: str = ""):
        """Both legs REJECTED for `reason` (a RejectReason name), published; their errors."""
        out: dict[str, VenueOrder | BaseException] = {}
        for o in (buy, sell):
            view = self._view(
                o, OrderStatus.REJECTED, reason=RejectReason[reason.upper()], venue_order_id=tx_hash
            )
            self._orders[o.coid] = view
            self._publish(OrderUpdate(self.name, time.time_ns(), view))
            out[o.coid] = OrderRejected(self.name, reason, f"{o.coid} (two-pool): {why}", reason=reason)
        return out

    def _plan_pair(self, buy: OrderRequest, sell: OrderRequest) -> TradePlan:
        """Size both legs at one block's reserves and check their bounds (worker thread):
        quote into the buy pool for at least the BUY's quantity, all of it into the sell pool
        for at least the SELL's bound; OrderRejected ("slippage", "lot_size", "edge_gone")."""
        c, ma, mb = self.client, self.markets[buy.instrument], self.markets[sell.instrument]
        a, b = read_pools(c, [ma.pool, mb.pool])
        bdec, qdec = self._decimals[ma.base_token], self._decimals[ma.quote_token]
        scale = Decimal(10) ** (bdec - qdec)
        qty = to_units(buy.qty, bdec)
        ra_in, ra_out = a.reserves_for(ma.quote_token)
        if not 0 < qty < ra_out:
            raise OrderRejected(
                self.name, "lot_size", f"{qty} base units vs pool {ma.pool}", reason="lot_size"
            )
        x = amount_in_for(qty, ra_in, ra_out)
        y = amm.amount_out(x, ra_in, ra_out)
        z = amm.amount_out(y, *b.reserves_for(mb.base_token))
        if buy.price is not None and x > math.floor(Decimal(repr(buy.price)) * Decimal(qty) / scale):
            raise OrderRejected(self.name, "price_bound", f"buy costs {x} quote units", reason="slippage")
        if sell.price is not None:
            min_out = math.ceil(Decimal(repr(sell.price)) * Decimal(y) / scale)
        else:
            min_out = amm.min_out_with_slippage(z, self.slippage_bps)
        if z < min_out:
            raise OrderRejected(
                self.name, "price_bound", f"sell pays {z} < bound {min_out}", reason="slippage"
            )
        if z <= x:
            raise OrderRejected(self.name, "no_profit", f"the path pays {z} for {x}", reason="edge_gone")
        deadline = int(c.latest_block()["timestamp"], 16) + c.cfg.deadline_s
        tag = int.from_bytes(keccak(text=f"{buy.coid}+{sell.coid}"), "big")
        legs = (Leg(ma.pool, ma.quote_token, qty), Leg(mb.pool, mb.base_token, min_out))
        return plan_path(legs, x, 1, deadline, tag)

    def _send_pair(self, buy: OrderRequest, sell: OrderRequest) -> _Pending:
        """Plan, simulate (eth_call: a revert refuses both legs, nothing sent), sign and send
        the executor call (worker thread). Both legs OPEN until its receipt."""
        trader = self.trader
        assert trader is not None
        plan = self._plan_pair(buy, sell)
        try:
            trader.simulate(plan)  # the gate: nothing sent if it fails
        except SimulationFailed as exc:
            self.pairs_refused += 1
            cause = exc.cause
            raise OrderRejected(
                self.name,
                "simulation",
                f"simulation: {cause.error_name}{cause.revert_args}",
                reason=refusal_reason(cause),
            ) from None
        try:
            sent = trader.dispatch(plan)
        except ChainRevert as exc:  # the gas estimate reverted: the state moved since
            raise OrderRejected(
                self.name,
                "simulation",
                f"estimate: {exc.error_name}{exc.revert_args}",
                reason=refusal_reason(exc),
            ) from None
        except GasCapExceeded as exc:
            raise OrderRejected(self.name, "gas_cap", f"not sent: {exc}", reason="gas_cap") from None
        except NonceConflict as exc:
            raise OrderRejected(
                self.name, "nonce_conflict", f"not sent: {exc}", reason="nonce_conflict"
            ) from None
        self.pairs_sent += 1
        for o in (buy, sell):
            self._orders[o.coid] = self._view(o, OrderStatus.OPEN, venue_order_id=sent.tx_hash)
        return _Pending(buy, sent, time.monotonic() + self.client.cfg.deadline_s)

    async def _conclude_pair(
        self, p: _Pending, buy: OrderRequest, sell: OrderRequest, rec: Receipt
    ) -> dict[str, VenueOrder | BaseException]:
        """Both legs' outcome from the executor call's receipt: two fills (the gas the BUY's
        fee), or both refused (a mined revert, or the cancel took the nonce) with the gas
        published as a Charge."""
        now = time.time_ns()
        if rec.tx_hash != p.sent.tx_hash or not rec.ok:
            self._publish(Charge(self.name, now, "ETH", rec.gas_cost_wei / 1e18, rec.tx_hash, buy.coid))
            if rec.tx_hash != p.sent.tx_hash:
                out: dict[str, VenueOrder | BaseException] = {}
                for o in (buy, sell):
                    view = self._orders[o.coid] = self._view(
                        o, OrderStatus.EXPIRED, venue_order_id=rec.tx_hash
                    )
                    self._publish(OrderUpdate(self.name, now, view))
                    out[o.coid] = view
                return out
            why = await self._run(self.client.revert_reason, p.sent, rec)
            return self._refused(
                buy,
                sell,
                f"reverted on chain: {why.error_name}{why.revert_args}",
                refusal_reason(why),
                rec.tx_hash,
            )
        fills = []
        for k, o in enumerate((buy, sell)):
            m = self.markets[o.instrument]
            amount_in, amount_out = self._swap_amounts(rec, m.pool)
            base, quote = (amount_in, amount_out) if o.side == Side.SELL else (amount_out, amount_in)
            bdec, qdec = self._decimals[m.base_token], self._decimals[m.quote_token]
            qty_f, px = base / 10**bdec, (quote / 10**qdec) / (base / 10**bdec)
            fee = rec.gas_cost_wei / 1e18 if k == 0 else 0.0
            fill = Fill(
                self.name,
                o.instrument,
                o.coid,
                f"{rec.tx_hash}:{k}",
                o.side,
                px,
                qty_f,
                fee,
                "ETH",
                Liquidity.TAKER,
                now,
            )
            view = self._view(
                o, OrderStatus.FILLED, filled=qty_f, avg=px, fee=fee, venue_order_id=rec.tx_hash
            )
            self._orders[o.coid] = view
            fills.append((view, fill))
        # the pools as the call left them reach the engine before its fills do
        seq, pools = (
            0,
            {self.markets[buy.instrument].pool.lower(), self.markets[sell.instrument].pool.lower()},
        )
        for log in rec.logs:
            sync = sync_from_log(log)
            if sync is not None and sync.pool in pools:
                seq = self.books.apply(sync) or seq
        if seq:
            await self.books.delivered(seq, self.settle_wait_s)
        for view, fill in fills:
            self._fills.append(fill)
            self._publish(OrderUpdate(self.name, now, view))
            self._publish(fill)
        return {buy.coid: fills[0][0], sell.coid: fills[1][0]}

    def _send_swap(self, order: OrderRequest, m: PoolMarket) -> _Pending:
        """Size the swap at the latest reserves, simulate it, sign and send it (worker thread)."""
        c = self.client
        state = read_pools(c, [m.pool])[0]
        token_in, token_out, amount_in, min_out = self._size(order, m, state)
        data = encode_call(_SWAP_SIG, _SWAP_TYPES, [token_in, amount_in, min_out, c.address])
        if self.relay is not None:
            return self._send_bundle(order, m, data)
        try:
            self.simulations += 1
            try:
                c.call(m.pool, data)  # the gate: nothing sent if it fails
            except ChainRevert:
                self.simulations_refused += 1
                raise
            sent = c.send(m.pool, data)
        except ChainRevert as exc:
            self._reject(order, m, f"simulation: {exc.error_name}{exc.revert_args}", refusal_reason(exc))
        except GasCapExceeded as exc:
            self._reject(order, m, f"not sent: {exc}", "gas_cap")
        except NonceConflict as exc:
            self._reject(order, m, f"not sent: {exc}", "nonce_conflict")
        except OrderRejected as exc:  # the node refused it (not enough ETH for the gas)
            self._reject(order, m, f"not sent: {exc}", exc.reason)
        except RequestTimeout as exc:  # it may have reached the node
            if exc.tx_hash is None or exc.nonce is None:
                raise
            self._track(order, SentTx(exc.tx_hash, exc.nonce, m.pool, data, 0, 0, None, "trade"))
            raise RequestTimeout(
                self.name, exc.code, f"{order.coid}: swap {exc.tx_hash} sent, no answer"
            ) from None
        return self._track(order, sent)

    def _send_bundle(self, order: OrderRequest, m: PoolMarket, data: bytes) -> _Pending:
        """The swap as a bundle (worker thread): signed, simulated by the relay's
        eth_callBundle for the next block (its gas limit from the simulation's gas used), then
        sent by eth_sendBundle for each of the next `bundle_blocks` blocks. A simulation that
        reverts refuses the order (its decoded reason) with nothing sent and the nonce given
        back. A relay error before any bundle reached it (unreachable, refused) is raised,
        nothing tracked and the nonce given back; a timeout on the first send may have reached
        it (tracked for that block, RequestTimeout raised: `fetch_order` decides); an error on a
        later block's send stops the sends there (the bundle stands for the blocks sent)."""
        c, relay = self.client, self.relay
        assert relay is not None
        target = c.block_number() + 1
        try:
            probe = c.sign(m.pool, data, gas=c.gas.max_gas)
        except GasCapExceeded as exc:
            self._reject(order, m, f"not sent: {exc}", "gas_cap")
        try:
            sim = relay.simulate([probe.raw], target)
            tx = c.sign(
                m.pool, data, gas=c.gas.gas_limit(sim[0].gas_used), fees=probe.fees, nonce=probe.nonce
            )
        except ChainRevert as exc:
            c.nonces.release(probe.nonce)
            self._reject(
                order, m, f"bundle simulation: {exc.error_name}{exc.revert_args}", refusal_reason(exc)
            )
        except GasCapExceeded as exc:
            c.nonces.release(probe.nonce)
            self._reject(order, m, f"not sent: {exc}", "gas_cap")
        except BaseException:
            c.nonces.release(probe.nonce)
            raise
        sent_for = 0
        for block in range(target, target + self.bundle_blocks):
            try:
                relay.send([tx.raw], range(block, block + 1))
            except VenueError as exc:
                if sent_for:
                    break  # it stands for the blocks it was sent for
                if not isinstance(exc, RequestTimeout):
                    c.nonces.release(probe.nonce)
                    raise
                self._track(order, tx).until_block = target  # it may have reached the relay
                raise RequestTimeout(
                    self.name, exc.code, f"{order.coid}: bundle {tx.tx_hash} sent, no answer"
                ) from None
            sent_for = block
        p = self._track(order, tx)
        p.until_block = sent_for
        return p

    def _not_included(self, p: _Pending) -> VenueOrder:
        """A bundle no block included up to its last block: the order EXPIRED, nothing traded,
        no gas spent, the nonce given back."""
        coid = p.order.coid
        if self._pending.pop(coid, None) is None:
            return self._orders[coid]
        self.client.nonces.release(p.sent.nonce)
        view = self._view(p.order, OrderStatus.EXPIRED, venue_order_id=p.sent.tx_hash)
        self._orders[coid] = view
        self._publish(OrderUpdate(self.name, time.time_ns(), view))
        return view

    def _send_cancel(self, p: _Pending, checked: bool = False) -> None:
        """Replace a pending swap by a 0-value transfer to ourselves at its nonce (worker
        thread; `checked`: its receipt was just looked for). A refusal (the swap mined
        meanwhile, fees past the caps) leaves the swap alone: its own receipt, or its absence,
        still decides."""
        if p.cancel is not None or (not checked and self._mined(p) is not None):
            return
        try:
            p.cancel = self.client.cancel(p.sent)
        except VenueError:
            return

    def _mined(self, p: _Pending) -> Receipt | None:
        """The receipt of the swap or of its cancel (one nonce: at most one is mined). With
        neither mined and the swap past its deadline, the cancel is sent. A bundle is not
        cancelled by its deadline: with neither mined once the chain is past its last block, it
        is `missed`."""
        head = self.client.block_number() if p.until_block else 0
        for tx in p.txs():
            rec = self.client.get_receipt(tx.tx_hash)
            if rec is not None:
                self.client.nonces.mined(tx.nonce + 1)
                return rec
        if p.until_block:
            p.missed = head >= p.until_block  # its last block is built without it
            return None
        if p.cancel is None and time.monotonic() >= p.deadline:
            self._send_cancel(p, checked=True)
        return None

    async def _receipt(self, p: _Pending, timeout_s: float) -> Receipt | None:
        """Poll for the receipt (first after 0.5 ms, doubling up to the client's poll interval),
        one short request at a time: other calls to this venue go on meanwhile. None if nothing
        is mined within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        delay = min(0.0005, self.client.cfg.poll_interval_s)
        while True:
            rec = await self._run(self._mined, p)
            if rec is not None or p.missed or time.monotonic() >= deadline:
                return rec
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.client.cfg.poll_interval_s)

    def _verify(self, p: _Pending, rec: Receipt) -> tuple[Receipt | None, bool]:
        """(receipt, final) for the swap's receipt `rec` on the chain as it is now (worker
        thread): final once its block has `confirmations` blocks (itself included) on top.
        When the block at its height is no longer the one that held it (a reorg), the swap and
        its cancel are looked up again: mined again, that receipt (its depth counted from its
        new block); mined nowhere, None: the same signed swap is broadcast again (what a node
        does with a reorg's dropped transactions; a bundled swap goes to the relay again, for
        the next `bundle_blocks` blocks) and the order is in doubt until a receipt comes. Each such reorg is counted in `reorgs`."""
        head, block = self.client.rpc_batch(
            [("eth_blockNumber", []), ("eth_getBlockByNumber", [hex(rec.block_number), False])]
        )
        held = isinstance(block, dict) and (not rec.block_hash or block.get("hash") == rec.block_hash)
        if held:
            final = self.confirmations <= 1 or int(head, 16) >= rec.block_number + self.confirmations - 1
            return rec, final
        found = None
        for tx in p.txs():
            found = self.client.get_receipt(tx.tx_hash)
            if found is not None:
                break
        if found is None:
            outcome = "dropped"
        elif found.ok and found.tx_hash == p.sent.tx_hash:
            outcome = "reincluded"
        else:
            outcome = "replaced"
        self._count(p, rec, outcome, found)
        if found is not None:
            return found, False
        self._send_again(p, p.sent, int(head, 16))
        return None, False

    def _count(self, p: _Pending, rec: Receipt, outcome: str, found: Receipt | None) -> None:
        self.reorgs_total += 1
        self.reorgs.append(
            Reorg(
                p.order.coid,
                rec.tx_hash,
                rec.block_number,
                rec.block_hash,
                outcome,
                found.block_number if found is not None else 0,
                time.time_ns(),
            )
        )

    def _send_again(self, p: _Pending, tx: SentTx, head: int) -> None:
        """A transaction of ours a reorg dropped, sent again (worker thread): a bundled swap
        to the relay for the next `bundle_blocks` blocks, anything else to the node."""
        self.client.nonces.unmined(tx.nonce)
        try:
            if p.until_block and self.relay is not None and tx is p.sent:
                nxt = head + 1
                self.relay.send([tx.raw], range(nxt, nxt + self.bundle_blocks))
                p.until_block, p.missed = nxt + self.bundle_blocks - 1, False
            elif tx.raw:
                self.client.broadcast(tx)
        except VenueError:  # the nonce is taken, or the node or relay refuses: the receipt decides
            pass

    def _watch_settled(self) -> int:
        """The head, and every settled order's deciding receipt of the last `REORG_WINDOW`
        blocks checked against the block now at its height (worker thread; one batch request).
        A replaced block is a reorg deeper than `confirmations`: counted ("final_reincluded",
        or "final_dropped" and the transaction sent again, then followed until mined again).
        What was booked for the order stands; reconciliation compares it with the chain."""
        c = self.client
        while self._just_settled:
            self._settled.append(self._just_settled.popleft())
        if not self._settled and not self._resent:
            return c.block_number()
        numbers = sorted({rec.block_number for _, rec in self._settled})
        answers = c.rpc_batch(
            [("eth_blockNumber", [])] + [("eth_getBlockByNumber", [hex(n), False]) for n in numbers]
        )
        head = int(answers[0], 16)
        at = {n: b.get("hash") if isinstance(b, dict) else None for n, b in zip(numbers, answers[1:])}
        watched: deque[tuple[_Pending, Receipt]] = deque(maxlen=SETTLED_KEPT)
        for p, rec in self._settled:
            if rec.block_number < head - REORG_WINDOW:
                continue  # deep enough: let go
            if not rec.block_hash or at.get(rec.block_number) == rec.block_hash:
                watched.append((p, rec))
                continue
            found = c.get_receipt(rec.tx_hash)
            self._count(p, rec, "final_reincluded" if found is not None else "final_dropped", found)
            if found is not None:
                watched.append((p, found))
            else:
                tx = next((t for t in p.txs() if t.tx_hash == rec.tx_hash), p.sent)
                self._send_again(p, tx, head)
                self._resent.append((p, tx, head + REORG_WINDOW))
        resent: deque[tuple[_Pending, SentTx, int]] = deque(maxlen=SETTLED_KEPT)
        for p, tx, until in self._resent:
            found = c.get_receipt(tx.tx_hash)
            if found is not None:
                watched.append((p, found))
            elif head <= until:
                resent.append((p, tx, until))
        self._settled, self._resent = watched, resent
        return head

    async def _final_receipt(self, p: _Pending) -> Receipt | None:
        """The receipt that decides `p` (None: none came in time): a mined swap of ours once it
        has its confirmations; when a reorg drops it, it is sent again and awaited again."""
        while True:
            rec = await self._receipt(p, self.client.cfg.receipt_timeout_s)
            if rec is None or not (rec.ok and rec.tx_hash == p.sent.tx_hash):
                return rec
            confirmed = await self._confirmed(p, rec)
            if confirmed is not None:
                return confirmed

    async def _confirmed(self, p: _Pending, rec: Receipt) -> Receipt | None:
        """Wait until the swap's block has `confirmations` blocks on it (no lock held
        meanwhile), watching for a reorg (`_verify`). The receipt that decides the order (the
        swap's, or after a reorg its cancel's or a reverted one: settled at once), or None when
        a reorg dropped the swap (broadcast again: its receipt is awaited again).
        RequestTimeout past the client's receipt timeout (the swap stays OPEN)."""
        deadline = time.monotonic() + self.client.cfg.receipt_timeout_s
        while True:
            got, final = await self._run(self._verify, p, rec)
            if got is None:
                return None
            if final or not (got.ok and got.tx_hash == p.sent.tx_hash):
                return got
            rec = got
            if time.monotonic() >= deadline:
                raise RequestTimeout(
                    self.name,
                    "confirmations",
                    f"{p.order.coid}: swap {rec.tx_hash} mined, not confirmed in time",
                )
            await asyncio.sleep(self.client.cfg.poll_interval_s)

    def _track(self, order: OrderRequest, sent: SentTx) -> _Pending:
        """Record a swap that reached (or may have reached) the node: OPEN until its receipt."""
        self._orders[order.coid] = self._view(order, OrderStatus.OPEN, venue_order_id=sent.tx_hash)
        deadline = time.monotonic() + self.client.cfg.deadline_s
        p = self._pending[order.coid] = _Pending(order, sent, deadline)
        return p

    def _known(self, coid: str) -> VenueOrder:
        """The view of an order another call settled meanwhile (a refusal raised again)."""
        view = self._orders[coid]
        if view.status == OrderStatus.REJECTED:
            reason = view.reason.name.lower()
            raise OrderRejected(self.name, reason, f"{coid}: refused", reason=reason)
        return view

    def _size(self, order: OrderRequest, m: PoolMarket, s: PoolState) -> tuple[str, str, int, int]:
        bdec, qdec = self._decimals[m.base_token], self._decimals[m.quote_token]
        qty = to_units(order.qty, bdec)
        if qty <= 0:
            raise OrderRejected(
                self.name, "lot_size", f"{order.coid}: qty below one base unit", reason="lot_size"
            )
        if order.side == Side.SELL:
            r_in, r_out = s.reserves_for(m.base_token)
            expected = amm.amount_out(qty, r_in, r_out)
            if order.price is not None:
                min_out = math.ceil(
                    Decimal(repr(order.price)) * Decimal(qty) / (Decimal(10) ** (bdec - qdec))
                )
            else:
                min_out = amm.min_out_with_slippage(expected, self.slippage_bps)
            if expected < min_out:
                raise OrderRejected(
                    self.name,
                    "price_bound",
                    f"{order.coid}: pool pays {expected} < bound {min_out}",
                    reason="slippage",
                )
            return m.base_token, m.quote_token, qty, min_out
        r_in, r_out = s.reserves_for(m.quote_token)
        if qty >= r_out:
            raise OrderRejected(
                self.name, "liquidity", f"{order.coid}: pool holds less than {order.qty}", reason="lot_size"
            )
        need = amount_in_for(qty, r_in, r_out)
        if order.price is not None:
            budget = math.floor(Decimal(repr(order.price)) * Decimal(qty) / (Decimal(10) ** (bdec - qdec)))
            if need > budget:
                raise OrderRejected(
                    self.name,
                    "price_bound",
                    f"{order.coid}: costs {need} > bound {budget}",
                    reason="slippage",
                )
        elif order.type != OrderType.MARKET:
            raise OrderRejected(self.name, "bad_input", f"{order.coid}: needs a price", reason="bad_input")
        return m.quote_token, m.base_token, need, qty

    async def _settle(self, coid: str, rec: Receipt) -> VenueOrder | None:
        """What a mined receipt makes of a pending swap: EXPIRED (its cancel was mined), REJECTED
        (reverted: OrderRejected raised) or FILLED. None when another call settled it (a second
        caller waits for the first to finish)."""
        p = self._pending.get(coid)
        if p is None:
            return None
        if p.settling is not None:
            await asyncio.shield(p.settling)
            return None
        p.settling = asyncio.get_running_loop().create_future()
        try:
            return await self._conclude(p, rec)
        finally:
            self._pending.pop(coid, None)
            self._just_settled.append((p, rec))
            p.settling.set_result(None)

    async def _conclude(self, p: _Pending, rec: Receipt) -> VenueOrder:
        coid = p.order.coid
        order, m = p.order, self.markets[p.order.instrument]
        now = time.time_ns()
        if rec.tx_hash != p.sent.tx_hash:  # the cancel took the nonce: no trade, its gas spent
            self._publish(Charge(self.name, now, "ETH", rec.gas_cost_wei / 1e18, rec.tx_hash, coid))
            view = self._view(order, OrderStatus.EXPIRED, venue_order_id=rec.tx_hash)
            self._orders[coid] = view
            self._publish(OrderUpdate(self.name, now, view))
            return view
        if not rec.ok:  # mined and reverted: no trade, but its gas is spent
            self._publish(Charge(self.name, now, "ETH", rec.gas_cost_wei / 1e18, rec.tx_hash, coid))
            why = await self._run(self.client.revert_reason, p.sent, rec)
            self._reject(
                order,
                m,
                f"reverted on chain: {why.error_name}{why.revert_args}",
                refusal_reason(why),
                p.sent.tx_hash,
            )
        amount_in, amount_out = self._swap_amounts(rec, m.pool)
        bdec, qdec = self._decimals[m.base_token], self._decimals[m.quote_token]
        base, quote = (amount_in, amount_out) if order.side == Side.SELL else (amount_out, amount_in)
        qty_f, px = base / 10**bdec, (quote / 10**qdec) / (base / 10**bdec)
        fee = rec.gas_cost_wei / 1e18
        fill = Fill(
            self.name,
            order.instrument,
            coid,
            rec.tx_hash,
            order.side,
            px,
            qty_f,
            fee,
            "ETH",
            Liquidity.TAKER,
            now,
        )
        view = self._view(
            order, OrderStatus.FILLED, filled=qty_f, avg=px, fee=fee, venue_order_id=rec.tx_hash
        )
        self._orders[coid] = view
        self._fills.append(fill)
        # the pool as the swap left it reaches the engine before the swap's fill does
        seq = 0
        for log in rec.logs:
            sync = sync_from_log(log)
            if sync is not None and sync.pool == m.pool.lower():
                seq = self.books.apply(sync) or seq
        if seq:
            await self.books.delivered(seq, self.settle_wait_s)
        self._publish(OrderUpdate(self.name, now, view))
        self._publish(fill)
        return view

    def _reject(self, order: OrderRequest, m: PoolMarket, why: str, reason: str, tx_hash: str = ""):
        """Refuse `order` for `reason` (a RejectReason name: revert.refusal_reason, gas_cap,
        nonce_conflict ...): its view becomes REJECTED and OrderRejected is raised."""
        view = self._view(
            order, OrderStatus.REJECTED, reason=RejectReason[reason.upper()], venue_order_id=tx_hash
        )
        self._orders[order.coid] = view
        self._publish(OrderUpdate(self.name, time.time_ns(), view))
        raise OrderRejected(self.name, reason, f"{order.coid} on {m.name}: {why}", reason=reason)

    def _view(
        self,
        order: OrderRequest,
        status: OrderStatus,
        filled: float = 0.0,
        avg: float = 0.0,
        fee: float = 0.0,
        reason: RejectReason = RejectReason.NONE,
        venue_order_id: str = "",
    ) -> VenueOrder:
        now = time.time_ns()
        return VenueOrder(
            order.coid,
            order.instrument,
            order.side,
            order.type,
            order.qty,
            order.price,
            status,
            filled,
            avg,
            fee,
            "ETH" if fee else "",
            venue_order_id,
            reason,
            now,
            now,
        )

    @staticmethod
    def _swap_amounts(rec, pool: str) -> tuple[int, int]:
        for log in rec.logs:
            topics = log.get("topics") or ()
            if topics and topics[0].lower() == SWAP_TOPIC and log["address"].lower() == pool.lower():
                data = bytes.fromhex(log["data"][2:])
                amount_in, amount_out, _to = abi_decode(["uint256", "uint256", "address"], data)
                return amount_in, amount_out
        raise VenueError(pool, "malformed", f"{rec.tx_hash}: swap succeeded without a Swap event")

    async def cancel(self, coid: str, instrument: str | None = None) -> VenueOrder:
        """A mined swap is terminal; a pending one is replaced by a cancel at its nonce (then
        whichever of the two is mined decides: fetch_order)."""
        p = self._pending.get(coid)
        if p is not None:
            await self._run(self._send_cancel, p)
        return await self.fetch_order(coid, instrument)

    async def fetch_order(self, coid: str, instrument: str | None = None) -> VenueOrder:
        if coid not in self._orders:
            raise OrderNotFound(self.name, "unknown_order", coid)
        pair = self._pair_pending.get(coid)
        if pair is not None:  # an executor call not mined in time: its receipt decides both legs
            call, buy, sell = pair
            rec = await self._run(self._mined, call)
            if rec is not None and self._pair_pending.pop(buy.coid, None) is not None:
                self._pair_pending.pop(sell.coid, None)
                self._just_settled.append((call, rec))
                await self._conclude_pair(call, buy, sell, rec)
            return self._orders[coid]
        p = self._pending.get(coid)
        if p is not None:
            rec = await self._run(self._mined, p)
            if rec is None and p.missed:
                return self._not_included(p)
            if rec is not None and rec.ok and rec.tx_hash == p.sent.tx_hash:
                got, final = await self._run(self._verify, p, rec)
                if got is None or (not final and got.ok and got.tx_hash == p.sent.tx_hash):
                    return self._orders[coid]  # not final, or dropped by a reorg: still OPEN
                rec = got
            if rec is not None:
                try:
                    await self._settle(coid, rec)
                except OrderRejected:
                    pass
        return self._orders[coid]

    async def open_orders(self, instrument: str | None = None) -> list[VenueOrder]:
        """Swaps not mined yet (one whose receipt is being turned into its outcome is not open)."""
        return [
            self._orders[c]
            for c, p in self._pending.items()
            if p.settling is None and (instrument is None or self._orders[c].instrument == instrument)
        ]

    async def fills(self, cursor: str | None = None, limit: int = 1000) -> FillsPage:
        start = int(cursor) if cursor else 0
        page = tuple(self._fills[start : start + limit])
        end = start + len(page)
        return FillsPage(page, str(end), more=end < len(self._fills))

    # -- funds ----------------------------------------------------------------------------------

    async def balances(self) -> dict[str, Balance]:
        return await self._run(self._balances)

    def _balances(self) -> dict[str, Balance]:
        c, out = self.client, {}
        for m in self.markets.values():
            for token, asset in ((m.base_token, m.base), (m.quote_token, m.quote)):
                dec = self._decimals.get(token, 18)
                held = c.erc20_balance(token, c.address)
                if self.trader is not None:  # the two-pool path trades the executor's inventory
                    held += c.erc20_balance(token, self.trader.executor)
                out[asset] = Balance(asset, held / 10**dec)
        out["ETH"] = Balance("ETH", c.eth_balance(c.address) / 1e18)
        return out

    async def transfer(self, asset: str, amount: float, to_venue: str) -> TransferInfo:
        raise VenueError(self.name, "not_supported", "on-chain transfers are not supported by this venue yet")

    async def transfers(self) -> list[TransferInfo]:
        return []

    # -- status and streams ---------------------------------------------------------------------

    async def status(self) -> VenueStatus:
        if self.books.stale:
            return VenueStatus(self.name, VenueReport.DISCONNECTED, message=self.books.silence())
        try:
            block = await self._run(self._watch_settled)
        except (VenueUnavailable, RequestTimeout) as exc:
            return VenueStatus(self.name, VenueReport.DISCONNECTED, message=exc.code)
        return VenueStatus(self.name, VenueReport.OK, message=f"block {block}")

    def book(self, m: PoolMarket, s: PoolState, ts_ns: int) -> BookUpdate:
        """The pool's book at state `s` (books.PoolBooks.book)."""
        return self.books.book(m, s, ts_ns)

    async def market_data(self, instruments: list[str] | None = None):
        """The pools' books, live (see the module docstring), until the venue closes. A failed
        subscription raises its VenueError (the io side subscribes again)."""
        names = set(instruments or self.markets)
        for n in names:
            self._market(n)
        if not self._started:
            await self.start()
        q = self.books.subscribe()
        if self._feed is None or self._feed.done():
            self._feed = asyncio.create_task(self._follow_chain())
        else:  # the feed runs for another subscriber: this one starts from the books as they are
            self.books.republish()
        timeout = self.books.head_timeout_s
        check_s = min(0.25, timeout / 4) if timeout else 0.25
        try:
            while not self._closed:
                try:
                    seq, item = await asyncio.wait_for(q.get(), check_s)
                except TimeoutError:
                    self.books.check_silence()
                    continue
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if not isinstance(item, BookUpdate) or item.instrument in names:
                    yield item
                self.books.taken(q, seq)
                self.books.check_silence()
        finally:
            self.books.unsubscribe(q)
            if not self.books.subscribed and self._feed is not None:
                self._feed.cancel()
                self._feed = None

    async def _follow_chain(self) -> None:
        """Heads and reserve changes into the books, from the websocket or by polling; a failure
        is handed to every subscriber."""
        pools = [m.pool for m in self.markets.values()]

        async def read(block: int | None) -> list[PoolState]:
            return await self._run(read_pools, self.client, pools, "latest" if block is None else block)

        async def block_number() -> int:
            return await self._run(self.client.block_number)

        self.books.started()
        if self.ws_url:
            events = ws_events(self.name, self.ws_url, pools, read, self.client.cfg.request_timeout_s)
        else:
            events = poll_events(block_number, read, self.poll_s)
        try:
            async for ev in events:
                if isinstance(ev, Head):
                    self.books.on_head(ev)
                else:
                    self.books.apply(ev)
        except Exception as exc:  # a VenueError is reported and retried by the io side
            self.books.fail(exc)

    async def user_events(self):
        q: asyncio.Queue = asyncio.Queue()
        sub = (asyncio.get_running_loop(), q)
        self._subscribers.append(sub)
        try:
            while True:
                ev = await q.get()
                if ev is None:
                    return
                yield ev
        finally:
            self._subscribers.remove(sub)

    def _publish(self, event) -> None:
        """Hand `event` to every subscriber (safe from the worker thread)."""
        for loop, q in self._subscribers:
            loop.call_soon_threadsafe(q.put_nowait, event)
