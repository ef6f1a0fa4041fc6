"""Files the bridge writes belong to its OS user alone.

Both processes write what another local user must not read: the history of
every value, the audit log (who wrote what, from where), the journal of
invocations with their arguments.  With the usual umask (022) every new file
and folder was readable by everyone on the machine.  So each process sets its
umask to 077 when it starts (`keep_files_private`): whatever it creates from
then on (folders 0700, files 0600, SQLite's -wal and -shm files too) is its
user's only, however the library that creates it asks.  A file that must be
private and is not (tokens.yml, a CurveZMQ secret key) gets one warning line
at start (`warn_if_open`); files made before this existed keep their modes.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def keep_files_private() -> None:
    """From now on, create files and folders for this process's OS user only (a no-op on Windows)."""
    if os.name == "posix":
        os.umask(PRIVATE_UMASK)


def warn_if_open(path: Path, holds: str, log: logging.Logger) -> None:
    """One warning line if other users may read `path`, which holds `holds` (a secret key, tokens)."""
    if os.name != "posix":
        return
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("%s holds %s that other users may read (mode %o): run `chmod 600 %s`",
                    path, holds, stat.S_IMODE(mode), path)
