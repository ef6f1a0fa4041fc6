"""`python -m labbridge scaffold URL`: write a module from a W3C WoT Thing Description.

A LabThings-FastAPI server answers `GET http://host:port/<thing>/` with the
Thing's description (W3C Web of Things, TD 1.1): each property with its JSON
type, limits, read-only flag, description and URL.  This turns one into the
source of a BaseModule subclass, printed for the user to save beside config.yml,
check (units are rarely in a description) and adjust.  Properties the bridge
cannot serve (objects, names that are not lower_snake_case or that BaseModule
uses itself, URLs that do not follow the others) become comments saying why,
and a line each on stderr.

The output is code the user will import, and the description is whatever the
server sent: so no text from it reaches the output but as a Python literal
(`repr`, checked to be one), an escaped docstring, or a comment with its line
breaks and control characters removed.  Only a name that is a plain
lower_snake_case identifier becomes code.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urljoin, urlsplit

from labbridge.core.values import shown
from labbridge.experiment.base_module import BaseModule

MAX_DESCRIPTION_BYTES = 4 * 1024 * 1024
MAX_TEXT = 300  # characters of a description or comment kept: a doc line, not a manual
_SNAKE = re.compile(r"[a-z][a-z0-9_]*")  # used with fullmatch: `$` would let a trailing line break through
_TYPES = {"number": "float", "integer": "int", "boolean": "bool", "string": "str"}
# Names the generated code itself uses in the class body: an attribute named `float` would
# turn every later `float` annotation into that attribute.
_CODE_NAMES = frozenset({*_TYPES.values(), "list", "Attribute", "BaseModule", "HttpDialect"})
_CHOICE_TYPES: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}


class ScaffoldError(Exception):
    """The URL gave no Thing Description; the message says why."""


@dataclass
class Scaffolded:
    """A module's source, and one line per property left out of it (for stderr)."""

    source: str
    refused: list[str] = field(default_factory=list)


