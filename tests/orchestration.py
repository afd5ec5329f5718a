"""Running scenarios in tests, and the invariants every scenario test asserts."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from adapters.sim.world import SimWorld
from basis_core.config import from_dict, load
from basis_core.engine.scenario import run_scenario
from basis_core.errors import ConfigError, OrderNotFound, VenueError
from basis_core.scenarios import DEFAULT
from basis_core.state.tables import NO_DISPATCH, NO_NEW_EXPOSURE, EngineState, OrderState, VenueState
from basis_core.venue import OrderStatus, coid_from_wire

_TERMINAL = {
    OrderState.FILLED: OrderStatus.FILLED,
    OrderState.CANCELED: OrderStatus.CANCELED,
    OrderState.EXPIRED: OrderStatus.EXPIRED,
    OrderState.REJECTED: OrderStatus.REJECTED,
}


def scenario(duration_s: float = 12.0, faults: list[dict] | None = None, seed: int = 7, **overrides) -> dict:
    """The default scenario as a dict, shortened, with its faults replaced by `faults`."""
    data = tomllib.loads(Path(DEFAULT).read_text())
    data["run"]["duration_s"] = duration_s
    data["run"]["seed"] = seed
    data["faults"] = faults or []
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return data


def config_error(tmp_path: Path, body: str) -> ConfigError:
    """The ConfigError raised by loading a scenario file that holds `body` (the test fails if none is)."""
    f = tmp_path / "scenario.toml"
    f.write_text(body)
    with pytest.raises(ConfigError) as err:
        load(f)
    return err.value


def real_time(duration_s: float, **kw) -> dict:
    """`scenario(...)` on the real clock with the engine pinned to CPU 1 and the io process to CPU 0
    (the two-process layout), and dislocations often enough that a few seconds trade."""
    data = scenario(duration_s=duration_s, **kw)
    data["run"]["clock"] = "real"
    data["cpu"] = {"engine": 1, "io": 0}
    data["market"]["dislocations_per_min"] = 30.0
    return data


def run(data: dict, tmp_path: Path, check=None, after_start=None, setup=None, layout="single", progress=None):
    """Run a scenario dict; returns (runner, world, problems found by check). Layout "single" runs
    on the virtual clock, "processes" (a `real_time` scenario) on the real one. `setup(world)` may
    adjust the world before the run starts; `progress` gets the run's progress lines."""
    cfg = from_dict(data)
    world = SimWorld.from_config(cfg)
    if setup is not None:
        setup(world)
    found: list[str] = []

    async def before_close(runner):
        found.extend(await venue_agreement(runner))
        if check is not None:
            found.extend(check(runner) or [])

    scenario_run = run_scenario(
        cfg,
        tmp_path / "run",
        world,
        progress=progress or (lambda line: None),
        before_close=before_close,
        after_start=after_start,
        layout=layout,
    )
    runner = asyncio.run(scenario_run) if layout == "processes" else world.clock.run(scenario_run)
    return runner, world, found


async def _retry(call):
    for _ in range(20):
        try:
            return await call()
        except (VenueError, OrderNotFound) as exc:
            if isinstance(exc, OrderNotFound):
                raise
            await asyncio.sleep(0.5)  # a fault window (maintenance, 429) may still be open
    return await call()


async def venue_agreement(runner) -> list[str]:
    """Every client order id ends in a terminal state that we and the venue agree on, and every
    order the venue has (open, or behind a fill) is one the engine knows."""
    problems = []
    known = runner.core.orders.orders
    for name, venue in runner.venues.items():
        cursor = None
        while True:
            page = await _retry(lambda: venue.fills(cursor))
            for f in page.fills:
                if coid_from_wire(f.coid) not in known:
                    problems.append(f"{name} has fill {f.trade_id} of order {f.coid}, unknown to the engine")
            cursor = page.cursor
            if not page.more:
                break
        for vo in await _retry(lambda: venue.open_orders()):
            problems.append(f"{name} still has order {vo.coid} open ({vo.status.name})")
    for o in runner.core.orders.orders.values():
        if not o.terminal:
            problems.append(f"order {o.coid} on {o.venue} not terminal: {o.state.name}")
            continue
        try:
            vo = await _retry(lambda: runner.venues[o.venue].fetch_order(o.wire, o.instrument))
        except OrderNotFound:
            if o.state != OrderState.REJECTED:
                problems.append(f"order {o.coid} is {o.state.name} here, unknown at {o.venue}")
            continue
        if not vo.status.terminal:
            problems.append(f"order {o.coid}: terminal here ({o.state.name}), {vo.status.name} at {o.venue}")
        elif abs(vo.filled_qty - o.filled) > 1e-9:
            problems.append(f"order {o.coid}: filled {o.filled} here, {vo.filled_qty} at {o.venue}")
        elif _TERMINAL[o.state] != vo.status and not (
            vo.status == OrderStatus.FILLED and o.filled >= o.qty - 1e-12
        ):
            problems.append(f"order {o.coid}: {o.state.name} here, {vo.status.name} at {o.venue}")
    return problems


