"""Archive policies (history.archive, experiment/archive_policy.py) through both processes, into SQLite and into
PostgreSQL: a value is recorded when it moves beyond the deadband, or `every` seconds after the last one recorded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.postgres_server import PostgresServer, postgres  # noqa: F401 - the fixture
from tests.processes import running_stack, wait_until, write_config

MODULES: dict[str, dict[str, Any]] = {
    "module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.1}},
    "setpoint": {"class": "setpoint.Setpoint"}}
ARCHIVE = {"setpoint.value": {"deadband": 0.01}, "module_a.force": {"deadband": 1e9, "every": 1}}


def history_settings(store: str, request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, str]]:
    if store == "sqlite":
        return {"path": "data/history.sqlite3", "interval": 0.2, "archive": ARCHIVE}, {}
    server: PostgresServer = request.getfixturevalue("postgres")
    return {"url": server.url, "source": f"archive-{time.time()}", "interval": 0.2, "archive": ARCHIVE}, server.env


def points(url: str, path: str, **params: Any) -> list[list[Any]]:
    response = httpx.get(f"{url}/{path}/history", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["points"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_only_values_beyond_the_deadband_or_after_every_seconds_are_recorded(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings, env = history_settings(store, request)
    config = write_config(tmp_path / "config.yml", MODULES, history=settings)
    with running_stack(config, tmp_path, backend_env=env) as (_, _, url):
        since = time.time()
        written = [1.0, 1.005, 1.02, 1.025, 1.011, 1.05, 0.9, 0.905]
        for value in written:
            assert httpx.put(f"{url}/setpoint/value", json={"value": value}).status_code == 200
        # Each is compared with the last one recorded, not the last one written: 1.011 is within 0.01 of 1.02.
        expected = [1.0, 1.02, 1.05, 0.9]
        wait_until(lambda: [v for _, v in points(url, "setpoint/value", since=since)] == expected, 10,
                   f"{expected} recorded")
        # force is polled ten times a second; its deadband is never passed, so it is recorded once a second.
        wait_until(lambda: len(points(url, "module_a/force", since=since)) >= 4, 10, "four seconds of force")
        times = [t for t, _ in points(url, "module_a/force", since=since)]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(1.0 <= gap < 1.5 for gap in gaps), gaps
        assert httpx.get(f"{url}/module_a/force").status_code == 200  # a read answers whatever is recorded
