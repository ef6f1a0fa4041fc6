"""The lab's OpenAPI document: one path per module attribute and action, and every status each operation can answer.

routes/docs.py serves `/openapi.json` as FastAPI's schema of the routes passed
through `lab_schema`.  When the experiment process describes its modules, the
templated `/{module}` and `/{module}/{attribute}` give way to one path per
module and attribute, each with its own value schema: a write's body carries
the type and limits the bridge enforces, so generated clients and fuzzers know
what is valid.  Error answers, and the bearer scheme when tokens are configured,
are documented by openapi_responses.py.
"""

from __future__ import annotations

import copy
from typing import Any

from labbridge.core.action import STATUSES
from labbridge.core.values import limits_text
from labbridge.frontend.npy import NPY_MEDIA_TYPE
from labbridge.frontend.openapi_responses import BACKEND, SECURITY_SCHEME, add_errors, error_schema
from labbridge.frontend.openapi_runs import document_runs

_JSON_TYPES = {"float": "number", "int": "integer", "str": "string", "bool": "boolean"}
# The templates that the described modules' own paths replace.
HISTORY_PATH = "/{module}/{attribute}/history"
GENERIC_PATHS = ("/{module}", "/{module}/{attribute}", HISTORY_PATH)
# Paths served without a token whatever is configured (probes need /health).
OPEN_PATHS = frozenset({"/health"})
_OBJECT = {"type": "object"}
# What a started invocation leads to (routes/invocations.py): follow it, or cancel it.
INVOCATION_LINKS = {name: {"operationId": operation, "parameters": {"invocation": "$response.body#/id"}}
                    for name, operation in (("follow", "get_invocation"), ("cancel", "cancel_invocation"))}
TIME_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
_REF = "#/components/schemas/"
SCHEMAS: dict[str, Any] = {
    "Attribute": {"type": "object", "required": ["type", "unit", "writable", "doc"], "properties": {
        "type": {"type": "string"}, "unit": {"type": ["string", "null"]}, "writable": {"type": "boolean"},
        "doc": {"type": "string"}, "min": {"type": "number"}, "max": {"type": "number"},
        "choices": {"type": "array"}, "url": {"type": "string"}}},
    "Module": {"type": "object", "required": ["class", "doc", "attributes"], "properties": {
        "module": {"type": "string"}, "class": {"type": "string"}, "doc": {"type": "string"},
        "attributes": {"type": "object", "additionalProperties": {"$ref": _REF + "Attribute"}},
        "links": _OBJECT}},
    "Modules": {"type": "object", "required": ["modules"], "properties": {
        "modules": {"type": "object", "additionalProperties": {"$ref": _REF + "Module"}}}},
    "Health": {"type": "object", "required": ["status", "frontend", "backend"], "properties": {
        "status": {"enum": ["ok", "degraded", "down"]}, "frontend": {"type": "string"},
        "backend": _OBJECT, "modules": _OBJECT}},
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Success answers and error statuses of the routes FastAPI documents (by path, then method).
_FIXED: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "/": ({"200": {"description": "the dashboard for browsers, the modules as JSON otherwise", "content": {
        "application/json": {"schema": {"$ref": _REF + "Modules"}}, "text/html": {"schema": {"type": "string"}}}}},
        BACKEND),
    "/modules": ({"200": _json("every module with its description", {"$ref": _REF + "Modules"})}, BACKEND),
    "/health": ({"200": _json("the backend answers", {"$ref": _REF + "Health"}),
                 "503": _json("the backend does not answer", {"$ref": _REF + "Health"})}, ()),
    "/{module}": ({"200": _json("the module's description", {"$ref": _REF + "Module"})}, (404, *BACKEND)),
    "/{module}/{attribute}": ({"200": _json("the value, or a module's summary", _OBJECT)},
                              (404, 405, 406, 409, 413, 422, 502, *BACKEND)),
    # Its success answers (JSON, CSV) are declared by routes/history.py itself.
    HISTORY_PATH: ({}, (404, 422, *BACKEND)),
    # Their success answers are declared by routes/invocations.py.
    "/invocations": ({}, (404, 422, *BACKEND)),
    "/invocations/{invocation}": ({}, (404, 409, 422, *BACKEND)),
}


