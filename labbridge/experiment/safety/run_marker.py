"""RunMarker: a file in data_dir that says "an experiment process runs here, or the last one did not stop cleanly".

`begin()` is called at start, before any module is started: it says whether
the file was already there (the last run was killed, crashed, lost power, or
stopped without putting its modules in their safe states), then writes it
for this run.  `end()` removes it once a stop is known to be clean.  So at any
moment of a `kill -9` the file is there whenever a module may have been
touched and not made safe since:

- it is written (a new file, then renamed over the old: whole or not there,
  fsynced with its folder) before the modules start, so a run killed before
  that touched nothing;
- a run that found it keeps it until its own stop is clean, so a run killed
  while applying safe states leaves it for the next start to try again;
- it is removed (one unlink) only after the safe states were applied.

Its content (the pid and start time of the run that wrote it, and why it is
still there if a stop left it) is for people and for the reason given at the
next start; only whether it exists decides.  Like every file the process makes,
it is its user's alone (core/private_files.py).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

FILE_NAME = "experiment.running"


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX; Windows has no symbolic links a user can plant this way
MAX_BYTES = 64 * 1024  # a marker is a line of JSON

class RunMarker:
    """The marker file of one data_dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self.left: dict[str, Any] | None = None  # what the last run's marker said, if it left one

    def begin(self) -> bool:
        """True if the last run left its marker (it did not stop cleanly); then write this run's.

        A data_dir that cannot be written is logged and otherwise ignored: the experiment runs, but a crash
        of this run will not be noticed at the next start."""
        try:
            self.left = _read(self.path)
        except OSError as exc:
            log.error("cannot read %s (%s): whether the last run stopped cleanly is unknown", self.path, exc.strerror)
        try:
            self.write({"pid": os.getpid(), "started": time.time()})
        except OSError as exc:
            log.error("cannot write %s (%s): a crash of this run will not be noticed at the next start",
                      self.path, exc.strerror)
        return self.left is not None

    def write(self, content: dict[str, Any]) -> None:
        """Replace the marker with `content`, atomically, on disk before this returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        part.unlink(missing_ok=True)  # a file of ours left by a crash, or a link someone put there: never followed
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            os.write(fd, orjson.dumps(content))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, self.path)
        _sync_folder(self.path.parent)

    def end(self, clean: bool, why: str = "") -> None:
        """After a stop: remove the marker if `clean`, else leave it saying `why` (the next start applies the
        safe states again)."""
        try:
            if clean:
                self.path.unlink(missing_ok=True)
                _sync_folder(self.path.parent)
            else:
                self.write({"pid": os.getpid(), "stopped": time.time(), "not_clean": why})
        except OSError as exc:
            log.error("cannot update %s (%s)", self.path, exc.strerror)


def _read(path: Path) -> dict[str, Any] | None:
    """The marker's content; {} if it is there but torn, empty or not a plain file (a link, a pipe: the safe
    states are applied, as after a crash); None if it is not there.  Never follows a link, never waits."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symbolic link where the marker should be
        log.warning("%s is not a plain file of this process (%s): taken as left by a crash", path, exc.strerror)
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("%s is not a plain file: taken as left by a crash", path)
            return {}
        raw = os.read(fd, MAX_BYTES)
    finally:
        os.close(fd)
    try:
        content = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return content if isinstance(content, dict) else {}


def _sync_folder(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable (POSIX; Windows has no folder descriptors)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
