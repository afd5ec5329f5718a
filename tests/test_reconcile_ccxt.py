"""A reconciliation pass through the real ccxt client against the exchange emulator on loopback:
the same layers as on the simulated venue, over the other implementation of the venue interface
(a venue without transfer history, fills paged per instrument, balances without lag)."""

import asyncio

import pytest

from adapters.ccxt import CcxtVenue, Credentials
from adapters.ccxt.config import from_dict
from adapters.emulator.harness import standard_emulator
from basis_core.accounting import Ledger
from basis_core.reconcile.orders import KnownOrder
from basis_core.reconcile.positions import PositionPolicy, PositionReconciler
from basis_core.reconcile.runner import Reconciler
from basis_core.schema import OrderType, Side, make_coid
from basis_core.venue import OrderRequest, OrderStatus

KEY, SECRET = "k3y-Recon-51c0", "s3cret-Recon-9e2a77"


def test_pass_over_a_ccxt_venue_books_fills_adopts_unknown_orders_and_balances_agree():
    async def body():
        emu = standard_emulator({KEY: (SECRET, "recon")})
        await emu.start()
        config = from_dict(
            {
                "base_url": emu.url,
                "timeout_ms": 2000,
                "instruments": {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"},
            }
        )
        v = CcxtVenue("emu", config, Credentials(KEY, SECRET), venue_id=5)
        try:
            await v.start()
            led = Ledger(lambda a, t: {"BTC": 50_000.0, "ETH": 3_000.0}[a])
            for asset, bal in (await v.balances()).items():
                if bal.total:
                    led.deposit("emu", asset, bal.total, 0)
            taker = OrderRequest(str(make_coid(1, 0)), "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.01, 50_001.0)
            resting = OrderRequest(str(make_coid(2, 0)), "ETHUSDT", Side.BUY, OrderType.LIMIT, 0.5, 2_900.0)
            unseen = OrderRequest(str(make_coid(3, 0)), "ETHUSDT", Side.SELL, OrderType.LIMIT, 0.2, 3_100.0)
            orders = {}
            for req in (taker, resting):
                ack = await v.submit(req)
                orders[req.coid] = KnownOrder(
                    req.coid,
                    "emu",
                    req.instrument,
                    req.side,
                    req.qty,
                    req.price,
                    ack.status,
                    ack.filled_qty,
                    ack.avg_price,
                )
            await v.submit(unseen)  # its answer never recorded: the pass must adopt it
            rec = Reconciler(
                [v],
                led,
                orders,
                balance_lag_ns=0,
                position=PositionReconciler(PositionPolicy(hedge_window_ns=10**12, max_residual_usdt=1e9)),
            )
            p = await rec.run(1)
            assert p.unreachable == {} and p.adopted == [unseen.coid]
            assert orders[unseen.coid].origin == "adopted" and orders[unseen.coid].status is OrderStatus.OPEN
            assert orders[taker.coid].status is OrderStatus.FILLED
            assert p.fills_booked >= 1 and led.balance("emu", "BTC") == pytest.approx(2.01)
            assert p.raised == [] and p.clean, (p.raised, p.balances_pending)
            again = await rec.run(2)
            assert again.fills_booked == 0 and again.adopted == [] and again.clean
        finally:
            await v.close()
            await emu.stop()

    asyncio.run(body())
