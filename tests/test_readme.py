"""README stays true: its curl examples print what it shows, its code examples run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.processes import ROOT, running_stack, shipped_history, shipped_modules, write_config

README = (ROOT / "README.md").read_text(encoding="utf-8")
# Readings of simulated sensors and recorded points: their digits vary, their presence and type do not.
VARYING = {"force", "temperature", "points"}
# What the bridge makes anew on every run, an invocation's id and times: compared by type (a null stays null).
# An id the README shows stands for the one really returned, in the commands and outputs that follow it.
GENERATED = {"id", "created", "started", "finished"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def curl_examples() -> list[tuple[str, str]]:
    examples = []
    for block in blocks("console"):
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
    """README id -> id really returned, for every invocation id in an output."""
    if isinstance(expected, list) and isinstance(actual, list):
        return {k: v for e, a in zip(expected, actual) for k, v in generated_ids(e, a).items()}
    if not (isinstance(expected, dict) and isinstance(actual, dict)):
        return {}
    found = {expected["id"]: actual["id"]} if isinstance(expected.get("id"), str) and "id" in actual else {}
    for key in expected.keys() & actual.keys():
        found.update(generated_ids(expected[key], actual[key]))
    return found


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("readme")
    # the shipped modules and history (into tmp/data), on free ports
    config = write_config(tmp / "config.yml", shipped_modules(), history=shipped_history())
    with running_stack(config, tmp) as (_, _, url):
        yield url.removeprefix("http://")


def test_readme_has_curl_examples() -> None:
    assert len(curl_examples()) >= 8


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by .ci/run")
def shows(expected: str, printed: str, ids: dict[str, str]) -> bool:
    """Whether `printed` is what the README shows; learns the ids it returned (README id -> real id)."""
    ids.update(generated_ids(orjson.loads(expected), orjson.loads(printed)))
    for shown, real in ids.items():
        expected = expected.replace(shown, real)
    return same(orjson.loads(expected), orjson.loads(printed))


def test_curl_examples_print_what_the_readme_shows(base_url: str) -> None:
    ids: dict[str, str] = {}
    for command, expected in curl_examples():
        for shown, real in ids.items():
            command = command.replace(shown, real)
        args = [a.replace("localhost:8000", base_url) for a in shlex.split(command)]
        printed = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
        assert shows(expected, printed, ids), f"$ {command}\nREADME: {expected}\nactual: {printed}"


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

    section = README.split("### Errors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{3}) \| `(\w+)` \|", section, flags=re.M)
    codes = [code for _, code in rows]
    assert len(codes) >= 20 and sorted(codes) == sorted(set(codes)), "a code listed twice"
    # Every error a client can get is there; not the 500 of a bug, nor the error of a client that already left.
    unseen = {errors.BridgeError, errors.ClientDisconnected}
    for error in vars(errors).values():
        if isinstance(error, type) and issubclass(error, errors.BridgeError) and error not in unseen:
            assert (str(error.status), error.code) in rows, f"README's error table lacks {error.status} {error.code}"


def test_module_examples_are_valid_modules() -> None:
    from base_module import BaseModule

    for source in blocks("python"):
        namespace: dict[str, Any] = {"__name__": "readme_example"}
        # As a module file would be compiled, not with this test file's `from __future__ import annotations`.
        exec(compile(source, "README.md", "exec", dont_inherit=True), namespace)  # noqa: S102 - our own README
        classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, BaseModule)
                   and v.__module__ == "readme_example"]  # defined there, not imported (ScpiModule)
        assert classes and all(c.attributes for c in classes)


def test_python_examples_print_what_the_readme_shows(base_url: str) -> None:
    from tests.readme_python import pycon_blocks, run_examples

    assert len(pycon_blocks(README)) >= 4
    failed, attempted, report = run_examples(README, f"http://{base_url}")
    assert attempted >= 15 and failed == 0, report


def test_numpy_examples_print_what_the_readme_shows(base_url: str) -> None:
    """The examples that need NumPy (fenced ```pycon numpy; the client alone does not install it)."""
    from tests.readme_python import pycon_blocks, run_examples

    assert pycon_blocks(README, "pycon numpy")
    failed, attempted, report = run_examples(README, f"http://{base_url}", "pycon numpy")
    assert attempted >= 5 and failed == 0, report
