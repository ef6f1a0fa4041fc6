"""README and the manual stay true: their curl examples print what they show, their code examples run.

Each ```console block (also inside Material's content tabs) is run command by
command in bash, against a live bridge, and its output compared with what the
page shows; ids, times and simulated readings are matched by type.  A command
that assigns a shell variable (`id=$(curl ... | python3 -c ...)`) keeps it for
the commands after it, so the examples paste in order.  Examples that cannot
run here are fenced ```console-untested beside a visible "not run by the tests"
note.  README runs on a bridge of its own; the manual's pages run in the
order of mkdocs.yml's nav on another (the tutorials' water bath on a third).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.processes import ROOT, running_stack, shipped_history, shipped_modules, shipped_procedures, write_config

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
# The tutorials' pages run against their own module (the water bath), written from their Python block.
TUTORIALS = ("tutorials/first-module.md", "tutorials/first-action.md")
TUTORIAL_MODULE = "# bath.py"
# Pages whose examples run in page order, Python and curl blocks in turn, on a bridge of their own: the first
# experiment queues its runs from Python, then finds them with curl.
IN_ORDER = ("tutorials/first-experiment.md",)
# Readings of simulated sensors and recorded points: their digits vary, their presence and type do not.
VARYING = {"force", "temperature", "points"}
# What the bridge makes anew on every run, an invocation's id and times: compared by type (a null stays null).
# An id a page shows stands for the one really returned, in the commands and outputs that follow it.
GENERATED = {"id", "created", "started", "finished"}
UNTESTED_NOTE = "not run by the tests"
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by .ci/run")


def nav_pages() -> list[str]:
    """The manual's pages, in the order of mkdocs.yml's nav."""
    def walk(entries: list[Any]) -> Iterator[str]:
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from walk(value) if isinstance(value, list) else [value]
    return list(walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]))


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def blocks(language: str, text: str = README) -> list[str]:
    """The blocks fenced ```language, also indented ones (content tabs), dedented."""
    found = re.findall(rf"^( *)```{re.escape(language)}\n(.*?)^\1```", text, flags=re.S | re.M)
    return [textwrap.dedent(body) if indent else body for indent, body in found]


def curl_examples(text: str = README) -> list[tuple[str, str]]:
    examples = []
    for block in blocks("console", text):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((command, output.strip()))
    return examples


def same(expected: Any, actual: Any, key: str = "") -> bool:
    if key in VARYING and isinstance(expected, list):
        return isinstance(actual, list) and all(isinstance(p, list) for p in actual)
    if key in GENERATED:
        return type(expected) is type(actual)
    if key in VARYING and isinstance(expected, dict):
        return isinstance(actual, dict) and set(expected) == set(actual) and all(
            isinstance(actual[k], type(expected[k])) for k in expected)
    if isinstance(expected, dict):
        return isinstance(actual, dict) and set(expected) == set(actual) and all(
            same(expected[k], actual[k], k if k in VARYING | GENERATED else key) for k in expected)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            same(e, a, key) for e, a in zip(expected, actual))
    return bool(expected == actual and type(expected) is type(actual))


def generated_ids(expected: Any, actual: Any) -> dict[str, str]:
    """Page id -> id really returned, for every invocation id in an output."""
    if isinstance(expected, list) and isinstance(actual, list):
        return {k: v for e, a in zip(expected, actual) for k, v in generated_ids(e, a).items()}
    if not (isinstance(expected, dict) and isinstance(actual, dict)):
        return {}
    found = {expected["id"]: actual["id"]} if isinstance(expected.get("id"), str) and "id" in actual else {}
    for key in expected.keys() & actual.keys():
        found.update(generated_ids(expected[key], actual[key]))
    return found


def shows(expected: str, printed: str, ids: dict[str, str]) -> bool:
    """Whether `printed` is what the page shows; learns the ids it returned (page id -> real id)."""
    ids.update(generated_ids(orjson.loads(expected), orjson.loads(printed)))
    for shown, real in ids.items():
        expected = expected.replace(shown, real)
    return same(orjson.loads(expected), orjson.loads(printed))


NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"


def text_shows(expected: str, printed: str) -> bool:
    """Whether text that is not JSON (metrics lines) is what the page shows, any number standing for any number."""
    parts = re.split(NUMBER, expected.strip())
    return re.fullmatch(NUMBER.join(re.escape(part) for part in parts), printed.strip()) is not None


def run_console(examples: list[tuple[str, str]], base_url: str, cwd: Path, where: str) -> None:
    """Run each command in bash as a reader would paste it, in order; compare what it prints."""
    ids: dict[str, str] = {}
    variables: dict[str, str] = {}
    for command, expected in examples:
        for shown, real in ids.items():
            command = command.replace(shown, real)
        script = command.replace("localhost:8000", base_url)
        assigned = re.findall(r"(?:^|;\s*)(\w+)=\$\(", command)
        # After the command, each variable it set, behind a separator nothing else prints.
        script += "".join(f'\nprintf "\\036%s" "${name}"' for name in assigned)
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=cwd,
                                env={**os.environ, **variables})
        printed, *values = result.stdout.split("\x1e")
        variables.update(zip(assigned, values))
        if not expected:
            assert printed.strip() == "" and result.returncode == 0, f"{where}: $ {command}\n{result.stderr}"
            continue
        matches = shows(expected, printed, ids) if expected[0] in "{[" else text_shows(expected, printed)
        assert matches, f"{where}: $ {command}\npage:   {expected}\nactual: {printed}"


def shipped_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    """The shipped modules, procedures and history (into tmp/data), on free ports: host:port of its frontend."""
    tmp = tmp_path_factory.mktemp(name)
    config = write_config(tmp / "config.yml", shipped_modules(), history=shipped_history(),
                          procedures=shipped_procedures())
    with running_stack(config, tmp) as (_, _, url):
        yield url.removeprefix("http://")


@pytest.fixture(scope="module")
def readme_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from shipped_stack(tmp_path_factory, "readme")


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bridge of its own for the manual's pages, which change what README's examples read."""
    yield from shipped_stack(tmp_path_factory, "docs")


@pytest.fixture(scope="module")
def experiment_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shipped demo, for the pages run in order (nothing else has queued runs on it)."""
    yield from shipped_stack(tmp_path_factory, "experiment")


@pytest.fixture(scope="module")
def tutorial_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bridge serving the tutorials' water bath, as its last page declares it."""
    tmp = tmp_path_factory.mktemp("tutorial")
    modules = tmp / "lab_modules"
    modules.mkdir()
    (source,) = [b for b in blocks("python", page(TUTORIALS[-1])) if b.startswith(TUTORIAL_MODULE)]
    (modules / "bath.py").write_text(source, encoding="utf-8")
    config = write_config(tmp / "config.yml", {"bath": {"class": "bath.Bath"}})
    with running_stack(config, tmp, backend_env={"PYTHONPATH": str(modules)}) as (_, _, url):
        yield url.removeprefix("http://")


def test_readme_has_curl_examples() -> None:
    assert len(curl_examples()) >= 3


def test_the_nav_lists_every_page_and_every_page_has_examples_or_reference() -> None:
    pages = nav_pages()
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert set(pages) == on_disk, "a page missing from mkdocs.yml's nav, or a nav entry without a page"
    assert sum(len(curl_examples(page(p))) for p in pages) >= 40


@needs_curl
def test_curl_examples_print_what_the_readme_shows(readme_url: str, tmp_path: Path) -> None:
    run_console(curl_examples(), readme_url, tmp_path, "README.md")


@needs_curl
def test_curl_examples_print_what_the_manual_shows(docs_url: str, tmp_path: Path) -> None:
    for name in nav_pages():
        if name not in TUTORIALS + IN_ORDER:
            run_console(curl_examples(page(name)), docs_url, tmp_path, name)


@needs_curl
def test_the_tutorials_curl_examples_run_on_their_module(tutorial_url: str, tmp_path: Path) -> None:
    for name in TUTORIALS:
        examples = curl_examples(page(name))
        assert examples, name
        run_console(examples, tutorial_url, tmp_path, name)


def test_examples_that_cannot_run_here_say_so_visibly() -> None:
    for name in nav_pages():
        text = page(name)
        for match in re.finditer(r"^ *```console-untested\n", text, flags=re.M):
            assert UNTESTED_NOTE in text[max(0, match.start() - 600):match.start()], (
                f"{name}: a console-untested block without a '{UNTESTED_NOTE}' note before it")
        # A shell example that shows an answer is either run (console) or says why not.
        for language in ("bash", "text", "sh"):
            for block in blocks(language, text):
                assert not re.search(r"^\$ curl", block, flags=re.M), f"{name}: a curl example in ```{language}"


