"""CurveZMQ for the ZeroMQ hop between machines: key files, and who may connect.

    python -m labbridge keys keys/    # writes server and frontend key pairs, authorizes the frontend

With `experiment_socket.curve` in config.yml, the backend encrypts the hop and a
ZAP authenticator lets in only frontends whose public key file lies in
`authorized_clients`; any other client's handshake is refused, so it never gets
an answer.  Keys live in files (made by pyzmq's `zmq.auth.create_certificates`),
never in the source or in config.yml itself.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

from labbridge.core.config import ConfigError, CurveSettings, resolve

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
    return public, secret_key


def client_keys(curve: CurveSettings | None, config_file: Path) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) for the frontend, or None without Curve."""
    if curve is None:
        return None
    server_public, _ = _load(config_file, curve.server_public_key, "server_public_key", secret=False)
    public, secret = _load(config_file, curve.client_key, "client_key", secret=True)
    assert secret is not None
    return server_public, public, secret


def secure_server(sockets: Sequence[zmq.Socket[Any]], curve: CurveSettings | None, config_file: Path,
                  context: zmq.asyncio.Context) -> AsyncioAuthenticator | None:
    """Make `sockets` Curve servers that admit only authorized clients; returns the running authenticator."""
    if curve is None:
        return None
    public, secret = _load(config_file, curve.server_key, "server_key", secret=True)
    if curve.authorized_clients is None:
        raise ConfigError(f"{config_file}: experiment_socket.curve.authorized_clients: required key is missing")
    allowed = resolve(config_file, curve.authorized_clients)
    if not allowed.is_dir():
        raise ConfigError(f"{config_file}: experiment_socket.curve.authorized_clients: {allowed} is not a folder")
    authenticator = AsyncioAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(allowed))
    for sock in sockets:
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
    log.info("CurveZMQ on: %d authorized frontend key(s) in %s", len(list(allowed.glob("*.key"))), allowed)
    return authenticator


def generate(folder: Path) -> None:
    """Write server and frontend key pairs into `folder`, and authorize the frontend."""
    folder.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(folder, "server")
    zmq.auth.create_certificates(folder, "frontend")
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
