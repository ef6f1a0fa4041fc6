"""A SCPI multimeter for the tests, on a raw TCP socket or a pseudo-terminal, run as a subprocess.

    python -m tests.scpi_instrument --port 5025     # TCPIP::127.0.0.1::5025::SOCKET
    python -m tests.scpi_instrument --pty FILE      # writes the terminal's path to FILE: ASRL<path>::INSTR

pyvisa-sim plays an instrument inside the VISA library; this one is at the far
end of a real socket or serial line, and behaves as real ones do:

- an error queue shared by every connection (`SYST:ERR?` pops the oldest, or `0,"No error"`);
- headers it does not know (`*CLS` among them) queue `-113,"Undefined header"`, and a query
  it does not know gets no answer;
- `VOLT:DC:RANG` is discrete: 0.1, 1, 10, 100 or 1000, the smallest that holds the value
  (`-222,"Data out of range"` above 1000);
- `MEAS:VOLT:DC?` takes `--measure-delay` seconds;
- compound lines (`VOLT:DC:RANG 10;:SYST:ERR?`), answers joined with `;`;
- on TCP it delays its ACKs as an embedded stack does (TCP_QUICKACK off after every read) and
  answers only once it has read a whole line, so a client whose two small writes meet Nagle's
  algorithm stalls (about 40 ms on Linux);
- `DIAG:FREEZE ON|OFF` (never frozen itself) stops and resumes answering everyone else, and
  `DIAG:WAITING?` counts the commands held up (or under way), so a test knows one has arrived;
  `DIAG:DROP` (alone on its line) closes every other connection and thaws;
  `DIAG:GAPS?` lists, in ms, the time between each set command and the `SYST:ERR?` that
  followed it on the same connection; `DIAG:CONN?` counts connections accepted;
- a power supply's output and voltage too (`OUTP 1|0|ON|OFF`, `SOUR:VOLT` 0 to 30 V, and their
  queries), kept while the bridge's processes come and go; `DIAG:OUTP:LOG?` lists each `OUTP`
  set as `<unix time>=<0|1>`, so a test sees when the output went off (`SOUR:CURR` stays unknown);
  `DIAG:OUTP:DELAY <seconds>` makes each `OUTP` set take that long (a slow relay).

A restart is a test stopping this process and starting it again on the same port.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
import tty
from pathlib import Path

RANGES = (0.1, 1.0, 10.0, 100.0, 1000.0)


class Multimeter:
    """The instrument's state and its SCPI parser, shared by every connection."""

    def __init__(self, measure_delay: float) -> None:
        self.measure_delay = measure_delay
        self.range, self.nplc = 10.0, 1.0
        self.output, self.volts = False, 0.0  # the power supply's
        self.output_log: list[str] = []
        self.output_delay = 0.0
        self.errors: list[str] = []
        self.gaps_ms: list[float] = []
        self.connections, self.waiting = 0, 0
        self.clients: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.thawed = threading.Event()
        self.thawed.set()

    def line(self, text: str, last_set: list[float]) -> str | None:
        """Handle one line (maybe compound); its answer, or None when it asks nothing.

        `last_set` holds when this connection's last set command arrived: the wire gap to its error query."""
        answers = []
        for part in text.split(";"):
            command = part.strip().lstrip(":")
            if not command:
                continue
            header, _, argument = command.partition(" ")
            header = header.upper()
            if header == "SYST:ERR?" and last_set:
                self.gaps_ms.append((time.monotonic() - last_set.pop()) * 1000)
            elif not header.endswith("?"):
                last_set[:] = [time.monotonic()]
            if header.startswith("DIAG:"):
                answer = self.command(header, argument.strip())
            else:
                answer = self.frozen_command(header, argument.strip())
            if answer is not None:
                answers.append(answer)
        return ";".join(answers) if answers else None

    def drop(self, asking: socket.socket) -> str:
        """Close every other client's connection (as a LAN module that resets does), then thaw: a command
        held up by the freeze is carried out, its answer lost.  Answers how many were closed."""
        with self.lock:
            others = [conn for conn in self.clients if conn is not asking]
            self.clients.difference_update(others)
        for conn in others:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thawed.set()
        return str(len(others))

    def frozen_command(self, header: str, argument: str) -> str | None:
        """A command that waits while the instrument is frozen; counted in DIAG:WAITING? until it is done."""
        with self.lock:
            self.waiting += 1
        try:
            self.thawed.wait()
            return self.command(header, argument)
        finally:
            with self.lock:
                self.waiting -= 1

    def command(self, header: str, argument: str) -> str | None:
        if header == "OUTP" and self.output_delay:
            time.sleep(self.output_delay)  # outside the lock, as a measurement
        with self.lock:
            if header == "*IDN?":
                return "LABBRIDGE,DMM6500,SOCK0001,1.0"
            if header == "SYST:ERR?":
                return self.errors.pop(0) if self.errors else '0,"No error"'
            if header == "*RST":
                self.range, self.nplc, self.errors = 10.0, 1.0, []
                return None
            if header == "VOLT:DC:RANG?":
                return f"{self.range:+.6E}"
            if header == "VOLT:DC:NPLC?":
                return f"{self.nplc:+.6E}"
            if header in ("VOLT:DC:RANG", "VOLT:DC:NPLC"):
                self._set(header, argument)
                return None
            if header in ("OUTP?", "SOUR:VOLT?", "OUTP", "SOUR:VOLT", "DIAG:OUTP:LOG?"):
                return self._supply(header, argument)
            if header == "DIAG:OUTP:DELAY":
                self.output_delay = float(argument)
                return None
            if header == "DIAG:FREEZE":
                (self.thawed.clear if argument.upper() in ("ON", "1") else self.thawed.set)()
                return None
            if header == "DIAG:GAPS?":
                return ",".join(f"{gap:.3f}" for gap in self.gaps_ms)
            if header == "DIAG:CONN?":
                return str(self.connections)
            if header == "DIAG:WAITING?":
                return str(self.waiting)
        if header == "MEAS:VOLT:DC?":
            time.sleep(self.measure_delay)  # outside the lock: another connection's queries go on
            return f"{1.234567 * self.range / 10:+.6E}"
        with self.lock:
            self.errors.append('-113,"Undefined header"')
        return None

    def _supply(self, header: str, argument: str) -> str | None:
        """The power supply's commands (called holding the lock)."""
        if header == "OUTP?":
            return "1" if self.output else "0"
        if header == "SOUR:VOLT?":
            return f"{self.volts:+.6E}"
        if header == "DIAG:OUTP:LOG?":
            return ",".join(self.output_log)
        if header == "OUTP":
            word = argument.upper()
            if word not in ("1", "0", "ON", "OFF"):
                self.errors.append('-104,"Data type error"')
                return None
            self.output = word in ("1", "ON")
            self.output_log.append(f"{time.time():.6f}={int(self.output)}")
            return None
        try:
            volts = float(argument)
        except ValueError:
            self.errors.append('-104,"Data type error"')
            return None
        if 0 <= volts <= 30:
            self.volts = volts
        else:
            self.errors.append('-222,"Data out of range"')
        return None

    def _set(self, header: str, argument: str) -> None:
        try:
            value = float(argument)
        except ValueError:
            self.errors.append('-104,"Data type error"')
            return
        if header == "VOLT:DC:NPLC":
            if 0.01 <= value <= 100:
                self.nplc = value
            else:
                self.errors.append('-222,"Data out of range"')
            return
        fitting = [size for size in RANGES if size >= abs(value)]
        if fitting:
            self.range = fitting[0]
        else:
            self.errors.append('-222,"Data out of range"')


