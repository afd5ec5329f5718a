"""A task of a run that fails stops the run with that error: never a task that dies alone
("Task exception was never retrieved") while the run goes on to a normal-looking report."""

import asyncio

import pytest
from orchestration import run, scenario, transitions

from adapters.sim.world import SimWorld
from basis_core.config import from_dict
from basis_core.engine.scenario import run_scenario
from basis_core.engine.supervisor import Supervisor
from basis_core.errors import DataFileError


class Boom(Exception):
    pass


def test_the_first_failure_is_raised_and_the_other_tasks_are_cancelled():
    woken = []

    async def main():
        sup = Supervisor(on_failure=lambda: woken.append(True))
        forever = sup.spawn(asyncio.sleep(3600), "forever")
        clean = sup.spawn(asyncio.sleep(0), "clean")
        cancelled = sup.spawn(asyncio.sleep(3600), "cancelled")
        await clean
        cancelled.cancel()
        await asyncio.sleep(0.01)
        sup.raise_failure()  # a clean end and a cancellation are not failures

        async def fail(exc):
            await asyncio.sleep(0.01)
            raise exc

        sup.spawn(fail(Boom("first")), "first")
        sup.spawn(fail(Boom("second")), "second")
        await asyncio.sleep(0.05)
        with pytest.raises(Boom, match="first") as err:
            sup.raise_failure()
        await asyncio.sleep(0)
        return sup, forever, err.value

    sup, forever, exc = asyncio.run(main())
    assert woken == [True] and sup.failed_task == "first"
    assert forever.cancelled()
    assert "raised by the run's task first" in exc.__notes__


def test_a_market_task_that_fails_mid_run_stops_the_run_with_its_error(tmp_path):
    def setup(world):
        plain = world.start_market

        def start_market(hold=False):
            market = plain(hold=hold)

            async def failing():
                await asyncio.sleep(1.5)
                market.cancel()
                raise DataFileError("books.csv", "price 1.005 is not a whole number of ticks", row=9)

            return asyncio.get_running_loop().create_task(failing())

        world.start_market = start_market

    with pytest.raises(DataFileError, match="books.csv:9"):
        run(scenario(duration_s=6.0), tmp_path, setup=setup)
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_venue_pump_that_fails_stops_the_run_with_its_error(tmp_path):
    """An unexpected error in one venue's health loop (an io task of the runner) is the run's."""

    def setup(world):
        venue = world.venues["beta"]
        plain = venue.status
        calls = []

        async def status():
            calls.append(1)
            if len(calls) == 3:
                raise Boom("beta status")
            return await plain()

        venue.status = status

    with pytest.raises(Boom, match="beta status") as err:
        run(scenario(duration_s=6.0), tmp_path, setup=setup)
    assert "raised by the run's task health-beta" in err.value.__notes__


def test_a_maintenance_window_without_an_end_is_announced_without_one(tmp_path):
    """Its end (inf) used to be turned into an int when the venue reported its status: the run
    died with OverflowError."""
    cfg = from_dict(
        scenario(duration_s=4.0, faults=[{"kind": "maintenance", "venue": "beta", "start_s": 1.0}])
    )
    world = SimWorld.from_config(cfg)
    runner = world.clock.run(run_scenario(cfg, tmp_path / "run", world, progress=None))
    status = world.venues["beta"].current_status()
    assert status.state.name == "MAINTENANCE" and status.until_ns == 0
    assert any(dst == "QUARANTINED" for _, dst, _ in transitions(runner, "venue:beta"))
