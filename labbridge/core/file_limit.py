"""Raise the process's soft limit of open files towards its hard limit, where the OS allows.

Every connection is a file descriptor.  Many systems start processes with a
soft limit of 1024 although the hard limit, which an ordinary user may raise
the soft one to, is far higher; at 1024, a thousand idle connections stopped
every request.  Both processes raise it at start; the frontend then keeps its
connections well below it (server_limits.py).  The systemd units raise the
hard limit itself (LimitNOFILE).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

TARGET = 65536  # plenty for a lab; more buys nothing but larger tables
MACOS_OPEN_MAX = 10240  # macOS refuses a soft limit above OPEN_MAX even when the hard limit is unlimited


def open_file_limit() -> int:
    """The soft limit of open files (a large number where the OS has none to tell)."""
    if sys.platform == "win32":
        return TARGET  # sockets are not bounded by the C runtime's file limit there
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return TARGET if soft == resource.RLIM_INFINITY else int(soft)


def raise_open_file_limit() -> int:
    """Raise the soft limit to min(hard limit, TARGET) if it is lower; return the limit in force."""
    if sys.platform == "win32":
        return open_file_limit()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = TARGET if hard == resource.RLIM_INFINITY else min(hard, TARGET)
    if sys.platform == "darwin":
        wanted = min(wanted, MACOS_OPEN_MAX)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            log.info("raised the limit of open files from %d to %d", soft, wanted)
        except (ValueError, OSError) as exc:
            log.warning("could not raise the limit of open files from %d: %s", soft, exc)
    return open_file_limit()