def value_schema(info: dict[str, Any], *, limits: bool = True) -> dict[str, Any]:
    """JSON Schema of an attribute's value; with `limits`, also its limits and choices (what a write must meet)."""
    kind = info["type"]
    if kind.startswith("ndarray["):
        return _ndarray_schema(info["dtype"], info.get("shape"))
    schema: dict[str, Any] = {"type": _JSON_TYPES.get(kind, "array" if kind.startswith("list[") else "string")}
    if kind.startswith("list["):
        schema["items"] = {"type": _JSON_TYPES.get(kind[5:-1], "string")}
    if limits:
        for key, keyword in (("min", "minimum"), ("max", "maximum"), ("choices", "enum")):
            if key in info:
                schema[keyword] = info[key]
    if "max_length" in info:
        schema["maxLength"] = info["max_length"]
    return schema


def _ndarray_schema(dtype: str, shape: list[int | None] | None) -> dict[str, Any]:
    """An NDArray as JSON: nested arrays, one level per dimension, of booleans, integers or numbers."""
    schema: dict[str, Any] = {"type": "boolean" if dtype == "bool" else "number" if "float" in dtype else "integer"}
    for length in reversed(shape if shape is not None else [None]):
        schema = {"type": "array", "items": schema}
        if length is not None:
            schema.update(minItems=length, maxItems=length)
    return schema


def _reading(info: dict[str, Any]) -> dict[str, Any]:
    """A value as read: the declared type, or null (a reading the instrument could not make)."""
    value = value_schema(info, limits=False)
    return {"type": "object", "required": ["module", "attribute", "value", "unit"], "properties": {
        "module": {"type": "string"}, "attribute": {"type": "string"},
        "value": {"anyOf": [value, {"type": "null"}]}, "unit": {"type": ["string", "null"]}}}


def _operation(module: str, operation_id: str, summary: str, description: str, ok: dict[str, Any],
               statuses: tuple[int, ...]) -> dict[str, Any]:
    return {"tags": [module], "summary": summary, "description": description, "operationId": operation_id,
            "responses": {"200": ok}, "x-statuses": statuses}


