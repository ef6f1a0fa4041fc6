"""The `/procedures` and `/runs` part of `/openapi.json`: each procedure's body for `POST /runs`, and what each
route answers.

When the experiment process describes its procedures, `POST /runs` documents
one body per procedure (`oneOf`, told apart by `procedure`), each with the
procedure's parameters as `GET /procedures` gives them: types, units, limits,
defaults and docs, as an action's body is documented.  Without them (the
experiment process not reachable) the body is documented generically.  Every
operation's error statuses are listed here (openapi_responses.py adds the
codes of each); the success answers get their schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from labbridge.frontend.openapi_responses import BACKEND

_STRING_OR_NULL = {"type": ["string", "null"]}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
RUN_STATE: dict[str, Any] = {"type": "object", "required": ["id", "procedure", "status"], "properties": {
    "id": {"type": "string"}, "procedure": {"type": "string"},
    "status": {"type": "string", "description": "queued, running, paused, completed, stopped, failed, aborted, "
                                                "interrupted (or removed: a queued run deleted)"},
    "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "message": _STRING_OR_NULL, "points": {"type": "integer"}, "queued_by": _STRING_OR_NULL,
    "created": {"type": "number"}, "started": _NUMBER_OR_NULL, "finished": _NUMBER_OR_NULL,
    "error": {"anyOf": [{"type": "object"}, {"type": "null"}]},
    "href": {"type": "string", "description": "where to follow it"}}}
RUN: dict[str, Any] = copy.deepcopy(RUN_STATE)
RUN["properties"].update(parameters={"type": "object"}, metadata={"type": "object"})
QUEUE = {"type": "object", "required": ["started", "stop_after_current", "current", "queued", "runs"], "properties": {
    "started": {"type": "boolean"}, "stop_after_current": {"type": "boolean"},
    "continue_after_failure": {"type": "boolean"}, "current": _STRING_OR_NULL,
    "queued": {"type": "array", "items": {"type": "string"}, "description": "the queued runs' ids, next first"},
    "runs": {"type": "array", "items": RUN_STATE, "description": "the current run, then the queued ones in order"}}}
_METADATA = {"type": "object", "description": "Free-form, searchable with GET /runs?q= (sample, operator, comment)."}
GENERIC_BODY = {"type": "object", "required": ["procedure"], "additionalProperties": False, "properties": {
    "procedure": {"type": "string", "description": "A name from GET /procedures."},
    "parameters": {"type": "object"}, "metadata": _METADATA}}
RUN_LINKS = {name: {"operationId": operation, "parameters": {"run": "$response.body#/id"}}
             for name, operation in (("follow", "get_run"), ("abort", "abort_run"))}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _created(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": RUN}}, "links": RUN_LINKS}


# path -> method -> (its success answers, or None to keep FastAPI's; its error statuses)
OPERATIONS: dict[str, dict[str, tuple[dict[str, Any] | None, tuple[int, ...]]]] = {
    "/procedures": {"get": ({"200": _json("every procedure with its parameters", {"type": "object"})}, BACKEND)},
    "/runs": {"get": ({"200": _json("runs, newest first", {"type": "object", "properties": {
                  "runs": {"type": "array", "items": RUN}}})}, (422, *BACKEND)),
              "post": ({"201": _created("queued: the run, to follow at its href (also in Location)")},
                       (404, 413, 422, *BACKEND))},
    "/runs/queue": {"get": ({"200": _json("the queue", QUEUE)}, BACKEND)},
    "/runs/queue/{what}": {"post": ({"200": _json("the queue", QUEUE)}, (422, *BACKEND))},
    "/runs/{run}": {"get": ({"200": _json("the run, with its provenance", RUN)}, (404, 422, *BACKEND)),
                    "delete": ({"200": _json("removed (a queued run) or aborted", RUN)}, (404, 409, 422, *BACKEND))},
    "/runs/{run}/move": {"post": ({"200": _json("the queue, in its new order", QUEUE)},
                                  (404, 409, 413, 422, *BACKEND))},
    "/runs/{run}/rerun": {"post": ({"201": _created("queued again: the new run (also in Location)")},
                                   (404, 422, *BACKEND))},
    **{f"/runs/{{run}}/{what}": {"post": ({"200": _json("the run", RUN)}, (404, 409, 422, *BACKEND))}
       for what in ("pause", "resume", "stop")},
    "/runs/{run}/data": {"get": (None, (404, 422, *BACKEND))},  # JSON or CSV: routes/runs.py declares both
}


def procedure_body(name: str, description: dict[str, Any]) -> dict[str, Any]:
    """The body of `POST /runs` for one procedure: its name, its parameters' schema, metadata."""
    parameters = description["parameters"]
    return {"type": "object", "title": name, "description": description.get("doc", ""),
            "required": ["procedure", *(["parameters"] if parameters.get("required") else [])],
            "additionalProperties": False, "properties": {
                "procedure": {"type": "string", "enum": [name]}, "parameters": parameters, "metadata": _METADATA}}


def document_runs(paths: dict[str, Any], procedures: dict[str, Any] | None) -> None:
    """Give the run routes in `paths` their answers, error statuses (as `x-statuses`) and `POST /runs` its bodies."""
    for path, methods in OPERATIONS.items():
        for method, (success, statuses) in methods.items():
            operation = paths.get(path, {}).get(method)
            if operation is None:
                continue
            if success is not None:
                operation["responses"] = copy.deepcopy(success)
            operation["x-statuses"] = statuses
    submit = paths.get("/runs", {}).get("post")
    if submit is None:
        return
    if procedures:
        schema: dict[str, Any] = {"oneOf": [procedure_body(name, info) for name, info in procedures.items()]}
        names = ", ".join(procedures)
        submit["description"] = f"Procedures: {names}. Each body's `parameters` are checked before anything is queued."
    else:
        schema = copy.deepcopy(GENERIC_BODY)
    submit["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
