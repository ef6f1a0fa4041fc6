"""MkDocs hook: the HTTP API reference is generated from the app's own OpenAPI document, never written twice.

At build time the frontend app is made from an empty configuration (no module, no
experiment process: its routes do not depend on either), its schema is built with
the same `lab_schema` that serves `/openapi.json`, and
- `<!-- openapi-operations -->` in a page becomes a table of every path, method,
  summary and status it can answer;
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


_SCHEMA: dict[str, Any] = {}


def _schema() -> dict[str, Any]:
    if not _SCHEMA:
        _SCHEMA.update(openapi_document())
    return _SCHEMA


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, operations_table(_schema()))


def on_files(files: Any, config: Any) -> Any:
    """The document itself, as a file of the site (so pages may link to it, and the build checks the link)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/openapi.json",
                                content=orjson.dumps(_schema(), option=orjson.OPT_INDENT_2)))
    return files
