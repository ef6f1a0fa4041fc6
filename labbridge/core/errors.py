"""The bridge's errors, each carrying its HTTP status and a stable code.

Both processes share this tree: the backend raises these, sends the class name
over ZeroMQ (see protocol.py), and the frontend re-raises the same class by name
so that one exception handler in main.py renders every error.

    BridgeError                  500 internal_error
    ├── NotAuthenticated         401 not_authenticated
    ├── Forbidden                403 forbidden
    │   └── OpenNetworkRefused   403 open_network_refused
    ├── UnknownModule            404 unknown_module
    ├── UnknownAttribute         404 unknown_attribute
    ├── ReadOnlyAttribute        405 read_only
    ├── UnknownAction            404 unknown_action
    ├── UnknownInvocation        404 unknown_invocation
    ├── NotAnAction              405 method_not_allowed (POST to an attribute)
    ├── Busy                     409 busy (an action holds what the request would change)
    ├── AlreadyFinished          409 already_finished (cancelling a finished invocation)
    ├── MalformedRequest         422 malformed_request
    ├── PayloadTooLarge          413 payload_too_large
    ├── InvalidValue             422 invalid_value
    ├── InstrumentError          502 instrument_error
    │   └── InstrumentUnreachable 502 instrument_unreachable
    ├── InstrumentTimeout        504 instrument_timeout
    ├── BackendUnavailable       503 backend_unavailable
    │   └── BackendBusy          503 backend_busy
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


class PayloadTooLarge(BridgeError):
    status = 413
    code = "payload_too_large"


class InvalidValue(BridgeError):
    status = 422
    code = "invalid_value"


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


class BackendBusy(BackendUnavailable):
    code = "backend_busy"


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
    status = 405
    code = "method_not_allowed"

    def headers(self) -> dict[str, str]:
        return {"Allow": "GET, PUT"}


class Busy(BridgeError):
    """A running action owns what the request would change; the message names the invocation to cancel."""

    status = 409
    code = "busy"


class AlreadyFinished(BridgeError):
    status = 409
    code = "already_finished"


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
