"""A real LabThings-FastAPI server, run by the tests as its own process on a free loopback port.

It runs from its own environment (labbridge.tools.setup_env.labthings_python, made on
first use: labthings-fastapi pins other FastAPI and pydantic versions than the bridge)
and serves the Things of tests/labthings_things.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labbridge.tools.setup_env import labthings_python
from tests.processes import ROOT, Process, free_port, http_answers, wait_until

SERVE = "from labthings_fastapi.server.cli import serve_from_cli; serve_from_cli()"


@contextmanager
def labthings_server(things: dict[str, str], logs: Path) -> Iterator[tuple[Process, int]]:
    """Serve `things` (name -> "tests.labthings_things:Class") on a free port: (process, port)."""
    port = free_port()
    config = {"things": things, "settings_folder": str(logs / "labthings-settings")}
    proc = Process([labthings_python(), "-c", SERVE, "--json", json.dumps(config), "--host", "127.0.0.1",
                    "--port", str(port)], logs / "labthings.log", env={"PYTHONPATH": str(ROOT)})
    try:
        first = next(iter(things))
        wait_until(lambda: not proc.alive() or http_answers(f"http://127.0.0.1:{port}/{first}/"), 60,
                   "LabThings server ready")
        assert proc.alive(), f"LabThings server exited:\n{proc.output}"
        yield proc, port
    finally:
        proc.stop()
