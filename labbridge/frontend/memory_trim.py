"""Give freed memory back to the operating system after large answers: glibc's `malloc_trim`, where there is one.

glibc keeps the memory a program frees for its next allocations.  After a
large block (a camera frame from ZeroMQ, 8 to 20 MB) is freed, it raises its
threshold for serving blocks by `mmap`, so the next frames come from its heaps,
which it gives back only from their top: 40 frames as JSON left the frontend
holding 650 MiB after their clients were gone.  `malloc_trim(0)` hands every
free page of every heap back.  On other C libraries (musl, Windows, macOS)
there is no such function and `trim` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        function = libc.malloc_trim  # AttributeError on a C library without it (musl)
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def can_trim() -> bool:
    """Whether this C library can give free memory back on request."""
    return _MALLOC_TRIM is not None


def trim() -> None:
    """Give the free memory of the C library's heaps back to the system (a few milliseconds; nothing without glibc)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
