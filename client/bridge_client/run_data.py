"""A run's points as scientists use them: NumPy columns, a pandas DataFrame, an xarray Dataset.

`GET /runs/<id>/data` answers columnar pages: `point` and `time` (Unix
seconds), then `values` by column, with each column's `unit` and `kind`
(number, bool, str or array) and the procedure's declared `axes`.  `Columns`
gathers the pages and turns them into NumPy arrays, one per column: numbers
as int64 when every value is whole and present, else float64 with NaN for a
point that did not record the column; arrays of one shape stacked along a
first point axis (varying shapes: an object array of arrays), of the dtype
the procedure recorded (the column's `dtype`).

`to_xarray` makes the declared axes the dimensions (QCoDeS's setpoints): a
sweep along `voltage` becomes a Dataset indexed by voltage; two axes give a
grid (NaN where no point was recorded).  When an axis repeats a value (the
same voltage twice), or there is no axis, the dimension is `point` and the
axes are coordinates along it.  pandas and xarray are optional
(`pip install "bridge-client[data]"`), numpy too (`[numpy]`).
"""

from __future__ import annotations

import importlib
from typing import Any

NumpyColumns = dict[str, Any]  # column name -> numpy.ndarray


class Columns:
    """The points of a run gathered page by page, as plain lists until `arrays()` makes NumPy arrays."""

    def __init__(self) -> None:
        self.point: list[int] = []
        self.time: list[float] = []
        self.values: dict[str, list[Any]] = {}
        self.columns: dict[str, dict[str, Any]] = {}
        self.axes: tuple[str, ...] = ()

    def add(self, page: dict[str, Any]) -> None:
        """One page of `GET /runs/<id>/data` (a column that appears later is None for the points before)."""
        self.axes = tuple(page.get("axes") or ())
        for name, column in (page.get("columns") or {}).items():
            if name not in self.columns:
                self.columns[name] = dict(column)
                self.values[name] = [None] * len(self.point)
        count = len(page["point"])
        self.point += page["point"]
        self.time += page["time"]
        for name in self.columns:
            self.values[name] += list(page["values"].get(name) or [None] * count)

    @property
    def units(self) -> dict[str, str | None]:
        return {name: column.get("unit") for name, column in self.columns.items()}

    def arrays(self) -> NumpyColumns:
        """`point`, `time` and every column as NumPy arrays."""
        np = require("numpy", "numpy")
        found: NumpyColumns = {"point": np.asarray(self.point, dtype="int64"),
                               "time": np.asarray(self.time, dtype="float64")}
        for name, column in self.columns.items():
            found[name] = _array(np, self.values[name], column.get("kind"), column.get("dtype"))
        return found


def _array(np: Any, values: list[Any], kind: Any, dtype: Any) -> Any:
    present = [v for v in values if v is not None]
    if kind == "array":
        arrays = [None if v is None else np.asarray(v, dtype=dtype) for v in values]
        shapes = {a.shape for a in arrays if a is not None}
        if len(shapes) == 1 and len(present) == len(values) and values:
            return np.stack(arrays)
        held = np.empty(len(arrays), dtype=object)
        held[:] = arrays
        return held
    if kind == "number":
        if len(present) == len(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return np.asarray(values, dtype="int64")
        return np.asarray([np.nan if v is None else v for v in values], dtype="float64")
    if kind == "bool" and len(present) == len(values):
        return np.asarray(values, dtype=bool)
    held = np.empty(len(values), dtype=object)  # text, or booleans with gaps
    held[:] = values
    return held


def require(name: str, extra: str) -> Any:
    """An optional package, or a clear error naming the extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ModuleNotFoundError(f'this needs {name}: pip install "bridge-client[{extra}]"') from None


def to_pandas(data: NumpyColumns) -> Any:
    """One row per point, indexed by `point`; an array column holds one array per row."""
    pd = require("pandas", "data")
    return pd.DataFrame({name: list(column) if column.ndim > 1 else column
                         for name, column in data.items() if name != "point"},
                        index=pd.Index(data["point"], name="point"))


def to_xarray(data: NumpyColumns, axes: tuple[str, ...], units: dict[str, str | None],
              attrs: dict[str, Any] | None = None) -> Any:
    """A Dataset whose dimensions are the declared axes (see the module's doc), units in each variable's attrs."""
    xr = require("xarray", "data")
    scalar = [name for name, column in data.items() if column.ndim == 1]
    if axes and _gridded(data, axes):
        frame = to_pandas({name: data[name] for name in ("point", *scalar)}).reset_index()
        dataset = frame.set_index(list(axes)).to_xarray()
        if len(axes) == 1:  # arrays too, along the one axis (a grid of arrays is left to the user)
            for name, column in data.items():
                if column.ndim > 1:
                    dataset[name] = ((axes[0], *_inner(name, column)), column)
    else:
        dataset = xr.Dataset({name: (("point", *_inner(name, column)), column)
                              for name, column in data.items() if name != "point"},
                             coords={"point": data["point"]})
        dataset = dataset.set_coords([axis for axis in axes if axis in dataset])
    for name, unit in units.items():
        if unit and name in dataset.variables:
            dataset[name].attrs["units"] = unit
    dataset["time"].attrs["units"] = "s since 1970-01-01 (Unix time)"
    dataset.attrs.update(attrs or {})
    return dataset


def _gridded(data: NumpyColumns, axes: tuple[str, ...]) -> bool:
    """Whether every point has its own combination of axis values (so the axes can index the data)."""
    if any(axis not in data or data[axis].ndim != 1 for axis in axes):
        return False
    combinations = set(zip(*(data[axis].tolist() for axis in axes)))
    return len(combinations) == len(data["point"])


def _inner(name: str, column: Any) -> tuple[str, ...]:
    """The names of an array column's own dimensions (after the point axis): `frame_0`, `frame_1`."""
    return tuple(f"{name}_{i}" for i in range(column.ndim - 1))

