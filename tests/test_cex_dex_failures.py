"""CEX-DEX failure cases on anvil: the chain leg reverting after the CEX leg filled, a swap
stuck past its deadline, and a reorg under a swap not yet final. (The CEX hedge refused after
the swap mined, unwound on the pool, is tests/chain/test_chain_cex_dex.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import threading
import time

import pytest
from orchestration import invariants, transitions, venue_agreement
from web3_local import CEX_PX, E18, INSTRUMENT, cex_dex_data, local_chain, rpc, swap_data

from adapters.ccxt.emulate import serve_venue, write_secrets
from adapters.web3.arbitrage import read_pool
from adapters.web3.devchain import write_keystore
from adapters.web3.world import ChainWorld
from basis_core.cli import main as cli_main
from basis_core.config import from_dict, load
from basis_core.engine.report import build_report
from basis_core.engine.scenario import run_scenario, simulated_only
from basis_core.state.tables import HedgeState, OrderState
from basis_core.venue import Charge, OrderRequest, OrderType, Side

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def chain():
    c = local_chain()
    yield c
    c.stop()


@pytest.fixture
def fresh(chain):
    snap = rpc(chain.url, "evm_snapshot")
    yield chain
    rpc(chain.url, "evm_setAutomine", [True])
    assert rpc(chain.url, "evm_revert", [snap]) is True


def _front_run(chain, mover, trader: str, seen: dict) -> None:
    """Wait for our swap in the node's pool, then move the pool to the CEX price in a block
    mined before it (a higher fee): our swap is mined reverted, by its own bound."""
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            pending = rpc(chain.url, "txpool_content")["pending"]
            if trader.lower() in {a.lower() for a in pending}:
                break
            time.sleep(0.003)
        else:
            return
        btc, usdt = chain.dev.tokens["BTC"], chain.dev.tokens["USDT"]
        r_btc, r_usdt = read_pool(mover, chain.pool).reserves_for(btc)
        target = math.isqrt(r_btc * r_usdt * int(CEX_PX * 1.002))  # a little over the CEX
        amount_in = (target - r_usdt) * 1000 // 997
        fees = mover.gas.bump(mover.gas.bump(mover.quote_fees()))
        seen["mover"] = mover.send(
            chain.pool, swap_data(usdt, amount_in, mover.address), gas=200_000, fees=fees
        )
        rpc(chain.url, "evm_mine")
    finally:
        rpc(chain.url, "evm_setAutomine", [True])


def _stall(chain, mover, trader: str, seen: dict) -> None:
    """Mine nothing while our swap waits in the node's pool, until it is replaced by a cancel
    (0-value, to ourselves); then mine that."""
    try:
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            pending = rpc(chain.url, "txpool_content")["pending"]
            ours = [tx for a, txs in pending.items() if a.lower() == trader.lower() for tx in txs.values()]
            if ours and "swap" not in seen:
                seen["swap"] = ours[0]["hash"]
            if ours and ours[0]["to"].lower() == trader.lower():
                seen["mover"] = seen["cancel"] = ours[0]["hash"]
                rpc(chain.url, "evm_mine")
                return
            time.sleep(0.005)
    finally:
        rpc(chain.url, "evm_setAutomine", [True])


@pytest.mark.parametrize("how", ["reverted", "stuck"])
def test_pool_leg_failing_after_the_cex_leg_filled_unwinds_the_cex_leg(fresh, tmp_path, how):
    """Simultaneous dispatch: the CEX sells while the pool's buy either is mined reverted (moved
    past its bound by another trader first) or stays unmined until it is replaced by a cancel."""
    chain = fresh
    mover = chain.mover()
    # no second try on the pool inside the hedge window (the policy may re-send the refused leg
    # there, at the moved price): past the window the filled CEX leg is unwound
    cfg = from_dict(cex_dex_data(2.5, dispatch="simultaneous", hedge_max_retries=0))
    client = chain.client(receipt_timeout_s=5.0, deadline_s=2)
    world = ChainWorld.from_config(
        cfg,
        {"dex": client},
        {INSTRUMENT: chain.addresses()},
        tables={"dex": chain.table(ws_url=chain.ws_url)},
    )
    seen: dict = {}
    found: list[str] = []

    async def after_start(runner):
        rpc(chain.url, "evm_setAutomine", [False])
        act = _front_run if how == "reverted" else _stall
        seen["thread"] = threading.Thread(target=act, args=(chain, mover, client.address, seen))
        seen["thread"].start()

    async def before_close(runner):
        found.extend(await venue_agreement(runner))

    runner = asyncio.run(
        run_scenario(
            cfg,
            tmp_path / "run",
            world,
            progress=None,
            settle_s=1.0,
            after_start=after_start,
            before_close=before_close,
        )
    )
    seen["thread"].join(5)
    assert "mover" in seen, "the engine never sent a swap"
    problems = found + invariants(runner)
    assert not problems and not runner.stats.reconcile_mismatches, problems
    book = runner.core.orders.orders
    pos = next(iter(runner.core.positions.values()))
    buy, sell = book[pos.buy.coid], book[pos.sell.coid]
    assert sell.venue == "cex" and sell.state == OrderState.FILLED and sell.filled > 0
    if how == "reverted":  # mined reverted by its own bound, after the other trader's swap
        assert buy.venue == "dex" and buy.state == OrderState.REJECTED and buy.filled == 0
        assert buy.reject_reason == "slippage"
        assert client.get_receipt(seen["mover"].tx_hash).ok
    else:  # never mined: replaced by a cancel at its nonce, which was mined instead
        assert buy.venue == "dex" and buy.state == OrderState.EXPIRED and buy.filled == 0
        assert client.get_receipt(seen["swap"]) is None and client.get_receipt(seen["cancel"]).ok
    # the CEX leg is bought back on the CEX, within the unwind window
    unwinds = [book[c] for c in pos.unwind_coids]
    assert unwinds and all(o.venue == "cex" and o.side.name == "BUY" for o in unwinds), unwinds
    assert sum(o.filled for o in unwinds) == pytest.approx(sell.filled)
    # decided once the pool leg was refused, and done within the unwind window
    refused = buy.machine.since_ns
    assert all(o.state == OrderState.FILLED and o.created_ns >= refused for o in unwinds)
    done = max(o.machine.since_ns for o in unwinds)
    assert done - refused < cfg.limits.unwind_window_s * 1e9, (done - refused) / 1e6
    print(f"CEX leg unwound {(done - refused) / 1e6:.1f} ms after the pool leg was refused")
    hedge = [dst for _, dst, _ in transitions(runner, f"hedge:{pos.opp_id}")]
    assert "ASYMMETRIC" in hedge and "UNWINDING" in hedge, hedge
    assert pos.net_qty(book) == pytest.approx(0.0, abs=1e-12)
    assert pos.state in (HedgeState.CLOSED, HedgeState.RECONCILED)
    assert abs(runner.core.residual_history[-1][1]) <= runner.policy.max_residual_usdt
    assert runner.core.engine.state.name == "NORMAL"
    # the chain holds what the pool's fills say (later opportunities may trade once the engine
    # is back to NORMAL), and its ETH the gas booked: the fills' and the failed leg's
    net_btc = sum(o.filled * (1 if o.side.name == "BUY" else -1) for o in book.values() if o.venue == "dex")
    btc = client.erc20_balance(chain.dev.tokens["BTC"], client.address) / 1e18
    assert btc == pytest.approx(net_btc, rel=1e-12, abs=1e-15)
    if how == "reverted":  # the pool is now above the CEX: nothing more was bought there
        assert client.erc20_balance(chain.dev.tokens["USDT"], client.address) == 30_000 * E18
    eth = client.eth_balance(client.address) / 1e18
    assert runner.ledger.balance("dex", "ETH") == pytest.approx(eth, rel=1e-12, abs=1e-15)


def test_a_swap_stuck_past_its_deadline_is_replaced_by_a_cancel(fresh):
    asyncio.run(_stuck(fresh))


async def _stuck(chain) -> None:
    venue = chain.venue(ws=True, client_cfg={"receipt_timeout_s": 5.0, "deadline_s": 1})
    await venue.start()
    c = venue.client
    events: list = []

    async def collect():
        async for ev in venue.user_events():
            events.append(ev)

    task = asyncio.create_task(collect())
    before = (c.erc20_balance(chain.dev.tokens["USDT"], c.address), c.eth_balance(c.address))
    rpc(chain.url, "evm_setAutomine", [False])
    t0 = time.monotonic()
    swap = asyncio.create_task(
        venue.submit(OrderRequest("8001", INSTRUMENT, Side.BUY, OrderType.MARKET, 0.05, None))
    )

    def ours() -> list[dict]:
        pending = rpc(chain.url, "txpool_content")["pending"]
        return [tx for a, txs in pending.items() if a.lower() == c.address.lower() for tx in txs.values()]

    while not ours() or ours()[0]["to"].lower() != c.address.lower():  # the swap, then its cancel
        assert time.monotonic() - t0 < 4.0, "the stuck swap was never replaced"
        await asyncio.sleep(0.01)
    replaced_after = time.monotonic() - t0
    assert 0.9 < replaced_after < 3.0, replaced_after
    (cancel,) = ours()  # one transaction at our nonce: the cancel took the swap's place
    assert int(cancel["value"], 16) == 0 and cancel["input"] in ("0x", "")
    assert not swap.done()
    rpc(chain.url, "evm_mine")
    view = await asyncio.wait_for(swap, 5)
    assert view.status.name == "EXPIRED" and view.filled_qty == 0
    rec = c.get_receipt(view.venue_order_id)
    assert rec.ok and rec.tx_hash == cancel["hash"]
    # the position is what it was: no token moved, the cancel's gas is all it cost, and charged
    assert c.erc20_balance(chain.dev.tokens["BTC"], c.address) == 0
    assert c.erc20_balance(chain.dev.tokens["USDT"], c.address) == before[0]
    assert before[1] - c.eth_balance(c.address) == rec.gas_cost_wei
    await asyncio.sleep(0.05)
    charges = [e for e in events if isinstance(e, Charge)]
    assert [(ch.asset, ch.amount, ch.ref, ch.coid) for ch in charges] == [
        ("ETH", rec.gas_cost_wei / 1e18, rec.tx_hash, "8001")
    ]
    assert (await venue.fetch_order("8001")).status.name == "EXPIRED" and await venue.open_orders() == []
    await venue.close()
    await task


@contextlib.contextmanager
def _emulator(cfg, venue: str, secrets_out):
    """The ccxt venue's loopback exchange emulator (what `basis emulator` serves), playing the
    config's market, on a loop of its own thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = serve_venue(cfg, venue)
    asyncio.run_coroutine_threadsafe(served.start(), loop).result(30)
    market = asyncio.run_coroutine_threadsafe(served.run_market(), loop)
    write_secrets(secrets_out, served.key, served.secret)
    try:
        yield served
    finally:
        market.cancel()
        asyncio.run_coroutine_threadsafe(served.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _mixed_text(chain_file, run_dir_parent, base_url: str) -> str:
    data = cex_dex_data(3.0)
    data["run"]["out_dir"] = str(run_dir_parent)
    data["venues"]["alpha"] = {
        "kind": "ccxt",
        "taker_fee_bps": 10.0,
        "maker_fee_bps": 2.0,
        "balances": {"USDT": 200_000.0, "BTC": 4.0},
        "ccxt": {
            "exchange": "binance",
            "base_url": base_url,
            "timeout_ms": 2000,
            "credentials": {"secrets_file": "alpha.secrets.toml"},
        },
    }
    data["instruments"]["alpha-BTCUSDT"] = {"venue": "alpha", "symbol": "BTC/USDT", "base": "BTC"}
    data["venues"]["dex"]["web3"] = {"chain_file": str(chain_file), "ws_url": ""}
    return _toml(data)


def _toml(data: dict, prefix: str = "") -> str:
    """`data` as TOML: its plain keys, then a [section] per table."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}.{k}" if prefix else k
            lines += ["", f"[{'.'.join(json.dumps(p) if '-' in p else p for p in name.split('.'))}]"]
            lines.append(_toml(v, name))
    return "\n".join(lines)


def test_basis_run_drives_sim_ccxt_and_web3_venues_in_one_run(fresh, tmp_path, monkeypatch):
    chain = fresh
    monkeypatch.setenv("MIXED_KEYSTORE_PASSWORD", "mixed-local-password")
    keystore = tmp_path / "dex.keystore.json"
    write_keystore(chain.dev.signer, keystore, "mixed-local-password", iterations=2)
    chain_file = tmp_path / "chain.toml"
    chain_file.write_text(chain.dev.fragment(str(keystore), "MIXED_KEYSTORE_PASSWORD"))
    config = tmp_path / "mixed.toml"
    config.write_text(_mixed_text(chain_file, tmp_path, "http://127.0.0.1:1"))
    with _emulator(load(config), "alpha", tmp_path / "alpha.secrets.toml") as served:
        config.write_text(_mixed_text(chain_file, tmp_path, served.url))
        cfg = load(config)
        assert {v.kind for v in cfg.venues.values()} == {"sim", "ccxt", "web3"}
        simulated_only(cfg)  # no longer refused
        run_dir = tmp_path / "run"
        code = cli_main(["run", str(config), "--run-dir", str(run_dir)])
    report = json.loads((run_dir / "report.json").read_text())
    assert code in (0, 3), report
    db = sqlite3.connect(run_dir / "results.sqlite")
    venues = {v for (v,) in db.execute("select distinct venue from fills")}
    print("filled on", sorted(venues), "reconciliation", report["reconciliation"])
    assert report["reconciliation"] == {"balance": 0, "order": 0, "position": 0, "reporting": 0}
    assert report["final_engine_state"] == "NORMAL"
    # which pair trades depends on where the emulator's market (played by wall time) stands
    # against the pool and the simulated CEX; reconciliation held every venue's balances, the
    # pool's on chain included, against the ledger
    assert venues and venues <= {"cex", "alpha", "dex"}, venues
    registry = json.loads((run_dir / "registry.json").read_text())
    assert set(registry["venues"]) == {"cex", "alpha", "dex"}


def _reorg_first_swap(url: str, trader: str, start: int, seen: dict, stop: threading.Event) -> None:
    """Find the first block after `start` holding a transaction of `trader`; once the venue has
    seen it mined, replace it (and any block on it) with empty ones before it has 3
    confirmations; then mine a block every 30 ms (anvil mines only when sent a transaction) so
    swaps get their confirmations."""
    try:
        n, deadline = start + 1, time.monotonic() + 10
        while "block" not in seen and time.monotonic() < deadline and not stop.is_set():
            block = rpc(url, "eth_getBlockByNumber", [hex(n), True])
            if block is None:
                time.sleep(0.002)
                continue
            ours = [tx["hash"] for tx in block["transactions"] if tx["from"].lower() == trader.lower()]
            if ours:
                time.sleep(0.1)  # the venue has its receipt and waits for depth (nothing is mined)
                head = int(rpc(url, "eth_blockNumber"), 16)
                rpc(url, "anvil_reorg", [head - n + 1, []])
                seen.update(block=n, tx=ours[0], old_hash=block["hash"])
            n += 1
        while not stop.wait(0.03):
            rpc(url, "evm_mine")
    except Exception as exc:  # reported by the test
        seen["error"] = repr(exc)


def test_a_reorg_under_a_provisional_swap_is_booked_once_and_reconciles(fresh, tmp_path):
    """The pool venue waits for 3 confirmations; the block that holds the engine's first swap
    is replaced by one without it (`anvil_reorg`) before then. The venue broadcasts the swap
    again and books it once it is final in the block that stays: the run ends NORMAL with no
    reconciliation mismatch, report.json counts the reorg, and the ledger holds what the chain
    holds (BTC from the pool's fills, ETH less the gas of the swaps that stayed)."""
    chain = fresh
    cfg = from_dict(cex_dex_data(2.5))
    client = chain.client(receipt_timeout_s=5.0)
    world = ChainWorld.from_config(
        cfg,
        {"dex": client},
        {INSTRUMENT: chain.addresses()},
        tables={"dex": chain.table(ws_url=chain.ws_url, confirmations=3)},
    )
    seen: dict = {}
    stop = threading.Event()
    found: list[str] = []

    async def after_start(runner):
        start = int(rpc(chain.url, "eth_blockNumber"), 16)
        seen["thread"] = threading.Thread(
            target=_reorg_first_swap, args=(chain.url, client.address, start, seen, stop)
        )
        seen["thread"].start()

    async def before_close(runner):
        found.extend(await venue_agreement(runner))

    try:
        runner = asyncio.run(
            run_scenario(
                cfg,
                tmp_path / "run",
                world,
                progress=None,
                settle_s=1.5,
                after_start=after_start,
                before_close=before_close,
            )
        )
    finally:
        stop.set()
        if "thread" in seen:
            seen["thread"].join(5)
    assert "error" not in seen, seen.get("error")
    assert "block" in seen, "the engine never sent a swap"
    venue = world.chain["dex"]
    # the venue saw the block go and followed the swap: dropped, sent again, mined again
    assert venue.reorgs_total >= 1
    first = venue.reorgs[0]
    assert (first.tx_hash, first.block_number, first.outcome) == (seen["tx"], seen["block"], "dropped")
    again = client.get_receipt(seen["tx"])
    assert again is not None and again.block_hash != seen["old_hash"]
    report = build_report(runner, 1.0)
    assert report["chain_reorgs"] == {"dex": venue.reorgs_total}
    # booked once: the swap's order is filled, and the run reconciles with the chain
    book = runner.core.orders.orders
    coid = next(c for c, v in venue._orders.items() if v.venue_order_id == seen["tx"])
    assert venue._orders[coid].status.name == "FILLED"
    swap = next(o for o in book.values() if o.venue == "dex" and o.wire == coid)
    assert swap.state.name == "FILLED" and swap.filled == venue._orders[coid].filled_qty
    problems = found + invariants(runner)
    assert not problems and not runner.stats.reconcile_mismatches, problems
    assert runner.core.engine.state.name == "NORMAL"
    net_btc = sum(o.filled * (1 if o.side.name == "BUY" else -1) for o in book.values() if o.venue == "dex")
    btc = client.erc20_balance(chain.dev.tokens["BTC"], client.address) / 1e18
    assert btc == pytest.approx(net_btc, rel=1e-12, abs=1e-15)
    eth = client.eth_balance(client.address) / 1e18
    assert runner.ledger.balance("dex", "ETH") == pytest.approx(eth, rel=1e-12, abs=1e-15)


def test_a_cex_dex_run_through_a_bundle_relay_reconciles(fresh, tmp_path):
    """The pool venue's table names a relay: every swap of the run is simulated by
    eth_callBundle and reaches the chain only as a bundle the relay built; the run ends NORMAL
    with no reconciliation mismatch and the ledger holds what the chain holds."""
    from bundle_relay import LocalRelay

    chain = fresh
    cfg = from_dict(cex_dex_data(2.0))
    client = chain.client(receipt_timeout_s=5.0)
    found: list[str] = []

    async def before_close(runner):
        found.extend(await venue_agreement(runner))

    with LocalRelay(chain.url) as relay:
        world = ChainWorld.from_config(
            cfg,
            {"dex": client},
            {INSTRUMENT: chain.addresses()},
            tables={"dex": chain.table(ws_url=chain.ws_url, relay_url=relay.url, bundle_blocks=2)},
        )
        runner = asyncio.run(
            run_scenario(cfg, tmp_path / "run", world, progress=None, settle_s=1.0, before_close=before_close)
        )
    problems = found + invariants(runner)
    assert not problems and not runner.stats.reconcile_mismatches, problems
    assert runner.core.engine.state.name == "NORMAL"
    venue = world.chain["dex"]
    swaps = {v.venue_order_id for v in venue._orders.values() if v.status.name == "FILLED"}
    assert swaps, "no swap filled"
    # each filled swap is a transaction the relay built into a block (never the public mempool)
    built = {
        rpc(chain.url, "eth_getBlockByNumber", [hex(b), False])["transactions"][0] for b, _ in relay.included
    }
    assert swaps <= built, (swaps, built)
    assert relay.calls[0] == "eth_callBundle" and relay.calls.count("eth_callBundle") >= len(swaps)
    book = runner.core.orders.orders
    net_btc = sum(o.filled * (1 if o.side.name == "BUY" else -1) for o in book.values() if o.venue == "dex")
    btc = client.erc20_balance(chain.dev.tokens["BTC"], client.address) / 1e18
    assert btc == pytest.approx(net_btc, rel=1e-12, abs=1e-15)
    eth = client.eth_balance(client.address) / 1e18
    assert runner.ledger.balance("dex", "ETH") == pytest.approx(eth, rel=1e-12, abs=1e-15)
