"""CEX-DEX opportunities driven by the real engine: a pool on anvil and a simulated CEX venue.

The pool sells BTC below the CEX. With `[policy] dispatch = "primary_then_hedge"` the engine
buys on the pool first (one atomic swap, simulated with eth_call before it is sent) and sells
on the CEX what the swap delivered, once its receipt is in. Runs are on the real clock (the
chain keeps real time), single-process layout, through `run_scenario` like `basis run`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass

import pytest
from chainkit import DEV_KEYS, E18, approve, make_client, mint, rpc, swap
from orchestration import invariants, scenario, transitions, venue_agreement

from adapters.web3.arbitrage import read_pool
from adapters.web3.auth import Signer
from adapters.web3.client import EvmClient
from adapters.web3.config import Web3VenueConfig
from adapters.web3.venue import to_units
from adapters.web3.world import ChainWorld, PoolAddresses
from basis_core.config import from_dict
from basis_core.engine.scenario import run_scenario
from basis_core.errors import ConfigError
from basis_core.state.tables import HedgeState, OrderState

pytestmark = pytest.mark.chain

CEX_PX = 50_000.0
POOL_PX = 49_600.0  # 0.8 % under the CEX: buy on the pool, sell on the CEX
POOL_BTC = 100
TRADER = 2  # anvil dev account of the engine's on-chain venue
MOVER = 1  # another account that moves the pool


@dataclass(frozen=True)
class Dex:
    url: str
    btc: str
    usdt: str
    pool: str
    trader: str


@pytest.fixture
def dex(anvil_url, artifacts, decoder):
    """BTC and USDT tokens, a BTC/USDT pool at POOL_PX, a trader holding USDT with the pool
    approved (so that the venue's start sends nothing), a mover holding USDT."""
    owner = make_client(anvil_url, decoder, 0)
    tok, pool_art = artifacts["TestToken"], artifacts["ConstantProductPool"]
    btc = owner.deploy(tok, ["string", "string"], ["Test Bitcoin", "BTC"])
    usdt = owner.deploy(tok, ["string", "string"], ["Test Tether", "USDT"])
    pool = owner.deploy(pool_art, ["address", "address"], [btc, usdt])
    reserve_usdt = int(POOL_BTC * POOL_PX) * E18
    mint(owner, btc, owner.address, POOL_BTC * E18)
    mint(owner, usdt, owner.address, reserve_usdt)
    approve(owner, btc, pool)
    approve(owner, usdt, pool)
    owner.transact(
        pool, "addLiquidity(uint256,uint256)", ["uint256", "uint256"], [POOL_BTC * E18, reserve_usdt]
    )
    trader, mover = make_client(anvil_url, decoder, TRADER), make_client(anvil_url, decoder, MOVER)
    mint(owner, usdt, trader.address, 30_000 * E18)
    mint(owner, usdt, mover.address, 1_000_000 * E18)
    for c in (trader, mover):
        approve(c, btc, pool)
        approve(c, usdt, pool)
    return Dex(anvil_url, btc, usdt, pool, trader.address)


def _trader(dex: Dex, decoder) -> EvmClient:
    cfg = Web3VenueConfig(rpc_url=dex.url, chain_id=31337, name="dex", receipt_timeout_s=5.0)
    return EvmClient(cfg, Signer.from_hex(DEV_KEYS[TRADER]), decoder)


def _data(duration_s: float, faults=(), **policy) -> dict:
    """The default scenario cut down to one simulated CEX spot venue and one pool venue."""
    data = scenario(duration_s=duration_s, faults=list(faults))
    data["run"].update(clock="real", name="cex-dex")
    data["venues"] = {
        "cex": {
            "kind": "sim",
            "taker_fee_bps": 10.0,
            "maker_fee_bps": 2.0,
            "balances": {"USDT": 50_000.0, "BTC": 1.0},
            "latency": {"request_ms": 3.0, "response_ms": 3.0, "fill_ms": 1.0, "balance_lag_ms": 100.0},
        },
        # the pool's 0.3 % is inside its prices; its gas is a fee in ETH
        "dex": {
            "kind": "web3",
            "taker_fee_bps": 0.0,
            "maker_fee_bps": 0.0,
            "fee_asset": "ETH",
            "fee_asset_price": 3000.0,
        },
    }
    data["instruments"] = {
        "cex-BTCUSDT": {"venue": "cex", "symbol": "BTC/USDT", "base": "BTC"},
        "dex-BTCUSDT": {
            "venue": "dex",
            "symbol": "BTC/USDT",
            "base": "BTC",
            "tick": 0.01,
            "lot": 1e-5,
            "min_notional": 5.0,
        },
    }
    data["market"].update(
        start_price=CEX_PX,
        dislocations_per_min=0.0,
        basis_jumps_per_min=0.0,
        vol_bps=1.0,
        noise_bps=0.5,
        trades_per_s=1.0,
    )
    data["limits"].update(hedge_window_s=0.5, unwind_window_s=3.0)
    # a pool's book changes only when a swap moves it: it is as fresh as the latest block
    data["policy"] = {
        "dispatch": "primary_then_hedge",
        "stale_book_ms": 30_000.0,
        "healthy_window_ms": 300.0,
        "reconcile_interval_ms": 250.0,
        "balance_lag_ms": 600.0,
        **policy,
    }
    return data


def _run(data: dict, tmp_path, dex: Dex, decoder, after_start=None, settle_s: float = 1.0):
    """One run through run_scenario on the real clock; (runner, world, problems, dex fills)."""
    cfg = from_dict(data)
    world = ChainWorld.from_config(
        cfg, {"dex": _trader(dex, decoder)}, {"dex-BTCUSDT": PoolAddresses(dex.pool, dex.btc, dex.usdt)}
    )
    found, fills = [], {}

    async def before_close(runner):
        found.extend(await venue_agreement(runner))
        page = await runner.venues["dex"].fills()
        fills.update({f.coid: f for f in page.fills})

    runner = asyncio.run(
        run_scenario(
            cfg,
            tmp_path / "run",
            world,
            progress=None,
            settle_s=settle_s,
            before_close=before_close,
            after_start=after_start,
            layout="single",
        )
    )
    if runner.stats.reconcile_mismatches:
        found.append(f"reconciliation mismatches: {runner.stats.reconcile_mismatches}")
    return runner, world, found + invariants(runner), fills


def _legs(runner):
    """(position, pool buy, CEX hedge or None) of every opportunity, in order."""
    core = runner.core
    return [(p, core.orders.get(p.buy.coid), core.orders.get(p.sell.coid)) for p in core.positions.values()]


def test_pool_buy_then_cex_hedge_for_exactly_what_the_swap_delivered(tmp_path, dex, decoder):
    runner, world, problems, fills = _run(_data(2.0), tmp_path, dex, decoder)
    assert not problems, "\n".join(problems)
    legs = _legs(runner)
    assert legs, "no opportunity was taken"
    client = world.chain["dex"].client
    bought = 0
    for pos, buy, hedge in legs:
        assert buy.venue == "dex"
        if buy.state == OrderState.REJECTED:
            # sized on a pool book from before the previous swap: refused by its bound, nothing
            # was bought, so nothing is hedged
            assert buy.filled == 0 and hedge is None and buy.wire not in fills
            assert pos.state in (HedgeState.CLOSED, HedgeState.RECONCILED)
            continue
        assert buy.state == OrderState.FILLED and buy.filled > 0
        receipt = fills[buy.wire]
        assert client.get_receipt(receipt.trade_id).status == 1
        # the hedge: on the CEX, for exactly what the swap delivered, decided after its receipt
        assert hedge is not None and hedge.venue == "cex" and hedge.purpose == "hedge"
        assert hedge.qty == buy.filled == receipt.qty and hedge.depends_on == buy.coid
        assert buy.created_ns < receipt.ts_ns < hedge.created_ns
        assert hedge.created_ns - receipt.ts_ns < runner.policy.hedge_window_ms * 1e6
        assert hedge.state == OrderState.FILLED and hedge.filled == buy.filled
        assert pos.state == HedgeState.RECONCILED and pos.net_qty(runner.core.orders.orders) == 0
        result = runner.ledger.opportunity(pos.opp_id)
        assert result.symmetry == 1.0
        assert pos.expected_edge_bps >= runner.policy.min_edge_bps
        assert result.net_pnl_usdt > 0, (pos.expected_edge_bps, result)  # the sign of the edge
        bought += to_units(buy.filled, 18)
        print(
            f"opportunity {pos.opp_id}: {buy.filled:g} BTC, edge {pos.expected_edge_bps:.1f} bps, "
            f"pool leg {(receipt.ts_ns - buy.created_ns) / 1e6:.1f} ms decision->receipt, hedge decided "
            f"{(hedge.created_ns - receipt.ts_ns) / 1e6:.2f} ms after it, net {result.net_pnl_usdt:.2f} USDT"
        )
    assert all(o.venue == "cex" for o in runner.core.orders.orders.values() if o.side.name == "SELL")
    assert client.erc20_balance(dex.btc, dex.trader) == bought
    hedged = [p for p, b, _ in legs if b.filled > 0]
    assert hedged and runner.core.counters.hedges_completed == len(hedged)
    assert runner.core.engine.state.name == "NORMAL"


def test_cex_refusing_the_hedge_isolates_unwinds_on_the_pool_and_returns_to_normal(tmp_path, dex, decoder):
    faults = [
        {
            "kind": "reject",
            "venue": "cex",
            "on": "submit",
            "start_s": 0.0,
            "duration_s": 1.0,
            "reason": "insufficient_funds",
            "count": 0,
        }
    ]
    runner, world, problems, fills = _run(_data(2.5, faults), tmp_path, dex, decoder, settle_s=0.5)
    assert not problems, "\n".join(problems)
    pos, buy, hedge = _legs(runner)[0]
    book = runner.core.orders.orders
    assert buy.venue == "dex" and buy.filled > 0 and hedge.venue == "cex"
    assert hedge.state == OrderState.REJECTED and hedge.filled == 0 and hedge.qty == buy.filled
    unwinds = [book[c] for c in pos.unwind_coids if book[c].purpose == "unwind"]
    assert unwinds and all(o.venue == "dex" and o.side.name == "SELL" for o in unwinds)
    assert sum(o.filled for o in unwinds) == buy.filled
    assert pos.net_qty(book) == 0 and pos.state == HedgeState.RECONCILED
    hedge_states = [dst for _, dst, _ in transitions(runner, f"hedge:{pos.opp_id}")]
    assert "ASYMMETRIC" in hedge_states and "ISOLATED" in hedge_states and "UNWINDING" in hedge_states
    engine = [(a, b) for a, b, _ in transitions(runner, "engine")]
    i = engine.index(next(p for p in engine if p[1] == "PROTECTIVE"))
    assert engine[i : i + 3] == [
        (engine[i][0], "PROTECTIVE"),
        ("PROTECTIVE", "UNWINDING"),
        ("UNWINDING", "RECONCILING"),
    ]
    assert ("RECONCILING", "NORMAL") in engine[i:]
    assert runner.core.engine.state.name == "NORMAL" and runner.core.counters.unwinds >= 1
    # flat at the end: every position, and the chain holds what the pool legs left
    assert all(p.net_qty(book) == 0 for p in runner.core.positions.values())
    assert runner.core.residual_history[-1][1] == 0.0
    client = world.chain["dex"].client
    net = sum(
        to_units(o.filled, 18) * (1 if o.side.name == "BUY" else -1)
        for o in book.values()
        if o.venue == "dex"
    )
    assert client.erc20_balance(dex.btc, dex.trader) == net


def test_swap_reverted_on_chain_sends_no_cex_order_and_closes_the_position(tmp_path, dex, decoder):
    """The pool moves in the block before our swap (another account, higher fee): the swap is
    mined with status 0, nothing was bought, so no hedge is sent and the position closes."""
    mover = make_client(dex.url, decoder, MOVER)
    seen = {}

    def reserves():
        return read_pool(mover, dex.pool).reserves_for(dex.btc)

    def front_run():
        deadline = time.monotonic() + 5.0
        try:
            while time.monotonic() < deadline:
                pending = rpc(dex.url, "txpool_content")["pending"]
                if dex.trader.lower() in {a.lower() for a in pending}:
                    break
                time.sleep(0.005)
            else:
                return
            r_btc, r_usdt = reserves()
            target_usdt = math.isqrt(r_btc * r_usdt * int(CEX_PX))  # reserves at the CEX price
            amount_in = (target_usdt - r_usdt) * 1000 // 997
            fees = mover.gas.bump(mover.gas.bump(mover.quote_fees()))
            seen["mover"] = swap(mover, dex.pool, dex.usdt, amount_in, gas=200_000, fees=fees)
            rpc(dex.url, "evm_mine")
        finally:
            rpc(dex.url, "evm_setAutomine", [True])

    async def after_start(runner):
        rpc(dex.url, "evm_setAutomine", [False])
        seen["thread"] = threading.Thread(target=front_run, daemon=True)
        seen["thread"].start()

    runner, world, problems, fills = _run(_data(2.0), tmp_path, dex, decoder, after_start=after_start)
    seen["thread"].join(5)
    assert "mover" in seen, "the engine never sent a swap"
    assert not problems, "\n".join(problems)
    legs = _legs(runner)
    pos, buy, hedge = legs[0]
    assert buy.venue == "dex" and buy.state == OrderState.REJECTED and buy.filled == 0
    assert buy.reject_reason == "slippage"
    assert hedge is None and pos.state in (HedgeState.CLOSED, HedgeState.RECONCILED)
    assert ("LEG_WORKING", "CLOSED", "primary filled nothing") in transitions(runner, f"hedge:{pos.opp_id}")
    assert not [o for o in runner.core.orders.orders.values() if o.venue == "cex"]
    client = world.chain["dex"].client
    view = asyncio.run(world.chain["dex"].fetch_order(buy.wire))
    reverted = client.get_receipt(view.venue_order_id)
    assert reverted.status == 0 and reverted.gas_cost_wei > 0  # mined, reverted, gas spent
    assert runner.core.engine.state.name == "NORMAL"
    print(f"reverted swap: {reverted.gas_used} gas, {reverted.gas_cost_wei / 1e18:.3e} ETH")
    assert client.erc20_balance(dex.btc, dex.trader) == 0
    assert client.erc20_balance(dex.usdt, dex.trader) == 30_000 * E18  # only gas was spent
    assert buy.wire not in fills
    # the reverted swap's gas is in the ledger (a Charge, no fill): it agrees with the chain
    eth = client.eth_balance(dex.trader) / 1e18
    assert runner.ledger.balance("dex", "ETH") == pytest.approx(eth, rel=1e-12, abs=1e-15)
    charges = [p for p in runner.ledger.postings if p.ref == f"charge:{reverted.tx_hash}"]
    assert [p.delta for p in charges] == [pytest.approx(-reverted.gas_cost_wei / 1e18)]


def test_world_refuses_a_config_it_cannot_run(dex, decoder):
    client = _trader(dex, decoder)
    pools = {"dex-BTCUSDT": PoolAddresses(dex.pool, dex.btc, dex.usdt)}
    virtual = _data(1.0)
    virtual["run"]["clock"] = "virtual"
    with pytest.raises(ConfigError, match="run.clock"):
        ChainWorld.from_config(from_dict(virtual), {"dex": client}, pools)
    no_gas_price = _data(1.0)
    no_gas_price["venues"]["dex"].update(fee_asset="quote", fee_asset_price=0.0)
    with pytest.raises(ConfigError, match="venues.dex.fee_asset"):
        ChainWorld.from_config(from_dict(no_gas_price), {"dex": client}, pools)
    with pytest.raises(ConfigError, match="instruments.dex-BTCUSDT"):
        ChainWorld.from_config(from_dict(_data(1.0)), {"dex": client}, {})
    with pytest.raises(ConfigError, match="venues.dex"):
        ChainWorld.from_config(from_dict(_data(1.0)), {}, pools)
    # the pool's rules, known once it has read its tokens: the scenario's lot and tick fit them
    world = ChainWorld.from_config(from_dict(_data(1.0)), {"dex": client}, pools)
    asyncio.run(world.chain["dex"].start())
    info = world.chain["dex"].instruments()["dex-BTCUSDT"]
    assert (info.base, info.quote, info.lot) == ("BTC", "USDT", 1e-18)
    world.check_rules(world.chain["dex"])
