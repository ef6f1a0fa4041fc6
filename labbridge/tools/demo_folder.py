"""Where `labbridge demo` runs the built-in demo when the folder it is run from has no config.yml.

An installed package carries the demo's config.yml in labbridge/demo/, but
what the demo writes beside it (history, the invocations journal) must not go
into the package's own folder, which pip may replace on upgrade or may not let
this user write: the config is copied into a folder of this user's (rewritten
each time, so an upgrade's demo is what runs) and run from there.  In a clone
(or an editable install) the repository's config.yml is the demo, as for
`python3 demo.py`.  Standard library only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from labbridge.demo import CONFIG as PACKAGED_CONFIG
from labbridge.tools.setup_env import ROOT


def user_folder(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """This user's folder for the demo's data: %LOCALAPPDATA%, $XDG_STATE_HOME or ~/.local/state, then labbridge/demo."""
    if sys.platform == "win32" and environ.get("LOCALAPPDATA"):
        base = Path(environ["LOCALAPPDATA"])
    else:
        base = Path(environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "labbridge" / "demo"


def demo_config() -> Path:
    """The config.yml of the built-in demo, in a folder where it may write its data."""
    if (ROOT / "start_experiment.py").is_file() and (ROOT / "config.yml").is_file():
        return ROOT / "config.yml"  # a clone (or an editable install): the repository's demo
    folder = user_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.yml"
    shutil.copyfile(PACKAGED_CONFIG, target)
    return target
