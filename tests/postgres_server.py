"""A throw-away PostgreSQL server for tests: initdb into a temporary folder, postgres on a free loopback port.

PostgreSQL refuses to run as root, and CI runs as root: the server then runs as
the `postgres` system user if there is one, else `nobody` (runuser), in a folder
made for it outside pytest's root-only tmp folders.  It listens on 127.0.0.1
only, with its unix socket in that folder; clients log in over TCP as `lab`
with a password (scram-sha-256), given to them in PGPASSWORD as libpq reads it.
The fixture never skips in CI (CI=true): missing binaries fail there.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port, wait_until

USER, PASSWORD, DATABASE = "lab", "test-only-secret", "lab"


def binaries() -> Path | None:
    """The folder of initdb, pg_ctl and postgres (Debian keeps them under /usr/lib/postgresql/<version>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    postgres = shutil.which("postgres")
    return Path(postgres).parent if postgres else None


class PostgresServer:
    """One server: `url` (without a password), `env` (PGPASSWORD), stop() and start() again."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin, self.folder, self.data = bin_dir, folder, folder / "data"
        self.port = free_port()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"
        self.env = {"PGPASSWORD": PASSWORD}
        self._runas: list[str] = []
        if os.geteuid() == 0:
            user = "postgres" if _has_user("postgres") else "nobody"
            self._runas = ["runuser", "-u", user, "--"]
            shutil.chown(folder, user)
        pwfile = folder / "pw"
        pwfile.write_text(PASSWORD)
        if self._runas:
            shutil.chown(pwfile, self._runas[2])
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._runas, *args], capture_output=True, text=True, timeout=120, cwd=self.folder)
        if done.returncode:
            raise AssertionError(f"{args[0]} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "start", "-w", "-t", "60")
        wait_until(self.ready, 30, "postgres accepting connections")
        if not self._created:
            self.sql(f"CREATE DATABASE {DATABASE}", database="postgres")
            self._created = True

    _created = False

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "stop", "-m", mode, "-w", "-t", "60")

    def ready(self) -> bool:
        return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q"], timeout=10).returncode == 0

    def sql(self, statement: str, *params: object, database: str = DATABASE) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname=database,
                             autocommit=True) as db:
            cursor = db.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A running server for the module's tests, stopped and removed afterwards."""
    bin_dir = binaries()
    if bin_dir is None or shutil.which("pg_isready") is None:
        reason = "PostgreSQL server binaries not found (Debian: apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run these tests (.ci/run installs them)")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="labbridge-pg-"))  # pytest's are root's alone: postgres could not enter
    folder.chmod(0o755)
    server = PostgresServer(bin_dir, folder)
    server.start()
    try:
        yield server
    finally:
        if server.ready():
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
