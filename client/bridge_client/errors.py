"""The bridge's errors as Python exceptions: one class per error code, under BridgeError.

The bridge answers every error as `{"error": code, "message": text}` with an
HTTP status; `error_from_response` turns that into the class registered for
the code, carrying `status`, `code` and `message` (the bridge's own words).  A
code this client does not know (a newer bridge) becomes a plain BridgeError
with that code, so `except BridgeError` always catches it; but a 401 or 403 of
an unknown code (a newer bridge's, or a proxy's page) is still a
NotAuthenticated or Forbidden, so `except Forbidden` catches every refusal.

    BridgeError                      any error; unknown codes
    ├── HostNotAllowed               400 host_not_allowed
    ├── NotAuthenticated             401 not_authenticated (and any 401 of an unknown code)
    ├── Forbidden                    403 forbidden: a wrong token, or a role that does not allow the
    │   │                                request ("this needs the operate role; alice has read");
    │   │                                any 403 of an unknown code too
    │   ├── OpenNetworkRefused       403 open_network_refused
    │   └── OriginNotAllowed         403 origin_not_allowed
    ├── NotFound                     404 not_found
    ├── UnknownModule                404 unknown_module     (also an AttributeError)
    ├── UnknownAttribute             404 unknown_attribute  (also an AttributeError)
    ├── UnknownAction                404 unknown_action     (also an AttributeError)
    ├── UnknownInvocation            404 unknown_invocation
    ├── UnknownProcedure             404 unknown_procedure: config.yml declares no procedure of that name
    ├── UnknownRun                   404 unknown_run
    ├── HistoryOff                   404 history_off
    ├── ReadOnly                     405 read_only          (also an AttributeError)
    ├── MethodNotAllowed             405 method_not_allowed
    ├── NotAcceptable                406 not_acceptable: .npy asked for a value that is not an array
    ├── Busy                         409 busy: a running action owns what was written
    ├── AlreadyFinished              409 already_finished: cancelling an invocation (or a run) that has ended
    ├── WrongRunState                409 wrong_run_state: pausing a queued run, resuming one that is not paused
    ├── Interlocked                  409 interlocked: an interlock refuses the write, action or run (names the rule
    │                                    and the values); nothing reached the instrument
    ├── UnknownInterlock             404 unknown_interlock
    ├── PayloadTooLarge              413 payload_too_large
    ├── HeadersTooLarge              431 headers_too_large
    ├── MalformedRequest             422 malformed_request
    ├── InvalidValue                 422 invalid_value      (also a ValueError)
    ├── HistoryTooLarge              422 history_too_large: ask for a shorter range
    ├── TooManyActions               429 too_many_actions: wait for an action to end (Retry-After)
    ├── InternalError                500 internal_error
    ├── InstrumentError              502 instrument_error
    │   └── InstrumentUnreachable    502 instrument_unreachable
    ├── BackendUnavailable           503 backend_unavailable
    │   ├── BackendBusy              503 backend_busy
    │   └── ExperimentUnavailable    503 experiment_unavailable: the lab PC that holds this module is down (or
    │                                    runs another release); the message names it
    ├── ActionsUnavailable           503 actions_unavailable: no action starts (the bridge cannot record it)
    ├── AuditUnavailable             503 audit_unavailable: the write was refused (its audit line cannot be written)
    ├── HistoryUnavailable           503 history_unavailable
    ├── RunsUnavailable              503 runs_unavailable: the run store cannot be used; nothing was queued
    ├── TooManyConnections           503 too_many_connections
    ├── TooManyLargeAnswers          503 too_many_large_answers: the frontend holds all the large answers it may
    ├── InstrumentTimeout            504 instrument_timeout
    ├── BackendTimeout               504 backend_timeout
    ├── DeadlineExceeded             504 deadline_exceeded: it never ran
    ├── ActionCancelled              an invocation waited for was cancelled (code "cancelled")
    ├── ActionLost                   an invocation waited for was lost: the experiment process died (code "lost")
    ├── RunFailed                    a run waited for failed (code: the run's own error code)
    ├── RunAborted                   a run waited for was aborted, or removed from the queue (code "aborted")
    ├── RunInterrupted               a run waited for was cut short by a crash of the experiment process
    └── BridgeUnreachable            no HTTP answer at all (the frontend is down, or the line broke)

An invocation that failed raises, from `wait()`, the class of the error it
reports (`InstrumentError`, say), with no HTTP status: the request to wait
succeeded, the action did not.  (The bridge's `client_disconnected` is only
ever written to its audit log: no client hears it.)

`outcome_unknown` is True when a write may or may not have happened (it timed
out, or the connection broke after it was sent): read the value back before
trying again.  The client never resends a write by itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar

# The bridge's words for "this write may or may not have happened".
_UNKNOWN_OUTCOME = re.compile(r"outcome (is )?unknown")


class BridgeError(Exception):
    """An error the bridge reported (or that kept the client from reaching it)."""

    default_code: ClassVar[str] = "bridge_error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.default_code
        self.outcome_unknown = outcome_unknown

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class HostNotAllowed(BridgeError):
    default_code = "host_not_allowed"


class NotAuthenticated(BridgeError):
    default_code = "not_authenticated"


class Forbidden(BridgeError):
    default_code = "forbidden"


class OpenNetworkRefused(Forbidden):
    default_code = "open_network_refused"


class OriginNotAllowed(Forbidden):
    default_code = "origin_not_allowed"


class NotFound(BridgeError):
    default_code = "not_found"


class UnknownModule(BridgeError, AttributeError):
    default_code = "unknown_module"


class UnknownAttribute(BridgeError, AttributeError):
    default_code = "unknown_attribute"


class UnknownAction(BridgeError, AttributeError):
    default_code = "unknown_action"


class UnknownInvocation(BridgeError):
    default_code = "unknown_invocation"


class UnknownProcedure(BridgeError):
    default_code = "unknown_procedure"


class UnknownRun(BridgeError):
    default_code = "unknown_run"


class HistoryOff(BridgeError):
    default_code = "history_off"


class ReadOnly(BridgeError, AttributeError):
    default_code = "read_only"


class MethodNotAllowed(BridgeError):
    default_code = "method_not_allowed"


class NotAcceptable(BridgeError):
    default_code = "not_acceptable"


class Busy(BridgeError):
    default_code = "busy"


class AlreadyFinished(BridgeError):
    default_code = "already_finished"


class WrongRunState(BridgeError):
    """A run cannot do that in its state: pause or stop a queued run (abort removes it), resume one not paused."""

    default_code = "wrong_run_state"


class Interlocked(BridgeError):
    """An interlock of the bridge's config.yml refused the write, action or run; the message names the rule, its
    condition and the values that failed it.  Nothing reached the instrument."""

    default_code = "interlocked"


class UnknownInterlock(BridgeError):
    default_code = "unknown_interlock"


class PayloadTooLarge(BridgeError):
    default_code = "payload_too_large"


class HeadersTooLarge(BridgeError):
    default_code = "headers_too_large"


class MalformedRequest(BridgeError):
    default_code = "malformed_request"


class InvalidValue(BridgeError, ValueError):
    default_code = "invalid_value"


class HistoryTooLarge(BridgeError):
    """A history query would read more recorded values than the bridge allows one query: ask for a shorter range."""

    default_code = "history_too_large"


class TooManyActions(BridgeError):
    """Too many actions of the module, or of this client, are pending or running: wait for one to end."""

    default_code = "too_many_actions"


class InternalError(BridgeError):
    default_code = "internal_error"


class InstrumentError(BridgeError):
    default_code = "instrument_error"


class InstrumentUnreachable(InstrumentError):
    default_code = "instrument_unreachable"


class BackendUnavailable(BridgeError):
    default_code = "backend_unavailable"


class BackendBusy(BackendUnavailable):
    default_code = "backend_busy"


class ExperimentUnavailable(BackendUnavailable):
    """One experiment process of the lab is down: its modules are unavailable, the others' are not."""

    default_code = "experiment_unavailable"


