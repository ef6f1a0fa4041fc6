"""The PostgreSQL URL of `history.url`: checked when config.yml is read, so a password never sits in the file.

libpq takes the password from PGPASSWORD or a password file (~/.pgpass, or
`history.passfile`), never from config.yml: a config file is copied, mailed and
committed, and its mode is rarely 0600.  Everything else in the URL (host,
port, database, user, `sslmode` and the other libpq parameters) passes through
to libpq as written.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SCHEMES = ("postgresql", "postgres")


def check_database_url(url: str) -> str:
    """`url` if it is a postgresql:// URL without a password; else ValueError saying what to do instead."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port: a bad one raises ValueError here, not in libpq later
    except ValueError as exc:
        raise ValueError(f"history.url: not a valid URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"history.url: must start with postgresql:// (got '{parts.scheme}:'); "
                         "leave url out to record into SQLite at `path`")
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ValueError("history.url: holds a password, which must not be written in config.yml; remove it and give it "
                         "in the environment (PGPASSWORD) or a password file private to this user (~/.pgpass, "
                         "or history.passfile)")
    return url

