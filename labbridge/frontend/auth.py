"""TokenAuth: who may write (and, if configured, read) through the frontend.

Tokens come from the BRIDGE_TOKEN environment variable (identity "env") and/or
a YAML file named by `frontend.token_file` mapping identities to tokens:

    alice: 3f9c...     # one line per person or script
    pump-script: 88ab...

With any token configured, every PUT needs `Authorization: Bearer <token>`
(401 without one, 403 with a wrong one), and GETs too when `frontend.auth_reads`
is true.  Tokens are compared in constant time, against every known token, so
the answer's timing does not tell how much of a guess was right.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

import yaml

from labbridge.core.config import ConfigError, FrontendSettings, resolve
from labbridge.core.errors import Forbidden, NotAuthenticated

ENV_TOKEN = "BRIDGE_TOKEN"


class TokenAuth:
    """Checks bearer tokens; `enabled` is False when no token is configured."""

    def __init__(self, tokens: dict[str, str], protect_reads: bool = False) -> None:
        self._tokens = [(identity, token.encode()) for identity, token in tokens.items()]
        self.protect_reads = protect_reads

    @classmethod
    def from_settings(cls, settings: FrontendSettings, config_file: Path) -> TokenAuth:
        tokens: dict[str, str] = {}
        if settings.token_file is not None:
            path = resolve(config_file, settings.token_file)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"frontend.token_file: cannot read {path}: {exc}") from None
            if not isinstance(loaded, dict) or not all(isinstance(v, str) and len(v) >= 16 for v in loaded.values()):
                raise ConfigError(f"frontend.token_file: {path} must map identities to tokens of 16 or more characters")
            tokens.update({str(k): v for k, v in loaded.items()})
        if env := os.environ.get(ENV_TOKEN):
            if len(env) < 16:
                raise ConfigError(f"{ENV_TOKEN} must be 16 or more characters")
            tokens["env"] = env
        return cls(tokens, settings.auth_reads)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def identify(self, authorization: str | None, write: bool) -> str | None:
        """The identity behind the request's token; raise if this request needs one it lacks."""
        if not self.enabled or not (write or self.protect_reads):
            return None
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise NotAuthenticated("this needs an 'Authorization: Bearer <token>' header")
        found = None
        for identity, token in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(token, presented.encode()):
                found = identity
        if found is None:
            raise Forbidden("the token is not valid")
        return found


def may_serve(host: str, auth: TokenAuth, allow_open_network: bool) -> bool:
    """Whether clients reaching the frontend on `host` may be served: loopback always;
    any other address only with a token configured, or when config.yml says the open network is fine."""
    return is_loopback(host) or auth.enabled or allow_open_network


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
