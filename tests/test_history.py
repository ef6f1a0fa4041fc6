"""Recorded values through both processes: what is recorded, reading it back (JSON, CSV, buckets), retention,
and recording that survives a locked database, a read-only folder and a full disk without failing a request."""

from __future__ import annotations

import csv
import io
import os
import re
import resource
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.processes import Process, running_stack, start_backend, start_frontend, wait_until, write_config

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.2}},
           "setpoint": {"class": "setpoint.Setpoint"}}
HISTORY = {"path": "data/history.sqlite3", "interval": 0.2}


@dataclass
class Recording:
    url: str
    db: Path
    backend: Process
    frontend: Process


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    tmp = tmp_path_factory.mktemp("history")
    config = write_config(tmp / "config.yml", MODULES, history=HISTORY)
    with running_stack(config, tmp) as (backend, frontend, url):
        db = tmp / "data" / "history.sqlite3"
        wait_until(db.exists, 5, "the history database created")
        yield Recording(url, db, backend, frontend)


def history(url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/{path}/history", params=params, timeout=30)


def points(url: str, path: str, **params: Any) -> list[list[Any]]:
    response = history(url, path, **params)
    assert response.status_code == 200, response.text
    return response.json()["points"]  # type: ignore[no-any-return]


def insert(db_path: Path, module: str, attribute: str, rows: Iterable[tuple[float, Any]]) -> None:
    """Put rows straight into the database, as if recorded long ago (the backend keeps running)."""
    with closing(sqlite3.connect(db_path, timeout=10)) as db, db:
        db.execute("INSERT OR IGNORE INTO channels (module, attribute) VALUES (?, ?)", (module, attribute))
        (channel,) = db.execute("SELECT id FROM channels WHERE module = ? AND attribute = ?", (module, attribute)).fetchone()
        db.executemany("INSERT INTO samples (channel, t, value) VALUES (?, ?, ?)", ((channel, t, v) for t, v in rows))


def recorded_status(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health").json()["history"]  # type: ignore[no-any-return]


def test_polled_values_are_recorded_with_their_time_and_unit(recording: Recording) -> None:
    started = time.time()
    wait_until(lambda: len(points(recording.url, "module_a/force", since=started)) >= 5, 10, "five polls recorded")
    body = history(recording.url, "module_a/force", since=started).json()
    assert body["module"] == "module_a" and body["attribute"] == "force" and body["unit"] == "N"
    times = [t for t, _ in body["points"]]
    assert times == sorted(times) and started <= times[0] and times[-1] <= time.time()
    # One poll every 0.2 s (each due 0.2 s after the last one started, so interlocks' `within:` holds), each read
    # stamped when it answered: no read twice, and on average one per interval.
    assert all(b - a > 0.05 for a, b in zip(times, times[1:])), times
    assert (times[-1] - times[0]) / (len(times) - 1) >= 0.15, times
    assert all(isinstance(v, float) and 0 < v < 100 for _, v in body["points"])


def test_a_written_value_is_recorded_at_the_time_it_was_written(recording: Recording) -> None:
    before = time.time()
    assert httpx.put(f"{recording.url}/setpoint/value", json={"value": 12.5}).status_code == 200
    after = time.time()
    wait_until(lambda: [12.5] == [v for _, v in points(recording.url, "setpoint/value", since=before)], 5, "the write")
    ((t, _),) = points(recording.url, "setpoint/value", since=before)
    assert before <= t <= after
    httpx.put(f"{recording.url}/setpoint/label", json={"value": "run 7"})  # text is recorded as text
    wait_until(lambda: points(recording.url, "setpoint/label", since=before) != [], 5, "the label")
    assert points(recording.url, "setpoint/label", since=before)[-1][1] == "run 7"


def test_a_range_that_ends_before_it_starts_holds_no_points(recording: Recording) -> None:
    start = time.time() - 5 * 86400
    insert(recording.db, "setpoint", "value", [(start + i, float(i)) for i in range(3)])
    for params in ({}, {"every": 1.0}, {"format": "csv"}):
        answer = history(recording.url, "setpoint/value", since=start + 2, until=start, **params)
        assert answer.status_code == 200, answer.text
        assert answer.text.count("\n") == 1 if params.get("format") else answer.json()["points"] == []


def test_json_holds_the_newest_points_and_csv_every_point_of_the_range(recording: Recording) -> None:
    start = time.time() - 3 * 86400  # a range nothing else writes into
    insert(recording.db, "setpoint", "value", [(start + i, float(i)) for i in range(30)])
    assert [v for _, v in points(recording.url, "setpoint/value", since=start, until=start + 29, limit=3)] == [27, 28, 29]
    csv = history(recording.url, "setpoint/value", since=start, until=start + 29, format="csv")
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="setpoint-value.csv"' in csv.headers["content-disposition"]
    lines = csv.text.splitlines()
    assert lines[0] == "time,unix_time,value" and len(lines) == 31
    iso, unix, value = lines[1].split(",")
    assert float(unix) == start and float(value) == 0.0 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso)
    as_accept = httpx.get(f"{recording.url}/setpoint/value/history", params={"since": start, "until": start + 29},
                          headers={"Accept": "text/csv"})
    assert as_accept.text == csv.text
    newest = history(recording.url, "setpoint/value", since=start, until=start + 29, limit=2, format="csv")
    assert [line.split(",")[2] for line in newest.text.splitlines()[1:]] == ["28.0", "29.0"]
    unit = history(recording.url, "module_a/force", limit=1, format="csv").text.splitlines()[0]
    assert unit == "time,unix_time,value (N)"


def test_every_gives_mean_min_and_max_per_bucket(recording: Recording) -> None:
    start = (time.time() - 4 * 86400) // 10 * 10  # on a bucket boundary
    insert(recording.db, "setpoint", "value", [(start + i, float(i)) for i in range(20)])
    body = history(recording.url, "setpoint/value", since=start, until=start + 19.5, every=10).json()
    assert body["every"] == 10 and body["points"] == [[start, 4.5, 0, 9], [start + 10, 14.5, 10, 19]]
    csv = history(recording.url, "setpoint/value", since=start, until=start + 19.5, every=10, format="csv").text
    assert csv.splitlines()[0] == "time,unix_time,mean,min,max" and csv.splitlines()[2].endswith(",14.5,10.0,19.0")


def frontend_rss_mib(process: Process) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{process.proc.pid}/status").read_text())
    assert match
    return int(match.group(1)) / 1024


def test_csv_of_300000_points_streams_with_flat_memory(recording: Recording) -> None:
    start = time.time() - 10 * 86400
    count = 300_000
    insert(recording.db, "module_a", "position", [(start + i * 0.001, i * 1e-3) for i in range(count)])
    query = {"since": start, "until": start + count, "format": "csv"}
    newest = history(recording.url, "module_a/position", **{**query, "limit": 20_000}).text.splitlines()  # 4 pages
    assert len(newest) == 20_001 and float(newest[1].split(",")[2]) == (count - 20_000) * 1e-3
    baseline = peak = frontend_rss_mib(recording.frontend)
    rows = 0
    with httpx.stream("GET", f"{recording.url}/module_a/position/history", params=query, timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            rows += chunk.count(b"\n")
            peak = max(peak, frontend_rss_mib(recording.frontend))
            time.sleep(0.0005)  # a client slower than the frontend: pages must wait for it, not pile up
    assert rows == count + 1
    # The CSV is about 14 MB and the same points as Python objects over 40 MB; one page at a time stays small.
    assert peak - baseline < 10, f"frontend grew from {baseline:.1f} to {peak:.1f} MiB while streaming"


def test_retention_deletes_values_older_than_max_age(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, history={**HISTORY, "max_age_days": 1})
    with running_stack(config, tmp_path) as (_, _, url):
        db = tmp_path / "data" / "history.sqlite3"
        wait_until(db.exists, 5, "the history database created")
        now = time.time()
        insert(db, "setpoint", "value", [(now - 3 * 86400, 1.0), (now - 86400 - 60, 2.0), (now - 3600, 3.0)])
        wait_until(lambda: [v for _, v in points(url, "setpoint/value", since=0)] == [3.0], 5, "old values deleted")


def test_retention_keeps_the_database_under_max_size_by_deleting_the_oldest(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, history={**HISTORY, "max_size_mb": 1})
    with running_stack(config, tmp_path) as (_, _, url):
        db = tmp_path / "data" / "history.sqlite3"
        wait_until(db.exists, 5, "the history database created")
        start = time.time() - 86400
        insert(db, "setpoint", "value", [(start + i, float(i)) for i in range(100_000)])  # about 3.5 MB
        oldest = lambda: points(url, "setpoint/value", since=0, limit=100_000)[0][1]  # noqa: E731
        wait_until(lambda: oldest() > 50_000, 10, "the oldest deleted")
        assert points(url, "setpoint/value", since=0, until=start + 99_999, limit=1)[-1][1] == 99_999.0  # newest kept
        wait_until(lambda: db.stat().st_size <= 1.1e6, 10, "the file shrunk")


def test_recording_survives_a_locked_database_without_a_failed_request(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, history=HISTORY)
    with running_stack(config, tmp_path) as (backend, _, url):
        db = tmp_path / "data" / "history.sqlite3"
        wait_until(db.exists, 5, "the history database created")
        since = time.time()
        with closing(sqlite3.connect(db, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
            for value in (1.0, 2.0, 3.0):
                assert httpx.put(f"{url}/setpoint/value", json={"value": value}).status_code == 200
            wait_until(lambda: not recorded_status(url)["recording"], 5, "not recording reported")
            health = httpx.get(f"{url}/health").json()
            assert health["status"] == "degraded" and "locked" in health["history"]["error"]
            assert httpx.put(f"{url}/setpoint/value", json={"value": 4.0}).status_code == 200
            assert httpx.get(f"{url}/module_a/position").status_code == 200
            locker.execute("ROLLBACK")
        wait_until(lambda: recorded_status(url)["recording"], 5, "recording resumed")
        wait_until(lambda: [v for _, v in points(url, "setpoint/value", since=since)] == [1.0, 2.0, 3.0, 4.0], 5,
                   "the values written while locked recorded")
        assert backend.output.count("not recording") == 1 and "recording again" in backend.output


def test_recording_survives_a_read_only_folder_and_resumes_when_it_is_writable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o500)
    config = write_config(tmp_path / "config.yml", MODULES, history=HISTORY)
    # root writes anywhere; without these capabilities it meets the folder's permissions like anyone else
    caps = "-dac_override,-dac_read_search,-fowner"
    wrapper = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"] if os.geteuid() == 0 else []
    backend = start_backend(config, tmp_path / "backend.log", wrapper=wrapper)
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        since = time.time()
        assert httpx.put(f"{url}/setpoint/value", json={"value": 5.0}).status_code == 200
        wait_until(lambda: recorded_status(url)["error"] is not None, 5, "not recording reported")
        assert recorded_status(url)["recording"] is False and httpx.get(f"{url}/health").json()["status"] == "degraded"
        assert history(url, "setpoint/value").json() == {"module": "setpoint", "attribute": "value", "unit": None,
                                                         "points": []}
        data.chmod(0o700)
        wait_until(lambda: recorded_status(url)["recording"], 5, "recording resumed")
        wait_until(lambda: [v for _, v in points(url, "setpoint/value", since=since)] == [5.0], 5, "the value recorded")
        assert backend.output.count("not recording") == 1
    finally:
        frontend.stop()
        backend.stop()


def test_recording_survives_a_full_disk(tmp_path: Path) -> None:
    # A file size limit on the experiment process stands in for a full disk: every write past it fails.
    config = write_config(tmp_path / "config.yml", MODULES, history=HISTORY)
    with running_stack(config, tmp_path) as (backend, _, url):
        wait_until(lambda: recorded_status(url)["last_write"] is not None, 5, "a first batch written")
        pid, unlimited = backend.proc.pid, resource.prlimit(backend.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (64 * 1024, unlimited[1]))
        since = time.time()
        values = [float(i) for i in range(200)]
        for value in values:  # batches of values until the files reach the limit
            assert httpx.put(f"{url}/setpoint/value", json={"value": value}).status_code == 200
            if value % 20 == 0:
                time.sleep(HISTORY["interval"])
        wait_until(lambda: not recorded_status(url)["recording"], 10, "not recording reported")
        assert httpx.put(f"{url}/setpoint/value", json={"value": 200.0}).status_code == 200
        resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)  # space freed
        wait_until(lambda: recorded_status(url)["recording"], 5, "recording resumed")
        wait_until(lambda: [v for _, v in points(url, "setpoint/value", since=since, limit=1000)] == [*values, 200.0],
                   5, "every value recorded in the end")


def test_history_off_answers_404_and_health_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    with running_stack(config, tmp_path) as (_, _, url):
        off = history(url, "setpoint/value")
        assert off.status_code == 404 and off.json()["error"] == "history_off"
        assert "history:" in off.json()["message"]
        health = httpx.get(f"{url}/health").json()
        assert health["history"] == {"enabled": False, "recording": False} and health["status"] == "ok"


@pytest.mark.parametrize(("params", "named"), [
    ({"since": "yesterday"}, "since"), ({"until": "2025-13-45"}, "until"), ({"since": "nan"}, "since"),
    ({"limit": "0"}, "limit"), ({"limit": "100001"}, "limit"),
    ({"every": "-1"}, "every"), ({"every": "inf"}, "every"), ({"format": "xml"}, "format"), ({"since": "1" * 41}, "since"),
])
def test_bad_parameters_get_422_naming_them(recording: Recording, params: dict[str, str], named: str) -> None:
    response = history(recording.url, "module_a/force", **params)
    assert response.status_code == 422 and response.json()["error"] == "malformed_request"
    assert named in response.json()["message"]


def test_times_may_be_iso_8601_or_unix_seconds(recording: Recording) -> None:
    start = 1_700_000_000.0  # 2023-11-14T22:13:20Z, older than retention: nothing there
    iso = points(recording.url, "module_a/force", since="2023-11-14T22:13:20Z", until="2023-11-14T23:00:00+00:00")
    assert iso == points(recording.url, "module_a/force", since=start, until=start + 2800) == []
    recent = points(recording.url, "module_a/force", since=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60)))
    assert recent and recent[0][0] >= time.time() - 61  # a time without a zone is the frontend's local time


