"""A write the bridge cannot record does not happen: with the audit log on a full disk, actions and PUTs are
refused with 503 audit_unavailable before anything reaches the instrument, and leave nothing behind.

The disk is a real 16 KB tmpfs, mounted for the test (root only) and unmounted after it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import running_stack, wait_until, write_config

MODULES: dict[str, dict[str, Any]] = {"module_a": {"class": "module_a.ModuleA", "simulate": True},
           "setpoint": {"class": "setpoint.Setpoint", "port": None}}


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KB tmpfs at tmp_path/disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte; the filler file, to delete to free it again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"x" * 512)
        except OSError:
            pass
    return filler


def test_with_the_audit_log_on_a_full_disk_writes_are_refused_with_503_and_leave_nothing_behind(
        tmp_path: Path, small_disk: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, audit_log=str(small_disk / "audit.jsonl"))
    with running_stack(config, tmp_path) as (_, _, url), httpx.Client(base_url=url, timeout=10) as client:
        filler = fill(small_disk)
        # The audit log's last page still has room for a few lines: the writes it takes go through.
        for value in range(1, 100):
            put = client.put("/setpoint/value", json={"value": value})
            if put.status_code != 200:
                break
        assert put.status_code == 503 and put.json()["error"] == "audit_unavailable", put.text
        assert client.get("/setpoint/value").json()["value"] == value - 1  # the refused PUT never reached it

        move = client.post("/module_a/move", json={"to": 80, "speed": 10})
        assert move.status_code == 503, move.text
        assert move.json()["error"] == "audit_unavailable" and "nothing reached the instrument" in move.json()["message"]
        assert move.headers["retry-after"] == "5"
        assert client.get("/invocations").json()["invocations"] == []  # no ghost, pending forever
        assert client.put("/setpoint/value", json={"value": 0}).status_code == 503
        assert client.get("/setpoint/value").json()["value"] == value - 1
        # refusals that cannot be written are logged, and the refusal stands with its own code
        assert client.put("/setpoint/value", json={"value": "high"}).json()["error"] == "invalid_value"
        assert client.put("/module_a/position", json={"value": 10}).status_code == 503

        filler.unlink()  # space again: position was never claimed, so a move starts and a PUT goes through
        move = client.post("/module_a/move", json={"to": 80, "speed": 10})
        assert move.status_code == 201, move.text
        assert client.delete(move.json()["href"]).status_code == 202
        wait_until(lambda: client.get(move.json()["href"]).json()["status"] == "cancelled", 10, "cancelled")
        assert client.put("/setpoint/value", json={"value": 0}).status_code == 200
    lines = (small_disk / "audit.jsonl").read_bytes().splitlines()
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines)  # whole lines, none torn
