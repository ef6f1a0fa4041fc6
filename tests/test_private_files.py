"""What the two processes write is their OS user's alone: another local user cannot read the history, the
audit log or the journal of invocations, even when the folder above them is open to everyone."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.processes import running_stack, start_backend, wait_until, write_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")

TOKEN = "0123456789abcdef0123456789abcdef"
# Run as `nobody`: try to read each file and list each folder.
STRANGER = """
import json, os, sys
os.setgid(65534)
os.setuid(65534)
result = {}
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as file:
                file.read(1)
        result[path] = "read"
    except OSError as exc:
        result[path] = type(exc).__name__
print(json.dumps(result))
"""


@pytest.fixture()
def open_folder() -> Iterator[Path]:
    """A folder every user may enter (as a lab's shared folder often is), under the usual umask (022)."""
    folder = Path(tempfile.mkdtemp(prefix="labbridge-private-", dir="/tmp"))
    folder.chmod(0o755)
    old_umask = os.umask(0o022)  # the processes inherit it: it would leave new files readable by everyone
    try:
        yield folder
    finally:
        os.umask(old_umask)
        shutil.rmtree(folder, ignore_errors=True)


def written_files(folder: Path) -> list[Path]:
    data, logs = folder / "data", folder / "logs"
    return [data, data / "history.sqlite3", data / "history.sqlite3-wal", data / "history.sqlite3-shm",
            data / "invocations.jsonl", logs, logs / "audit.jsonl"]


def test_what_the_processes_write_only_their_user_can_read(open_folder: Path) -> None:
    (open_folder / "tokens.yml").write_text(yaml.safe_dump({"alice": TOKEN}))
    (open_folder / "tokens.yml").chmod(0o644)  # left readable: the frontend says so at start
    config = write_config(open_folder / "config.yml", {"setpoint": {"class": "setpoint.Setpoint", "port": None}},
                          frontend={"token_file": "tokens.yml"}, audit_log="logs/audit.jsonl", data_dir="data",
                          history={"path": "data/history.sqlite3", "interval": 0.2})
    alice = {"Authorization": f"Bearer {TOKEN}"}
    with running_stack(config, open_folder) as (backend, frontend, url):
        assert httpx.put(f"{url}/setpoint/label", json={"value": "sample 7"}, headers=alice).status_code == 200
        ramp = httpx.post(f"{url}/setpoint/ramp", json={"to": 1, "rate": 1000}, headers=alice)
        assert ramp.status_code == 201
        wait_until(lambda: httpx.get(f"{url}/setpoint/label/history").json()["points"] != [], 10, "history written")
        assert f"{open_folder / 'tokens.yml'} holds tokens that other users may read (mode 644)" in frontend.output
        backend.stop()  # and the journal, rewritten at each start, stays private too
        backend = start_backend(config, open_folder / "backend2.log")
        try:
            wait_until(lambda: all(path.exists() for path in written_files(open_folder)), 10, "SQLite's files open")
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written_files(open_folder)}
            paths = [str(path) for path in written_files(open_folder)]
            seen = json.loads(subprocess.run([sys.executable, "-c", STRANGER, *paths], cwd="/", capture_output=True,
                                             text=True, check=True).stdout) if os.geteuid() == 0 else {}
        finally:
            backend.stop()
    assert modes == {"data": 0o700, "history.sqlite3": 0o600, "history.sqlite3-wal": 0o600,
                     "history.sqlite3-shm": 0o600, "invocations.jsonl": 0o600, "logs": 0o700, "audit.jsonl": 0o600}
    if os.geteuid() == 0:  # run as root (as here), a child becomes `nobody`: it really cannot read them
        assert seen == {path: "PermissionError" for path in paths}