def fetch_description(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET the Thing Description at `url` (the Thing's own URL, such as http://host:5000/stage/)."""
    split = urlsplit(url)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise ScaffoldError(f"{url}: not an http:// URL")
    try:
        split.port  # noqa: B018 - parsing it raises ValueError for a port that is not one
    except ValueError as exc:
        raise ScaffoldError(f"{url}: {exc}") from None
    request = urllib.request.Request(url, headers={"Accept": "application/td+json, application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
            body = response.read(MAX_DESCRIPTION_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ScaffoldError(f"{url} answered HTTP {exc.code}: is this the Thing's URL (ending in /)?") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ScaffoldError(f"{url} cannot be reached: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_DESCRIPTION_BYTES:
        raise ScaffoldError(f"{url} sent more than {MAX_DESCRIPTION_BYTES} bytes: not a Thing Description")
    try:
        description = json.loads(body)
    except ValueError:
        raise ScaffoldError(f"{url} did not answer with JSON: not a Thing Description") from None
    if not isinstance(description, dict) or not isinstance(description.get("properties"), dict):
        raise ScaffoldError(f"{url} answered JSON without \"properties\": not a Thing Description")
    return description


def module_source(description: dict[str, Any], url: str) -> str:
    """Python source of a BaseModule subclass for the Thing described by `description`, found at `url`."""
    return scaffold(description, url).source


def scaffold(description: dict[str, Any], url: str) -> Scaffolded:
    """The module for the Thing described by `description`, found at `url`, and what it leaves out."""
    base = str(description.get("base") or url)
    thing_path = urlsplit(url).path.rstrip("/") + "/"
    class_name = _class_name(str(description.get("title") or "Thing"))
    result = Scaffolded("")
    lines: list[str] = []
    for name, prop in description["properties"].items():
        declaration, why = _attribute(str(name), prop if isinstance(prop, dict) else {}, base, thing_path)
        lines += declaration
        if why:
            result.refused.append(f"property {shown(str(name))} not served: {why}")
    actions = [str(a) for a in description.get("actions") or {}] if isinstance(description.get("actions"), dict) else []
    if actions:
        lines += ["", _comment(f"Actions of the Thing: {', '.join(actions)}. To serve one, declare an `@action` "
                               "method for it (the manual: docs/reference/module-api.md, \"Declaring an action\"); in it, "
                               f"`await self.send_command({actions[0]!r}, **arguments)` POSTs the arguments to the "
                               "Thing's own action.", limit=None)]
    split = urlsplit(url)
    module_file = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    doc = _one_line(description.get("description") or description.get("title") or "A Web of Things Thing.")
    module_doc = f'''{class_name}: written by `python -m labbridge scaffold {_one_line(url, limit=None)}` from its Thing Description.

Check the units (a Thing Description rarely has them) and the limits, save this
as {module_file}.py beside config.yml (or anywhere on PYTHONPATH), and add:

    modules:
      {module_file}:
        class: {module_file}.{class_name}
        ip: {_one_line(split.hostname or "", limit=None)}
        port: {split.port or (443 if split.scheme == "https" else 80)}
'''
    result.source = f'''"""{_escaped(module_doc)}"""

from __future__ import annotations

from base_module import Attribute, BaseModule, HttpDialect


class {class_name}(BaseModule):
    """{_escaped(doc)}"""

    # A Web of Things server: bare JSON values, PUT answers nothing (so read back), refusals in "detail".
    http = HttpDialect(path={_literal(thing_path + "{name}")}, body="bare", reply="bare", put_reply="read_back",
                       error_key="detail", summary=None)

''' + "\n".join(lines) + "\n"
    return result


def scaffold_command(url: str) -> Scaffolded:
    return scaffold(fetch_description(url), url)


def _attribute(name: str, prop: dict[str, Any], base: str, thing_path: str) -> tuple[list[str], str]:
    """The declaration of one property, or a comment saying why it has none (and why, for stderr)."""
    why = _name_problem(name)
    hrefs = [f.get("href") for f in prop.get("forms") or [] if isinstance(f, dict) and isinstance(f.get("href"), str)]
    if not why and hrefs and urlsplit(urljoin(base, hrefs[0])).path != thing_path + name:
        why = f"its URL {hrefs[0]} is not {thing_path}{name}"
    type_name = _type_name(prop)
    if not why and type_name is None:
        why = f"type {prop.get('type')!r} is not a number, string, boolean or array of them"
    if why or type_name is None:
        return [_comment(f"{_one_line(name)}: not served ({why})")], _one_line(why)
    args: list[str] = []
    comments: list[str] = []
    if isinstance(prop.get("unit"), str):
        args.append(f"unit={_literal(_one_line(prop['unit']))}")
    bounds: dict[str, float] = {}
    if type_name in ("float", "int"):
        for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            value = prop.get(bound, prop.get(exclusive))
            if _finite_number(value):
                bounds[bound] = value
                if bound not in prop:
                    comments.append(_comment(f"{name}: the Thing excludes {value!r} itself; the bridge allows it"))
        if len(bounds) == 2 and bounds["minimum"] > bounds["maximum"]:
            comments.append(_comment(f"{name}: the Thing's minimum {bounds['minimum']!r} is above its maximum "
                                     f"{bounds['maximum']!r}; neither is kept"))
            bounds = {}
    args += [f"{bound}={value!r}" for bound, value in bounds.items()]
    choices = _choices(prop.get("enum"), type_name)
    if choices is not None:
        args.append(f"choices=({', '.join(_literal(v) for v in choices)},)")
        if len(choices) < len(prop["enum"]):
            comments.append(_comment(f"{name}: values of the Thing's enum that are not a {type_name} are left out"))
    if not prop.get("readOnly", False):
        args.append("writable=True")
    doc = prop.get("description") or (prop.get("title") if prop.get("title") != name else "")
    if doc:
        args.append(f"doc={_literal(_one_line(doc))}")
    head = f"    {name}: {type_name} = Attribute("
    return [*comments, head + _wrap(args, len(head)) + ")"], ""


def _name_problem(name: str) -> str:
    """Why `name` cannot be an attribute of the generated class, or "" if it can."""
    if not _SNAKE.fullmatch(name) or keyword.iskeyword(name):
        return "an attribute name must be lower_snake_case and not a Python keyword"
    if name in _CODE_NAMES:
        return "the generated code uses that name for a type"
    if BaseModule.uses_name(name):
        return "an attribute name must not be one BaseModule uses"
    return ""


def _type_name(prop: dict[str, Any]) -> str | None:
    if prop.get("type") == "array":
        items = prop.get("items")
        item = _type_name(items) if isinstance(items, dict) and items.get("type") != "array" else None
        return f"list[{item}]" if item else None
    kind = prop.get("type")
    return _TYPES.get(kind) if isinstance(kind, str) else None


def _choices(enum: Any, type_name: str) -> list[Any] | None:
    """The values of a JSON Schema enum that are of the attribute's type (and finite), or None for no choices."""
    allowed = _CHOICE_TYPES.get(type_name)
    if not isinstance(enum, list) or allowed is None:
        return None
    kept = [v for v in enum if isinstance(v, allowed) and (type_name == "bool" or not isinstance(v, bool))
            and (not isinstance(v, float) or math.isfinite(v))]
    return kept or None


def _finite_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _literal(value: Any) -> str:
    """A Python literal for a str, int, float or bool: `repr`, with a string in double quotes like the rest of
    the code where that changes nothing else (it has neither kind of quote)."""
    text = repr(value)
    if isinstance(value, str) and text.startswith("'") and '"' not in value:
        text = f'"{text[1:-1]}"'  # repr used ' only because there was no ': so the body has no quote at all
    return text


def _escaped(text: str) -> str:
    """`text` for the inside of a \"\"\" docstring: backslashes and quotes escaped, so nothing can close it."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _comment(text: str, limit: int | None = MAX_TEXT) -> str:
    """A comment line, indented for the class body, holding `text` on one line."""
    return "    # " + _one_line(text, limit)


def _wrap(args: list[str], indent: int) -> str:
    """Arguments joined by commas, broken onto lines aligned under the first one beyond 110 characters."""
    text, line = "", indent
    for i, arg in enumerate(args):
        piece = arg if i == 0 else ", " + arg
        if i and line + len(piece) > 110:
            text += ",\n" + " " * indent + arg
            line = indent + len(arg)
        else:
            text += piece
            line += len(piece)
    return text


def _class_name(title: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", title)
    name = "".join(w[:1].upper() + w[1:] for w in words)
    name = name if name and name[0].isalpha() else "Thing" + name
    # None, True and False are keywords; Attribute would hide the import it is declared with.
    return name + "Thing" if keyword.iskeyword(name) or name in _CODE_NAMES else name


def _one_line(text: Any, limit: int | None = MAX_TEXT) -> str:
    """`text` on one line: line breaks, control and other unprintable characters become spaces, runs of them one."""
    printable = "".join(c if c.isprintable() else " " for c in str(text))
    line = " ".join(printable.split())
    return line if limit is None or len(line) <= limit else line[:limit] + "..."
