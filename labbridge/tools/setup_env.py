"""Make sure a Python environment with the project's requirements exists.

Used by demo.py and run_tests.py so that one command works on a fresh machine:
outside any virtual environment it creates `.venv` in the repository (system
Pythons often refuse `pip install`), installs the requirements file into it,
and returns that environment's interpreter.  Inside a virtual environment it
installs into the current one.  Standard library only: it runs before anything
is installed.

`labthings_python()` makes a second environment, `.venv-labthings`, for the
LabThings-FastAPI server that tests (and the benchmark) run as a real
third-party instrument: labthings-fastapi pins FastAPI and pydantic versions
other than the bridge's, so it cannot share `.venv`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: labbridge/tools/ is two levels down
VENV = ROOT / ".venv"
LABTHINGS_VENV = ROOT / ".venv-labthings"
LABTHINGS_REQUIREMENTS = ROOT / "requirements-labthings.txt"
log = logging.getLogger("setup_env")


def in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix or "CONDA_PREFIX" in os.environ


def venv_python(venv_dir: Path = VENV) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def labthings_python() -> str:
    """The interpreter of the LabThings-FastAPI environment, created and installed on first use.

    It is reinstalled whenever requirements-labthings.txt changes (the file's
    text at the last install is kept inside the environment).
    """
    python = venv_python(LABTHINGS_VENV)
    installed = LABTHINGS_VENV / "installed-requirements.txt"
    wanted = LABTHINGS_REQUIREMENTS.read_text(encoding="utf-8")
    if not python.exists():
        log.info("creating %s", LABTHINGS_VENV)
        venv.EnvBuilder(with_pip=True, clear=True).create(LABTHINGS_VENV)
    if not installed.exists() or installed.read_text(encoding="utf-8") != wanted:
        log.info("installing %s (quiet)", LABTHINGS_REQUIREMENTS.name)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(LABTHINGS_REQUIREMENTS)], check=True)
        installed.write_text(wanted, encoding="utf-8")
    return str(python)


def run_inside(requirements: str) -> None:
    """Re-run the calling script inside the prepared environment, unless it already runs there."""
    python = prepare(requirements, install=not in_virtualenv() or not _has_all(requirements))
    if Path(python).resolve() != Path(sys.executable).resolve():
        sys.exit(subprocess.run([python, *sys.argv], check=False).returncode)


def _has_all(requirements: str) -> bool:
    """True when every requirement's distribution is installed here (versions are not checked)."""
    from importlib.metadata import PackageNotFoundError, version

    for line in (ROOT / requirements).read_text().splitlines():
        name = line.split("#")[0].split(";")[0].strip()
        if not name or name.startswith("-"):  # -r includes, -e local projects
            continue
        try:
            version(name.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip())
        except PackageNotFoundError:
            return False
    return True


def venv_problem(has_ensurepip: bool, version: tuple[int, ...], executable: str) -> str | None:
    """The one line to show when this Python cannot create a virtual environment with pip in it, else None.

    Debian and Ubuntu ship `ensurepip` (what `venv` installs pip with) in a package of its own, python3.X-venv,
    and refuse `pip install` outside a virtual environment (PEP 668): without that package there is no way
    to install the requirements, and `venv` would fail with a CalledProcessError traceback."""
    if has_ensurepip:
        return None
    package = f"python{version[0]}.{version[1]}-venv"
    return (f"this Python ({executable}) cannot create a virtual environment: it has no ensurepip; on Debian and "
            f"Ubuntu install the {package} package (`sudo apt install {package}`), then run the command again")


def prepare(requirements: str, install: bool = True) -> str:
    """Return the interpreter to use, with `requirements` installed into its environment.

    Exits with one line (code 1) when a virtual environment is needed and this Python cannot make one."""
    if in_virtualenv():
        python = sys.executable
    else:
        python = str(venv_python())
        if not venv_python().exists():
            problem = venv_problem(importlib.util.find_spec("ensurepip") is not None, sys.version_info[:2],
                                   sys.executable)
            if problem is not None:
                sys.exit(problem)
            log.info("creating %s", VENV)
            venv.EnvBuilder(with_pip=True).create(VENV)
    if install:
        log.info("installing %s (quiet; first run downloads packages)", requirements)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(ROOT / requirements)], check=True, cwd=ROOT)  # paths in it (./client) are relative to ROOT
    return python
