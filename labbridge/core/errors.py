"""The bridge's errors, each carrying its HTTP status and a stable code.

Both processes share this tree: the backend raises these, sends the class name
over ZeroMQ (see protocol.py), and the frontend re-raises the same class by name
so that one exception handler in main.py renders every error.

    BridgeError                  500 internal_error
    ├── HostNotAllowed           400 host_not_allowed
    ├── NotAuthenticated         401 not_authenticated
    ├── Forbidden                403 forbidden
    │   ├── OpenNetworkRefused   403 open_network_refused
    │   └── OriginNotAllowed     403 origin_not_allowed
    ├── UnknownModule            404 unknown_module
    ├── UnknownAttribute         404 unknown_attribute
    ├── HistoryOff               404 history_off
    ├── ReadOnlyAttribute        405 read_only
    ├── UnknownAction            404 unknown_action
    ├── UnknownInvocation        404 unknown_invocation
    ├── NotAnAction              405 method_not_allowed (POST to an attribute)
    ├── NotAcceptable            406 not_acceptable (only .npy accepted, for a value that is not an array)
    ├── Busy                     409 busy (an action holds what the request would change)
    ├── AlreadyFinished          409 already_finished (cancelling a finished invocation)
    ├── Interlocked              409 interlocked (an interlock refuses it: names the rule and the values)
    ├── UnknownInterlock         404 unknown_interlock
    ├── ActionsUnavailable       503 actions_unavailable (data_dir cannot journal invocations)
    ├── AuditUnavailable         503 audit_unavailable (the audit log cannot be written: the write was refused)
    ├── MalformedRequest         422 malformed_request
    ├── ClientDisconnected       400 client_disconnected (nobody hears it: for the audit log)
    ├── PayloadTooLarge          413 payload_too_large
    ├── HeadersTooLarge          431 headers_too_large
    ├── InvalidValue             422 invalid_value
    ├── HistoryTooLarge          422 history_too_large (a query past history.max_query_rows: narrow it)
    ├── TooManyActions           429 too_many_actions (past actions.max_per_module or max_per_client; Retry-After)
    ├── InstrumentError          502 instrument_error
    │   └── InstrumentUnreachable 502 instrument_unreachable
    ├── InstrumentTimeout        504 instrument_timeout
    ├── BackendUnavailable       503 backend_unavailable
    │   ├── BackendNotReached    503 backend_unavailable (nothing was sent)
    │   │   └── ExperimentUnavailable 503 experiment_unavailable (one experiment process of a lab is down, or
    │   │                             speaks another protocol version: names it; nothing was sent)
    │   └── BackendBusy          503 backend_busy
    ├── HistoryUnavailable       503 history_unavailable
    ├── TooManyConnections       503 too_many_connections
    ├── TooManyLargeAnswers      503 too_many_large_answers (large answers not yet taken by their clients)
    ├── BackendTimeout           504 backend_timeout
    └── DeadlineExceeded         504 deadline_exceeded
"""

from __future__ import annotations

from typing import ClassVar


class BridgeError(Exception):
    """Base of every error the bridge reports to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers that go with this error (none by default)."""
        return {}


class HostNotAllowed(BridgeError):
    status = 400
    code = "host_not_allowed"


class NotAuthenticated(BridgeError):
    status = 401
    code = "not_authenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(BridgeError):
    status = 403
    code = "forbidden"


class OpenNetworkRefused(Forbidden):
    code = "open_network_refused"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


class UnknownModule(BridgeError):
    status = 404
    code = "unknown_module"


class UnknownAttribute(BridgeError):
    status = 404
    code = "unknown_attribute"


class ReadOnlyAttribute(BridgeError):
    status = 405
    code = "read_only"

    def headers(self) -> dict[str, str]:
        return {"Allow": "GET"}


class MalformedRequest(BridgeError):
    status = 422
    code = "malformed_request"


class NotAcceptable(BridgeError):
    """The client takes only formats this answer does not come in (`.npy` for a value that is not an array)."""

    status = 406
    code = "not_acceptable"


class ClientDisconnected(BridgeError):
    """The client went away before its request body was complete; nothing was forwarded."""

    status = 400
    code = "client_disconnected"


class PayloadTooLarge(BridgeError):
    status = 413
    code = "payload_too_large"


class HeadersTooLarge(BridgeError):
    status = 431
    code = "headers_too_large"


class InvalidValue(BridgeError):
    status = 422
    code = "invalid_value"


