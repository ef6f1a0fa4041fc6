"""History recorded into a real PostgreSQL server (started by the tests, tests/postgres_server.py) through both
processes: read back with GET .../history, several experiment processes in one database, a server that goes
away mid-recording, and the password rule."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.postgres_server import PASSWORD, PostgresServer, postgres  # noqa: F401 - the fixture
from tests.processes import ROOT, running_stack, start_backend, start_frontend, wait_until, write_config

MODULES: dict[str, dict[str, Any]] = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.2}},
           "setpoint": {"class": "setpoint.Setpoint"}}


def history(server: PostgresServer, source: str, **more: Any) -> dict[str, Any]:
    return {"url": server.url, "source": source, "interval": 0.2, **more}


def points(url: str, path: str, **params: Any) -> list[list[Any]]:
    response = httpx.get(f"{url}/{path}/history", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["points"]  # type: ignore[no-any-return]


def put(url: str, path: str, value: Any) -> None:
    response = httpx.put(f"{url}/{path}", json={"value": value}, timeout=10)
    assert response.status_code == 200, response.text


def status(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=10).json()["history"]  # type: ignore[no-any-return]


def test_values_are_recorded_into_postgres_and_read_back(postgres: PostgresServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, history=history(postgres, "bench"))
    with running_stack(config, tmp_path, backend_env=postgres.env) as (_, _, url):
        since = time.time()
        for value in (1.0, 2.5, -3, 4.0, 1e-300):
            put(url, "setpoint/value", value)
        put(url, "setpoint/label", "run 7")  # text is recorded as text
        wait_until(lambda: len(points(url, "setpoint/value", since=since)) == 5, 10, "five values recorded")
        assert [v for _, v in points(url, "setpoint/value", since=since)] == [1.0, 2.5, -3.0, 4.0, 1e-300]
        assert [v for _, v in points(url, "setpoint/label", since=since)] == ["run 7"]
        wait_until(lambda: len(points(url, "module_a/force", since=since)) >= 5, 10, "polled values recorded")
        body = httpx.get(f"{url}/module_a/force/history", params={"since": since}).json()
        assert body["unit"] == "N" and all(isinstance(v, float) for _, v in body["points"])
        times = [t for t, _ in body["points"]]
        assert times == sorted(times) and since - 1e-6 <= times[0] <= times[-1] <= time.time()
        buckets = points(url, "module_a/force", since=since, every=1)
        assert buckets and all(low <= mean <= high for _, mean, low, high in buckets)
        assert all(start % 1 == 0 for start, *_ in buckets)
        assert points(url, "setpoint/value", since=since, limit=2) == points(url, "setpoint/value", since=since)[-2:]
        csv = httpx.get(f"{url}/setpoint/value/history", params={"since": since, "format": "csv"}).text
        assert csv.count("\n") == 6  # a header and the five values, paged through
        assert status(url)["state"] == "recording"
    rows = postgres.sql("SELECT DISTINCT source, module, attribute FROM labbridge_history WHERE source = 'bench'")
    assert {("bench", "setpoint", "value"), ("bench", "setpoint", "label"), ("bench", "module_a", "force")} <= set(rows)
    series = postgres.sql(grafana_query(since, time.time()))
    assert series and all(metric.endswith("module_a.force") for _, _, metric in series)  # type: ignore[union-attr]


def grafana_query(since: float, until: float) -> str:
    """The manual's Grafana query with its macros expanded as Grafana's PostgreSQL data source does."""
    text = (ROOT / "docs" / "how-to" / "history-grafana.md").read_text(encoding="utf-8")
    query = re.search(r"```sql\n(SELECT \$__timeGroupAlias.*?)```", text, flags=re.S)
    assert query, "the Grafana query in docs/how-to/history-grafana.md"
    return (query.group(1)
            .replace("$__timeGroupAlias(t, $__interval)", 'floor(extract(epoch FROM t) / 1) * 1 AS "time"')
            .replace("$__timeFilter(t)", f"t BETWEEN to_timestamp({since}) AND to_timestamp({until})"))


def test_retention_is_done_by_the_one_process_that_has_it(postgres: PostgresServer, tmp_path: Path) -> None:
    old = time.time() - 40 * 86400
    postgres.sql("INSERT INTO labbridge_history (source, module, attribute, t, value) "
                 "VALUES ('elsewhere', 'm', 'a', to_timestamp(%s), 1)", old)
    remaining = lambda: postgres.sql("SELECT count(*) FROM labbridge_history WHERE source = 'elsewhere'")  # noqa: E731
    for source, retention in (("keeper", False), ("cleaner", True)):
        folder = tmp_path / source
        folder.mkdir()
        config = write_config(folder / "config.yml", {"setpoint": MODULES["setpoint"]},
                              history=history(postgres, source, **({"retention": True} if retention else {})))
        with running_stack(config, folder, backend_env=postgres.env) as (_, _, url):
            if not retention:  # the default with a url: several batches written, nothing deleted
                wait_until(lambda: status(url)["last_write"] is not None, 10, "a batch written")
                first = status(url)["last_write"]
                wait_until(lambda: status(url)["last_write"] > first + 0.5, 10, "more batches written")
                assert remaining() == [(1,)]
            else:
                wait_until(lambda: remaining() == [(0,)], 10, "the old value deleted, whoever recorded it")


def test_two_experiment_processes_share_one_database_each_tagged(postgres: PostgresServer, tmp_path: Path) -> None:
    stacks, urls = [], {}
    try:
        for source, value in (("cryostat", 10.0), ("magnet", 20.0)):
            folder = tmp_path / source
            folder.mkdir()
            config = write_config(folder / "config.yml", {"setpoint": MODULES["setpoint"]},
                                  history=history(postgres, source))
            backend = start_backend(config, folder / "backend.log", env=postgres.env)
            stacks.append(backend)
            frontend, urls[source] = start_frontend(config, folder / "frontend.log")
            stacks.append(frontend)
            put(urls[source], "setpoint/value", value)
        for source, value in (("cryostat", 10.0), ("magnet", 20.0)):
            wait_until(lambda: [v for _, v in points(urls[source], "setpoint/value")] == [value], 10, "recorded")
        rows = postgres.sql("SELECT source, value FROM labbridge_history WHERE module = 'setpoint' "
                            "AND source IN ('cryostat', 'magnet') ORDER BY source")
        assert rows == [("cryostat", 10.0), ("magnet", 20.0)]
    finally:
        for process in reversed(stacks):
            process.stop()


def test_a_server_that_goes_away_loses_no_value_and_writes_none_twice(postgres: PostgresServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, history=history(postgres, "outage"))
    with running_stack(config, tmp_path, backend_env=postgres.env) as (backend, _, url):
        since = time.time()
        put(url, "setpoint/value", 0.0)
        wait_until(lambda: len(points(url, "setpoint/value", since=since)) == 1, 10, "the first value recorded")
        postgres.stop()
        try:
            values = [float(i) for i in range(1, 51)]
            for value in values:
                put(url, "setpoint/value", value)  # the experiment goes on: every write answered
            wait_until(lambda: status(url)["state"] == "buffering", 10, "buffering reported")
            health = httpx.get(f"{url}/health").json()
            assert health["status"] == "degraded" and health["history"]["waiting"] >= 50
            assert health["history"]["dropped"] == 0
        finally:
            postgres.start()
        wait_until(lambda: status(url)["state"] == "recording", 15, "recording again")
        wait_until(lambda: status(url)["waiting"] == 0, 10, "the buffer written")
        assert [v for _, v in points(url, "setpoint/value", since=since, limit=1000)] == [0.0, *values]
        polled = [t for t, _ in points(url, "module_a/force", since=since, limit=10_000)]
        assert polled and max(b - a for a, b in zip(polled, polled[1:])) < 1.0  # no gap while the server was away
        assert "not recording" in backend.output and "recording again" in backend.output
    duplicates = postgres.sql("SELECT count(*) - count(DISTINCT (module, attribute, t)) FROM labbridge_history "
                              "WHERE source = 'outage'")
    assert duplicates == [(0,)]


def test_what_overflows_the_buffer_is_dropped_and_counted(postgres: PostgresServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"setpoint": MODULES["setpoint"]},
                          history=history(postgres, "small", buffer_mb=0.01))  # about 30 values of a number
    with running_stack(config, tmp_path, backend_env=postgres.env) as (_, _, url):
        since = time.time()
        wait_until(lambda: status(url)["last_write"] is not None, 10, "connected")
        postgres.stop()
        try:
            for value in range(100):
                put(url, "setpoint/value", float(value))
            wait_until(lambda: status(url)["state"] == "buffering", 10, "buffering reported")
            dropped = status(url)["dropped"]
            assert 50 <= dropped < 100
        finally:
            postgres.start()
        wait_until(lambda: status(url)["waiting"] == 0 and status(url)["state"] == "recording", 15, "written")
        kept = [v for _, v in points(url, "setpoint/value", since=since, limit=1000)]
        assert kept == [float(v) for v in range(100 - len(kept), 100)] and len(kept) + dropped == 100  # the newest


def test_a_batch_written_twice_is_recorded_once(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from labbridge.experiment.history_postgres import PostgresStore
    from labbridge.experiment.history_store import Sample

    store = PostgresStore(postgres.url, "twice", None)
    samples: list[Sample] = [("m", "a", "V", 1_700_000_000.123456, 1.5), ("m", "a", "V", 1_700_000_001.0, '"x"')]
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    store.open()
    store.write(samples)
    store.write(samples)  # as after a commit whose reply was lost
    store.close_writer()
    assert postgres.sql("SELECT count(*) FROM labbridge_history WHERE source = 'twice'") == [(2,)]


def start_refused(config: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "start_experiment.py", "--config", str(config)], cwd=ROOT, timeout=60,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert done.returncode == 2, done.stderr
    return done.stderr


def test_a_password_in_the_url_is_refused_at_start(tmp_path: Path) -> None:
    url = f"postgresql://lab:{PASSWORD}@127.0.0.1:5432/lab"
    message = start_refused(write_config(tmp_path / "config.yml", MODULES, history={"url": url}))
    assert "history.url" in message and "password" in message and "PGPASSWORD" in message
    assert PASSWORD not in message  # not even in the refusal


def test_a_password_file_others_may_read_is_refused_at_start(tmp_path: Path) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:lab:{PASSWORD}\n")
    passfile.chmod(0o644)
    config = write_config(tmp_path / "config.yml", MODULES,
                          history={"url": "postgresql://lab@127.0.0.1:5432/lab", "passfile": str(passfile)})
    message = start_refused(config)
    assert "other users may read" in message and "chmod 600" in message


@pytest.mark.parametrize("url", ["mysql://lab@host/db", "postgresql://lab@host:99999/db"])
def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path, url: str) -> None:
    message = start_refused(write_config(tmp_path / "config.yml", MODULES, history={"url": url}))
    assert "history.url" in message


def test_a_postgresql_url_without_psycopg_names_what_to_install(tmp_path: Path) -> None:
    hidden = tmp_path / "no_psycopg" / "psycopg"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('psycopg is not installed')\n")
    config = write_config(tmp_path / "config.yml", MODULES, history={"url": "postgresql://lab@127.0.0.1:5432/lab"})
    message = start_refused(config, {"PYTHONPATH": str(hidden.parent)})
    assert "psycopg" in message and "pip install 'psycopg[binary]" in message
