"""Where the two processes meet: a private local socket on one machine, TCP between two.

Without `experiment_socket.host` (the default), both processes run on one machine
as one OS user, and meet on ZeroMQ `ipc://` sockets in a folder only that user
may enter (mode 0700, like tmux's `/tmp/tmux-UID`): another local user cannot
connect, so nobody can skip the frontend's tokens and audit log by talking to
the experiment process directly.  The folder is `$TMPDIR` (else /tmp) +
`labbridge-<uid>`, or `experiment_socket.socket_dir`; the sockets are named
after `experiment_socket.port`, which keeps its meaning from TCP: both
processes of one experiment read the same port and meet, and two experiments
on one machine need two ports, as they always did.

With `host` set, or on Windows (no ipc:// there), the hop is TCP on host:port;
between machines only CurveZMQ keys (curve.py) keep strangers out.

libzmq removes a socket file left behind before it binds, so a second
experiment process on the same config would silently take the first one's
requests: `ExperimentLock` makes it fail with a clear message instead.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labbridge.core.config import ConfigError, SocketSettings, resolve

# sockaddr_un.sun_path holds 108 bytes on Linux, 104 on macOS, with the final NUL.
MAX_SOCKET_PATH = 103


@dataclass(frozen=True)
class Endpoints:
    """The ZeroMQ endpoints of one experiment: requests (ROUTER) and live values (XPUB)."""

    requests: str
    events: str
    folder: Path | None = None  # the private folder of ipc:// sockets; None over TCP

    @property
    def socket_files(self) -> list[Path]:
        """The files of ipc:// sockets (none over TCP)."""
        return [Path(e.removeprefix("ipc://")) for e in (self.requests, self.events) if e.startswith("ipc://")]


def bind_endpoints(settings: SocketSettings, config_file: Path) -> Endpoints:
    """Where the experiment process binds."""
    if settings.uses_tcp:
        _check_tcp(settings, config_file)
        return Endpoints(settings.bind_endpoint, settings.events_bind_endpoint)
    return _ipc_endpoints(settings, config_file)


def connect_endpoints(settings: SocketSettings, config_file: Path, key: str = "experiment_socket") -> Endpoints:
    """Where the frontend connects (`key`: where config.yml has these settings, for messages)."""
    if settings.uses_tcp:
        _check_tcp(settings, config_file, key)
        return Endpoints(settings.connect_endpoint, settings.events_connect_endpoint)
    return _ipc_endpoints(settings, config_file)


def _check_tcp(settings: SocketSettings, config_file: Path, key: str = "experiment_socket") -> None:
    """Beyond loopback, only CurveZMQ keeps other machines from sending requests."""
    if settings.curve is None and not is_loopback(settings.tcp_host):
        raise ConfigError(f"{config_file}: {key}.host: {settings.tcp_host} lets other machines send "
                          f"requests that skip tokens and the audit log; configure {key}.curve "
                          "(python -m labbridge keys keys/), or remove host to use the private local socket")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ipc_endpoints(settings: SocketSettings, config_file: Path) -> Endpoints:
    key = "experiment_socket.socket_dir"
    folder = resolve(config_file, settings.socket_dir) if settings.socket_dir else default_folder()
    private_folder(folder, f"{config_file}: {key}" if settings.socket_dir else "the bridge's socket folder")
    stem = folder / f"experiment-{settings.port}"
    requests, events = f"{stem}.sock", f"{stem}.events.sock"
    if len(events.encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"{config_file}: {key}: the socket path {events} is longer than the {MAX_SOCKET_PATH} "
                          "bytes the OS allows; choose a shorter folder")
    return Endpoints(f"ipc://{requests}", f"ipc://{events}", folder)


def default_folder() -> Path:
    """$TMPDIR (else /tmp) / labbridge-<uid>: one private folder per OS user."""
    return Path(tempfile.gettempdir()) / f"labbridge-{os.getuid()}"


def private_folder(folder: Path, what: str) -> None:
    """Create `folder` with mode 0700, or check that an existing one is ours and private.

    A folder made by someone else (another user squatting the name in /tmp) or
    opened up to others is refused rather than repaired: its sockets may be theirs.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot create {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{what}: {folder} is not a folder")
    if info.st_uid != os.getuid():
        raise ConfigError(f"{what}: {folder} belongs to user id {info.st_uid}, not to this user ({os.getuid()}); "
                          "another user may be listening there: remove it, or set experiment_socket.socket_dir")
    if info.st_mode & 0o077:
        raise ConfigError(f"{what}: {folder} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
                          f"run `chmod 700 {folder}`")


def restrict(endpoints: Endpoints) -> None:
    """Make freshly bound socket files readable and writable by their owner only (0600)."""
    for path in endpoints.socket_files:
        path.chmod(0o600)


class ExperimentLock:
    """One experiment process per socket: an advisory lock held for the process's lifetime.

    The OS releases it when the process ends, however it ends (even `kill -9`).
    """

    def __init__(self, endpoints: Endpoints) -> None:
        self._file: IO[bytes] | None = None
        self._sockets = endpoints.socket_files
        if endpoints.folder is not None:
            self.path: Path | None = Path(endpoints.socket_files[0]).with_suffix(".lock")
        else:
            self.path = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it (nothing to lock over TCP)."""
        if self.path is None or sys.platform == "win32":
            return True
        import fcntl

        while True:
            file = open(self.path, "wb")  # noqa: SIM115  # held open: the lock lives as long as the file
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()  # not ours: leave the other process's sockets alone
                return False
            # The process before may have removed the file (release) between our open and our lock: a lock on
            # a removed file keeps nobody out, so take it again on the file now at that path.
            if _same_file(file.fileno(), self.path):
                self._file = file
                return True
            file.close()

    def release(self) -> None:
        """Remove the socket files (libzmq may not get to it before the process exits) and the lock's own
        file (while still holding it, so none is left behind per port), then unlock."""
        if self._file is not None:
            for path in self._sockets:
                path.unlink(missing_ok=True)
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            self._file.close()
            self._file = None


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
