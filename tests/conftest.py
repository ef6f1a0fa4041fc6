"""Shared fixtures: a whole running stack (backend with simulators + uvicorn frontend)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import Process, running_stack, write_config

# Modules of the shared integration stack; each is there to show one behaviour.
STACK_MODULES = {
    "module_a": {"class": "module_a.ModuleA", "simulate": True},
    "wide": {"class": "tests.fixture_modules.WideActuator", "simulate": True},
    "confused": {"class": "tests.fixture_modules.ConfusedActuator", "simulate": True},
    "unreachable": {"class": "module_a.ModuleA", "simulate": False},
    "slow": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 1.0},
             "timeout": 0.3, "connect_timeout": 0.3},
    "busy": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 0.5}, "queue_limit": 1},
}


@dataclass
class Stack:
    config: Path
    backend: Process
    frontend: Process
    url: str

    def logs(self) -> str:
        return self.backend.output + self.frontend.output


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    config = write_config(tmp / "config.yml", STACK_MODULES,
                          frontend={"request_timeout": 3.0, "max_body_bytes": 1024})
    with running_stack(config, tmp) as (backend, frontend, url):
        yield Stack(config, backend, frontend, url)


def pytest_report_header() -> list[str]:
    """Say before any test runs when the browser tests cannot pass (they fail, one line each, rather than skip)."""
    from tests.browser import missing_chromium

    problem = missing_chromium()
    return [f"WARNING: {problem}"] if problem else []
