"""CurveZMQ for the ZeroMQ hop between machines: key files, and who may connect.

    python -m labbridge keys keys/    # writes server and frontend key pairs, authorizes the frontend

With `experiment_socket.curve` in config.yml, the backend encrypts the hop and a
ZAP authenticator lets in only frontends whose public key file lies in
`authorized_clients`; any other client's handshake is refused, so it never gets
an answer.  The folder is read again whenever it changes (AuthorizedKeys), so a
key added or removed takes effect without a restart: a new handshake is checked
against the folder as it is now, and the server checks the key of every request
too, so a frontend whose key was removed is refused on a connection it opened
before.  Keys live in files (made by pyzmq's `zmq.auth.create_certificates`),
never in the source or in config.yml itself; secret key files are written with
mode 0600, and one that other users may read is reported at start.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

from labbridge.core.config import ConfigError, CurveSettings, resolve
from labbridge.core.private_files import warn_if_open

log = logging.getLogger(__name__)


def _load(config_file: Path, path: str | None, key: str, secret: bool) -> tuple[bytes, bytes | None]:
    if path is None:
        raise ConfigError(f"{config_file}: experiment_socket.curve.{key}: required key is missing")
    file = resolve(config_file, path)
    try:
        public, secret_key = zmq.auth.load_certificate(file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config_file}: experiment_socket.curve.{key}: cannot load {file}: {exc}") from None
    if secret and secret_key is None:
        raise ConfigError(f"{config_file}: experiment_socket.curve.{key}: {file} holds no secret key (use the .key_secret file)")
    if secret:
        warn_if_open(file, "a secret key", log)
    return public, secret_key


class AuthorizedKeys:
    """The public keys in `authorized_clients`, read again whenever the folder changes.

    It is the ZAP authenticator's credentials provider (`callback`), and
    `admits` lets the server check each request's sender (ZeroMQ's User-Id).
    """

    RECHECK = 1.0  # seconds between looks at the folder on the path of requests
    QUIET = 10.0  # seconds between warnings about refused handshakes: a stranger's retries must not fill the log

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._signature: list[tuple[str, int, int]] | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._checked = float("-inf")
        self._loads = 0
        self._refused, self._warned = 0, float("-inf")

    def current(self, max_age: float = 0.0) -> frozenset[bytes]:
        """The authorized keys (Z85), from a look at the folder at most `max_age` seconds old."""
        now = time.monotonic()
        if now - self._checked >= max_age:
            self._checked = now
            signature = self._look()
            if signature != self._signature:
                self._signature = signature
                self._load()
        return self._keys

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: may the frontend with this public key (Z85) connect?"""
        if key in self.current():
            return True
        self._refused += 1
        if time.monotonic() - self._warned >= self.QUIET:
            log.warning("refused %d CurveZMQ handshake(s) with keys not in %s (the last: %s...)", self._refused,
                        self.folder, key[:8].decode())
            self._refused, self._warned = 0, time.monotonic()
        return False

    def admits(self, user_id: str | None) -> bool:
        """May a request from this User-Id (the sender's Z85 key) run?"""
        return user_id is not None and user_id.encode() in self.current(self.RECHECK)

    def _look(self) -> list[tuple[str, int, int]]:
        found = []
        for path in self.folder.glob("*.key"):
            try:
                info = path.stat()
            except OSError:  # removed while we looked
                continue
            found.append((path.name, info.st_mtime_ns, info.st_size))
        return sorted(found)

    def _load(self) -> None:
        keys, names = set(), []
        for path in sorted(self.folder.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as exc:
                log.warning("skipped %s in authorized_clients: %s", path, exc)
                continue
            keys.add(public)
            names.append(f"{path.name} ({public[:8].decode()}...)")
        when = "on" if self._loads == 0 else "reloaded"
        self._keys, self._loads = frozenset(keys), self._loads + 1
        log.info("CurveZMQ %s: %d authorized frontend key(s) in %s: %s", when, len(keys), self.folder,
                 ", ".join(names) or "none")


def client_keys(curve: CurveSettings | None, config_file: Path) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) for the frontend, or None without Curve."""
    if curve is None:
        return None
    server_public, _ = _load(config_file, curve.server_public_key, "server_public_key", secret=False)
    public, secret = _load(config_file, curve.client_key, "client_key", secret=True)
    assert secret is not None
    return server_public, public, secret


def secure_server(sockets: Sequence[zmq.Socket[Any]], curve: CurveSettings | None, config_file: Path,
                  context: zmq.asyncio.Context) -> tuple[AsyncioAuthenticator, AuthorizedKeys] | None:
    """Make `sockets` Curve servers that admit only authorized clients; the running authenticator and the keys."""
    if curve is None:
        return None
    public, secret = _load(config_file, curve.server_key, "server_key", secret=True)
    if curve.authorized_clients is None:
        raise ConfigError(f"{config_file}: experiment_socket.curve.authorized_clients: required key is missing")
    allowed = resolve(config_file, curve.authorized_clients)
    if not allowed.is_dir():
        raise ConfigError(f"{config_file}: experiment_socket.curve.authorized_clients: {allowed} is not a folder")
    keys = AuthorizedKeys(allowed)
    keys.current()
    authenticator = AsyncioAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve_callback(domain="*", credentials_provider=keys)
    for sock in sockets:
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
    return authenticator, keys


def generate(folder: Path) -> None:
    """Write server and frontend key pairs into `folder` (secret keys 0600), and authorize the frontend."""
    folder.mkdir(parents=True, exist_ok=True)
    # pyzmq writes key files with the umask's mode, usually 0644: they are made in a
    # private (0700) folder and made 0600 there, so no secret is readable by others even for a moment.
    with tempfile.TemporaryDirectory(dir=folder) as staging:
        for name in ("server", "frontend"):
            public, secret = zmq.auth.create_certificates(staging, name)
            os.chmod(secret, 0o600)
            os.replace(public, folder / f"{name}.key")
            os.replace(secret, folder / f"{name}.key_secret")
    (folder / "authorized").mkdir(exist_ok=True)
    shutil.copy(folder / "frontend.key", folder / "authorized" / "frontend.key")


def keys_command(folder: Path) -> str:
    """`python -m labbridge keys FOLDER`: write the keys, and say what to add to config.yml."""
    generate(folder)
    return f"""Wrote {folder}/server.key(_secret), {folder}/frontend.key(_secret), authorized {folder}/authorized/frontend.key.
Add to config.yml (copy server.key and frontend.key_secret to the frontend's machine):
experiment_socket:
  curve:
    server_key: {folder}/server.key_secret
    authorized_clients: {folder}/authorized
    server_public_key: {folder}/server.key
    client_key: {folder}/frontend.key_secret
"""
