"""`python -m labbridge scaffold URL`: write a module from a W3C WoT Thing Description.

A LabThings-FastAPI server answers `GET http://host:port/<thing>/` with the
Thing's description (W3C Web of Things, TD 1.1): each property with its JSON
type, limits, read-only flag, description and URL.  This turns one into the
source of a BaseModule subclass, printed for the user to save beside config.yml,
check (units are rarely in a description) and adjust.  Properties the bridge
cannot serve (objects, names that are not lower_snake_case or that BaseModule
uses itself, URLs that do not follow the others) become comments saying why.
"""

from __future__ import annotations

import json
import keyword
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urljoin, urlsplit

from labbridge.experiment.base_module import BaseModule

MAX_DESCRIPTION_BYTES = 4 * 1024 * 1024
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_TYPES = {"number": "float", "integer": "int", "boolean": "bool", "string": "str"}


class ScaffoldError(Exception):
    """The URL gave no Thing Description; the message says why."""


def fetch_description(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET the Thing Description at `url` (the Thing's own URL, such as http://host:5000/stage/)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ScaffoldError(f"{url}: not an http:// URL")
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
    base = str(description.get("base") or url)
    thing_path = urlsplit(url).path.rstrip("/") + "/"
    class_name = _class_name(str(description.get("title") or "Thing"))
    lines: list[str] = []
    for name, prop in description["properties"].items():
        lines += _attribute(str(name), prop if isinstance(prop, dict) else {}, base, thing_path)
    actions = ", ".join(str(a) for a in description.get("actions") or {})
    if actions:
        first = next(iter(description["actions"]))
        lines += ["", f"    # Actions of the Thing: {actions}. To serve one, declare an `@action` method for it (README,",
                  f"    # \"Declaring an action\"); in it, `await self.send_command({str(first)!r}, **arguments)` POSTs",
                  "    # the arguments to the Thing's own action."]
    split = urlsplit(url)
    module_file = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    doc = _one_line(str(description.get("description") or description.get("title") or "A Web of Things Thing."))
    return f'''"""{class_name}: written by `python -m labbridge scaffold {url}` from its Thing Description.

Check the units (a Thing Description rarely has them) and the limits, save this
as {module_file}.py beside config.yml (or anywhere on PYTHONPATH), and add:

    modules:
      {module_file}:
        class: {module_file}.{class_name}
        ip: {split.hostname}
        port: {split.port or (443 if split.scheme == "https" else 80)}
"""

from __future__ import annotations

from base_module import Attribute, BaseModule, HttpDialect


class {class_name}(BaseModule):
    """{doc}"""

    # A Web of Things server: bare JSON values, PUT answers nothing (so read back), refusals in "detail".
    http = HttpDialect(path={_literal(thing_path + "{name}")}, body="bare", reply="bare", put_reply="read_back",
                       error_key="detail", summary=None)

''' + "\n".join(lines) + "\n"


def scaffold_command(url: str) -> str:
    return module_source(fetch_description(url), url)


def _attribute(name: str, prop: dict[str, Any], base: str, thing_path: str) -> list[str]:
    """The declaration of one property, or comments saying why it has none."""
    if not _SNAKE.match(name) or keyword.iskeyword(name) or BaseModule.uses_name(name):
        return [f"    # {name}: not served (an attribute name must be lower_snake_case and not one BaseModule uses)"]
    hrefs = [f.get("href") for f in prop.get("forms") or [] if isinstance(f, dict) and isinstance(f.get("href"), str)]
    if hrefs and urlsplit(urljoin(base, hrefs[0])).path != thing_path + name:
        return [f"    # {name}: not served (its URL {hrefs[0]} is not {thing_path}{name})"]
    type_name = _type_name(prop)
    if type_name is None:
        return [f"    # {name}: not served (type {prop.get('type')!r} is not a number, string, boolean or array of them)"]
    args: list[str] = []
    comments: list[str] = []
    if isinstance(prop.get("unit"), str):
        args.append(f"unit={_literal(prop['unit'])}")
    for bound, exclusive, keyword_name in (("minimum", "exclusiveMinimum", "minimum"),
                                          ("maximum", "exclusiveMaximum", "maximum")):
        value = prop.get(bound, prop.get(exclusive))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and type_name in ("float", "int"):
            args.append(f"{keyword_name}={value!r}")
            if bound not in prop:
                comments.append(f"    # {name}: the Thing excludes {value!r} itself; the bridge allows it")
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        args.append(f"choices=({', '.join(_literal(v) for v in prop['enum'])},)")
    if not prop.get("readOnly", False):
        args.append("writable=True")
    doc = prop.get("description") or (prop.get("title") if prop.get("title") != name else "")
    if doc:
        args.append(f"doc={_literal(_one_line(str(doc)))}")
    head = f"    {name}: {type_name} = Attribute("
    return [*comments, head + _wrap(args, len(head)) + ")"]


def _type_name(prop: dict[str, Any]) -> str | None:
    if prop.get("type") == "array":
        items = prop.get("items")
        item = _type_name(items) if isinstance(items, dict) and items.get("type") != "array" else None
        return f"list[{item}]" if item else None
    kind = prop.get("type")
    return _TYPES.get(kind) if isinstance(kind, str) else None


def _literal(value: Any) -> str:
    """A Python literal for a JSON value: strings in double quotes, like the rest of the code."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


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
    return name if name and name[0].isalpha() else "Thing" + name


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace('"""', "'''")
