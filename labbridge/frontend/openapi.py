"""The OpenAPI paths of the lab's modules: one per attribute, with its type, unit, limits and doc,
and one per action, with its parameters and result as JSON Schema.

routes/docs.py serves `/openapi.json` as FastAPI's schema of the routes plus
these paths, built from the backend's description of its modules.
"""

from __future__ import annotations

from typing import Any

from labbridge.core.action import STATUSES
from labbridge.core.attribute import limits_text

_JSON_TYPES = {"float": "number", "int": "integer", "str": "string", "bool": "boolean"}


def value_schema(info: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of an attribute's value, from its description."""
    kind = info["type"]
    schema: dict[str, Any] = {"type": _JSON_TYPES.get(kind, "array" if kind.startswith("list[") else "string")}
    if kind.startswith("list["):
        schema["items"] = {"type": _JSON_TYPES.get(kind[5:-1], "string")}
    if "min" in info:
        schema["minimum"] = info["min"]
    if "max" in info:
        schema["maximum"] = info["max"]
    if "choices" in info:
        schema["enum"] = info["choices"]
    return schema


def module_paths(modules: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI path per module attribute, GET always and PUT when writable."""
    paths: dict[str, Any] = {}
    for module, description in modules.items():
        for name, info in description["attributes"].items():
            unit = f" [{info['unit']}]" if info.get("unit") else ""
            limits = f" Limits: {limits_text(info.get('min'), info.get('max'), unit)}." if "min" in info or "max" in info else ""
            text = f"{info['doc']} Type: {info['type']}{unit}.{limits}"
            reply = {"type": "object", "properties": {
                "module": {"type": "string"}, "attribute": {"type": "string"},
                "value": value_schema(info), "unit": {"type": ["string", "null"]}}}
            operations: dict[str, Any] = {"get": {
                "tags": [module], "summary": f"Read {module}.{name}{unit}", "description": text,
                "operationId": f"read_{module}_{name}",
                "responses": {"200": {"description": "the value", "content": {"application/json": {"schema": reply}}}},
            }}
            if info["writable"]:
                body = {"type": "object", "required": ["value"], "additionalProperties": False,
                        "properties": {"value": value_schema(info)}}
                operations["put"] = {
                    "tags": [module], "summary": f"Set {module}.{name}{unit}", "description": text,
                    "operationId": f"set_{module}_{name}", "security": [{"HTTPBearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                    "responses": {"200": {"description": "the value the instrument reports after the write",
                                          "content": {"application/json": {"schema": reply}}}},
                }
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
            required = bool(info["parameters"]["required"])
            paths[f"/{module}/{name}"] = {
                "get": {"tags": [module], "summary": f"Describe the action {module}.{name}",
                        "operationId": f"describe_{module}_{name}",
                        "responses": {"200": {"description": "its doc, parameters and result as JSON Schema"}}},
                "post": {
                    "tags": [module], "summary": f"Start {module}.{name}", "description": info["doc"] + owns,
                    "operationId": f"start_{module}_{name}", "security": [{"HTTPBearer": []}],
                    "requestBody": {"required": required,
                                    "content": {"application/json": {"schema": info["parameters"]}}},
                    "responses": {
                        "201": {"description": "started: the invocation, to follow at its href (also in Location)",
                                "headers": {"Location": {"schema": {"type": "string"}}},
                                "content": {"application/json": {"schema": _invocation_schema(info)}}},
                        "409": {"description": "busy: a running action owns what this one would drive"},
                        "422": {"description": "an argument is invalid (the message names it, its limits and unit)"},
                    },
                },
            }
    return paths
