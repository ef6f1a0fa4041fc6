"""Values as Python users expect them: numeric arrays as numpy arrays when numpy is installed.

The bridge sends every value as JSON.  Scalars stay plain Python values
(float, int, str, bool); an attribute declared as a list of numbers or as an
ndarray (`ndarray[uint16]`, of the dtype named) becomes a numpy array when
numpy can be imported, else stays a (nested) list, so the client needs nothing
beyond httpx.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from bridge_client.description import AttributeInfo

_DTYPES = {"list[float]": "float64", "list[int]": "int64", "list[bool]": "bool"}


@functools.cache
def numpy_or_none() -> ModuleType | None:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        return None


def decode(value: Any, info: AttributeInfo) -> Any:
    """A value read from the bridge, as the attribute's declared type suggests."""
    dtype = info.type[8:-1] if info.type.startswith("ndarray[") else _DTYPES.get(info.type)
    if dtype is None or not isinstance(value, list):
        return value
    numpy = numpy_or_none()
    return value if numpy is None else numpy.asarray(value, dtype=dtype)
