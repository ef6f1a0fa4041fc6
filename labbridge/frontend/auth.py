"""TokenAuth: who may write (and, if configured, read) through the frontend.

Tokens come from the BRIDGE_TOKEN environment variable (identity "env") and/or
a YAML file named by `frontend.token_file` mapping identities to tokens:

    alice: 3f9c...     # one line per person or script
    pump-script: 88ab...

With any token configured, every PUT needs `Authorization: Bearer <token>`
(401 without one, 403 with a wrong one), and GETs too when `frontend.auth_reads`
is true.  Authentication fails closed: a token file that holds no token, a
token or identity given twice, or a token of fewer than 16 random bytes stops
the frontend with a configuration error (exit code 2) rather than running
unprotected; no message ever quotes a token.  Tokens are compared in constant time, against every known token, so
the answer's timing does not tell how much of a guess was right.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import string
from pathlib import Path
from typing import Any

import yaml

from labbridge.core.config import ConfigError, FrontendSettings, resolve
from labbridge.core.errors import Forbidden, NotAuthenticated
from labbridge.core.private_files import warn_if_open
from labbridge.core.transport import is_loopback

ENV_TOKEN = "BRIDGE_TOKEN"
TOKEN_BITS = 128  # 16 random bytes: `secrets.token_hex(16)` (32 hex digits) or `secrets.token_urlsafe(16)`
MIN_DISTINCT = 8  # different characters a random token of that size all but always has ("aaaa..." has one)
_BASE64 = set(string.ascii_letters + string.digits + "+/-_=")


class TokenAuth:
    """Checks bearer tokens; `enabled` is False when no token is configured."""

    def __init__(self, tokens: dict[str, str], protect_reads: bool = False) -> None:
        self._tokens = [(identity, token.encode()) for identity, token in tokens.items()]
        self.protect_reads = protect_reads

    @classmethod
    def from_settings(cls, settings: FrontendSettings, config_file: Path) -> TokenAuth:
        """The tokens of `frontend.token_file` and $BRIDGE_TOKEN; ConfigError (one line, never a token in it)
        when they do not protect anything: no token, a token twice, an identity twice, a guessable token."""
        path = resolve(config_file, settings.token_file) if settings.token_file is not None else None
        tokens: dict[str, str] = read_token_file(path) if path is not None else {}
        if env := os.environ.get(ENV_TOKEN):
            if "env" in tokens:
                raise ConfigError(f"{ENV_TOKEN} has the identity 'env', which frontend.token_file uses too")
            tokens["env"] = check_token(env, ENV_TOKEN)
        holders: dict[str, str] = {}
        for identity, token in tokens.items():
            if token in holders:
                raise ConfigError(f"frontend.token_file: {_named(holders[token])} and {_named(identity)} have "
                                  "the same token; give each its own")
            holders[token] = identity
        if settings.auth_reads and not tokens:
            raise ConfigError(f"frontend.auth_reads: true needs tokens: set frontend.token_file or ${ENV_TOKEN}")
        if path is not None:  # usable: say so if others may read it (after any error, not before)
            warn_if_open(path, "tokens", logging.getLogger("uvicorn.error"))
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


def read_token_file(path: Path) -> dict[str, str]:
    """identity -> token from a YAML mapping; ConfigError unless it holds at least one token, each strong and once."""
    where = f"frontend.token_file: {path}"
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc.strerror}") from None
    except _RepeatedKey as exc:
        raise ConfigError(f"{where}: the identity {_named(exc.key)} appears twice (again on line {exc.line}); "
                          "give each person or script one line and one token") from None
    except yaml.MarkedYAMLError as exc:  # its own text would quote the line, and so perhaps a token
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}{line}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{where}: not valid YAML") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"{where}: holds no tokens; it must map each identity to its token, one per line "
                          "(`alice: <token>`), or leave frontend.token_file out")
    tokens: dict[str, str] = {}
    for identity, token in loaded.items():
        if not isinstance(token, str):
            raise ConfigError(f"{where}: the token of {_named(identity)} must be text, on the same line "
                              "(`alice: <token>`)")
        tokens[str(identity)] = check_token(token, f"{where}: the token of {_named(identity)}")
    return tokens


def check_token(token: str, what: str) -> str:
    """`token` if it holds at least TOKEN_BITS bits, judged by its length and alphabet; else ConfigError."""
    if _bits(token) < TOKEN_BITS:
        why = (f"{len(token)} characters can hold at most about {_bits(token):.0f} random bits, and a token needs "
               f"{TOKEN_BITS}")
    elif len(set(token)) < MIN_DISTINCT:
        why = f"long enough, but its {len(token)} characters are only {len(set(token))} different ones: not random"
    else:
        return token
    raise ConfigError(f"{what} is too easy to guess ({why}); make one of {TOKEN_BITS // 8} random bytes with "
                      "`python -c \"import secrets; print(secrets.token_hex(16))\"`")


def _bits(token: str) -> float:
    alphabet = 16 if all(c in string.hexdigits for c in token) else 64 if all(c in _BASE64 for c in token) else 94
    return len(token) * math.log2(alphabet)


def _strong(token: str) -> bool:
    return _bits(token) >= TOKEN_BITS and len(set(token)) >= MIN_DISTINCT


def _named(identity: Any) -> str:
    """An identity as messages show it: quoted, unless it looks like a token (a line written the wrong way round)."""
    if isinstance(identity, str) and _strong(identity):
        return "an identity that looks like a token (the name goes first: `alice: <token>`)"
    return repr(identity)


class _RepeatedKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _RepeatedKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep)


def may_serve(host: str, auth: TokenAuth, allow_open_network: bool) -> bool:
    """Whether clients reaching the frontend on `host` may be served: loopback always;
    any other address only with a token configured, or when config.yml says the open network is fine."""
    return is_loopback(host) or auth.enabled or allow_open_network