def balance_agreement(runner, world) -> list[str]:
    """Every venue's own balance of every asset (free and locked) equals the ledger's, within the
    run's balance layer's tolerance (what the venue charged, fees in whatever asset, included)."""
    ledger, band = runner.ledger, runner.reconciler.balances.band  # no ts_ns: the lag widens nothing
    problems = []
    for name, venue in world.venues.items():
        acc = venue.exchange.accounts
        assets = set(acc.assets(venue.owner)) | {a for v, a in ledger.balances() if v == name}
        for asset in sorted(assets):
            theirs = acc.to_float(asset, acc.get(venue.owner, asset).total)
            lo, hi = band(ledger, name, asset)
            if not lo <= theirs <= hi:
                expected = ledger.balance(name, asset)
                problems.append(f"{name} holds {theirs!r} {asset}, the ledger {expected!r}")
    return problems


def _intervals(transitions, machine: str):
    """[(start, end, state)] of one machine from the report's transitions."""
    out, cur_state, cur_t = [], None, 0
    for t in transitions:
        if t["machine"] != machine:
            continue
        if cur_state is None:
            cur_state, cur_t = t["from"], 0
        out.append((cur_t, t["t"], cur_state))
        cur_state, cur_t = t["to"], t["t"]
    if cur_state is not None:
        out.append((cur_t, 1 << 62, cur_state))
    return out


def state_at(intervals, t: int, default: str) -> str:
    for start, end, state in intervals:
        if start <= t < end:
            return state
    return default


def invariants(runner) -> list[str]:
    """The invariants of the orchestrator, checked on a finished run."""
    core, policy = runner.core, runner.policy
    problems = []
    trans = core.transitions_as_dicts()
    engine = _intervals(trans, "engine")
    venue_iv = {name: _intervals(trans, f"venue:{name}") for name in core.board.venues}
    bad_engine = {s.name for s in NO_NEW_EXPOSURE}
    bad_venue = {s.name for s in NO_DISPATCH}
    for o in core.orders.orders.values():
        vstate = state_at(venue_iv[o.venue], o.created_ns, VenueState.UP.name)
        if vstate in bad_venue:
            problems.append(f"order {o.coid} ({o.purpose}) sent to {o.venue} while {vstate}")
        if o.purpose == "entry":
            estate = state_at(engine, o.created_ns, EngineState.NORMAL.name)
            if estate in bad_engine:
                problems.append(f"entry order {o.coid} sent while engine {estate}")
    # residual over the limit never lasts longer than the hedge window plus the unwind window
    # of engine time: in the process layout the seconds a killed engine spent restarting from
    # its journal (nothing can decide then) are not counted
    limit_ns = int((policy.hedge_window_ms + policy.unwind_window_ms) * 1e6)
    down = getattr(runner, "downtimes", [])

    def engine_time(a: int, b: int) -> int:
        lost = sum(max(0, min(b, d0 + dn) - max(a, d0)) for d0, dn in down)
        return b - a - lost

    over_since, last = None, 0.0
    # the history holds changes only: a residual lasts until the next change, or the run's end
    for t, total in [*core.residual_history, (core.now, 0.0)]:
        if over_since is not None and engine_time(over_since, t) > limit_ns:
            problems.append(
                f"residual {last:.0f} USDT above {policy.max_residual_usdt} for {(t - over_since) / 1e9:.1f} s"
            )
            break
        if total > policy.max_residual_usdt:
            over_since = t if over_since is None else over_since
        else:
            over_since = None
        last = total
    return problems


def assert_clean(found, runner) -> None:
    """No problem found by a run's check, and every invariant holds (else the test fails, listing them)."""
    problems = list(found) + invariants(runner)
    assert not problems, "\n".join(problems)


def transitions(runner, machine: str) -> list[tuple[str, str, str]]:
    return [
        (t["from"], t["to"], t["cause"])
        for t in runner.core.transitions_as_dicts()
        if t["machine"] == machine
    ]