def serve_connection(meter: Multimeter, conn: socket.socket) -> None:
    """One client: read lines, answer each query in one send, delay ACKs as embedded stacks do."""
    with meter.lock:
        meter.clients.add(conn)
    try:
        with conn:
            _serve_lines(meter, conn)
    finally:
        with meter.lock:
            meter.clients.discard(conn)


def _serve_lines(meter: Multimeter, conn: socket.socket) -> None:
    quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere the kernel's defaults
    pending, last_set = b"", []  # type: tuple[bytes, list[float]]
    while True:
        try:
            data = conn.recv(4096)
            if quickack is not None:
                conn.setsockopt(socket.IPPROTO_TCP, quickack, 0)  # the kernel turns it back on: every time
        except OSError:
            return
        if not data:
            return
        pending += data
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            text = raw.decode("ascii", "replace").strip()
            answer = meter.drop(conn) if text.upper() == "DIAG:DROP" else meter.line(text, last_set)
            if answer is not None:
                try:
                    conn.sendall(answer.encode() + b"\n")
                except OSError:
                    return


def serve_tcp(meter: Multimeter, port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart binds the port at once
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        with meter.lock:
            meter.connections += 1
        threading.Thread(target=serve_connection, args=(meter, conn), daemon=True).start()


def serve_pty(meter: Multimeter, path_file: Path) -> None:
    """The instrument on the master side of a pseudo-terminal; the bridge opens the other side as a serial port."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a serial line's bytes as they are
    written = path_file.with_suffix(".part")
    written.write_text(os.ttyname(slave), encoding="utf-8")  # the slave stays open: no EIO between clients
    written.replace(path_file)  # whole, or not there
    pending, last_set = b"", []  # type: tuple[bytes, list[float]]
    while True:
        pending += os.read(master, 4096)
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            answer = meter.line(raw.decode("ascii", "replace").strip(), last_set)
            if answer is not None:
                os.write(master, answer.encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="listen on this 127.0.0.1 TCP port")
    where.add_argument("--pty", type=Path, help="open a pseudo-terminal and write its path to this file")
    parser.add_argument("--measure-delay", type=float, default=0.2, help="seconds MEAS:VOLT:DC? takes")
    args = parser.parse_args()
    meter = Multimeter(args.measure_delay)
    if args.port is not None:
        serve_tcp(meter, args.port)
    else:
        serve_pty(meter, args.pty)


if __name__ == "__main__":
    main()
