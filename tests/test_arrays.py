"""Array attributes: declared with NDArray and a shape, readings checked by NumPy, .npy files read and written."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from base_module import Attribute, BaseModule
from labbridge.core.arrays import ArrayMismatch, ArrayType, npy_answer, npy_parts, read_npy
from labbridge.core.errors import InstrumentError
from labbridge.frontend.npy import formats_accepted

FRAME = ArrayType(np.dtype(np.uint16), (4, 3))


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


class Detector(BaseModule):
    """A module declaring arrays."""

    frame: NDArray[np.uint16] = Attribute(shape=(4, 3), unit="counts", doc="An image.")
    spectrum: NDArray[np.float32] = Attribute(shape=(None,), doc="Any number of samples.")


def test_an_ndarray_declaration_knows_its_dtype_and_shape_and_says_so() -> None:
    frame = Detector.attributes["frame"]
    assert frame.is_array and frame.array == FRAME and frame.type_name == "ndarray[uint16]"
    assert frame.describe() == {"type": "ndarray[uint16]", "unit": "counts", "writable": False, "doc": "An image.",
                                "dtype": "uint16", "shape": [4, 3]}
    assert Detector.attributes["spectrum"].array == ArrayType(np.dtype(np.float32), (None,))


@pytest.mark.parametrize(("annotation", "extra", "message"), [
    ("NDArray[np.uint16]", "writable=True", "array attributes are read-only"),
    ("float", "shape=(2,)", "shape needs an array type"),
    ("NDArray[np.complex128]", "", "cannot be sent as JSON"),
    ("NDArray[np.uint16]", "shape=(2, -1)", "shape must hold lengths"),
    ("NDArray[Any]", "", "give the array's element type"),
])
def test_a_declaration_that_makes_no_sense_is_refused_when_the_class_is_made(
        annotation: str, extra: str, message: str) -> None:
    source = f"class Bad(BaseModule):\n    x: {annotation} = Attribute({extra})\n"
    with pytest.raises(TypeError, match=message):
        exec(source, dict(globals()))  # noqa: S102 - the annotation is resolved in this module, as in a real one


def test_a_reading_of_the_declared_dtype_and_shape_is_taken_as_it_is() -> None:
    frame = np.arange(12, dtype=np.uint16).reshape(4, 3)
    checked = FRAME.check(frame)
    assert checked is frame or np.shares_memory(checked, frame)  # not copied


def test_json_lists_become_the_declared_array_when_nothing_is_lost() -> None:
    checked = FRAME.check([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 65535]])
    assert checked.dtype == np.uint16 and checked.shape == (4, 3) and checked[3, 2] == 65535
    assert FRAME.check([[1.0, 2, 3]] * 4).dtype == np.uint16  # whole numbers written as floats
    spectrum = Detector.attributes["spectrum"].array
    assert spectrum is not None and spectrum.check([1, 2.5]).dtype == np.float32


def test_an_array_in_another_byte_order_or_memory_order_comes_out_native_and_c_ordered() -> None:
    swapped = np.arange(12, dtype=">u2").reshape(4, 3)
    checked = FRAME.check(swapped)
    assert checked.dtype == np.dtype("=u2") and np.array_equal(checked, swapped)
    fortran = np.asfortranarray(np.arange(12, dtype=np.uint16).reshape(4, 3))
    assert FRAME.check(fortran).flags.c_contiguous


@pytest.mark.parametrize(("reading", "said"), [
    (np.zeros((3, 4), dtype=np.uint16), "an array of shape 3x4"),
    (np.zeros(12, dtype=np.uint16), "an array of shape 12"),
    (np.full((4, 3), 1.5), "an array of float64 whose values do not fit uint16"),
    ([[70000, 0, 0]] * 4, "an array of int64 whose values do not fit uint16"),
    ([[-1, 0, 0]] * 4, "an array of int64 whose values do not fit uint16"),
    ([[True, False, True]] * 4, "an array of bool"),
    ([[1, 2], [3]], "lists that do not form an array of numbers"),
    ([["a", "b", "c"]] * 4, "a list that is not all numbers"),
    ({"value": 1}, "a dict, not an array"),
    (np.array(["x"] * 12, dtype=object).reshape(4, 3), "a list that is not all numbers"),
])
def test_a_reading_that_is_not_the_declared_array_is_refused_naming_what_came(reading: Any, said: str) -> None:
    with pytest.raises(ArrayMismatch) as info:
        FRAME.check(reading)
    assert str(info.value) == said


def test_a_refused_reading_is_an_instrument_error_naming_module_attribute_and_what_was_expected() -> None:
    with pytest.raises(InstrumentError, match=r"instrument of cam sent an array of shape 2x2 for frame, "
                                              r"expected ndarray\[uint16\] of shape 4x3"):
        Detector.attributes["frame"].coerce_reading(np.zeros((2, 2), dtype=np.uint16), "cam")


def test_a_npy_file_is_read_as_a_view_of_its_bytes() -> None:
    array = np.arange(12, dtype=np.uint16).reshape(4, 3)
    content = npy_bytes(array)
    read = read_npy(content)
    assert np.array_equal(read, array) and read.dtype == array.dtype
    assert not read.flags.owndata and not read.flags.writeable  # a view of `content`, nothing copied
    assert np.array_equal(read_npy(npy_bytes(np.asfortranarray(array))), array)


@pytest.mark.parametrize(("content", "said"), [
    (b"\x93NUMPY\x01\x00", "cannot be read"),
    (b"not a numpy file at all", "cannot be read"),
    (npy_bytes(np.arange(12, dtype=np.uint16))[:-2], "does not match"),
    (npy_bytes(np.arange(12, dtype=np.uint16)) + b"xx", "does not match"),
    (npy_bytes(np.array([{"a": 1}], dtype=object)), "Python objects"),
])
def test_a_broken_npy_file_is_refused_and_never_unpickled(content: bytes, said: str) -> None:
    with pytest.raises(ArrayMismatch, match=said):
        read_npy(content)


def crafted_npy(descr: str, shape: str, data: bytes = b"") -> bytes:
    """A .npy file with the header given word for word, as a hostile instrument could send it."""
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


@pytest.mark.parametrize(("content", "said"), [
    # No data, but 2**62 rows of nothing: written as JSON that is 2**62 times "[]" (the experiment process died).
    (crafted_npy("'|u1'", "(4611686018427387904, 0)"), "shape"),
    (crafted_npy("'|u1'", "(20000000, 0)"), "shape"),
    (crafted_npy("'|u1'", "(-2, -4)", b"\0" * 8), "shape"),
    (crafted_npy("'|u1'", "(True,)", b"\0"), "shape"),
    (crafted_npy("'|u1'", "(" + "1, " * 70 + ")", b"\0"), "shape"),
    (crafted_npy("('<u1', (4,))", "(2,)", b"\0" * 8), "sub-array"),
])
def test_a_hostile_npy_header_is_refused_before_any_array_is_made(content: bytes, said: str) -> None:
    with pytest.raises(ArrayMismatch, match=said):
        read_npy(content)


def test_an_empty_array_of_a_sensible_shape_is_still_read() -> None:
    assert read_npy(npy_bytes(np.zeros((0, 5), dtype=np.uint16))).shape == (0, 5)
    assert read_npy(npy_bytes(np.zeros((100, 0), dtype=np.uint16))).shape == (100, 0)


def test_npy_parts_are_a_header_and_the_arrays_own_memory_and_load_back() -> None:
    array = np.arange(12, dtype=np.uint16).reshape(4, 3)
    header, data = npy_parts(array)
    assert np.shares_memory(data, array)  # the numbers are not copied
    loaded = np.load(io.BytesIO(header + data.tobytes()))
    assert loaded.dtype == np.uint16 and loaded.shape == (4, 3) and np.array_equal(loaded, array)


def test_a_list_attribute_goes_as_npy_when_it_holds_numbers_only() -> None:
    answer = npy_answer({"value": [1.0, 2.5]})
    assert answer is not None and np.load(io.BytesIO(b"".join(bytes(p) for p in answer.parts))).tolist() == [1.0, 2.5]
    assert npy_answer({"value": ["a", "b"]}) is None


@pytest.mark.parametrize(("accept", "formats"), [
    (None, ("json",)),
    ("application/json", ("json",)),
    ("text/html,*/*", ("json",)),
    ("application/x-npy", ("npy",)),
    ("application/x-npy, */*", ("npy", "json")),
    ("application/json, application/x-npy;q=0.5", ("json", "npy")),
    ("application/x-npy;q=0.5, application/json", ("json", "npy")),
    ("application/x-npy;q=0, application/json", ("json",)),
    ("application/x-npy;q=0", ("json",)),
    ("Application/X-NPY;q=oops", ("npy",)),  # case does not matter; a q that is not a number counts as 1
])
def test_accept_headers_name_the_formats_taken_best_first(accept: str | None, formats: tuple[str, ...]) -> None:
    assert formats_accepted(accept) == formats
