"""ArrayType: what an ndarray attribute holds (dtype and shape), checked without a Python loop; the .npy format.

A module declares an array with NumPy's own annotation and, optionally, its
shape (`None` for a dimension of any length)::

    frame: NDArray[np.uint16] = Attribute(shape=(2048, 2048), unit="counts")
    trace: NDArray[np.float64] = Attribute(shape=(None,), unit="N")

Readings are checked by `ArrayType.check` with NumPy's vectorised operations:
a module's own array (in-process modules hand them over as they are), a
`.npy` file from an instrument (read by `read_npy` as a view of the bytes that
came in, so they are passed on without being parsed or copied), or nested JSON
lists.  Values of another kind are converted only when nothing is lost (whole
numbers that fit the dtype); anything else is refused, naming what came.  An
array that passed is C-ordered in the machine's byte order, which is what
`npy_parts` sends (a header and a view of the array's memory, for zero-copy
ZeroMQ frames) and what orjson writes as nested JSON lists.

Only the experiment process imports this file (and NumPy).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import numpy as np
from numpy.lib import format as npy_format

# The dtypes orjson writes as JSON numbers (or booleans): an array of another kind could not be read as JSON.
KINDS = "biuf"


class ArrayMismatch(ValueError):
    """A reading that is not the declared array; its message says what came instead ("an array of float64")."""


@dataclass(frozen=True)
class ArrayType:
    """The dtype and shape (None: any length) that an ndarray attribute's value must have."""

    dtype: np.dtype[Any]
    shape: tuple[int | None, ...] | None = None

    @classmethod
    def of(cls, annotation: Any, shape: tuple[int | None, ...] | None, what: str) -> ArrayType | None:
        """The array type of an `NDArray[...]` annotation (None for any other annotation); TypeError if it is
        one NumPy could not send as JSON, or `shape` makes no sense."""
        if get_origin(annotation) is not np.ndarray:
            return None
        args = get_args(annotation)
        scalar = get_args(args[1])[0] if len(args) == 2 and get_args(args[1]) else None
        if not (isinstance(scalar, type) and issubclass(scalar, np.generic)):
            raise TypeError(f"{what}: give the array's element type, e.g. NDArray[np.uint16]")
        dtype = np.dtype(scalar)
        if dtype.kind not in KINDS:
            raise TypeError(f"{what}: arrays of {dtype} cannot be sent as JSON; use bool, integers or floats")
        if shape is not None and not all(d is None or (isinstance(d, int) and d >= 0) for d in shape):
            raise TypeError(f"{what}: shape must hold lengths (int, or None for any), got {shape!r}")
        return cls(dtype, None if shape is None else tuple(shape))

    @property
    def name(self) -> str:
        return f"ndarray[{self.dtype}]"

    def expected(self) -> str:
        """What a reading must be, for messages: "ndarray[uint16] of shape 2048x2048"."""
        if self.shape is None:
            return self.name
        return f"{self.name} of shape {'x'.join('any' if d is None else str(d) for d in self.shape) or '()'}"

    def describe(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype), "shape": None if self.shape is None else list(self.shape)}

    def check(self, value: Any) -> np.ndarray[Any, Any]:
        """The reading as an array of this type (converted only when nothing is lost); ArrayMismatch if not."""
        array = value if isinstance(value, np.ndarray) else _from_json(value)
        if array.dtype.kind not in KINDS:
            raise ArrayMismatch(_kind(array))
        if self.shape is not None and (array.ndim != len(self.shape)
                                       or any(d is not None and d != n for d, n in zip(self.shape, array.shape))):
            raise ArrayMismatch(f"an array of shape {_shape(array.shape)}")
        if array.dtype.newbyteorder("=") != self.dtype:
            array = self._converted(array)
        # C order and this machine's byte order: what .npy readers and orjson expect, copied only if needed.
        return np.ascontiguousarray(array, dtype=self.dtype)

    def _converted(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if (array.dtype.kind == "b") != (self.dtype.kind == "b"):  # true/false are not numbers, nor numbers flags
            raise ArrayMismatch(_kind(array))
        if np.can_cast(array.dtype, self.dtype, casting="safe"):
            return array
        if self.dtype.kind in "iu" and array.dtype.kind in "iuf" and array.size:
            whole = array.dtype.kind != "f" or bool(np.all(np.isfinite(array)) and np.all(np.mod(array, 1) == 0))
            info = np.iinfo(self.dtype)
            if whole and info.min <= array.min() and array.max() <= info.max:
                return array
        if self.dtype.kind == "f" and array.dtype.kind in "iuf":
            return array  # a float64 reading for a float32 attribute: rounded, as any float reading is
        if not array.size and array.dtype.kind in "iuf":
            return array
        raise ArrayMismatch(f"{_kind(array)} whose values do not fit {self.dtype}")


def _from_json(value: Any) -> np.ndarray[Any, Any]:
    if not isinstance(value, list):
        raise ArrayMismatch(f"a {type(value).__name__}, not an array")
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged lists, numbers too large for any integer type
        raise ArrayMismatch("lists that do not form an array of numbers") from None


def _kind(array: np.ndarray[Any, Any]) -> str:
    return f"an array of {array.dtype}" if array.dtype.kind not in "OUS" else "a list that is not all numbers"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "() (a single value)"


def read_npy(content: bytes) -> np.ndarray[Any, Any]:
    """The array in a .npy file, as a read-only view of `content` (nothing copied); ArrayMismatch if it is not
    one, or holds Python objects (which are never unpickled)."""
    stream = io.BytesIO(content)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"version {version} is not supported")
    except (ValueError, EOFError) as exc:
        raise ArrayMismatch(f"a .npy file that cannot be read ({exc})") from None
    if dtype.hasobject:
        raise ArrayMismatch("a .npy file of Python objects")
    if dtype.subdtype is not None:
        raise ArrayMismatch(f"a .npy file of sub-arrays ({dtype}), not of numbers")
    _check_shape(shape)
    count = math.prod(shape)
    if len(content) - stream.tell() != count * dtype.itemsize:
        raise ArrayMismatch(f"a .npy file of {len(content)} bytes, which its header ({dtype}, {shape}) does not match")
    flat = np.frombuffer(content, dtype=dtype, count=count, offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")


# An empty array may still have many rows of nothing, each written out as "[]" in JSON: at most this many.
EMPTY_ARRAY_CELLS = 4096


def _check_shape(shape: Any) -> None:
    """Refuse a shape no honest array has, before anything is made from it: a hostile header must not make the
    bridge write 2**62 empty lists for 128 bytes of data."""
    if (not isinstance(shape, tuple) or len(shape) > 64
            or not all(type(n) is int and n >= 0 for n in shape)):  # noqa: E721 (a bool is not a length)
        raise ArrayMismatch(f"a .npy file whose shape {shape!r} is not up to 64 lengths of 0 or more")
    if 0 in shape and math.prod(max(n, 1) for n in shape) > EMPTY_ARRAY_CELLS:
        raise ArrayMismatch(f"an empty array of shape {shape!r}: more than {EMPTY_ARRAY_CELLS} rows of nothing")


def npy_parts(array: np.ndarray[Any, Any]) -> tuple[bytes, np.ndarray[Any, Any]]:
    """A .npy file in two parts: its header, and the array's own memory as bytes (a view, not a copy)."""
    array = np.ascontiguousarray(array)
    header, fields = io.BytesIO(), npy_format.header_data_from_array_1_0(array)
    try:
        npy_format.write_array_header_1_0(header, fields)
    except ValueError:  # a header over 64 KiB (thousands of dimensions) needs version 2.0
        header = io.BytesIO()
        npy_format.write_array_header_2_0(header, fields)
    return header.getvalue(), array.reshape(-1).view(np.uint8)


@dataclass(frozen=True)
class NpyAnswer:
    """An array read for a client that asked for a .npy file: the file, in the parts `npy_parts` gives."""

    parts: tuple[bytes, np.ndarray[Any, Any]]

    @property
    def nbytes(self) -> int:
        return len(self.parts[0]) + self.parts[1].nbytes


def npy_answer(answer: dict[str, Any]) -> NpyAnswer | None:
    """The value of a `get` answer as a .npy file; None if it is not an array of numbers (a list of strings)."""
    value = answer["value"]
    array = value if isinstance(value, np.ndarray) else np.asarray(value)  # a list attribute's checked list
    return NpyAnswer(npy_parts(array)) if array.dtype.kind in KINDS else None