def test_unknown_names_get_404_and_an_array_has_no_points(recording: Recording) -> None:
    assert history(recording.url, "module_b/force").json()["error"] == "unknown_module"
    unknown = history(recording.url, "module_a/height")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_attribute"
    assert history(recording.url, "module_a/height", format="csv").json()["error"] == "unknown_attribute"
    assert points(recording.url, "module_a/trace") == []  # arrays are read on demand, never recorded


def test_csv_text_that_a_spreadsheet_would_run_is_kept_text(recording: Recording) -> None:
    start = time.time() - 6 * 86400
    labels = ['=HYPERLINK("http://evil.example.com","click")', "+1+2", "-3", "@SUM(A1)", "\tx", "\rx", "run 7", "a=b"]
    insert(recording.db, "setpoint", "label", [(start + i, orjson.dumps(label).decode()) for i, label in enumerate(labels)])
    insert(recording.db, "setpoint", "value", [(start, -5.0), (start + 1, 2.5)])
    text = history(recording.url, "setpoint/label", since=start, until=start + 10, format="csv").text
    cells = [row[2] for row in csv.reader(io.StringIO(text, newline=""))][1:]
    assert cells == ["'" + label for label in labels[:6]] + ["run 7", "a=b"]
    values = history(recording.url, "setpoint/value", since=start, until=start + 1, format="csv").text.splitlines()
    assert [line.split(",")[2] for line in values[1:]] == ["-5.0", "2.5"]  # numbers stay numbers