def module_paths(modules: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI path per module and per module attribute, GET always and PUT when writable."""
    paths: dict[str, Any] = {}
    for module, description in modules.items():
        paths[f"/{module}"] = {"get": _operation(
            module, f"describe_{module}", f"Describe {module}", description.get("doc", ""),
            _json("the module's description", {"$ref": _REF + "Module"}), (404, *BACKEND))}
        for summary in ("attributes", "parameters"):
            paths[f"/{module}/{summary}"] = {"get": _operation(
                module, f"read_{module}_{summary}", f"Read {module}'s {summary}",
                f"Every {'scalar' if summary == 'attributes' else 'writable'} attribute of {module} with its value.",
                _json(f"the {summary} with their values", _OBJECT), (404, 502, *BACKEND))}
        for name, info in description["attributes"].items():
            unit = f" [{info['unit']}]" if info.get("unit") else ""
            limits = f" Limits: {limits_text(info.get('min'), info.get('max'), unit)}." if "min" in info or "max" in info else ""
            text = f"{info['doc']} Type: {info['type']}{unit}.{limits}"
            reply = _json("the value", _reading(info))
            if info["type"].startswith(("list[", "ndarray[")):  # an array: also as a .npy file, when asked
                reply["content"][NPY_MEDIA_TYPE] = {"schema": {"type": "string", "format": "binary"}}
                reply["description"] += f" (`Accept: {NPY_MEDIA_TYPE}`: the array as a NumPy .npy file)"
            operations = {"get": _operation(module, f"read_{module}_{name}", f"Read {module}.{name}{unit}", text,
                                            reply, (404, 406, 502, *BACKEND))}
            if info["writable"]:
                body = {"type": "object", "required": ["value"], "additionalProperties": False,
                        "properties": {"value": value_schema(info)}}
                operations["put"] = _operation(
                    module, f"set_{module}_{name}", f"Set {module}.{name}{unit}", text,
                    _json("the value the instrument reports after the write", _reading(info)),
                    (404, 409, 413, 422, 502, *BACKEND))
                operations["put"]["requestBody"] = {"required": True,
                                                    "content": {"application/json": {"schema": body}}}
            paths[f"/{module}/{name}"] = operations
    return paths


def _invocation_schema(action: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of an invocation of `action` (its description), as `POST` and `/invocations` answer it."""
    number_or_null = {"type": ["number", "null"]}
    return {"type": "object", "properties": {
        "id": {"type": "string"}, "module": {"type": "string"}, "action": {"type": "string"},
        "arguments": action["parameters"],
        "status": {"enum": list(STATUSES)},
        "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "message": {"type": ["string", "null"], "description": "the latest status line the action reported"},
        "result": {"anyOf": [action["returns"], {"type": "null"}]},
        "error": {"anyOf": [{"type": "object", "properties": {"error": {"type": "string"},
                                                               "message": {"type": "string"}}}, {"type": "null"}]},
        "created": {"type": "number"}, "started": number_or_null, "finished": number_or_null,
        "href": {"type": "string", "description": "where to follow it: GET, or DELETE to cancel"},
    }}


def action_paths(modules: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI path per action: POST starts it (201, its invocation), GET describes it."""
    paths: dict[str, Any] = {}
    for module, description in modules.items():
        for name, info in description.get("actions", {}).items():
            owns = f" While it runs, it owns {', '.join(info['owns'])}: writes to them get 409." if info["owns"] else ""
            describe = _operation(module, f"describe_{module}_{name}", f"Describe the action {module}.{name}",
                                  info["doc"], _json("its doc, parameters and result as JSON Schema", _OBJECT),
                                  (404, *BACKEND))
            start = _operation(module, f"start_{module}_{name}", f"Start {module}.{name}", info["doc"] + owns, {
                "description": "started: the invocation, to follow at its href (also in Location)",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": _invocation_schema(info)}},
                "links": INVOCATION_LINKS},
                (404, 409, 413, 422, 429, *BACKEND))
            start["responses"] = {"201": start["responses"].pop("200")}
            start["requestBody"] = {"required": bool(info["parameters"]["required"]),
                                    "content": {"application/json": {"schema": info["parameters"]}}}
            paths[f"/{module}/{name}"] = {"get": describe, "post": start}
    return paths


def history_paths(modules: dict[str, Any], generic: dict[str, Any]) -> dict[str, Any]:
    """`/<module>/<attribute>/history` for each scalar attribute: the generic operation, named for it."""
    paths: dict[str, Any] = {}
    for module, description in modules.items():
        for name, info in description["attributes"].items():
            if info["type"].startswith(("list[", "ndarray[")):
                continue  # arrays are read on demand, never recorded
            operation = copy.deepcopy(generic)
            operation["parameters"] = [p for p in operation["parameters"] if p["in"] != "path"]
            operation.update(tags=[module], operationId=f"history_{module}_{name}",
                             summary=f"Recorded values of {module}.{name}")
            operation["x-statuses"] = _FIXED[HISTORY_PATH][1]
            paths[f"/{module}/{name}/history"] = {"get": operation}
    return paths


def lab_schema(base: dict[str, Any], modules: dict[str, Any] | None, *, tokens: bool,
               protect_reads: bool, procedures: dict[str, Any] | None = None) -> dict[str, Any]:
    """The served document: FastAPI's `base`, the modules' own paths when known, each procedure's body for
    `POST /runs` (openapi_runs.py), every error status, and the bearer scheme where a token is needed with
    the configured tokens."""
    schema = copy.deepcopy(base)
    paths: dict[str, Any] = schema["paths"]
    history = paths.get(HISTORY_PATH, {}).get("get")
    for parameter in history["parameters"] if history else []:
        if parameter["name"] in ("since", "until"):  # a string, read as Unix seconds or an RFC 3339 time
            parameter["schema"] = copy.deepcopy(TIME_SCHEMA)
    if modules is not None:
        for generic in GENERIC_PATHS:
            paths.pop(generic, None)
        paths.update(module_paths(modules))
        paths.update(action_paths(modules))
        if history is not None:
            paths.update(history_paths(modules, history))
    document_runs(paths, procedures)
    for path, operations in paths.items():
        success, fixed_statuses = _FIXED.get(path, ({}, BACKEND))
        for method, operation in operations.items():
            statuses = operation.pop("x-statuses", fixed_statuses)
            if success:
                operation["responses"] = {**operation.get("responses", {}), **copy.deepcopy(success)}
            needs_token = tokens and path not in OPEN_PATHS and (method != "get" or protect_reads)
            add_errors(operation, statuses, needs_token=needs_token)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update({**SCHEMAS, "Error": error_schema()})
    components.pop("securitySchemes", None)
    if tokens:
        components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEME)
    return schema
