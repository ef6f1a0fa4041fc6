"""What a module author imports: `from base_module import BaseModule, Attribute, action, Param`.

The proof of concept's modules start with `from base_module import BaseModule`;
that keeps working.  Everything here is re-exported from the labbridge package
(BaseModule itself lives in labbridge/experiment/base_module.py), so a module
may import from either.
"""

from __future__ import annotations

from labbridge import (
    Attribute,
    BaseModule,
    BridgeError,
    HttpDialect,
    InstrumentError,
    InstrumentTimeout,
    InstrumentUnreachable,
    InvalidValue,
    ModuleSettings,
    Param,
    Reading,
    ScpiModule,
    Target,
    action,
    ramp_value,
)

__all__ = [
    "Attribute",
    "BaseModule",
    "BridgeError",
    "HttpDialect",
    "InstrumentError",
    "InstrumentTimeout",
    "InstrumentUnreachable",
    "InvalidValue",
    "ModuleSettings",
    "Param",
    "Reading",
    "ScpiModule",
    "Target",
    "action",
    "ramp_value",
]
