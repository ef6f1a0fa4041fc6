"""TokenAuth: who may read, write or administer through the frontend.

Tokens come from the BRIDGE_TOKEN environment variable (identity "env", role
`operate`) and/or a YAML file named by `frontend.token_file` mapping identities
to tokens, each with a role:

    alice: 3f9c...                              # one line per person or script: role operate
    viewer: {token: 5e0a..., role: read}        # reads only
    bob: {token: 77d1..., role: admin}

A role allows what the ones before it in ROLES allow: `read` (GETs, history,
/ws, metrics), `operate` (also PUT, POST of actions and DELETE of any
invocation: whoever operates the setup can always stop motion), `admin` (also
what is reserved to it, see `needs_admin` in access.py).  With any token
configured, every write needs `Authorization: Bearer <token>` (401 without
one, 403 `forbidden` with a wrong one or one whose role is not enough, the
message naming the role needed), and reads too when `frontend.auth_reads` is
true.  Authentication fails closed: a token file that holds no token, a token
or identity given twice, an unknown role, or a token of fewer than 16 random
bytes stops the frontend with a configuration error (exit code 2) rather than
running unprotected; no message ever quotes a token.  Tokens are compared in
constant time, against every known token, so the answer's timing does not tell
how much of a guess was right.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from labbridge.core.config import ConfigError, FrontendSettings, resolve
from labbridge.core.errors import Forbidden, NotAuthenticated
from labbridge.core.private_files import warn_if_open
from labbridge.core.transport import is_loopback

ENV_TOKEN = "BRIDGE_TOKEN"
TOKEN_BITS = 128  # 16 random bytes: `secrets.token_hex(16)` (32 hex digits) or `secrets.token_urlsafe(16)`
MIN_DISTINCT = 8  # different characters a random token of that size all but always has ("aaaa..." has one)
_BASE64 = set(string.ascii_letters + string.digits + "+/-_=")

Role = Literal["read", "operate", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # each allows what the ones before it allow
DEFAULT_ROLE: Role = "operate"  # a token written as `alice: <token>`, and $BRIDGE_TOKEN
_ENTRY_KEYS = ("token", "role")


@dataclass(frozen=True)
class Holder:
    """An identity's token and role, as the token file gives them."""

    token: str
    role: Role = DEFAULT_ROLE


@dataclass(frozen=True)
class Caller:
    """Who sent a request, by its token: for the audit log and for messages."""

    identity: str
    role: Role


def allows(role: Role, needed: Role) -> bool:
    """Whether `role` may do what needs `needed`."""
    return ROLES.index(role) >= ROLES.index(needed)


class TokenAuth:
    """Checks bearer tokens; `enabled` is False when no token is configured."""

    def __init__(self, tokens: dict[str, Holder], protect_reads: bool = False) -> None:
        self._tokens = [(Caller(identity, holder.role), holder.token.encode()) for identity, holder in tokens.items()]
        self.protect_reads = protect_reads

    @classmethod
    def from_settings(cls, settings: FrontendSettings, config_file: Path) -> TokenAuth:
        """The tokens of `frontend.token_file` and $BRIDGE_TOKEN; ConfigError (one line, never a token in it)
        when they do not protect anything: no token, a token twice, an identity twice, a guessable token."""
        path = resolve(config_file, settings.token_file) if settings.token_file is not None else None
        tokens: dict[str, Holder] = read_token_file(path) if path is not None else {}
        if env := os.environ.get(ENV_TOKEN):
            if "env" in tokens:
                raise ConfigError(f"{ENV_TOKEN} has the identity 'env', which frontend.token_file uses too")
            tokens["env"] = Holder(check_token(env, ENV_TOKEN))
        holders: dict[str, str] = {}
        for identity, holder in tokens.items():
            if holder.token in holders:
                raise ConfigError(f"frontend.token_file: {_named(holders[holder.token])} and {_named(identity)} "
                                  "have the same token; give each its own")
            holders[holder.token] = identity
        if settings.auth_reads and not tokens:
            raise ConfigError(f"frontend.auth_reads: true needs tokens: set frontend.token_file or ${ENV_TOKEN}")
        if path is not None:  # usable: say so if others may read it (after any error, not before)
            warn_if_open(path, "tokens", logging.getLogger("uvicorn.error"))
        return cls(tokens, settings.auth_reads)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def identify(self, authorization: str | None, needs: Role) -> Caller | None:
        """Who is behind the request's token (None when no token is needed); NotAuthenticated when a needed
        token is missing, Forbidden when it is wrong or its role does not allow what `needs` names."""
        caller = self.authenticate(authorization, needs)
        require(caller, needs)
        return caller

    def authenticate(self, authorization: str | None, needs: Role) -> Caller | None:
        """Who is behind the request's token, whatever their role (None when no token is needed); raise
        when a needed token is missing or wrong.  `identify` checks the role too."""
        if not self.enabled or (needs == "read" and not self.protect_reads):
            return None
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise NotAuthenticated("this needs an 'Authorization: Bearer <token>' header")
        found = None
        for caller, token in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(token, presented.encode()):
                found = caller
        if found is None:
            raise Forbidden("the token is not valid")
        return found


def require(caller: Caller | None, needs: Role) -> None:
    """Forbidden, naming the role needed, unless `caller` (None: no token needed) has a role that allows it."""
    if caller is not None and not allows(caller.role, needs):
        raise Forbidden(f"this needs the {needs} role; {caller.identity} has {caller.role}")


def read_token_file(path: Path) -> dict[str, Holder]:
    """identity -> token and role from a YAML mapping; ConfigError unless it holds at least one token, each
    strong and once, each role known."""
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
    return {str(identity): _holder(entry, where, _named(identity)) for identity, entry in loaded.items()}


def _holder(entry: Any, where: str, who: str) -> Holder:
    """One identity's entry: `<token>` (role operate) or `{token: <token>, role: <role>}`."""
    if isinstance(entry, dict):
        unknown = [key for key in entry if key not in _ENTRY_KEYS]
        if unknown:
            raise ConfigError(f"{where}: {who} has the key {_shown(unknown[0])}; an entry's keys are `token` "
                              "and `role` (`alice: {token: <token>, role: read}`)")
        token, role = entry.get("token"), entry.get("role", DEFAULT_ROLE)
        if token is None:
            raise ConfigError(f"{where}: {who} has no token (`alice: {{token: <token>, role: read}}`)")
    else:
        token, role = entry, DEFAULT_ROLE
    if not isinstance(token, str):
        raise ConfigError(f"{where}: the token of {who} must be text (`alice: <token>`, or "
                          "`alice: {token: <token>, role: read}`)")
    if role not in ROLES:
        raise ConfigError(f"{where}: the role of {who} is {_shown(role)}; a role is one of {', '.join(ROLES)}")
    return Holder(check_token(token, f"{where}: the token of {who}"), role)


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


def _shown(value: Any) -> str:
    """A value of the token file as messages show it: quoted, unless it may be a token (in the wrong place)."""
    return "a value that looks like a token" if isinstance(value, str) and _strong(value) else repr(value)


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
