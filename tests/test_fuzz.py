"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis, bounded): never a 500, always JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.processes import running_stack, write_config


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = write_config(tmp / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"max_body_bytes": 4096})
    with running_stack(config, tmp) as (_, _, url):
        yield url


@pytest.fixture(scope="module")
def api_schema(live_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_answers_500_and_always_json(case: Any) -> None:
    response = case.call(timeout=10)
    assert response.status_code != 500, response.text
    content_type = response.headers["content-type"]  # schemathesis keeps a list per header
    assert (content_type[0] if isinstance(content_type, list) else content_type) == "application/json", response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message"} and body["error"] and body["message"]
