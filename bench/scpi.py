"""How long does a checked SCPI write take against a read, on a raw TCP socket?

    python bench/scpi.py [--requests 200]

Starts the multimeter of tests/scpi_instrument.py (a real socket; it delays its
ACKs as embedded TCP stacks do) and, through the bridge (experiment and
frontend processes), times sequential GETs and PUTs of its `voltage_range`.
A GET is one exchange (`VOLT:DC:RANG?`); a PUT is three: the set command,
`SYST:ERR?`, and the read-back `VOLT:DC:RANG?`; with an audit log, also two
lines fsynced to it (their cost is the disk's).  Below that, the same three exchanges straight through VisaSession, with
TCP_NODELAY as the bridge sets it and switched back off (pyvisa-py's default,
which left each write waiting about 40 ms for the instrument's delayed ACK).
Prints medians in milliseconds (a read and a write timed in turn) and the
write/read ratio.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labbridge.experiment.drivers.visa import VisaSession  # noqa: E402
from tests.processes import running_stack, write_config  # noqa: E402
from tests.scpi_instrument_process import SocketInstrument  # noqa: E402


def _paired(read: Callable[[], object], write: Callable[[], object], count: int) -> tuple[float, float]:
    """Median ms of each, a read and a write taken in turn (so both see the same load on a busy machine)."""
    for _ in range(10):
        read()
        write()
    reads: list[float] = []
    writes: list[float] = []
    for _ in range(count):
        for call, samples in ((read, reads), (write, writes)):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
    return statistics.median(reads) * 1000, statistics.median(writes) * 1000


def _bridged(instrument: SocketInstrument, tmp: Path, count: int, audit: bool) -> tuple[float, float]:
    audit_log: dict[str, Any] = {"audit_log": str(tmp / "audit.jsonl")} if audit else {}
    config = write_config(tmp / "config.yml", {"dmm": {"class": "tests.multimeter.Multimeter",
                                                       "resource": instrument.resource}}, **audit_log)
    with running_stack(config, tmp) as (_, _, url), httpx.Client(base_url=url) as client:
        values = cycle((1, 10, 100))
        return _paired(lambda: client.get("/dmm/voltage_range").raise_for_status(),
                       lambda: client.put("/dmm/voltage_range", json={"value": next(values)}).raise_for_status(),
                       count)


def _direct(instrument: SocketInstrument, count: int, nagle: bool) -> tuple[float, float]:
    session = VisaSession("dmm", instrument.resource, library="", timeout=2.0, open_timeout=1.0,
                          read_termination="\n", write_termination="\n", error_query="SYST:ERR?")
    try:
        session.open()
        if nagle and session.socket is not None:
            session.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        values = cycle(("1", "10", "100"))

        def checked_write() -> None:
            session.write(f"VOLT:DC:RANG {next(values)}")
            session.query("VOLT:DC:RANG?")

        return _paired(lambda: session.query("VOLT:DC:RANG?"), checked_write, count)
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        instrument = SocketInstrument(tmp)
        try:
            gaps_before = len(instrument.ask("DIAG:GAPS?").split(","))
            rows = [("bridge over HTTP: GET / PUT", *_bridged(instrument, tmp, args.requests, False)),
                    ("the same, audit log on (2 fsynced lines a PUT)", *_bridged(instrument, tmp, args.requests, True))]
            gaps = [float(gap) for gap in instrument.ask("DIAG:GAPS?").split(",")[gaps_before - 1:] if gap]
            rows.append(("VisaSession, TCP_NODELAY on (as the bridge)", *_direct(instrument, args.requests, False)))
            rows.append(("VisaSession, Nagle on (pyvisa-py default)", *_direct(instrument, args.requests // 10, True)))
        finally:
            instrument.stop()
    sys.stdout.write("| path | read p50 ms | checked write p50 ms | write/read |\n|---|---|---|---|\n")
    for name, read, write in rows:
        sys.stdout.write(f"| {name} | {read:.2f} | {write:.2f} | {write / read:.1f} |\n")
    sys.stdout.write(f"set command to SYST:ERR? on the wire, bridged PUTs: p50 {statistics.median(gaps):.3f} ms, "
                     f"max {max(gaps):.3f} ms ({len(gaps)} writes)\n")


if __name__ == "__main__":
    main()
