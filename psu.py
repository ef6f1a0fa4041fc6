"""PowerSupply, the demo's bench power supply that speaks SCPI: it lives in the package, labbridge/demo/psu.py.

config.yml's `class: psu.PowerSupply` finds it here, as in the proof of
concept; the installed package's demo names it `labbridge.demo.psu.PowerSupply`.
Read (or copy) labbridge/demo/psu.py to write a module of your own.
"""

from labbridge.demo.psu import PowerSupply

__all__ = ["PowerSupply"]
