"""The tree: the top level is the user's surface, the labbridge package never imports it, and a user's
module named like a piece of the machinery (config.py, errors.py, ...) clashes with nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import httpx

from tests.processes import ROOT, copy_repository, running_stack, write_config

TOP_LEVEL_MODULES = {p.stem for p in ROOT.glob("*.py")}


def test_the_top_level_holds_at_most_ten_python_files_and_no_generic_names() -> None:
    assert len(TOP_LEVEL_MODULES) <= 10, sorted(TOP_LEVEL_MODULES)
    assert not TOP_LEVEL_MODULES & {"config", "errors", "protocol", "auth", "audit", "live", "attribute", "curve",
                                    "experiment", "simulator", "dashboard", "api_docs", "setup_env"}


def test_the_package_never_imports_a_top_level_file() -> None:
    for source in (ROOT / "labbridge").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] not in TOP_LEVEL_MODULES, f"{source.relative_to(ROOT)} imports {name}"


USER_CONFIG_PY = '''
"""A lab's own module that happens to be called config.py, with a helper in errors.py."""
from base_module import Attribute, BaseModule
from errors import describe_fault


class Thermostat(BaseModule):
    """A thermostat whose value lives in memory."""

    target: float = Attribute(unit="degC", minimum=5, maximum=30, writable=True, doc="Target temperature.")

    async def start(self) -> None:
        self.target_value = 20.0

    async def read(self, name: str) -> float:
        return self.target_value

    async def write(self, name: str, value: float) -> float:
        if value > 29:
            raise RuntimeError(describe_fault(value))
        self.target_value = value
        return value

    async def read_many(self, names: list[str]) -> dict[str, float]:
        return {"target": self.target_value}
'''
USER_ERRORS_PY = 'def describe_fault(value: float) -> str:\n    return f"too hot: {value}"\n'


def test_user_modules_named_config_and_errors_load_beside_module_a(tmp_path: Path) -> None:
    # A copy of the repository's files, as a lab would have it, plus two modules of their own at the top.
    tree = copy_repository(tmp_path / "lab")
    (tree / "config.py").write_text(USER_CONFIG_PY, encoding="utf-8")
    (tree / "errors.py").write_text(USER_ERRORS_PY, encoding="utf-8")
    config = write_config(tmp_path / "config.yml", {
        "thermostat": {"class": "config.Thermostat", "port": None},
        "module_a": {"class": "module_a.ModuleA", "simulate": True}})
    with running_stack(config, tmp_path, root=tree) as (_, _, url):
        assert httpx.put(f"{url}/thermostat/target", json={"value": 25}).json()["value"] == 25.0
        refused = httpx.put(f"{url}/thermostat/target", json={"value": 29.5})
        assert refused.status_code == 502 and "too hot: 29.5" in refused.json()["message"]
        assert httpx.put(f"{url}/module_a/position", json={"value": 12}).json()["value"] == 12.0


def test_the_package_builds_as_a_wheel_with_its_static_files(tmp_path: Path) -> None:
    tree = copy_repository(tmp_path / "tree")  # pip builds in the source folder: not in the repository itself
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(tree)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("labbridge-*.whl")
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True,
                           check=True).stdout
    assert "labbridge/frontend/static/app.js" in names and "labbridge/experiment/process.py" in names
    assert "labbridge/experiment/simulators/psu.yaml" in names  # the demo's simulated power supply
    assert "labbridge/frontend/static/vendor/uplot/uPlot.iife.min.js" in names  # the dashboard's plots
    assert "main.py" not in names.split() and "module_a.py" not in names.split()  # nothing at the top level
    # The demo, importable from the package (labbridge/demo/), and the `labbridge` command.
    assert "labbridge/demo/module_a.py" in names and "labbridge/demo/config.yml" in names
    assert "labbridge/templates/lab/stage.py" in names and "labbridge/cli.py" in names


def test_the_installed_demo_s_config_is_the_repository_s_with_the_classes_named_in_the_package() -> None:
    """labbridge/demo/config.yml is what `labbridge demo` runs outside a clone: the same demo as config.yml."""
    import re

    import yaml

    ours = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    packaged = yaml.safe_load((ROOT / "labbridge/demo/config.yml").read_text(encoding="utf-8"))
    for spec in ours["modules"].values():
        spec["class"] = re.sub(r"^(module_a|setpoint|psu|camera)\.", r"labbridge.demo.\1.", spec["class"])
    for spec in ours["procedures"].values():  # the demo's procedures: named in the package in both
        spec["function"] = re.sub(r"^procedures\.", "labbridge.demo.procedures.", spec["function"])
    assert {"voltage_sweep", "force_curve"} <= set(packaged["procedures"])
    assert packaged == ours


def test_the_top_level_demo_modules_are_the_package_s_own_classes() -> None:
    """One copy of each demo module: the top-level files re-export the package's classes (config.yml's paths)."""
    import camera
    import module_a
    import psu
    import setpoint

    from labbridge.demo import camera as packaged_camera
    from labbridge.demo import module_a as packaged_module_a
    from labbridge.demo import psu as packaged_psu
    from labbridge.demo import setpoint as packaged_setpoint

    assert module_a.ModuleA is packaged_module_a.ModuleA and setpoint.Setpoint is packaged_setpoint.Setpoint
    assert psu.PowerSupply is packaged_psu.PowerSupply and camera.Camera is packaged_camera.Camera
    for shim in (camera, module_a, psu, setpoint):
        assert len(Path(str(shim.__file__)).read_text(encoding="utf-8").splitlines()) < 15
