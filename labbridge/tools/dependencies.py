"""Whether this Python has the bridge's requirements, and the one line to show when it has not.

`python -m labbridge keys keys/` (or `python main.py`) run with a Python that
is not the bridge's environment (a system `python3`, .venv not activated)
used to end in a dozen lines of ModuleNotFoundError traceback.  The entry
points call `require_dependencies()` right after `require_python()`: it looks
the requirements up without importing them (`importlib.util.find_spec`) and
exits with one line naming what to run instead.

Standard library only, and loaded before any requirement.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# The import names of requirements.txt's runtime requirements (a distribution's name is not its import name).
IMPORT_NAMES = ("fastapi", "uvicorn", "zmq", "yaml", "pydantic", "aiohttp", "orjson", "msgspec", "numpy",
                "fastapi_offline", "pyvisa", "pyvisa_py", "prometheus_client", "watchfiles")
ROOT = Path(__file__).resolve().parents[2]  # the repository, in a clone; site-packages in an installed package


def missing_requirement(names: Sequence[str] = IMPORT_NAMES) -> str | None:
    """The first requirement this Python cannot import, else None."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def advice(missing: str, command: Sequence[str], python: str, root: Path = ROOT) -> str:
    """The one line to show: what is missing, and the command to run instead.

    `command` is what was run after the interpreter (`-m labbridge keys keys/`, `main.py`)."""
    what = f"this Python ({python}) lacks the bridge's requirements (no module named {missing!r})"
    shown = " ".join(command)
    if not (root / "requirements.txt").is_file():  # an installed package: pip was told --no-deps, or another Python
        return f"{what}: install the bridge with its dependencies (`{python} -m pip install labbridge`), " \
               "or run the `labbridge` command of the environment it is installed in"
    venv = root / ".venv"
    venv_python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    here = Path.cwd().resolve()
    shown_python = os.path.relpath(venv_python, here) if venv_python.is_relative_to(here) else str(venv_python)
    if venv_python.exists():
        return f"{what}: run `{shown_python} {shown}` instead (or activate {venv.name} first)"
    return f"{what}: run `python3 demo.py` once (it creates .venv and installs them), then `{shown_python} {shown}`"


def require_dependencies(command: Sequence[str] | None = None) -> None:
    """Exit with the one-line advice (exit code 1) when a requirement is missing; `command` defaults to argv."""
    missing = missing_requirement()
    if missing is not None:
        sys.exit(advice(missing, command if command is not None else sys.argv, sys.executable))
