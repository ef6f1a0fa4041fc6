"""VisaSession: one message-based VISA resource (PyVISA), opened on demand, its failures mapped to the bridge's errors.

Every method blocks, so ScpiModule calls them only from hooks written with
plain `def`, which run on the module's worker thread (worker.py).  The mapping:

    VI_ERROR_TMO, socket timeout             InstrumentTimeout (504; a write's outcome is unknown)
    resource not found, connection refused
    or lost, no VISA library                 InstrumentUnreachable (502); reopened on the next call
    an error in the queue after a write      InstrumentError (502) with the instrument's own text
    any other VISA error                     InstrumentError (502)

`library` is PyVISA's: "" picks an installed VISA (NI, Keysight, R&S) or else
pyvisa-py; "<device file>@sim" is pyvisa-sim with that device file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from labbridge.core.errors import UNKNOWN_OUTCOME, InstrumentError, InstrumentTimeout, InstrumentUnreachable

log = logging.getLogger(__name__)

# VISA status codes that mean "nobody there": the resource is dropped and opened again on the next call.
_GONE = {constants.StatusCode.error_resource_not_found, constants.StatusCode.error_connection_lost,
         constants.StatusCode.error_invalid_resource_name, constants.StatusCode.error_resource_busy,
         constants.StatusCode.error_resource_locked, constants.StatusCode.error_closing_failed,
         constants.StatusCode.error_invalid_object}
# How many entries of the error queue are read after a refused write (so none is blamed on the next one).
_MAX_QUEUED_ERRORS = 16


class VisaSession:
    """The VISA resource of one module: `query`, `write` (checked against the error queue), `close`."""

    def __init__(self, module: str, resource: str, *, library: str, timeout: float, open_timeout: float,
                 read_termination: str, write_termination: str, error_query: str | None,
                 options: dict[str, Any] | None = None) -> None:
        self.module, self.resource_name, self.library = module, resource, library
        self.timeout, self.open_timeout = timeout, open_timeout
        self.read_termination, self.write_termination = read_termination, write_termination
        self.error_query = error_query
        self.options = options or {}  # more attributes to set on open, such as baud_rate
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: Any = None

    def open(self) -> None:
        """Open the resource unless it is open (and clear its error queue); InstrumentUnreachable if it cannot be."""
        if self._resource is not None:
            return
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
        if self.error_query is not None:
            self._command("*CLS")  # start from an empty error queue: an old error is not ours

    def query(self, command: str) -> str:
        """Send a query and return the instrument's answer, without its line ending."""
        self.open()
        with self._mapped(command):
            return str(self._resource.query(command)).strip()

    def write(self, command: str) -> None:
        """Send a command; if the instrument keeps an error queue, raise its error when it refused the command."""
        self._command(command)
        if self.error_query is None:
            return
        errors = []
        for _ in range(_MAX_QUEUED_ERRORS):
            answer = self.query(self.error_query)
            if _is_no_error(answer):
                break
            errors.append(answer)
        if errors:
            raise InstrumentError(f"instrument of {self.module} refused {command!r}: {'; '.join(errors)}")

    def close(self) -> None:
        """Close the resource (the manager stays: other modules may have resources open through it)."""
        resource, self._resource = self._resource, None
        if resource is not None:
            try:
                resource.close()
            except Exception as exc:  # a resource that is already gone: nothing left to close
                log.debug("closing %s of module %s: %s", self.resource_name, self.module, exc)

    def _command(self, command: str) -> None:
        self.open()
        with self._mapped(command, writes=True):
            self._resource.write(command)

    @contextmanager
    def _mapped(self, command: str, writes: bool = False, opening: bool = False) -> Iterator[None]:
        """Turn what PyVISA (or the socket under it) raises into the bridge's errors."""
        where = f"instrument of {self.module} at {self.resource_name}"
        unknown = UNKNOWN_OUTCOME if writes else ""
        try:
            yield
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
