"""Writing a recorded array to its .npy file at little CPU cost: the same bytes as `np.save`, written past the page cache.

A camera frame (8 MiB) written with `np.save` costs the experiment process
the kernel's copy of it into the page cache, into pages the cache takes
fresh: 8 to 30 ms of CPU on a cloud machine (docs/explanation/performance.md).
An array of DIRECT_MIN bytes or more that lies in memory in C order is
instead copied once into an aligned buffer kept for the next one (a plain
memcpy, about 0.5 ms for 8 MiB), behind its .npy header, and written with
O_DIRECT: the disk takes it from there by DMA.  The write is rounded up to
whole blocks, then the file is cut to its true length, so the file holds
exactly what `np.save` writes.

Where O_DIRECT is not to be had (another OS, tmpfs, a file system that
refuses it) or for a smaller or non-contiguous array, `np.lib.format.write_array`
writes it through the page cache as `np.save` does.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DIRECT_MIN = 1 << 20  # smaller arrays: an O_DIRECT write waits for the disk, which costs more than the copy saves
BLOCK = 4096  # alignment of memory, file offset and length for O_DIRECT (any block size up to 4 KiB)
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


class AlignedBuffer:
    """Page-aligned memory, grown to the largest file written so far and kept for the next (one writer at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._memory: mmap.mmap | None = None

    def view(self, size: int) -> memoryview:
        """At least `size` bytes, rounded up to whole blocks; the tail past `size` is zeroed by the caller's write."""
        rounded = -(-size // BLOCK) * BLOCK
        if self._memory is None or len(self._memory) < rounded:
            if self._memory is not None:
                self._memory.close()
            self._memory = mmap.mmap(-1, rounded)
        return memoryview(self._memory)[:rounded]


_BUFFER = AlignedBuffer()


def npy_header(array: np.ndarray[Any, Any]) -> bytes:
    """The .npy header `np.save` writes before this array's bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue()


def write_npy(path: Path, array: np.ndarray[Any, Any]) -> None:
    """Write `array` to `path` as `np.save(path, array, allow_pickle=False)` would (same bytes)."""
    if _O_DIRECT and array.nbytes >= DIRECT_MIN and array.flags.c_contiguous and not array.dtype.hasobject:
        try:
            _write_direct(path, array)
            return
        except OSError as exc:  # a file system without O_DIRECT (EINVAL): as np.save does
            log.debug("O_DIRECT write of %s refused (%s): written through the page cache", path, exc)
    with open(path, "wb") as file:
        np.lib.format.write_array(file, array, allow_pickle=False)


def _write_direct(path: Path, array: np.ndarray[Any, Any]) -> None:
    header = npy_header(array)
    size = len(header) + array.nbytes
    with _BUFFER.lock:
        buffer = _BUFFER.view(size)
        buffer[:len(header)] = header
        # Through NumPy, not memoryview.cast: any dtype (datetime64 has no buffer format)
        np.frombuffer(buffer, np.uint8, array.nbytes, len(header))[:] = array.reshape(-1).view(np.uint8)
        buffer[size:] = bytes(len(buffer) - size)  # the block's tail, cut off below: zeros, not an older file's
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_DIRECT, 0o644)
        try:
            written = 0
            while written < len(buffer):
                written += os.write(descriptor, buffer[written:])
            os.ftruncate(descriptor, size)
        finally:
            os.close(descriptor)
