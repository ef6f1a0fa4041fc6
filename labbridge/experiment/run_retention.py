"""Retention of runs (config.yml `runs: {max_age_days, max_size_mb}`), as the history has it.

Only finished runs are ever deleted (completed, stopped, failed, aborted,
interrupted), each with its points and its folder of files (arrays, HDF5
export); a queued, running or paused run is never touched, even if the
bound cannot be met without it.  By age: a run that ended more than
`max_age_days` ago goes.  By size: while what the run store's database
holds plus every run's files is over `max_size_mb`, the run that ended
first goes.  Neither set (the default): every run is kept.

The queue applies it when it starts, after each run, and every
CHECK_PERIOD seconds (for age), in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from labbridge.core.config import RunSettings
from labbridge.experiment.run_store import ARRAY_FOLDER, RunStore

log = logging.getLogger(__name__)

CHECK_PERIOD = 3600.0


def apply_retention(store: RunStore, settings: RunSettings, now: float | None = None) -> list[str]:
    """Delete the finished runs the bounds leave no room for; their ids, the oldest first."""
    now = time.time() if now is None else now
    finished = store.finished_runs()
    gone: list[str] = []
    if settings.max_age_days is not None:
        oldest = now - settings.max_age_days * 86400
        while finished and finished[0][1] < oldest:
            gone.append(_remove(store, finished.pop(0)[0]))
    if settings.max_size_mb is not None and finished:
        limit = settings.max_size_mb * 1e6
        sizes = {entry.name: _folder_bytes(Path(entry.path)) for entry in _folders(store.folder / ARRAY_FOLDER)}
        while finished and store.used_bytes() + sum(sizes.values()) > limit:
            ident = _remove(store, finished.pop(0)[0])
            sizes.pop(ident, None)
            gone.append(ident)
    if gone:
        log.info("retention deleted %d run(s): %s", len(gone), ", ".join(gone))
    return gone


async def keep_within(store: RunStore, settings: RunSettings, wake: asyncio.Event) -> None:
    """Apply retention now, whenever `wake` is set (a run ended), and every CHECK_PERIOD seconds; until cancelled."""
    while True:
        wake.clear()
        try:
            await asyncio.to_thread(apply_retention, store, settings)
        except Exception:  # a locked file, a full disk: tried again next time; runs go on meanwhile
            log.exception("run retention failed")
        try:
            async with asyncio.timeout(CHECK_PERIOD):
                await wake.wait()
        except TimeoutError:
            pass


def _remove(store: RunStore, ident: str) -> str:
    store.remove(ident)
    return ident


def _folders(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if entry.is_dir()]
    except FileNotFoundError:
        return []


def _folder_bytes(path: Path) -> int:
    total = 0
    for entry in os.scandir(path):
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except FileNotFoundError:  # a download's file removed meanwhile
            pass
    return total