def test_csv_text_read_with_semicolons_as_separator_starts_no_formula_either(recording: Recording) -> None:
    # Spreadsheets where the list separator is ';' (most of Europe) split every line on ';' alone.
    start = time.time() - 8 * 86400
    labels = [";=1+1", "a;=1+1;b", 'x;"=2+2";', "p,@SUM(A1)", "q\n+3", "1;2", 'say "hi"', "run 7", "x=-1; y=2",
              {"a": ";-1"}]
    insert(recording.db, "setpoint", "label", [(start + i, orjson.dumps(label).decode()) for i, label in enumerate(labels)])
    text = history(recording.url, "setpoint/label", since=start, until=start + 10, format="csv").text
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [row[2] for row in rows] == [
        ";'=1+1", "a;'=1+1;b", "x;\"'=2+2\";", "p,@SUM(A1)", "q\n'+3", "1;2", 'say "hi"', "run 7", "x=-1; y=2",
        '{"a":";\'-1"}']  # a ',' splits no cell: such a field is quoted
    for delimiter in (";", ","):
        cells = [cell for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) for cell in row]
        assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@")) and not re.fullmatch(r"-[\d.]+", cell)]
    # A field holding a separator, a quote or a line break is quoted (RFC 4180), whichever separator is read.
    assert text.splitlines()[2].endswith(',"a;\'=1+1;b"')


def test_times_at_the_ends_of_iso_8601_are_read(recording: Recording) -> None:
    start = time.time() - 7 * 86400
    insert(recording.db, "setpoint", "value", [(start, 1.0)])
    for since, until in (("0001-01-01T00:00:00", start + 1), ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59")):
        everything = points(recording.url, "setpoint/value", since=since, until=until, limit=100_000)
        assert [start, 1.0] in everything


def test_the_schema_has_a_history_path_for_each_recorded_attribute_and_none_for_an_array(recording: Recording) -> None:
    paths = httpx.get(f"{recording.url}/openapi.json").json()["paths"]
    assert "/module_a/force/history" in paths and "/setpoint/label/history" in paths
    assert "/module_a/trace/history" not in paths  # an NDArray: read on demand, never recorded
