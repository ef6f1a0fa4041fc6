"""ModuleA, the demo's linear actuator with an HTTP API: it lives in the package, labbridge/demo/module_a.py.

config.yml's `class: module_a.ModuleA` finds it here, as in the proof of
concept; the installed package's demo names it `labbridge.demo.module_a.ModuleA`.
Read (or copy) labbridge/demo/module_a.py to write a module of your own.
"""

from labbridge.demo.module_a import CycleSummary, ModuleA

__all__ = ["CycleSummary", "ModuleA"]