class ActionsUnavailable(BridgeError):
    default_code = "actions_unavailable"


class AuditUnavailable(BridgeError):
    """The bridge cannot write its audit log (a full disk), so it refused the write: nothing reached the instrument."""

    default_code = "audit_unavailable"


class HistoryUnavailable(BridgeError):
    default_code = "history_unavailable"


class RunsUnavailable(BridgeError):
    """The bridge cannot open or write its run store: no run was queued (and none can be read)."""

    default_code = "runs_unavailable"


class TooManyConnections(BridgeError):
    default_code = "too_many_connections"


class TooManyLargeAnswers(BridgeError):
    default_code = "too_many_large_answers"


class InstrumentTimeout(BridgeError):
    default_code = "instrument_timeout"


class BackendTimeout(BridgeError):
    default_code = "backend_timeout"


class DeadlineExceeded(BridgeError):
    default_code = "deadline_exceeded"


class ActionCancelled(BridgeError):
    """An invocation that was waited for ended cancelled (by `cancel()`, Ctrl+C, the dashboard or another client)."""

    default_code = "cancelled"


class ActionLost(BridgeError):
    """An invocation that was waited for is lost: the experiment process stopped while it ran."""

    default_code = "lost"


class RunFailed(BridgeError):
    """A run that was waited for failed: `code` is its error's code (`procedure_failed` when the procedure raised,
    `busy` when what it drives was held), `traceback` the last lines of the procedure's traceback."""

    default_code = "run_failed"

    def __init__(self, message: str, *, traceback: str | None = None, **options: Any) -> None:
        super().__init__(message, **options)
        self.traceback = traceback


