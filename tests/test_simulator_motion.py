"""The simulated actuator moves for real: a move takes distance / speed, force follows, stop halts, trace records."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from labbridge.experiment.simulators.actuator import ActuatorSimulator, create_app
from labbridge.experiment.simulators.motion import Carriage, Travel


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def test_a_move_takes_distance_over_speed_and_passes_every_position_on_the_way(clock: Clock) -> None:
    carriage = Carriage(10.0, clock=clock)
    carriage.move(50.0, 8.0)  # 40 mm at 8 mm/s: 5 s
    seen = []
    for _ in range(6):
        seen.append((carriage.position(), carriage.moving()))
        clock.now += 1.0
    assert seen == [(10.0, True), (18.0, True), (26.0, True), (34.0, True), (42.0, True), (50.0, False)]
    assert carriage.last_travel == Travel(10.0, 50.0, 8.0)


def test_a_move_backwards_and_a_halt_on_the_way(clock: Clock) -> None:
    carriage = Carriage(50.0, clock=clock)
    carriage.move(0.0, 10.0)
    clock.now += 1.5
    carriage.halt()
    clock.now += 10
    assert carriage.position() == 35.0 and not carriage.moving() and carriage.speed() is None
    assert carriage.last_travel == Travel(50.0, 35.0, 10.0)


def test_a_new_move_replaces_the_one_under_way_and_a_jump_halts_it(clock: Clock) -> None:
    carriage = Carriage(0.0, clock=clock)
    carriage.move(100.0, 10.0)
    clock.now += 2
    carriage.move(0.0, 5.0)  # from 20 mm back home
    clock.now += 1
    assert carriage.position() == 15.0 and carriage.speed() == 5.0
    carriage.jump(70.0, 5.0)
    clock.now += 1
    assert carriage.position() == 70.0 and not carriage.moving()


def test_force_follows_the_carriage_and_the_speed_it_moves_at(clock: Clock) -> None:
    sim = ActuatorSimulator()
    sim.carriage = Carriage(0.0, clock=clock)
    still = sim.read("force")
    sim.move(40.0, 40.0)
    clock.now += 0.5
    moving = sim.read("force")  # at 20 mm, dragged at 40 mm/s
    assert still == pytest.approx(0.05 * 10.0, abs=0.05)
    assert moving == pytest.approx(0.8 * 20 + 0.05 * 40, abs=0.05)


def test_the_trace_records_the_last_move(clock: Clock) -> None:
    sim = ActuatorSimulator(trace_samples=1000)
    sim.carriage = Carriage(20.0, clock=clock)
    sim.move(60.0, 20.0)
    clock.now += 10
    trace = sim.read("trace")
    assert len(trace) == 1000
    assert trace[0] == pytest.approx(0.8 * 20 + 0.05 * 20, abs=0.02)
    assert trace[-1] == pytest.approx(0.8 * 60 + 0.05 * 20, abs=0.1)
    assert trace == sorted(trace, key=lambda f: round(f))  # rising along the way, ripple aside


def simulator_http(scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """Run `scenario` against the simulator's HTTP API, in process."""
    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://sim") as client:
            await scenario(client)

    asyncio.run(main())


def test_the_http_api_moves_refuses_out_of_range_and_stops() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.post("/move", json={"to": 150})).status_code == 422
        refused = await client.post("/move", json={"to": 50, "speed": 0})
        assert refused.json()["error"] == "speed must be a number from 0.1 to 50 mm/s"
        assert (await client.post("/move", content=b"[1]")).status_code == 400
        started = (await client.post("/move", json={"to": 50, "speed": 50})).json()
        assert started["moving"] and started["target"] == 50.0 and started["speed"] == 50.0
        assert (await client.get("/moving")).json() == {"value": True}
        stopped = (await client.post("/stop")).json()
        assert stopped["moving"] is False and 0 <= stopped["position"] < 50
        assert (await client.get("/position")).json()["value"] == stopped["position"]
        assert (await client.get("/attributes")).json()["moving"] is False

    simulator_http(scenario)


def test_a_put_of_the_position_still_sets_it_at_once() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        await client.post("/move", json={"to": 90, "speed": 1})
        assert (await client.put("/position", json={"value": 42.5})).json() == {"value": 42.5}
        assert (await client.get("/position")).json() == {"value": 42.5}
        assert (await client.get("/moving")).json() == {"value": False}

    simulator_http(scenario)


def test_a_test_can_hold_a_sensor_at_a_value_or_make_its_reads_fail() -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.put("/sim/temperature", json={"value": 41.5})).json() == {"value": 41.5, "fail": False}
        assert (await client.get("/temperature")).json() == {"value": 41.5}
        assert (await client.get("/attributes")).json()["temperature"] == 41.5
        await client.put("/sim/temperature", json={"value": None})
        assert 22 <= (await client.get("/temperature")).json()["value"] <= 23
        await client.put("/sim/force", json={"fail": True})
        failed = await client.get("/force")
        assert failed.status_code == 503 and "force" in failed.json()["error"]
        assert (await client.get("/attributes")).status_code == 503
        await client.put("/sim/force", json={"fail": False})
        assert (await client.get("/force")).status_code == 200
        assert (await client.put("/sim/position", json={"value": 1})).status_code == 404
        assert (await client.put("/sim/force", json={"value": "hot"})).status_code == 422
        assert (await client.put("/sim/force", content=b"[")).status_code == 400

    simulator_http(scenario)
