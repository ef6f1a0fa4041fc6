"""Child processes of the bridge's launchers (demo.py, `start_experiment.py --reload`): stopped with them.

`stop_on_signals` turns every signal that asks a launcher to stop (Ctrl+C,
SIGTERM, SIGHUP, and on Windows Ctrl+Break or closing the console) into an
event its loop waits on, and `stop_children` then gives each child SIGTERM
(on Windows TerminateProcess) and a few seconds before killing it, so no
process is left holding a port.  Standard library only.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable

STOP_TIMEOUT = 5.0  # seconds the children get to stop cleanly before they are killed


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT, SIGTERM, SIGHUP and SIGBREAK (where they exist) set `stop`; return what restores the handlers."""
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"):  # SIGBREAK: Windows, also sent when the console closes
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, lambda *_: stop.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def stop_children(children: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every child still running (both bridge processes then stop cleanly), kill what is left after `timeout`."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
