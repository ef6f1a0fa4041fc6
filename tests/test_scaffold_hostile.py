"""`python -m labbridge scaffold` prints code from whatever a server sent: a hostile description puts no code in it.

Names, titles, descriptions, units, links and enum values reach the printed
module only as literals, escaped docstrings or one-line comments: the module is
imports and one class whose body is a docstring, the `http` dialect and
`Attribute(...)` declarations of literals; importing it does nothing else.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labbridge.experiment.base_module import BaseModule
from labbridge.tools.scaffold import module_source, scaffold
from tests.processes import ROOT

RUN = "__import__('os').system('touch PWNED')"
URL = "http://127.0.0.1:8000/thing/"
HOSTILE: dict[str, Any] = {
    "title": f'x"""\n{RUN}\n"""',
    "description": f'"""\n{RUN}\n""" and a backslash at the end \\',
    "properties": {
        f"home\n{RUN}\n#": {"type": "number", "forms": [{"href": "/thing/home"}]},
        "speed": {"type": "number", "unit": f'mm")\n{RUN}\n#', "title": f"t\r{RUN}",
                  "description": f'line\n{RUN}\n"""\u2028{RUN}\x00\x1b[2J\ud800 end\\',
                  "forms": [{"href": "/thing/speed"}]},
        "linked": {"type": "number", "forms": [{"href": f"/other\n{RUN}\n#"}]},
        "mode": {"type": "string", "enum": [f'a")\n{RUN}\n#', "b\\", "\ud800", {"x": RUN}, 1], "forms": []},
        "gain": {"type": "number", "enum": [1, True, "2", 2.5, float("nan"), [RUN]], "minimum": float("-inf"),
                 "maximum": float("nan")},
        "upside_down": {"type": "integer", "minimum": 10, "maximum": 0},
        "home\n": {"type": "number"},
        "class": {"type": "number"},
        "float": {"type": "number"},
        "str": {"type": "string"},
    },
    "actions": {f"go\n{RUN}\n#": {}, "stop": {}},
}


def check_shape(source: str) -> ast.ClassDef:
    """Assert the module is a docstring, imports and one class of literal declarations; return the class."""
    tree = ast.parse(source)
    docstring, *imports, cls = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert imports and all(isinstance(node, ast.ImportFrom) for node in imports)
    assert isinstance(cls, ast.ClassDef) and not cls.decorator_list and not cls.keywords
    assert [ast.unparse(base) for base in cls.bases] == ["BaseModule"]
    doc, http, *declarations = cls.body
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
    assert isinstance(http, ast.Assign) and ast.unparse(http.targets[0]) == "http"
    assert isinstance(http.value, ast.Call) and ast.unparse(http.value.func) == "HttpDialect"
    for node in declarations:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name), ast.unparse(node)
        assert isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "Attribute"
        assert not node.value.args
        for argument in [*http.value.keywords, *node.value.keywords]:
            ast.literal_eval(argument.value)  # raises for anything but a literal
    return cls


def load(source: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "scaffolded"}
    exec(compile(source, "scaffolded.py", "exec"), namespace)  # noqa: S102 - checked by check_shape first
    return namespace


