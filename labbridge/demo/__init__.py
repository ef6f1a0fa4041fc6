"""The demo's modules and config.yml, as the installed package carries them (`labbridge demo`).

This folder holds the demo's module files (module_a.py, setpoint.py, psu.py,
camera.py) and a config.yml naming them by import path
(`labbridge.demo.module_a.ModuleA`).  A clone's top-level module_a.py and the
others only re-export them, so that the repository's config.yml
(`class: module_a.ModuleA`) and the proof of concept's layout keep working.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
CONFIG = FOLDER / "config.yml"  # the installed package's demo; a clone runs the repository's config.yml