def test_the_comparison_takes_generated_fields_by_type_and_follows_ids() -> None:
    shown = {"id": "abc", "created": 1.5, "started": None, "status": "pending", "href": "/invocations/abc"}
    real = {**shown, "id": "def", "created": 2.5, "href": "/invocations/def"}
    ids: dict[str, str] = {}
    assert shows(orjson.dumps(shown).decode(), orjson.dumps(real).decode(), ids) and ids == {"abc": "def"}
    assert shows('{"message": "cancel abc"}', '{"message": "cancel def"}', ids)  # later outputs name it too
    assert not shows(orjson.dumps(shown).decode(), orjson.dumps({**real, "started": 2.5}).decode(), {})  # null is null
    assert not shows(orjson.dumps(shown).decode(), orjson.dumps({**real, "status": "running"}).decode(), {})
    assert not shows(orjson.dumps(shown).decode(), orjson.dumps({**real, "href": "/invocations/xyz"}).decode(), {})


def test_the_error_table_lists_each_code_once_with_its_status() -> None:
    from labbridge.core import errors

    rows = re.findall(r"^\| (\d{3}) \| `(\w+)` \|", page("reference/errors.md"), flags=re.M)
    codes = [code for _, code in rows]
    assert len(codes) >= 20 and sorted(codes) == sorted(set(codes)), "a code listed twice"
    # Every error a client can get is there; not the 500 of a bug, nor the error of a client that already left.
    unseen = {errors.BridgeError, errors.ClientDisconnected}
    for error in vars(errors).values():
        if isinstance(error, type) and issubclass(error, errors.BridgeError) and error not in unseen:
            assert (str(error.status), error.code) in rows, f"the error table lacks {error.status} {error.code}"


