"""The demo's modules and config.yml, as the installed package carries them (`labbridge demo`).

In a wheel this folder holds the demo's module files (module_a.py, setpoint.py,
psu.py, camera.py) and a config.yml naming them by import path
(`labbridge.demo.module_a.ModuleA`).  For now the files live at the top of the
repository, where a clone runs them, and the build copies them here
(labbridge/tools/build_demo.py); once they move here for good, that copy goes.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
CONFIG = FOLDER / "config.yml"  # present in an installed package; in a clone, the repository's config.yml serves
