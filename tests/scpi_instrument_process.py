"""The multimeter of tests/scpi_instrument.py as a subprocess: start it, ask it over a side connection, restart it."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from tests.processes import Process, free_port, wait_until


class SocketInstrument:
    """The multimeter on a free 127.0.0.1 port; `resource` is its VISA name, `ask` a line on a connection of its own."""

    def __init__(self, logs: Path, measure_delay: float = 0.2) -> None:
        self.port, self.logs, self.measure_delay = free_port(), logs, measure_delay
        self.process = self._start()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def ask(self, line: str, timeout: float = 5.0) -> str:
        """Send one line and return the answer line (a line that asks nothing: end it with `;DIAG:WAITING?`)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            conn.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError(f"the instrument closed the connection after {line!r}")
                answer += chunk
        return answer.decode().strip()

    def restart(self) -> None:
        """Stop the process (its connections close, as when an instrument is switched off) and start it again."""
        self.process.stop()
        self.process = self._start()

    def stop(self) -> None:
        self.process.stop()

    def _start(self) -> Process:
        process = Process([sys.executable, "-m", "tests.scpi_instrument", "--port", str(self.port),
                           "--measure-delay", str(self.measure_delay)], self.logs / f"instrument-{self.port}.log")
        wait_until(lambda: not process.alive() or _listening(self.port), 10, "instrument listening")
        assert process.alive(), process.output
        return process


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
