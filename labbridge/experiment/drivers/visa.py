"""VisaSession: one message-based VISA resource (PyVISA), opened on demand, its failures mapped to the bridge's errors.

Every method blocks, so ScpiModule calls them only from hooks written with
plain `def`, which run on the module's worker thread (worker.py).  The mapping:

    VI_ERROR_TMO, socket timeout             InstrumentTimeout (504; a write's outcome is unknown)
    resource not found, connection refused
    or lost, no VISA library                 InstrumentUnreachable (502); reopened on the next call
    an error in the queue after a write      InstrumentError (502) with the instrument's own text
    any other VISA error                     InstrumentError (502)

On each connect the error queue is drained (asked until it says no error) and
what was there logged, not blamed on the next write; `connect_commands` (such as
`*RST`, `*CLS`) are sent first only if a module asks.  A timeout closes the
connection, so the queue is drained again before the next call.  On a TCP socket
(drivers/visa_socket.py) a connection the instrument closed is reopened before
anything is sent, and a read it closes under way is sent once more on a new one
(never a write: that one's outcome is unknown).

`library` is PyVISA's: "" picks an installed VISA (NI, Keysight, R&S) or else
pyvisa-py; "<device file>@sim" is pyvisa-sim with that device file.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from labbridge.core.errors import UNKNOWN_OUTCOME, InstrumentError, InstrumentTimeout, InstrumentUnreachable
from labbridge.experiment.drivers import visa_socket

log = logging.getLogger(__name__)

# VISA status codes that mean "nobody there": the resource is dropped and opened again on the next call.
_GONE = {constants.StatusCode.error_resource_not_found, constants.StatusCode.error_connection_lost,
         constants.StatusCode.error_invalid_resource_name, constants.StatusCode.error_resource_busy,
         constants.StatusCode.error_resource_locked, constants.StatusCode.error_closing_failed,
         constants.StatusCode.error_invalid_object}
# How many entries of the error queue are read at most, on connect or after a refused write (so none is
# blamed on the next one); bounded, for an instrument that never says "no error".
_MAX_QUEUED_ERRORS = 16


class VisaSession:
    """The VISA resource of one module: `query`, `write` (checked against the error queue), `close`."""

    def __init__(self, module: str, resource: str, *, library: str, timeout: float, open_timeout: float,
                 read_termination: str, write_termination: str, error_query: str | None,
                 connect_commands: tuple[str, ...] = (), compound_error_query: bool = False,
                 options: dict[str, Any] | None = None) -> None:
        self.module, self.resource_name, self.library = module, resource, library
        self.timeout, self.open_timeout = timeout, open_timeout
        self.read_termination, self.write_termination = read_termination, write_termination
        self.error_query = error_query
        self.connect_commands = connect_commands  # sent on each connect, before the queue is drained
        self.compound_error_query = compound_error_query  # `SET 5;:SYST:ERR?` as one line
        self.options = options or {}  # more attributes to set on open, such as baud_rate
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: Any = None
        self._socket: socket.socket | None = None  # a TCPIP SOCKET resource's own socket, under pyvisa-py

    @property
    def socket(self) -> socket.socket | None:
        """The TCP socket of an open TCPIP SOCKET resource under pyvisa-py, else None."""
        return self._socket

    def open(self) -> None:
        """Open the resource unless it is open and still connected (then drain its error queue);
        InstrumentUnreachable if it cannot be."""
        if self._resource is not None:
            if self._socket is None or not visa_socket.peer_closed(self._socket):
                return
            # Closed by the instrument since the last call (it restarted): nothing of this call was sent yet.
            log.info("module %s: %s closed the connection; connecting again", self.module, self.resource_name)
            self.close()
        with self._mapped("open", opening=True):
            if self._manager is None:  # PyVISA keeps one manager per library, shared by every module using it
                self._manager = pyvisa.ResourceManager(self.library)
            self._resource = self._manager.open_resource(
                self.resource_name, open_timeout=int(self.open_timeout * 1000), timeout=int(self.timeout * 1000),
                read_termination=self.read_termination, write_termination=self.write_termination, **self.options)
            if not self._resource.session:
                # pyvisa-sim 0.7 answers a resource it does not have with session 0 (VI_NULL, never a real
                # session) instead of VI_ERROR_RSRC_NFOUND; tests/test_psu.py guards this.
                self._resource = None
                raise VisaIOError(constants.StatusCode.error_resource_not_found)
            self._socket = visa_socket.tune(self._resource)
        if self.error_query is None:
            return  # declared without an error queue: nothing to send on connect
        for command in self.connect_commands:
            self._command(command, reconnect=False)
        # Not *CLS, which not every instrument knows (and then queues an error of its own): the queue is read
        # empty, so an error left from before (another client, a write that timed out) is not blamed on ours.
        stale = self._drain()
        if stale:
            log.warning("module %s: the error queue of %s held %s on connect (from before; cleared)",
                        self.module, self.resource_name, "; ".join(stale))

    def query(self, command: str) -> str:
        """Send a query and return the instrument's answer, without its line ending.

        If the instrument closes the connection under way, the query is sent once more on a new one."""
        try:
            return self._query(command, retry=True)
        except visa_socket.PeerClosed:
            log.info("module %s: %s closed the connection during %r; asking again", self.module,
                     self.resource_name, command)
            return self._query(command)

    def write(self, command: str) -> None:
        """Send a command; if the instrument keeps an error queue, raise its error when it refused the command."""
        if self.error_query is None:
            self._command(command)
            return
        if self.compound_error_query:  # one line, one exchange: `SOUR:VOLT 5;:SYST:ERR?`
            first = self._query(f"{command};:{self.error_query}", writes=True)
            errors = [] if _is_no_error(first) else [first, *self._drain(writes=True)]
        else:
            self._command(command)
            errors = self._drain(writes=True)
        if errors:
            raise InstrumentError(f"instrument of {self.module} refused {command!r}: {'; '.join(errors)}")

    def close(self) -> None:
        """Close the resource (the manager stays: other modules may have resources open through it)."""
        resource, self._resource, self._socket = self._resource, None, None
        if resource is not None:
            try:
                resource.close()
            except Exception as exc:  # a resource that is already gone: nothing left to close
                log.debug("closing %s of module %s: %s", self.resource_name, self.module, exc)

    def _drain(self, writes: bool = False) -> list[str]:
        """Read the error queue until it says no error (at most _MAX_QUEUED_ERRORS entries): what it held.

        Never on a new connection: after a write (`writes`), that one's drain on connect would take the
        write's own error for a stale one, so a lost connection leaves the write's outcome unknown."""
        errors: list[str] = []
        for _ in range(_MAX_QUEUED_ERRORS):
            answer = self._query(str(self.error_query), writes=writes, reconnect=False)
            if _is_no_error(answer):
                break
            errors.append(answer)
        return errors

    def _query(self, command: str, writes: bool = False, retry: bool = False, reconnect: bool = True) -> str:
        self._ready(command, writes, reconnect)
        with self._mapped(command, writes=writes, retry=retry):
            return str(self._resource.query(command)).strip()

    def _command(self, command: str, reconnect: bool = True) -> None:
        self._ready(command, True, reconnect)
        with self._mapped(command, writes=True):
            self._resource.write(command)

    def _ready(self, command: str, writes: bool, reconnect: bool) -> None:
        """Open the resource; or, without `reconnect` (in the middle of a connect or of a write), only make
        sure it is still connected, since a new connection would lose what this one was doing."""
        if reconnect:
            self.open()
        elif self._resource is None or (self._socket is not None and visa_socket.peer_closed(self._socket)):
            self.close()
            raise InstrumentUnreachable(f"instrument of {self.module} at {self.resource_name} closed the "
                                        f"connection before {command!r}{UNKNOWN_OUTCOME if writes else ''}")

    @contextmanager
    def _mapped(self, command: str, writes: bool = False, opening: bool = False,
                retry: bool = False) -> Iterator[None]:
        """Turn what PyVISA (or the socket under it) raises into the bridge's errors; with `retry`, a
        connection the instrument closed is closed here and PeerClosed raised, for the caller to ask again."""
        where = f"instrument of {self.module} at {self.resource_name}"
        unknown = UNKNOWN_OUTCOME if writes else ""
        try:
            yield
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            if opening:
                raise InstrumentUnreachable(f"{where} cannot be opened ({exc})") from None
            self.close()
            if retry:
                raise visa_socket.PeerClosed(str(exc)) from None
            raise InstrumentUnreachable(f"{where} closed the connection{unknown}") from None
        except visa_socket.AnswerTooLong as exc:  # what it sent so far goes with the connection
            self.close()
            raise InstrumentError(f"{where} answered {command!r} without end: {exc}{unknown}") from None
        except ValueError as exc:
            if not opening:  # an answer that does not decode
                raise InstrumentError(f"{where} answered {command!r} with something unreadable: {exc}") from None
            raise InstrumentUnreachable(f"{where} cannot be opened ({exc})") from None  # PyVISA found no VISA library
        except (VisaIOError, OSError) as exc:
            code, reason = (exc.error_code, exc.description) if isinstance(exc, VisaIOError) else (
                None, str(exc) or type(exc).__name__)
            late = code == constants.StatusCode.error_timeout or isinstance(exc, TimeoutError)
            if code is not None and code not in _GONE and not late:
                raise InstrumentError(f"{where} failed on {command!r}: {reason}{unknown}") from None
            # Gone, or late: a late answer would be taken for the next query's, so start afresh next time.
            self.close()
            if late:
                raise InstrumentTimeout(f"{where} did not answer {command!r} within {self.timeout:g} s{unknown}") from None
            raise InstrumentUnreachable(f"{where} is unreachable ({reason}){unknown}") from None


def _is_no_error(answer: str) -> bool:
    """True for an error queue's "empty" answer: `0,"No error"`, `+0,"No error"`, `0`."""
    return answer.split(",", 1)[0].strip().lstrip("+") == "0"
