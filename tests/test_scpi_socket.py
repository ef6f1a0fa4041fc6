"""A SCPI multimeter on a real TCP socket (tests/scpi_instrument.py), through pyvisa-py's `TCPIP::...::SOCKET`.

pyvisa-sim plays instruments inside the VISA library; here the bridge's
experiment and frontend processes talk to an instrument process over a socket,
so what only sockets do is seen: an error queue shared with other clients and
a header the instrument does not know, ACKs the instrument delays (Nagle's
algorithm meeting them stalled each write), and an instrument that restarts
(its connections closed under the bridge).
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labbridge.experiment.drivers.visa import VisaSession
from tests.processes import Process, running_stack, wait_until, write_config
from tests.scpi_instrument_process import SocketInstrument


@dataclass
class Bench:
    instrument: SocketInstrument
    backend: Process
    url: str


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    tmp = tmp_path_factory.mktemp("scpi_socket")
    instrument = SocketInstrument(tmp)
    on_it = {"resource": instrument.resource, "timeout": 2.0}
    config = write_config(tmp / "config.yml", {
        "dmm": {"class": "tests.multimeter.Multimeter", **on_it},
        "compound": {"class": "tests.multimeter.CompoundMultimeter", **on_it},
        "resetting": {"class": "tests.multimeter.ResettingMultimeter", **on_it},
        "queueless": {"class": "tests.multimeter.QueuelessMultimeter", **on_it},
    })
    try:
        with running_stack(config, tmp) as (backend, _, url):
            yield Bench(instrument, backend, url)
    finally:
        instrument.stop()


def waiting(instrument: SocketInstrument) -> int:
    return int(instrument.ask("DIAG:WAITING?"))


def gaps_ms(instrument: SocketInstrument) -> list[float]:
    answer = instrument.ask("DIAG:GAPS?")
    return [float(gap) for gap in answer.split(",")] if answer else []


# -- 11: a write that was applied is never reported refused ------------------------------

def test_a_write_the_instrument_applied_is_not_reported_refused_also_after_a_reconnect(bench: Bench) -> None:
    for value in (100, 1):  # the first on the connection made at start, the second on one made after a restart
        put = httpx.put(f"{bench.url}/dmm/voltage_range", json={"value": value})
        assert put.status_code == 200, put.text  # was 502 "refused ...: -113" for the *CLS sent on connect
        assert put.json()["value"] == float(value)
        assert httpx.get(f"{bench.url}/dmm/voltage_range").json()["value"] == float(value)
        bench.instrument.restart()
    assert httpx.get(f"{bench.url}/dmm/idn").status_code == 200
    assert bench.instrument.ask("SYST:ERR?") == '0,"No error"'  # the bridge sent nothing the instrument did not know


def test_errors_queued_before_a_connect_are_drained_and_logged_not_blamed_on_the_write(bench: Bench) -> None:
    bench.instrument.restart()
    bench.instrument.ask("NOT:A:COMMAND;DIAG:WAITING?")  # another client's mistake, in the shared queue
    bench.instrument.ask("VOLT:DC:RANG 5000;DIAG:WAITING?")
    put = httpx.put(f"{bench.url}/dmm/nplc", json={"value": 10})
    assert put.status_code == 200, put.text
    wait_until(lambda: '-113,"Undefined header"; -222,"Data out of range" on connect' in bench.backend.output, 5,
               "the drained errors logged")
    assert bench.instrument.ask("SYST:ERR?") == '0,"No error"'


def test_connect_commands_are_sent_only_when_a_class_asks_for_them(bench: Bench) -> None:
    bench.instrument.restart()
    assert bench.instrument.ask("VOLT:DC:RANG 1000;VOLT:DC:RANG?") == "+1.000000E+03"
    assert httpx.get(f"{bench.url}/dmm/voltage_range").json()["value"] == 1000.0  # reconnected, nothing reset
    assert httpx.get(f"{bench.url}/resetting/voltage_range").json()["value"] == 10.0  # its *RST on connect


def test_an_instrument_declared_without_an_error_queue_is_never_asked_for_it(bench: Bench) -> None:
    bench.instrument.restart()
    bench.instrument.ask("NOT:A:COMMAND;DIAG:WAITING?")
    put = httpx.put(f"{bench.url}/queueless/voltage_range", json={"value": 5000})
    assert put.status_code == 200, put.text  # refused by the instrument, unseen without a queue: the value read back
    assert put.json()["value"] == 10.0
    assert bench.instrument.ask("SYST:ERR?") == '-113,"Undefined header"'  # not drained on connect
    assert bench.instrument.ask("SYST:ERR?") == '-222,"Data out of range"'  # nor asked after the write


# -- 12: writes as fast as reads ------------------------------------------------------

def test_the_error_query_follows_the_set_command_at_once_on_the_wire(bench: Bench) -> None:
    before = len(gaps_ms(bench.instrument))
    for value in (1, 10, 100, 10, 1, 0.1, 1000):
        assert httpx.put(f"{bench.url}/dmm/voltage_range", json={"value": value}).status_code == 200
    gaps = gaps_ms(bench.instrument)[before:]
    assert len(gaps) == 7
    # Nagle's algorithm held the query until the instrument's delayed ACK: about 43 ms on Linux.
    assert statistics.median(gaps) <= 2.0, gaps


def test_the_socket_under_a_tcpip_socket_resource_has_nagle_off(bench: Bench) -> None:
    session = VisaSession("dmm", bench.instrument.resource, library="", timeout=2.0, open_timeout=1.0,
                          read_termination="\n", write_termination="\n", error_query="SYST:ERR?")
    try:
        assert session.query("*IDN?").startswith("LABBRIDGE,DMM6500")
        assert session.socket is not None
        assert session.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        session.close()


def test_a_compound_write_is_checked_in_one_line(bench: Bench) -> None:
    bench.instrument.restart()
    before = len(gaps_ms(bench.instrument))
    put = httpx.put(f"{bench.url}/compound/voltage_range", json={"value": 50})
    assert put.status_code == 200, put.text
    assert put.json()["value"] == 100.0  # the range that holds 50 V
    refused = httpx.put(f"{bench.url}/compound/voltage_range", json={"value": 5000})
    assert refused.status_code == 502
    assert refused.json() == {"error": "instrument_error", "message": "instrument of compound refused "
                              "'VOLT:DC:RANG 5000.0': -222,\"Data out of range\""}
    assert all(gap < 1.0 for gap in gaps_ms(bench.instrument)[before:])  # the query came in the set's own line


# -- 13: an instrument that restarted is noticed at once -------------------------------

def test_a_read_and_a_write_after_the_instrument_restarted_answer_at_once(bench: Bench) -> None:
    assert httpx.get(f"{bench.url}/dmm/voltage_range").status_code == 200  # connected
    bench.instrument.restart()
    start = time.monotonic()
    get = httpx.get(f"{bench.url}/dmm/voltage_range")
    assert get.status_code == 200, get.text  # was 504 after the whole 2 s timeout
    assert time.monotonic() - start < 1.0
    bench.instrument.restart()
    start = time.monotonic()
    put = httpx.put(f"{bench.url}/dmm/voltage_range", json={"value": 100})  # nothing sent yet: safe to reconnect
    assert put.status_code == 200, put.text
    assert time.monotonic() - start < 1.0


def test_a_read_the_instrument_drops_under_way_is_asked_again_on_a_new_connection(bench: Bench) -> None:
    assert httpx.get(f"{bench.url}/dmm/idn").status_code == 200
    bench.instrument.ask("DIAG:FREEZE ON;DIAG:WAITING?")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.get, f"{bench.url}/dmm/voltage_range")
        wait_until(lambda: waiting(bench.instrument) == 1, 5, "the query at the instrument")
        assert int(bench.instrument.ask("DIAG:DROP")) >= 1  # its connection closed under the query, then thawed
        start = time.monotonic()
        get = pending.result(timeout=10)
    assert get.status_code == 200, get.text  # was 504 after the whole 2 s timeout
    assert time.monotonic() - start < 1.0


def test_a_write_the_instrument_drops_under_way_is_reported_unknown_and_not_sent_again(bench: Bench) -> None:
    assert httpx.get(f"{bench.url}/dmm/idn").status_code == 200
    bench.instrument.ask("DIAG:FREEZE ON;DIAG:WAITING?")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.put, f"{bench.url}/dmm/voltage_range", json={"value": 1000})
        wait_until(lambda: waiting(bench.instrument) == 1, 5, "the set command at the instrument")
        bench.instrument.restart()
        start = time.monotonic()
        put = pending.result(timeout=10)
    assert put.status_code == 502, put.text
    assert put.json()["error"] == "instrument_unreachable"
    assert "outcome is unknown" in put.json()["message"]
    assert time.monotonic() - start < 1.0
    assert bench.instrument.ask("VOLT:DC:RANG?") == "+1.000000E+01"  # the new instrument never got it


def _endless_answerer(server: socket.socket, sent: list[int]) -> None:
    """A hostile 'instrument': it answers its first line with digits and no line ending, up to 64 MiB."""
    connection, _ = server.accept()
    with connection:
        connection.recv(1024)
        chunk = b"1" * 65536
        try:
            while sent[0] < 64 * 1024 * 1024:
                connection.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:  # the bridge hung up: what it read is bounded
            return


def test_an_answer_without_end_is_cut_off_at_the_answer_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from labbridge.core.errors import InstrumentError
    from labbridge.experiment.drivers import visa_socket

    monkeypatch.setattr(visa_socket._ClosedAwareSocket, "max_answer", 1024 * 1024)
    server = socket.create_server(("127.0.0.1", 0))
    sent = [0]
    answerer = threading.Thread(target=_endless_answerer, args=(server, sent), daemon=True)
    answerer.start()
    port = server.getsockname()[1]
    session = VisaSession("hostile", f"TCPIP::127.0.0.1::{port}::SOCKET", library="@py", timeout=10.0,
                          open_timeout=1.0, read_termination="\n", write_termination="\n", error_query=None)
    try:
        started = time.monotonic()
        with pytest.raises(InstrumentError, match="without end"):
            session.query("MEAS?")
        assert time.monotonic() - started < 5  # cut off by size, not by the 10 s timeout
        answerer.join(10)
        assert not answerer.is_alive() and sent[0] < 64 * 1024 * 1024  # the connection was dropped
    finally:
        session.close()
        server.close()
