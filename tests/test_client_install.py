"""The client installs alone: a wheel built from client/, in a fresh venv with no labbridge, runs README's examples."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

from tests.processes import ROOT, running_stack, shipped_modules, write_config

CHECK_INSTALL = """
import importlib.metadata as metadata, importlib.util, sys
import bridge_client
assert importlib.util.find_spec("labbridge") is None, "labbridge is importable"
installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
assert not installed & {"labbridge", "fastapi", "numpy", "pyzmq", "pydantic"}, installed
required = [r for r in metadata.requires("bridge-client") if "extra ==" not in r]
print(bridge_client.__version__, required)
"""


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_wheel_of_the_client_installs_in_a_fresh_venv_and_runs_the_readme_examples(tmp_path: Path) -> None:
    source = shutil.copytree(ROOT / "client", tmp_path / "client",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", source, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("bridge_client-*-py3-none-any.whl")
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[watch,progress]", cwd=tmp_path)
    assert run(python, "-c", CHECK_INSTALL, cwd=tmp_path).split(" ", 1)[1].strip() == "['httpx<1,>=0.27']"

    config = write_config(tmp_path / "config.yml", shipped_modules())
    with running_stack(config, tmp_path) as (_, _, url):
        printed = run(python, ROOT / "tests" / "readme_python.py", ROOT / "README.md", url, cwd=tmp_path)
    assert printed.strip().endswith("passed, 0 failed"), printed