def test_module_examples_are_valid_modules_or_procedures() -> None:
    from base_module import BaseModule

    sources = [(name, source) for name in ["README.md", *nav_pages()]
               for source in blocks("python", README if name == "README.md" else page(name))]
    assert len(sources) >= 8
    for name, source in sources:
        namespace: dict[str, Any] = {"__name__": "readme_example"}
        # As a module file would be compiled, not with this test file's `from __future__ import annotations`.
        exec(compile(source, name, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own pages
        classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, BaseModule)
                   and v.__module__ == "readme_example"]  # defined there, not imported (ScpiModule)
        procedures = [v for v in namespace.values() if callable(v) and hasattr(v, "__bridge_procedure__")]
        assert procedures or (classes and all(c.attributes for c in classes)), f"{name}: {source[:60]}"


def test_python_examples_print_what_the_readme_shows(readme_url: str) -> None:
    from tests.readme_python import pycon_blocks, run_examples

    assert len(pycon_blocks(README)) >= 1
    failed, attempted, report = run_examples(README, f"http://{readme_url}")
    assert attempted >= 6 and failed == 0, report


def test_python_examples_print_what_the_manual_shows(docs_url: str) -> None:
    from tests.readme_python import run_examples

    total = 0
    for name in nav_pages():
        if name in TUTORIALS + IN_ORDER:
            continue
        for fence in ("pycon", "pycon numpy"):
            failed, attempted, report = run_examples(page(name), f"http://{docs_url}", fence, name)
            assert failed == 0, report
            total += attempted
    assert total >= 20


@needs_curl
def test_the_pages_run_in_order_print_what_they_show(experiment_url: str, tmp_path: Path) -> None:
    from tests.readme_python import run_examples

    shipped = (ROOT / "labbridge" / "demo" / "procedures.py").read_text(encoding="utf-8")
    for name in IN_ORDER:
        text = page(name)
        for source in blocks("python", text):  # the procedure it shows is the one the demo runs
            assert source[source.index("@procedure"):] in shipped, f"{name}: not the shipped procedure"
        examples = re.findall(r"^```(pycon|console)\n(.*?)^```", text, flags=re.S | re.M)
        fences = [fence for fence, _ in examples]
        assert fences.count("pycon") >= 3 and "console" in fences, name
        # Consecutive curl blocks run as one, so a variable one sets ($id) is there for the next.
        for fence, group in itertools.groupby(examples, key=lambda example: example[0]):
            bodies = [body for _, body in group]
            if fence == "console":
                run_console(curl_examples("".join(f"```console\n{body}```\n" for body in bodies)), experiment_url,
                            tmp_path, name)
                continue
            for body in bodies:
                failed, attempted, report = run_examples(f"```pycon\n{body}```", f"http://{experiment_url}",
                                                         "pycon", name)
                assert attempted and not failed, report
