"""Build step: put the demo's modules and config.yml into the wheel's labbridge/demo/ (pyproject.toml's cmdclass).

The demo modules live at the top of the repository (module_a.py and the
others, importing `from base_module import ...`), where a clone runs them.  An
installed package has no top level of its own, so the build copies them into
labbridge/demo/, importing from `labbridge` instead, and writes a config.yml
whose classes are import paths into it (`labbridge.demo.module_a.ModuleA`).
When the modules move into labbridge/demo/ for good, this step goes.

Run by setuptools only (it loads this file by path, not as part of the package).
"""

from __future__ import annotations

import re
from pathlib import Path

from setuptools.command.build_py import build_py

DEMO_MODULES = ("module_a", "setpoint", "psu", "camera")
SOURCE = Path(__file__).resolve().parents[2]  # the source tree being built


def packaged_module(text: str) -> str:
    """A top-level demo module's text, importing the module author's API from the package."""
    return text.replace("from base_module import ", "from labbridge import ")


def packaged_config(text: str) -> str:
    """The repository's config.yml with the demo modules' classes named by their import path in the package."""
    names = "|".join(DEMO_MODULES)
    return re.sub(rf"(\bclass:\s*)({names})\.", r"\1labbridge.demo.\2.", text)


class BuildPy(build_py):  # type: ignore[misc, unused-ignore]  # setuptools has no type hints in this environment
    """setuptools' build_py, then the demo's files into build/lib/labbridge/demo/."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "labbridge" / "demo"
        target.mkdir(parents=True, exist_ok=True)
        for name in DEMO_MODULES:
            text = (SOURCE / f"{name}.py").read_text(encoding="utf-8")
            (target / f"{name}.py").write_text(packaged_module(text), encoding="utf-8")
        config = (SOURCE / "config.yml").read_text(encoding="utf-8")
        (target / "config.yml").write_text(packaged_config(config), encoding="utf-8")
