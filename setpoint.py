"""Setpoint, the demo's value kept in the experiment process"s memory: it lives in the package, labbridge/demo/setpoint.py.

config.yml's `class: setpoint.Setpoint` finds it here, as in the proof of
concept; the installed package's demo names it `labbridge.demo.setpoint.Setpoint`.
Read (or copy) labbridge/demo/setpoint.py to write a module of your own.
"""

from labbridge.demo.setpoint import Setpoint

__all__ = ["Setpoint"]