class HistoryTooLarge(BridgeError):
    """A history query would read more rows than one query may (config.yml's history.max_query_rows)."""

    status = 422
    code = "history_too_large"


class TooManyActions(BridgeError):
    """Too many invocations of a module, or of one client, are unfinished (config.yml's `actions:`)."""

    status = 429
    code = "too_many_actions"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class InstrumentError(BridgeError):
    status = 502
    code = "instrument_error"


class InstrumentUnreachable(InstrumentError):
    code = "instrument_unreachable"


class InstrumentTimeout(BridgeError):
    status = 504
    code = "instrument_timeout"


class BackendUnavailable(BridgeError):
    status = 503
    code = "backend_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class BackendNotReached(BackendUnavailable):
    """No experiment process took the request: it was never sent (so a write certainly did not happen)."""


class BackendWentAway(BackendUnavailable):
    """The request was sent, and the experiment process went away before answering: a write may have reached
    the instrument (its own `started` line, if it wrote one, says so)."""


class BackendBusy(BackendUnavailable):
    code = "backend_busy"


class ExperimentUnavailable(BackendNotReached):
    """One experiment process of a lab (config `experiments:`) does not answer its heartbeat, or was refused for
    its protocol version: its modules answer this, naming it, while the others' keep answering (nothing was sent)."""

    code = "experiment_unavailable"


class HistoryOff(BridgeError):
    """Nothing is recorded: config.yml has no `history:` section."""

    status = 404
    code = "history_off"


class HistoryUnavailable(BridgeError):
    """The history database cannot be read just now."""

    status = 503
    code = "history_unavailable"


class TooManyConnections(BridgeError):
    """The frontend holds `max_connections` busy connections (server_limits.py)."""

    status = 503
    code = "too_many_connections"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TooManyLargeAnswers(BridgeError):
    """The frontend holds its maximum of large answers that their clients have not taken yet (large_answers.py)."""

    status = 503
    code = "too_many_large_answers"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class BackendTimeout(BridgeError):
    status = 504
    code = "backend_timeout"


class DeadlineExceeded(BridgeError):
    status = 504
    code = "deadline_exceeded"


class UnknownAction(BridgeError):
    status = 404
    code = "unknown_action"


class UnknownInvocation(BridgeError):
    status = 404
    code = "unknown_invocation"


class NotAnAction(BridgeError):
    """POST to an attribute: `allow` names the methods it takes (the frontend fills it in)."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, detail: str, allow: str = "GET, PUT") -> None:
        super().__init__(detail)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class ActionsUnavailable(BridgeError):
    """The experiment process cannot journal invocations just now (config.yml's data_dir), so none starts."""

    status = 503
    code = "actions_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class AuditUnavailable(BridgeError):
    """The audit log cannot be written (a full or failing disk), so a write was refused before it reached the
    instrument: a write the bridge cannot record does not happen."""

    status = 503
    code = "audit_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class Busy(BridgeError):
    """A running action owns what the request would change; the message names the invocation to cancel."""

    status = 409
    code = "busy"


class AlreadyFinished(BridgeError):
    status = 409
    code = "already_finished"


class Interlocked(BridgeError):
    """An interlock (config.yml `interlocks:`) refuses the write, action or run; the message names the rule, its
    condition and the values that failed it.  Nothing reached the instrument."""

    status = 409
    code = "interlocked"


class UnknownInterlock(BridgeError):
    status = 404
    code = "unknown_interlock"


class UnknownProcedure(BridgeError):
    status = 404
    code = "unknown_procedure"


class UnknownRun(BridgeError):
    status = 404
    code = "unknown_run"


class WrongRunState(BridgeError):
    """A run cannot do that in its state (pause a queued run, resume one that is not paused)."""

    status = 409
    code = "wrong_run_state"


class RunsUnavailable(BridgeError):
    """The run store cannot be opened or written: no run is queued or started."""

    status = 503
    code = "runs_unavailable"


# Appended to a timeout on a write: the instrument may or may not have applied it.
UNKNOWN_OUTCOME = "; the write's outcome is unknown, read the value back"


def _subclasses(cls: type[BridgeError]) -> list[type[BridgeError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


ERRORS_BY_NAME: dict[str, type[BridgeError]] = {cls.__name__: cls for cls in _subclasses(BridgeError)}


def error_from_name(name: str, detail: str) -> BridgeError:
    """Rebuild an error sent over the wire; an unknown name becomes a plain BridgeError."""
    return ERRORS_BY_NAME.get(name, BridgeError)(detail)
