"""Simulated instruments, for modules with `simulate: true`.

`actuator.py` is an HTTP instrument the experiment process serves on the
module's port; `psu.yaml` is a pyvisa-sim device file that a ScpiModule runs
in process instead of opening a real VISA resource.
"""

from __future__ import annotations

from pathlib import Path

# pyvisa-sim's device file for psu.py's PowerSupply.
PSU_DEVICE_FILE = Path(__file__).with_name("psu.yaml")
