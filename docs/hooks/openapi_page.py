"""MkDocs hook: the HTTP API reference is generated from the app's own OpenAPI document, never written twice.

At build time the frontend app is made from an empty configuration (no module, no
experiment process: its routes do not depend on either), its schema is built with
the same `lab_schema` that serves `/openapi.json`, and
- `<!-- openapi-operations -->` in a page becomes a table of every path, method,
  summary and status it can answer;
- `<!-- config-keys -->` becomes a table of every key of config.yml, with its
  type, default and limits, from the schema both processes check it with;
- the document itself is a file of the site, `reference/openapi.json`.
Nothing is fetched from the network.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- openapi-operations -->"
CONFIG_MARKER = "<!-- config-keys -->"
_LIMITS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<",
           "minLength": "length >=", "maxLength": "length <=", "pattern": "matches"}
log = logging.getLogger("mkdocs.hooks.openapi_page")


def openapi_document() -> dict[str, Any]:
    """The schema `/openapi.json` serves while no module is described (the generic, templated paths)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fastapi.openapi.utils import get_openapi

    from labbridge.core.config import Config
    from labbridge.frontend.app import create_app
    from labbridge.frontend.openapi import lab_schema

    app = create_app(Config.model_validate({"modules": {}}), ROOT / "config.yml")
    base = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    return lab_schema(base, None, tokens=False, protect_reads=False)


def operations_table(schema: dict[str, Any]) -> str:
    """One row per operation: method, path, summary, and the statuses it answers with."""
    rows = ["| method | path | what | statuses |", "| --- | --- | --- | --- |"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "delete", "patch"):
                continue
            summary = (operation.get("summary") or operation.get("description") or "").split("\n")[0]
            statuses = ", ".join(sorted(operation.get("responses", {})))
            rows.append(f"| `{method.upper()}` | `{path}` | {summary.replace('|', '/')} | {statuses} |")
    return "\n".join(rows)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    return _resolve(options[0], defs) if len(options) == 1 and "properties" not in schema else schema


def _type_and_limits(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[str, str]:
    options = schema.get("anyOf", [schema])
    kinds, limits = [], []
    for option in options:
        option = _resolve(option, defs) if "$ref" in option else option
        kinds.append(option.get("type", "object" if "properties" in option else "any"))
        limits += [f"{word} `{option[key]}`" for key, word in _LIMITS.items() if key in option]
    return " or ".join(dict.fromkeys(str(k) for k in kinds)), ", ".join(limits)


def config_table() -> str:
    """Every key of config.yml, from the schema the processes check it with: type, default, limits."""
    from labbridge.core.config import Config

    schema = Config.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    rows = ["| key | type | default | limits |", "| --- | --- | --- | --- |"]

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, raw in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            target = _resolve(raw, defs)
            if key in ("modules", "interlocks"):  # a mapping of name -> settings
                walk(_resolve(target.get("additionalProperties", {}), defs), f"{name}.<name>.")
                continue
            kind, limits = _type_and_limits(raw, defs)
            value = raw.get("default")
            default = ("required" if key in node.get("required", []) else "") if "default" not in raw else (
                "unset" if value is None else "" if isinstance(value, dict) and value else f"`{value}`")
            rows.append(f"| `{name}` | {kind} | {default} | {limits.replace('|', '&#124;')} |")
            if "properties" in target and key != "limits":
                walk(target, f"{name}.")

    walk(schema, "")
    return "\n".join(rows)


_SCHEMA: dict[str, Any] = {}


def _schema() -> dict[str, Any]:
    if not _SCHEMA:
        _SCHEMA.update(openapi_document())
    return _SCHEMA


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_table())
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, operations_table(_schema()))
    return markdown


def on_files(files: Any, config: Any) -> Any:
    """The document itself, as a file of the site (so pages may link to it, and the build checks the link)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/openapi.json",
                                content=orjson.dumps(_schema(), option=orjson.OPT_INDENT_2)))
    return files
