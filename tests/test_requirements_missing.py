"""A Python that cannot run the bridge says so in one line: one without the requirements (every entry point),
and one that cannot make the virtual environment demo.py needs (Debian's and Ubuntu's python3 without
python3.X-venv: no ensurepip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labbridge.tools.dependencies import advice
from labbridge.tools.setup_env import venv_problem
from tests.processes import ROOT, copy_repository

ENTRY_POINTS = [["-m", "labbridge", "keys", "keys/"], ["-m", "labbridge", "scaffold", "http://127.0.0.1:9/"],
                ["main.py"], ["start_experiment.py"]]


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A virtual environment with none of the requirements (as a system python3 would be)."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    return str(folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX")}


@pytest.mark.parametrize("command", ENTRY_POINTS, ids=lambda c: " ".join(c))
def test_an_entry_point_without_the_requirements_names_the_python_to_use(bare_python: str, command: list[str],
                                                                        tmp_path: Path) -> None:
    tree = copy_repository(tmp_path / "clone")
    (tree / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)  # what `python demo.py` leaves
    result = subprocess.run([bare_python, *command], cwd=tree, capture_output=True, text=True, timeout=60,
                            env=clean_env())
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
    shown = " ".join(command)
    assert "lacks the bridge's requirements (no module named" in lines[0]
    assert f"run `.venv/bin/python {shown}` instead" in lines[0], lines[0]


def test_without_a_venv_yet_it_says_to_run_the_demo_first(bare_python: str, tmp_path: Path) -> None:
    tree = copy_repository(tmp_path / "clone")
    result = subprocess.run([bare_python, "-m", "labbridge", "keys", "keys/"], cwd=tree, capture_output=True,
                            text=True, timeout=60, env=clean_env())
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "run `python3 demo.py` once (it creates .venv and installs them), then `.venv/bin/python -m labbridge " \
           "keys keys/`" in result.stderr


def test_an_installed_package_without_its_dependencies_says_to_install_them(tmp_path: Path) -> None:
    line = advice("zmq", ["-m", "labbridge", "keys", "k/"], "/opt/py/bin/python", root=tmp_path)
    assert "no module named 'zmq'" in line and "`/opt/py/bin/python -m pip install labbridge`" in line


def test_venv_problem_names_the_debian_package_only_without_ensurepip() -> None:
    assert venv_problem(True, (3, 12), "/usr/bin/python3") is None
    line = venv_problem(False, (3, 12), "/usr/bin/python3")
    assert line is not None and "sudo apt install python3.12-venv" in line and "\n" not in line


@pytest.mark.skipif(os.name == "nt", reason="Debian's and Ubuntu's python3")
def test_demo_with_a_python_without_ensurepip_says_which_package_to_install(tmp_path: Path) -> None:
    # A Python outside any virtual environment, in which `import ensurepip` fails as on Debian without
    # python3.X-venv (a None in sys.modules is how Python marks a module that cannot be imported).
    base = getattr(sys, "_base_executable", sys.executable)
    tree = copy_repository(tmp_path / "clone")
    run_demo = ("import runpy, sys; sys.modules['ensurepip'] = None; sys.argv = ['demo.py', '--no-install']; "
                "runpy.run_path('demo.py', run_name='__main__')")
    result = subprocess.run([base, "-c", run_demo], cwd=tree, capture_output=True, text=True, timeout=120,
                            env=clean_env())
    lines = (result.stdout + result.stderr).strip().splitlines()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
    assert f"sudo apt install python{version}-venv" in lines[0] and "Traceback" not in result.stderr
    assert not (tree / ".venv").exists()  # no half-made environment left behind


def test_the_repository_keeps_python_3_readable_entry_points() -> None:
    # labbridge/__main__.py runs before the version check: no syntax newer than Python 3.0 there.
    source = (ROOT / "labbridge" / "__main__.py").read_text(encoding="utf-8")
    assert "from __future__" not in source and "f\"" not in source and "f'" not in source
