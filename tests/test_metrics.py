"""`GET /metrics` through both processes: it parses as Prometheus text, follows the lab, and keeps labels bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import Process, running_stack, wait_until, write_config

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.2}},
           "setpoint": {"class": "setpoint.Setpoint"}}
TOKEN = "scraper-token-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Process]]:
    tmp = tmp_path_factory.mktemp("metrics")
    config = write_config(tmp / "config.yml", MODULES, history={"path": "data/h.sqlite3", "interval": 0.2})
    with running_stack(config, tmp) as (backend, _, url):
        yield url, backend


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    response = httpx.get(f"{url}/metrics", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_polled_attributes_are_gauges_with_module_attribute_and_unit(lab: tuple[str, Process]) -> None:
    url, _ = lab
    wait_until(lambda: value(scrape(url), "bridge_attribute_value", module="module_a", attribute="force", unit="N")
               is not None, 5, "the polled force exported")
    samples = scrape(url)
    assert 0 < value(samples, "bridge_attribute_value", module="module_a", attribute="force", unit="N") < 100  # type: ignore[operator]
    assert value(samples, "bridge_attribute_updated_timestamp_seconds", module="module_a", attribute="force")
    assert value(samples, "bridge_backend_up") == 1 and 0 < value(samples, "bridge_backend_rtt_seconds") < 1  # type: ignore[operator]
    assert value(samples, "bridge_module_queue_length", module="setpoint") == 0
    assert value(samples, "bridge_module_up", module="module_a") == 1
    assert value(samples, "bridge_module_last_contact_timestamp_seconds", module="module_a")
    assert value(samples, "bridge_history_recording") == 1


def test_metrics_change_after_a_put(lab: tuple[str, Process]) -> None:
    url, _ = lab
    put = {"method": "PUT", "route": "/{module}/{attribute}", "module": "setpoint", "status": "200"}
    before = value(scrape(url), "bridge_http_request_duration_seconds_count", **put) or 0
    assert httpx.put(f"{url}/setpoint/value", json={"value": 7.25}).status_code == 200
    wait_until(lambda: value(scrape(url), "bridge_attribute_value", module="setpoint", attribute="value", unit="") == 7.25,
               5, "the written value exported")
    after = scrape(url)
    assert value(after, "bridge_http_request_duration_seconds_count", **put) == before + 1
    assert value(after, "bridge_http_request_duration_seconds_bucket", **put, le="+Inf") == before + 1
    assert value(after, "bridge_module_last_contact_timestamp_seconds", module="setpoint")


def test_request_labels_use_route_templates_and_known_modules_only(lab: tuple[str, Process]) -> None:
    url, _ = lab
    for i in range(5):
        httpx.get(f"{url}/probe_{i}/x")
        httpx.put(f"{url}/probe_{i}/x", content=b"not json")
        httpx.get(f"{url}/nothing/here/at/all_{i}")
    text = httpx.get(f"{url}/metrics").text
    assert "probe_" not in text and "all_" not in text
    samples = scrape(url)
    assert value(samples, "bridge_http_request_duration_seconds_count", method="GET", route="/{module}/{attribute}",
                 module="(unknown)", status="404") == 5
    assert value(samples, "bridge_http_request_duration_seconds_count", method="GET", route="(other)", module="",
                 status="404") == 5


def test_backend_down_is_a_metric_not_a_failed_scrape(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"connect_timeout": 0.3})
    with running_stack(config, tmp_path) as (backend, _, url):
        assert value(scrape(url), "bridge_backend_up") == 1
        assert value(scrape(url), "bridge_history_recording") is None  # history is off here
        backend.stop()
        down = scrape(url)
        assert value(down, "bridge_backend_up") == 0 and value(down, "bridge_module_up", module="module_a") is None


def test_with_auth_reads_metrics_and_history_need_a_token(tmp_path: Path) -> None:
    (tmp_path / "tokens.yml").write_text(yaml.safe_dump({"prometheus": TOKEN}))
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"token_file": "tokens.yml", "auth_reads": True},
                          history={"path": "data/h.sqlite3"})
    with running_stack(config, tmp_path) as (_, _, url):
        for path in ("/metrics", "/module_a/force/history", "/module_a/force/history?format=csv"):
            refused = httpx.get(url + path)
            assert refused.status_code == 401 and refused.json()["error"] == "not_authenticated", path
            assert httpx.get(url + path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 403
            assert httpx.get(url + path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
        assert value(scrape(url, {"Authorization": f"Bearer {TOKEN}"}), "bridge_backend_up") == 1
