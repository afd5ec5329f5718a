import asyncio
import dataclasses
import time

import pytest
from orchestration import config_error

from adapters.sim.world import SimWorld
from basis_core import config
from basis_core.errors import BasisError
from basis_core.scenarios import DEFAULT, SCENARIO_DIR
from basis_core.schema import OrderType, Side
from basis_core.venue import Fill, OrderRequest

EXAMPLES = sorted(SCENARIO_DIR.glob("*.toml"))


async def trade_a_little(world: SimWorld, seconds: float):
    """A naive client: every second, a small bid at each spot venue's touch, canceled a second later."""
    got = []

    async def listen(venue):
        async for ev in venue.user_events():
            if isinstance(ev, Fill):
                got.append(ev)

    listeners = [asyncio.get_running_loop().create_task(listen(v)) for v in world.venues.values()]
    market = world.start_market()
    for i in range(1, int(seconds)):
        await asyncio.sleep(1.0)
        for name, venue in world.venues.items():
            inst = next(iter(venue.instruments()))
            bids = venue.book(inst, 1)[0]
            if not bids:
                continue
            bid = bids[0][0]
            try:
                await venue.submit(OrderRequest(str(i), inst, Side.BUY, OrderType.LIMIT, 0.01, bid))
                await asyncio.sleep(0.5)
                await venue.cancel(str(i), inst)
            except BasisError:
                pass
    await market
    await world.close()
    await asyncio.gather(*listeners)
    return got


def run_default(seed: int, duration: float = 12.0):
    cfg = config.load(DEFAULT)
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=seed, duration_s=duration))
    world = SimWorld.from_config(cfg)

    async def main():
        await world.start()
        return await trade_a_little(world, duration)

    fills = world.clock.run(main())
    return world, fills


def test_default_scenario_builds_three_venues_with_their_balances():
    world = SimWorld.from_config(config.load(DEFAULT))
    assert sorted(world.venues) == ["alpha", "beta", "gamma"]
    assert world.venues["gamma"].instruments()["gamma-BTCUSDT-PERP"].kind == "perp"
    acc = world.venues["beta"].exchange.accounts
    assert acc.to_float("BNB", acc.free("basis", "BNB")) == 5.0
    assert len(world.faults.faults) >= 5


def test_same_seed_same_digest_different_seed_different_digest():
    t0 = time.perf_counter()
    a, fills_a = run_default(3)
    wall = time.perf_counter() - t0
    b, _ = run_default(3)
    c, _ = run_default(4)
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()
    assert fills_a  # the market fills resting orders
    assert {f.kind for f in a.faults.log} >= {"timeout", "rate_limit"}
    assert wall < 12.0  # 12 simulated seconds, faster than real time


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_embedded_scenario_is_valid_and_builds(path, capsys):
    from basis_core.cli import main

    assert main(["check", str(path)]) == 0
    cfg = config.load(path)
    world = SimWorld.from_config(cfg)
    assert world.venues and world.market is not None


def test_recorded_scenario_replays_its_data_files():
    cfg = config.load(SCENARIO_DIR / "recorded.toml")
    world = SimWorld.from_config(cfg)

    async def main():
        await world.start()
        await world.start_market()
        books = {n: v.book(next(iter(v.instruments())), 1) for n, v in world.venues.items()}
        await world.close()
        return books

    books = world.clock.run(main())
    for bids, asks in books.values():
        assert bids and asks and bids[0][0] < asks[0][0]


@pytest.mark.parametrize(
    "body, path",
    [
        ("[venues.a]\nbalances = { USDT = -1.0 }\n", "venues.a.balances.USDT"),
        ('[venues.a]\nfee_asset = "BNB"\n', "venues.a.fee_asset_price"),
        ("[venues.a]\nlatency = { request_ms = -1.0 }\n", "venues.a.latency.request_ms"),
        (
            '[venues.a]\n[instruments.x]\nvenue = "a"\nsymbol = "X/Y"\nbase = "X"\nlot = 1e-10\n',
            "instruments.x.lot",
        ),
        ("[market]\nlevels = 0\n", "market.levels"),
        ('[market]\nsource = "recorded"\n', "market.books"),
        ("[limits]\nmax_order_usdt = 1e9\n", "limits.max_order_usdt"),
        ("[transfers]\nconfirmations = 0\n", "transfers.confirmations"),
        ('[[faults]]\nkind = "meteor"\n', "faults[0].kind"),
        ('[[faults]]\nkind = "timeout"\nvenue = "nowhere"\n', "faults[0].venue"),
        ('[[faults]]\nkind = "price_gap"\n', "faults[0].duration_s"),
        ('[[faults]]\nkind = "timeout"\nprobabilty = 0.5\n', "faults[0].probabilty"),
    ],
)
def test_scenario_sections_are_validated_with_key_paths(tmp_path, body, path):
    assert config_error(tmp_path, body).path == path


def test_recorded_data_path_resolves_next_to_the_scenario_and_bad_files_fail_clearly(tmp_path):
    (tmp_path / "b.csv").write_text("ts_ns,venue,instrument,side,price,qty\n1,a,x,bid,oops,1\n")
    f = tmp_path / "s.toml"
    f.write_text(
        '[venues.a]\n[instruments.x]\nvenue = "a"\nsymbol = "BTC/USDT"\nbase = "BTC"\n'
        '[market]\nsource = "recorded"\nbooks = "b.csv"\n'
    )
    cfg = config.load(f)
    assert cfg.data_path("b.csv") == tmp_path / "b.csv"
    with pytest.raises(BasisError) as err:
        SimWorld.from_config(cfg)
    assert "b.csv:2" in str(err.value) and "price" in str(err.value)


def test_the_worked_example_in_the_scenario_readme_is_a_valid_scenario(tmp_path):
    text = (SCENARIO_DIR / "README.md").read_text()
    body = text.split("```toml\n", 1)[1].split("```", 1)[0]
    f = tmp_path / "example.toml"
    f.write_text(body)
    cfg = config.load(f)
    assert {f.kind for f in cfg.faults} == {"timeout", "rate_limit", "maintenance", "cancel_fill_race"}
    assert SimWorld.from_config(cfg).venues.keys() == {"alpha", "gamma"}
