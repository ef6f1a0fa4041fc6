"""A run as one HDF5 file laid out as NeXus has it (`GET /runs/<id>/data?format=hdf5`).

    /                       default="entry", creator, file_name, file_time
    /entry                  NXentry, default="data"; attributes: status, message, error, queued_by, created
        title               the procedure's name
        entry_identifier    the run's id
        start_time/end_time ISO 8601; duration in s
        program_name        "labbridge", its version as an attribute
        procedure/          NXcollection: name, source, source_hash, config (the config.yml in force)
        parameters/         NXcollection: a field per parameter
        metadata/           NXcollection: a field per entry (nested objects: groups)
        snapshot_start/     NXcollection: a group per module, a field per attribute, as read when the run started
        snapshot_end/       ... and when it ended
        data/               NXdata: signal, axes, auxiliary_signals
            point, time     the point numbers and their Unix times (s), along the first dimension
            <column>        one per recorded column, with its `units`: numbers, booleans and text as 1-D
                            datasets; arrays of one shape stacked into (points, *shape); arrays of varying
                            shape (or missing at some point) as a group with a dataset per point number;
                            a column named point or time is called point_recorded or time_recorded

`axes` names the procedure's first declared axis (the others get
`<name>_indices = 0` too); without one it is `point`.  `signal` is the first
recorded column that is not an axis and is a dataset.

The file is written from the run store page by page: a first pass reads the
points' JSON (arrays only as references, dtype and shape) to size every
dataset, a second writes them, loading one array at a time, so a run of
camera frames is never held in memory.  h5py needs a seekable file: the
caller (run_exports.py) gives a path and sends the file on in chunks.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import orjson

from labbridge import __version__
from labbridge.experiment.run_store import RunStore

PAGE = 1000  # points read from the store at a time
_TEXT = h5py.string_dtype()


@dataclass
class _Column:
    """What a recorded column holds, found by the first pass over the points."""

    name: str
    unit: str | None
    present: int = 0  # points that have it
    kinds: set[str] = field(default_factory=set)  # "array", "str", "bool", "int", "float"
    shapes: set[tuple[int, ...]] = field(default_factory=set)
    dtypes: set[str] = field(default_factory=set)

    def note(self, value: Any) -> None:
        self.present += 1
        if isinstance(value, dict):
            self.kinds.add("array")
            self.shapes.add(tuple(value["shape"]))
            self.dtypes.add(value["dtype"])
        else:
            self.kinds.add("bool" if isinstance(value, bool) else "int" if isinstance(value, int)
                           else "float" if isinstance(value, float) else "str")

    def layout(self, points: int) -> str:
        """`stacked`, `per_point` (arrays), or the dtype of a 1-D dataset of scalars."""
        if "array" in self.kinds:
            return "stacked" if self.kinds == {"array"} and len(self.shapes) == 1 and self.present == points \
                else "per_point"
        if "str" in self.kinds:
            return "str"
        if self.kinds == {"bool"} and self.present == points:
            return "bool"
        if self.kinds <= {"int", "bool"} and self.present == points:
            return "int"
        return "float"  # a point without it: NaN


def write_run(store: RunStore, record: dict[str, Any], path: Path) -> None:
    """Write the run `record` (RunStore.get) and its points to an HDF5 file at `path` (replaced)."""
    run_id = record["id"]
    columns = {name: _Column(name, (info or {}).get("unit")) for name, info in (record.get("columns") or {}).items()}
    count = 0
    for page in _pages(store, run_id):
        for _, _, values in page:
            count += 1
            for name, value in values.items():
                if name not in columns:
                    columns[name] = _Column(name, None)
                if value is not None:
                    columns[name].note(value)
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        f.attrs["creator"] = f"labbridge {__version__}"
        f.attrs["file_name"] = path.name
        f.attrs["file_time"] = _iso(time.time())
        entry = _group(f, "entry", "NXentry")
        entry.attrs["default"] = "data"
        _entry_fields(entry, record)
        _data(store, entry, record, columns, count)


def _entry_fields(entry: h5py.Group, record: dict[str, Any]) -> None:
    entry["title"] = record["procedure"]
    entry["entry_identifier"] = record["id"]
    for name, key in (("start_time", "started"), ("end_time", "finished")):
        if record.get(key) is not None:
            entry[name] = _iso(record[key])
    if record.get("started") is not None and record.get("finished") is not None:
        entry["duration"] = record["finished"] - record["started"]
        entry["duration"].attrs["units"] = "s"
    entry["program_name"] = "labbridge"
    entry["program_name"].attrs["version"] = str(record.get("version") or __version__)
    for key in ("status", "message", "queued_by"):
        if record.get(key) is not None:
            entry.attrs[key] = str(record[key])
    entry.attrs["created"] = _iso(record["created"])
    if record.get("error"):
        entry.attrs["error"] = orjson.dumps(record["error"]).decode()
    procedure = _group(entry, "procedure", "NXcollection")
    for key in ("procedure", "source", "source_hash", "config"):
        if record.get(key):
            procedure["name" if key == "procedure" else key] = str(record[key])
    _values(_group(entry, "parameters", "NXcollection"), record.get("parameters") or {})
    _values(_group(entry, "metadata", "NXcollection"), record.get("metadata") or {})
    for key in ("snapshot_start", "snapshot_end"):
        if record.get(key) is not None:
            _values(_group(entry, key, "NXcollection"), record[key])


def _data(store: RunStore, entry: h5py.Group, record: dict[str, Any], columns: dict[str, _Column],
          count: int) -> None:
    data = _group(entry, "data", "NXdata")
    point = data.create_dataset("point", (count,), "i8")
    stamp = data.create_dataset("time", (count,), "f8")
    stamp.attrs["units"] = "s"
    layouts = {name: column.layout(count) for name, column in columns.items()}
    targets: dict[str, h5py.Dataset | h5py.Group] = {}
    for name, column in columns.items():
        key = _column_key(name)
        layout = layouts[name]
        if layout == "per_point":
            targets[name] = _group(data, key, "NXcollection")
        elif layout == "stacked":
            dtype = np.result_type(*column.dtypes)
            targets[name] = data.create_dataset(key, (count, *next(iter(column.shapes))), dtype)
        else:
            dtype = {"str": _TEXT, "bool": "?", "int": "i8", "float": "f8"}[layout]
            fill = math.nan if layout == "float" else None
            targets[name] = data.create_dataset(key, (count,), dtype, fillvalue=fill)
        if column.unit:
            targets[name].attrs["units"] = column.unit
    done = 0
    for page in _pages(store, record["id"]):
        point[done:done + len(page)] = [n for n, _, _ in page]
        stamp[done:done + len(page)] = [t for _, t, _ in page]
        for name, layout in layouts.items():
            target = targets[name]
            if layout in ("stacked", "per_point"):
                for i, (n, _, values) in enumerate(page, done):
                    value = values.get(name)
                    if value is None:
                        continue
                    array = store.load_array(value) if isinstance(value, dict) else np.asarray(value)
                    if layout == "stacked":
                        target[i] = array
                    else:
                        target[str(n)] = array
            else:
                target[done:done + len(page)] = [_scalar(values.get(name), layout) for _, _, values in page]
        done += len(page)
    _nexus_attributes(data, record, columns, layouts)


def _nexus_attributes(data: h5py.Group, record: dict[str, Any], columns: dict[str, _Column],
                      layouts: dict[str, str]) -> None:
    """signal, axes (one name per dimension of the signal, "." for those without one), <axis>_indices."""
    one_d = [name for name, layout in layouts.items() if layout not in ("stacked", "per_point", "str")]
    axes = [name for name in record.get("axes") or [] if name in one_d]
    signals = [name for name in columns if name not in axes and layouts[name] != "per_point"]
    primary = _column_key(axes[0]) if axes else "point"
    for name in ("point", "time", *(_column_key(axis) for axis in axes)):
        data.attrs[f"{name}_indices"] = np.int64(0)
    if signals:
        signal = data[_column_key(signals[0])]
        data.attrs["signal"] = _column_key(signals[0])
        data.attrs["axes"] = np.array([primary] + ["."] * (signal.ndim - 1), dtype=_TEXT)
        if len(signals) > 1:
            data.attrs["auxiliary_signals"] = np.array([_column_key(name) for name in signals[1:]], dtype=_TEXT)
    else:
        data.attrs["axes"] = np.array([primary], dtype=_TEXT)


def _pages(store: RunStore, run_id: str) -> Any:
    since = 0
    while page := store.stored_points(run_id, since, PAGE):
        yield page
        since = page[-1][0] + 1


def _scalar(value: Any, layout: str) -> Any:
    if layout == "str":
        return "" if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()
    if layout == "float":
        return math.nan if value is None or isinstance(value, str) else float(value)
    return value


def _values(group: h5py.Group, values: dict[str, Any]) -> None:
    """A field per entry: numbers, booleans, text, lists of numbers as arrays; objects as groups; None left out;
    anything else as its JSON text (with the attribute encoding="json")."""
    for name, value in values.items():
        key = _key(str(name))
        if value is None or key in group:
            continue
        if isinstance(value, dict):
            _values(_group(group, key, "NXcollection"), value)
            continue
        if isinstance(value, (bool, int, float, str)):
            group[key] = value if not isinstance(value, int) or isinstance(value, bool) or abs(value) < 2 ** 63 \
                else float(value)
            continue
        array = np.asarray(value) if isinstance(value, list) else None
        if array is not None and array.dtype.kind in "biuf":
            group[key] = array
        else:
            group[key] = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            group[key].attrs["encoding"] = "json"


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _key(name: str) -> str:
    """A name HDF5 takes: no "/" (a path separator), not "." or empty."""
    key = name.replace("/", "_")
    return key if key not in ("", ".") else f"_{key}"


def _column_key(name: str) -> str:
    """A column's dataset name: `point` and `time` are taken by the point numbers and times."""
    key = _key(name)
    return f"{key}_recorded" if key in ("point", "time") else key


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()