def test_a_hostile_description_gives_imports_and_one_class_that_import_without_side_effects(tmp_path: Path) -> None:
    source = module_source(HOSTILE, URL)
    cls = check_shape(source)
    assert {node.target.id for node in cls.body if isinstance(node, ast.AnnAssign)  # type: ignore[union-attr]
            } == {"speed", "mode", "gain", "upside_down"}
    (tmp_path / "hostile.py").write_text(source, encoding="utf-8")
    assert cls.name == "XImportOsSystemTouchPWNED"  # the title's words only
    imported = subprocess.run([sys.executable, "-c", f"import hostile; print(sorted(hostile.{cls.name}.attributes))"],
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "['gain', 'mode', 'speed', 'upside_down']"
    assert not (tmp_path / "PWNED").exists()


def test_texts_keep_their_words_on_one_line_and_odd_values_are_left_out() -> None:
    module = load(module_source(HOSTILE, URL))
    assert module["__doc__"].startswith("XImportOsSystemTouchPWNED: written by")
    cls = module["XImportOsSystemTouchPWNED"]
    assert cls.__doc__ == f'""" {RUN} """ and a backslash at the end \\'
    speed = cls.attributes["speed"].describe()
    assert speed["unit"] == f'mm") {RUN} #'
    assert speed["doc"] == f'line {RUN} """ {RUN} [2J end\\'
    assert cls.attributes["mode"].choices == (f'a")\n{RUN}\n#', "b\\", "\ud800")
    gain = cls.attributes["gain"].describe()
    assert gain["choices"] == [1, 2.5] and "min" not in gain and "max" not in gain
    assert "min" not in cls.attributes["upside_down"].describe()


@pytest.mark.parametrize(("name", "why"), [
    (f"home\n{RUN}\n#", "an attribute name must be lower_snake_case and not a Python keyword"),
    ("home\n", "an attribute name must be lower_snake_case and not a Python keyword"),
    ("class", "an attribute name must be lower_snake_case and not a Python keyword"),
    ("float", "the generated code uses that name for a type"),
    ("str", "the generated code uses that name for a type"),
    ("linked", f"its URL /other {RUN} # is not /thing/linked"),
])
def test_a_name_or_link_that_cannot_be_code_is_a_comment_and_a_line_for_stderr(name: str, why: str) -> None:
    scaffolded = scaffold(HOSTILE, URL)
    assert f"property {name!r} not served: {why}" in scaffolded.refused
    shown = " ".join(name.split())
    assert f"    # {shown}: not served ({why})" in scaffolded.source.splitlines()


class _Thing(BaseHTTPRequestHandler):
    """Serves HOSTILE as a Thing Description."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps(HOSTILE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/td+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def thing_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Thing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/thing/"
    finally:
        server.shutdown()
        server.server_close()


def test_the_command_prints_the_module_and_says_on_stderr_what_it_left_out(thing_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "labbridge", "scaffold", thing_url],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    check_shape(result.stdout)
    lines = result.stderr.splitlines()
    assert len(lines) == 6 and all(line.startswith("scaffold: property ") for line in lines)
    assert "scaffold: property \"home\\n__import__('os').system('touch PWNED')\\n#\" not served: " \
           "an attribute name must be lower_snake_case and not a Python keyword" in lines


# Any characters (lone surrogates too: JSON can carry them), and the pieces that end a string, a line or a comment.
_text = st.lists(st.text(max_size=8) | st.sampled_from(['"""', "'''", "\\", "\n", "\r", "\x00", "\u2028", "\ud800", "#"]),
                 max_size=6).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_text, max_size=4), title=_text, text=_text, unit=_text, href=_text,
       enum=st.lists(_text | st.integers() | st.floats() | st.booleans(), max_size=4))
def test_any_texts_give_a_module_of_literals_that_loads(names: list[str], title: str, text: str, unit: str,
                                                        href: str, enum: list[Any]) -> None:
    properties = {name: {"type": "string", "description": text, "unit": unit, "title": text, "enum": enum,
                         "forms": [{"href": href}]} for name in names}
    properties["plain"] = {"type": "number", "description": text, "unit": unit, "enum": enum}
    description = {"title": title, "description": text, "properties": properties, "actions": {text: {}}}
    source = module_source(description, URL)
    check_shape(source)
    module = load(source)
    (cls,) = [value for key, value in module.items() if isinstance(value, type) and issubclass(value, BaseModule)
              and key != "BaseModule"]
    assert "plain" in cls.attributes


@pytest.mark.parametrize(("title", "class_name"), [
    ("none", "NoneThing"), ("true", "TrueThing"), ("attribute", "AttributeThing"), ("base module", "BaseModuleThing"),
    ("3 axis", "Thing3Axis"), ("$$$", "Thing"),
])
def test_a_title_that_is_a_keyword_or_a_name_the_module_imports_gets_thing_added(title: str, class_name: str) -> None:
    source = module_source({"title": title, "properties": {"speed": {"type": "number"}}}, URL)
    assert check_shape(source).name == class_name
    assert "speed" in load(source)[class_name].attributes
