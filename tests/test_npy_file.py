"""npy_file.write_npy writes the very bytes np.save writes, whichever way it takes (O_DIRECT or the page cache)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labbridge.experiment import npy_file

READ_ONLY = np.arange(1024 * 1024, dtype=np.float32).reshape(1024, 1024)
READ_ONLY.flags.writeable = False
ARRAYS: dict[str, np.ndarray[Any, Any]] = {
    "frame": np.arange(2048 * 2048, dtype=np.uint16).reshape(2048, 2048),
    "length not a multiple of a block": np.arange(300_001, dtype=np.float64),
    "read-only": READ_ONLY,
    "datetime64": np.arange(200_000).astype("M8[s]"),
    "Fortran order": np.asfortranarray(np.ones((1000, 300))),
    "not contiguous": np.ones((3000, 400))[:, ::2],
    "small": np.arange(10),
    "0-d": np.array(2.5),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_the_file_holds_what_np_save_writes(tmp_path: Path, name: str) -> None:
    array = ARRAYS[name]
    expected = io.BytesIO()
    np.save(expected, array, allow_pickle=False)
    npy_file.write_npy(tmp_path / "a.npy", array)
    assert (tmp_path / "a.npy").read_bytes() == expected.getvalue()


def test_a_smaller_file_after_a_larger_one_has_no_tail_of_it(tmp_path: Path) -> None:
    npy_file.write_npy(tmp_path / "large.npy", np.full(3 << 20, 7, dtype=np.uint8))
    npy_file.write_npy(tmp_path / "smaller.npy", np.zeros((1 << 20) + 3, dtype=np.uint8))
    loaded = np.load(tmp_path / "smaller.npy")
    assert loaded.shape == ((1 << 20) + 3,) and not loaded.any()


def test_without_o_direct_it_writes_through_the_page_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(npy_file, "_O_DIRECT", 0)  # as on Windows or macOS
    array = ARRAYS["frame"]
    npy_file.write_npy(tmp_path / "a.npy", array)
    assert np.array_equal(np.load(tmp_path / "a.npy"), array)
