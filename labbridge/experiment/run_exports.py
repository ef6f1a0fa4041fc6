"""A run's HDF5 file for download: written in the experiment process, then read out chunk by chunk.

h5py needs a seekable file, so the file cannot be written straight into the
HTTP response: the `run_file` op writes it (run_export_hdf5.py) beside the
run's arrays and the frontend fetches it in chunks, as it pages the CSV, so
neither process ever holds the run in memory:

    {"do": "open", "id"}                        -> {"file", "size", "filename"}
    {"do": "read", "id", "file", "offset", "length"} -> the bytes, as a 1-D uint8 .npy answer (not JSON)
    {"do": "close", "id", "file"}               -> {}: a running run's file is removed

A finished run's file, `runs/<id>/run.h5`, does not change any more: it is
written once, at its first download, and kept (retention deletes it with the
run).  A run still queued, running or paused gets a file of its own for each
download, `runs/<id>/partial-<token>.h5`, with the points written to disk so
far (at most `runs.interval` behind), removed by `close` or, if the download
was cut off, after PARTIAL_AGE at the next `open`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labbridge.core.arrays import NpyAnswer, npy_parts
from labbridge.core.errors import InvalidValue, MalformedRequest, UnknownRun
from labbridge.experiment.run_export_hdf5 import write_run
from labbridge.experiment.run_state import FINISHED
from labbridge.experiment.run_store import ARRAY_FOLDER, RunStore

if TYPE_CHECKING:
    from labbridge.experiment.run_queue import RunQueue

log = logging.getLogger(__name__)

FINISHED_FILE = "run.h5"
PARTIAL_AGE = 3600.0  # seconds after which an abandoned download's file is removed
MAX_CHUNK = 1_000_000  # the most bytes one `read` answers: with its .npy header, under max_reply_bytes' least (1 MiB)
_FILE_NAME = re.compile(r"(run|partial-[0-9a-f]{32})\.h5")
# One finished run's file is written at a time: two downloads at once must read the same file, not two.
_writing = threading.Lock()


async def handle_run_file(queue: RunQueue, payload: dict[str, Any]) -> Any:
    await queue.ensure_usable()
    store, what = queue.store, payload.get("do")
    record = await asyncio.to_thread(store.get, payload["id"]) if isinstance(payload.get("id"), str) else None
    if record is None:
        raise UnknownRun(f"no run {payload.get('id')!r}")
    if what == "open":
        return await asyncio.to_thread(_open, store, record)
    name = payload.get("file")
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise MalformedRequest(f"file must be a name that open gave; got {name!r}")
    path = store.run_folder(record["id"]) / name
    if what == "read":
        offset, length = _count(payload, "offset", None), _count(payload, "length", MAX_CHUNK)
        return NpyAnswer(npy_parts(np.frombuffer(await asyncio.to_thread(_read, path, offset, length), np.uint8)))
    if what == "close":
        if name != FINISHED_FILE:
            path.unlink(missing_ok=True)
        return {}
    raise MalformedRequest(f"a run's file can be opened, read or closed; not {what!r}")


def _count(payload: dict[str, Any], label: str, most: int | None) -> int:
    value = payload.get(label)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (most is not None and value > most):
        raise InvalidValue(f"{label} must be a whole number of bytes, 0 to {most or 'the size'}; got {value!r}")
    return value


def _open(store: RunStore, record: dict[str, Any]) -> dict[str, Any]:
    folder = store.run_folder(record["id"])
    folder.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(store.folder / ARRAY_FOLDER)
    if record["status"] in FINISHED:  # every point is on disk: its file never changes
        path = folder / FINISHED_FILE
        with _writing:
            if not path.exists():
                _write(store, record, path)
    else:
        path = folder / f"partial-{uuid.uuid4().hex}.h5"
        _write(store, record, path)
    filename = re.sub(r"[^\w.-]", "_", f"{record['procedure']}-{record['id']}.h5")
    return {"file": path.name, "size": path.stat().st_size, "filename": filename}


def _write(store: RunStore, record: dict[str, Any], path: Path) -> None:
    """Written under another name, then renamed: a crash never leaves a half-written file under `path`."""
    started = time.perf_counter()
    unfinished = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_run(store, record, unfinished)
        os.replace(unfinished, path)
    finally:
        unfinished.unlink(missing_ok=True)
    log.info("run %s: %s written (%d bytes, %.2f s)", record["id"], path.name, path.stat().st_size,
             time.perf_counter() - started)


def _read(path: Path, offset: int, length: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    except FileNotFoundError:
        raise UnknownRun(f"{path.name} of run {path.parent.name} is gone (closed, or the run was deleted); "
                         "open it again") from None


def _remove_abandoned(runs_folder: Path) -> None:
    """Files of downloads cut off (and of writes a crash interrupted) older than PARTIAL_AGE."""
    oldest = time.time() - PARTIAL_AGE
    for pattern in ("*/partial-*.h5", "*/*.tmp"):
        for path in runs_folder.glob(pattern):
            try:
                if path.stat().st_mtime < oldest:
                    path.unlink()
            except FileNotFoundError:
                pass