class RunAborted(BridgeError):
    """A run that was waited for was aborted (`abort()`, Ctrl+C, the dashboard), or removed while still queued."""

    default_code = "aborted"


class RunInterrupted(BridgeError):
    """A run that was waited for was cut short: the experiment process stopped while it ran (its points up to
    then are kept)."""

    default_code = "interrupted"


class BridgeUnreachable(BridgeError):
    default_code = "bridge_unreachable"


def _subclasses(cls: type[BridgeError]) -> list[type[BridgeError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


ERRORS_BY_CODE: dict[str, type[BridgeError]] = {cls.default_code: cls for cls in _subclasses(BridgeError)}
# The class of an error whose code this client does not know, by its status.
_BY_STATUS: dict[int, type[BridgeError]] = {401: NotAuthenticated, 403: Forbidden}
# Errors after which a write may have been applied, whatever its message says.
_WRITE_UNKNOWN_CODES = frozenset({"instrument_timeout", "backend_timeout"})


def error_from_response(status: int, body: bytes, *, write: bool) -> BridgeError:
    """The exception for an error answer; `write` says whether the request changed something."""
    try:
        data: Any = json.loads(body)
        code, message = str(data["error"]), str(data["message"])
    except (ValueError, TypeError, KeyError):
        # Not the bridge's JSON (a proxy's page, say): keep what can be told.
        code, message = "http_error", f"HTTP {status}: {body[:200].decode('utf-8', 'replace').strip()}"
    unknown = write and (code in _WRITE_UNKNOWN_CODES or bool(_UNKNOWN_OUTCOME.search(message)))
    cls = ERRORS_BY_CODE.get(code, _BY_STATUS.get(status, BridgeError))
    return cls(message, status=status, code=code, outcome_unknown=unknown)


def unknown_module(name: str, known: Iterable[str]) -> UnknownModule:
    """The error for a module name the bridge did not describe, in the bridge's words."""
    return UnknownModule(f"no module named {name!r}; known: {', '.join(known) or 'none'}")


def error_of_invocation(error: Any, what: str) -> BridgeError:
    """The exception for a failed invocation's `error` (`{"error": code, "message": text}`); `what` names it."""
    data = error if isinstance(error, dict) else {}
    code, message = str(data.get("error", "")), str(data.get("message", ""))
    return ERRORS_BY_CODE.get(code, BridgeError)(f"{what} failed: {message or 'no reason given'}", code=code or None)


def unknown_attribute(module: str, name: str, known: Iterable[str]) -> UnknownAttribute:
    """The error for an attribute the module does not declare, in the bridge's words."""
    return UnknownAttribute(f"module {module!r} has no attribute {name!r}; known: {', '.join(known) or 'none'}")


def unknown_action(module: str, name: str, known: Iterable[str]) -> UnknownAction:
    """The error for an action the module does not declare, in the bridge's words."""
    return UnknownAction(f"module {module!r} has no action {name!r}; known: {', '.join(known) or 'none'}")
