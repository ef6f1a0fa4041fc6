"""What an operation of `/openapi.json` may answer besides success, and when it needs a token.

Every error the frontend sends is `{"error": code, "message": text}`; the
codes and their statuses come from core/errors.py (plus the two that routing
raises), so a new error class is documented without touching this file.
Some statuses can come on any route: 400 (refused before routing), 403
(`open_network_refused`, a wrong token, or a token whose role does not allow
the request), 500, and, on every route that asks
the experiment process, 503 and 504.  401 is documented, and the bearer scheme
declared, only for operations that need a token with the configured tokens:
writes whenever tokens exist, reads too with `auth_reads`.
"""

from __future__ import annotations

from typing import Any

from labbridge.core.errors import ERRORS_BY_NAME
from labbridge.frontend.responses import HTTP_ERROR_CODES

SECURITY_SCHEME = {"HTTPBearer": {"type": "http", "scheme": "bearer",
                                  "description": "A token from frontend.token_file (or $BRIDGE_TOKEN). Its "
                                                 "identity's role allows reads (`read`), also writes "
                                                 "(`operate`), or everything (`admin`)."}}

# Why a status can come; the codes it comes with are added from the error classes.
REASONS: dict[int, str] = {
    400: "the request was refused before it was routed",
    401: "a token is configured and this request has no `Authorization: Bearer` header",
    403: "the token is not valid, or its identity's role does not allow this request (reads need `read`, "
         "writes `operate`; the message names the role needed), or no token is configured and the request "
         "came from the network",
    404: "no such module or attribute",
    405: "the attribute is read-only (see `Allow`), or the method is not served here",
    406: "`Accept` asks only for application/x-npy, and the value is not an array",
    409: "a running action owns what this request would change",
    413: "the body is over frontend.max_body_bytes",
    422: "the body is not `{\"value\": ...}`, or the value has the wrong type, is not finite, "
         "or is outside the limits",
    429: "too many actions of this module, or of this client, are pending or running (`Retry-After` is set)",
    500: "an unexpected error in the frontend (details are in its log)",
    502: "the instrument could not be reached or answered with something unexpected",
    503: "the experiment process is not running, or the module's queue is full (`Retry-After` is set)",
    504: "the instrument or the experiment process did not answer in time; a timed-out write's outcome is unknown",
}
ANY_ROUTE = (400, 403, 500)
BACKEND = (503, 504)


def codes_by_status() -> dict[int, list[str]]:
    found: dict[int, set[str]] = {}
    for error in ERRORS_BY_NAME.values():
        found.setdefault(error.status, set()).add(error.code)
    for status, code in HTTP_ERROR_CODES.items():
        found.setdefault(status, set()).add(code)
    return {status: sorted(codes) for status, codes in found.items()}


def error_schema() -> dict[str, Any]:
    """The body of every error answer."""
    every = sorted({code for codes in codes_by_status().values() for code in codes} | {"http_error"})
    return {"type": "object", "required": ["error", "message"], "additionalProperties": False, "properties": {
        "error": {"type": "string", "enum": every, "description": "a stable code, see `responses` for each status"},
        "message": {"type": "string", "description": "what was wrong, in words"}}}


def error_response(status: int) -> dict[str, Any]:
    codes = codes_by_status().get(status, [])
    named = f" (`{'`, `'.join(codes)}`)" if codes else ""
    return {"description": f"{REASONS.get(status, 'error')}{named}",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def add_errors(operation: dict[str, Any], statuses: tuple[int, ...], *, needs_token: bool) -> None:
    """Document `statuses` plus the ones any route may answer; declare the bearer scheme if a token is needed."""
    responses = operation.setdefault("responses", {})
    for key, response in list(responses.items()):
        if "HTTPValidationError" in str(response):  # FastAPI's own 422 shape: ours is the Error body
            del responses[key]
    wanted = {*ANY_ROUTE, *statuses, *((401,) if needs_token else ())}
    if 409 in wanted and 409 not in codes_by_status():
        wanted.discard(409)  # only once an error class answers 409 (actions' `busy`)
    for status in sorted(wanted):
        responses.setdefault(str(status), error_response(status))
    operation.pop("security", None)
    if needs_token:
        operation["security"] = [{"HTTPBearer": []}]
