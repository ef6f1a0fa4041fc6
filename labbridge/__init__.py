"""labbridge: the machinery of the instrument bridge, one folder per process.

    core/         imported by both processes: the wire protocol, the config.yml
                  schema, the errors, attribute declarations, CurveZMQ keys,
                  where the processes meet and how large their messages may be
    frontend/     runs in the web process (main.py): the FastAPI app and its
                  routes, the ZeroMQ client, tokens, audit log, dashboard
    experiment/   runs in the experiment process (start_experiment.py): the
                  modules' base class, dispatch, the ZeroMQ server, simulators
    tools/        runs in neither: environment set-up and the demo launcher

What a module author needs is importable from here (and, for the proof of
concept's users, from the top-level base_module.py).  The names are loaded on
first use, so `import labbridge.tools.setup_env` works before any requirement
is installed.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.9.0"

# name -> module that defines it: the module author's API.
_PUBLIC = {
    "BaseModule": "labbridge.experiment.base_module",
    "Reading": "labbridge.experiment.base_module",
    "ScpiModule": "labbridge.experiment.scpi_module",
    "HttpDialect": "labbridge.experiment.drivers.http_dialect",
    "Attribute": "labbridge.core.attribute",
    "ModuleSettings": "labbridge.core.config",
    "BridgeError": "labbridge.core.errors",
    "InstrumentError": "labbridge.core.errors",
    "InstrumentUnreachable": "labbridge.core.errors",
    "InstrumentTimeout": "labbridge.core.errors",
    "InvalidValue": "labbridge.core.errors",
    "action": "labbridge.core.action",
    "Param": "labbridge.core.action",
    "ramp_value": "labbridge.experiment.ramp",
    "Target": "labbridge.experiment.target",
    "procedure": "labbridge.experiment.procedure",
    "Run": "labbridge.experiment.lab_handle",
    "RunStopped": "labbridge.experiment.lab_handle",
}

__all__ = [
    "Attribute", "BaseModule", "BridgeError", "HttpDialect", "InstrumentError", "InstrumentTimeout",
    "InstrumentUnreachable", "InvalidValue", "ModuleSettings", "Param", "Reading", "Run", "RunStopped", "ScpiModule",
    "Target", "action", "procedure", "ramp_value",
]

if TYPE_CHECKING:
    from labbridge.core.action import Param, action
    from labbridge.core.attribute import Attribute
    from labbridge.core.config import ModuleSettings
    from labbridge.core.errors import BridgeError, InstrumentError, InstrumentTimeout, InstrumentUnreachable, InvalidValue
    from labbridge.experiment.base_module import BaseModule, Reading
    from labbridge.experiment.drivers.http_dialect import HttpDialect
    from labbridge.experiment.ramp import ramp_value
    from labbridge.experiment.scpi_module import ScpiModule
    from labbridge.experiment.lab_handle import Run, RunStopped
    from labbridge.experiment.procedure import procedure
    from labbridge.experiment.target import Target


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'labbridge' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
