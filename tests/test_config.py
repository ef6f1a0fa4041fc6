"""config.yml validation: every mistake is one clear message, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from labbridge.core.config import ConfigError, load_config
from labbridge.experiment.experiment import Experiment
from tests.processes import ROOT

GOOD: dict[str, Any] = {
    "experiment_socket": {"host": "127.0.0.1", "port": 5555},
    "modules": {"module_a": {"class": "module_a.ModuleA", "ip": "127.0.0.1", "port": 8888, "simulate": True}},
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def with_module(**changes: Any) -> dict[str, Any]:
    module = {**GOOD["modules"]["module_a"], **changes}
    return {**GOOD, "modules": {"module_a": {k: v for k, v in module.items() if v is not None}}}


def check(tmp_path: Path, data: Any) -> Experiment:
    path = write(tmp_path, data)
    return Experiment.from_config(load_config(path), str(path))


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config.yml")
    assert config.experiment_socket.bind_endpoint == "tcp://127.0.0.1:5555"
    assert config.modules["module_a"].simulate
    assert config.history is not None and config.history.path == "data/history.sqlite3"  # recording is on


def test_environment_variable_points_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {**GOOD, "experiment_socket": {"port": 6000}})
    monkeypatch.setenv("EXPERIMENT_CONFIG", str(path))
    assert load_config().experiment_socket.port == 6000


@pytest.mark.parametrize(("data", "message"), [
    ({**GOOD, "colour": "red"}, r"colour: unknown key"),
    (with_module(speed_limit=3), r"modules\.module_a\.speed_limit: unknown key"),
    (with_module(port=None), r"modules\.module_a\.port: required key is missing"),
    (with_module(port=70000), r"modules\.module_a\.port: .*less than or equal to 65535"),
    (with_module(port="eighty"), r"modules\.module_a\.port: .*valid integer"),
    (with_module(port=5555), r"modules\.module_a\.port: port 5555 is already used by experiment_socket"),
    (with_module(timeout=-1), r"modules\.module_a\.timeout: .*greater than 0"),
    ({**GOOD, "modules": {"docs": GOOD["modules"]["module_a"]}}, r"'docs' is a path the frontend serves"),
    ({**GOOD, "modules": {"modules": GOOD["modules"]["module_a"]}}, r"'modules' is a path the frontend serves"),
    ({**GOOD, "modules": {"ws": GOOD["modules"]["module_a"]}}, r"'ws' is a path the frontend serves"),
    ({**GOOD, "modules": {"health": GOOD["modules"]["module_a"]}}, r"'health' is a path the frontend serves"),
    (with_module(poll={"height": 1}), r"modules\.module_a\.poll\.height: ModuleA declares no attribute"),
    (with_module(poll={"trace": 1}), r"modules\.module_a\.poll\.trace: arrays are read on demand"),
    ({**GOOD, "modules": {"Module A": GOOD["modules"]["module_a"]}}, r"lower_snake_case"),
    ("modules: [unclosed", r"not valid YAML"),
    ("- a list", r"expected a mapping"),
    ({**GOOD, "history": {"interval": 0}}, r"history\.interval: .*greater than 0"),
    ({**GOOD, "history": {"max_size_mb": -5}}, r"history\.max_size_mb: .*greater than 0"),
    ({**GOOD, "history": {"keep": "forever"}}, r"history\.keep: unknown key"),
    ({**GOOD, "frontend": {"max_connections": 10, "max_websockets": 5, "max_long_polls": 5}},
     r"frontend\.max_websockets and max_long_polls \(10 together\) must leave room for plain requests"),
])
def test_schema_problems_name_file_key_and_problem(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check(tmp_path, data)
    assert str(info.value).startswith(str(tmp_path / "config.yml"))


def test_two_simulators_on_one_port_clash(tmp_path: Path) -> None:
    data = {**GOOD, "modules": {"a": {"class": "module_a.ModuleA", "port": 9000, "simulate": True},
                                 "b": {"class": "module_a.ModuleA", "port": 9000, "simulate": True}}}
    with pytest.raises(ConfigError, match=r"modules\.b\.port: port 9000 is already used by modules\.a"):
        check(tmp_path, data)


def test_modules_may_share_an_instrument_s_address(tmp_path: Path) -> None:
    # One LabThings server holds many Things; one simulator may serve two modules.
    data = {**GOOD, "modules": {"a": {"class": "module_a.ModuleA", "port": 9000, "simulate": True},
                                 "b": {"class": "module_a.ModuleA", "port": 9000},
                                 "c": {"class": "labthings_stage.LabThingsStage", "port": 9000,
                                       "path": "/stage_c/{name}"}}}
    experiment = check(tmp_path, data)
    assert experiment.modules["c"].dialect.url("position") == "/stage_c/position"


@pytest.mark.parametrize(("changes", "message"), [
    ({"class": "psu.PowerSupply", "simulate": False, "port": None},
     r"modules\.module_a\.resource: required key is missing"),
    ({"path": "/stage/position"}, r"modules\.module_a\.path: .*pattern"),
    ({"class": "psu.PowerSupply", "resource": "x" * 300}, r"modules\.module_a\.resource: .*at most 200"),
])
def test_instrument_keys_are_checked(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(tmp_path, with_module(**changes))


def test_a_read_only_module_with_its_own_read_needs_no_port(tmp_path: Path) -> None:
    experiment = check(tmp_path, with_module(**{"class": "tests.fixture_modules.Thermometer", "port": None,
                                                "simulate": None}))
    assert experiment.modules["module_a"].address == "in process"


@pytest.mark.parametrize(("module_class", "hooks"), [
    ("module_a.ModuleA", "`read` and `write`"),
    ("tests.fixture_modules.HalfDriven", "`write`"),
])
def test_a_missing_port_says_which_hooks_to_override(tmp_path: Path, module_class: str, hooks: str) -> None:
    with pytest.raises(ConfigError, match=rf"modules\.module_a\.port: required key is missing \(.* talks HTTP .*"
                                          rf"overrides {hooks}\)"):
        check(tmp_path, with_module(**{"class": module_class, "port": None, "simulate": None}))


@pytest.mark.parametrize(("changes", "message"), [
    ({"class": "no_such_file.Thing"}, r"modules\.module_a\.class: cannot import 'no_such_file'"),
    ({"class": "module_a.NoSuchClass"}, r"modules\.module_a\.class: 'module_a' has no class 'NoSuchClass'"),
    ({"class": "labbridge.core.config.Config"}, r"modules\.module_a\.class: labbridge\.core\.config\.Config is not a BaseModule subclass"),
    ({"class": "not a path"}, r"modules\.module_a\.class: .*pattern"),
    ({"limits": {"position": {"max": 500}}}, r"modules\.module_a\.limits: max 500.0 is outside the declared limits"),
    ({"limits": {"height": {"max": 5}}}, r"modules\.module_a\.limits\.height: ModuleA declares no attribute 'height'"),
    ({"simulator": {"colour": "red"}}, r"modules\.module_a\.simulator: .*colour"),
    ({"class": "tests.fixture_modules.Recorder"}, r"modules\.module_a\.simulate: Recorder has no simulator"),
])
def test_module_problems_name_the_key(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(tmp_path, with_module(**changes))


def test_missing_file_says_how_to_point_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"nope.yml: file not found$"):  # named explicitly: nothing to add
        load_config(tmp_path / "nope.yml")
    monkeypatch.setenv("EXPERIMENT_CONFIG", str(tmp_path / "gone.yml"))
    with pytest.raises(ConfigError, match=r"gone.yml: file not found \(named by \$EXPERIMENT_CONFIG\)"):
        load_config()


def test_the_audit_log_key_moved_to_the_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"frontend.audit_log: moved: write `audit_log:` at the top level"):
        load_config(write(tmp_path, {**GOOD, "frontend": {"audit_log": "audit.jsonl"}}))
    assert load_config(write(tmp_path, {**GOOD, "audit_log": "audit.jsonl"})).audit_log == "audit.jsonl"


def test_trusted_proxies_are_addresses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"frontend.trusted_proxies: 'proxy.lan' is not an IP address or network"):
        load_config(write(tmp_path, {**GOOD, "frontend": {"trusted_proxies": ["10.0.0.0/8", "proxy.lan"]}}))


@pytest.mark.parametrize("command", [
    [sys.executable, "start_experiment.py"],
    [sys.executable, "-m", "uvicorn", "main:app", "--port", "0"],
])
def test_entry_points_exit_2_with_one_message_and_no_traceback(tmp_path: Path, command: list[str]) -> None:
    path = write(tmp_path, with_module(port=70000))
    result = subprocess.run(command, cwd=ROOT, env={**__import__("os").environ, "EXPERIMENT_CONFIG": str(path)},
                            capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{path}: modules.module_a.port" in output
    assert "Traceback" not in output


def test_backend_config_flag_overrides_the_environment(tmp_path: Path) -> None:
    bad = write(tmp_path, with_module(class_="x"))
    result = subprocess.run([sys.executable, "start_experiment.py", "--config", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{bad}: modules.module_a.class_: unknown key" in result.stderr


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path: Path) -> None:
    """A tutorial's `modules:` snippet pasted at the end of config.yml makes a second `modules:`; YAML would keep
    only the last, and every other module would silently vanish."""
    path = tmp_path / "config.yml"
    path.write_text((ROOT / "config.yml").read_text(encoding="utf-8") + "\nmodules:\n  bath:\n    class: bath.Bath\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "'modules' is given twice" in message
    first = next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("modules:"))
    assert f"line {first}" in message and f"line {len(path.read_text().splitlines()) - 2}" in message


def test_yaml_merge_keys_may_still_be_overridden() -> None:
    from labbridge.core.unique_keys import load_unique

    assert load_unique("base: &b {port: 1, ip: h}\nc:\n  <<: *b\n  port: 2\n")["c"] == {"port": 2, "ip": "h"}
