"""`/procedures` and `/runs`: queue experiments, follow and control them, take their data out.

The experiment process keeps the queue and the runs (experiment/run_queue.py);
these routes forward.  Reads need `read`; queueing and controlling runs need
`operate` and go through forward_write (what the frontend refuses is on
record in the audit log); starting the queue needs `admin` where tokens are
configured, since it makes the lab PC drive instruments by itself.

    GET    /procedures                 every procedure with its parameters (JSON Schema)
    POST   /runs                       {"procedure", "parameters", "metadata"} -> 201, Location /runs/<id>
    GET    /runs?status=&procedure=&q= newest first; q searches the metadata
    GET    /runs/queue                 started?, the current run, the queued ones in order
    POST   /runs/queue/start|stop      stop: after the current run
    GET    /runs/<id>?wait=            one run (a long poll with wait, as for invocations)
    POST   /runs/<id>/pause|resume|stop
    POST   /runs/<id>/move             {"to": place} (0: next) or {"by": places} (-1: one earlier) -> the queue
    POST   /runs/<id>/rerun            the same procedure, parameters and metadata again -> 201, Location
    DELETE /runs/<id>                  removes a queued run, aborts a running or paused one at once
    GET    /runs/<id>/data?since=&format=csv|hdf5
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from labbridge.core.action import MAX_WAIT
from labbridge.core.arrays import read_npy
from labbridge.core.errors import BridgeError, MalformedRequest
from labbridge.frontend.access import allow
from labbridge.frontend.responses import json_bytes
from labbridge.frontend.routes.history import csv_cell, csv_chunks, csv_lines, iso_time
from labbridge.frontend.routes.instruments import not_a_module, read_body
from labbridge.frontend.state import FrontendState, bridge_of
from labbridge.frontend.writes import forward_write

router = APIRouter(tags=["runs"])

RunId = Annotated[str, Path(max_length=64, description="The run's id, from its `href`.")]
RunStatus = Literal["queued", "running", "paused", "completed", "stopped", "failed", "aborted", "interrupted"]
MAX_POINT = 2**53  # a point number as JSON and SQLite both hold it exactly
PAGE = 10_000  # points fetched from the experiment process at a time for a CSV file
CHUNK = 1_000_000  # bytes of an HDF5 file fetched at a time (experiment/run_exports.py's MAX_CHUNK)
HDF5_TYPE = "application/x-hdf5"
# How long the experiment process may take to write a run's HDF5 file before the download starts.
HDF5_WRITE_TIMEOUT = 600.0
_LINE_BREAK = re.compile(r"[\r\n]+")
MOVE_SCHEMA = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
               "properties": {"to": {"type": "integer", "minimum": 0, "description": "The place: 0 is next."},
                              "by": {"type": "integer", "description": "Places to move: negative is earlier "
                                                                       "(stops at either end)."}}}


@router.get("/procedures", operation_id="list_procedures", summary="The procedures runs can be queued of")
async def list_procedures(request: Request) -> Response:
    allow(request, "read")
    return json_bytes(await bridge_of(request).backend.request("procedures", value={}))


@router.post("/runs", status_code=201, operation_id="submit_run", summary="Queue a run of a procedure",
             openapi_extra={"security": [{"HTTPBearer": []}]})
async def submit_run(request: Request) -> Response:
    bridge = bridge_of(request)
    body = await forward_write(bridge, request, "submit_run", None, None,
                               partial(_read_object, request, bridge.settings.max_body_bytes))
    href = f"/runs/{orjson.loads(body)['id']}"
    return json_bytes(body, 201, {"Location": href})


@router.get("/runs", operation_id="list_runs", summary="Runs, newest first")
async def list_runs(request: Request, status: RunStatus | None = None,
                    procedure: Annotated[str | None, Query(max_length=100)] = None,
                    q: Annotated[str | None, Query(max_length=200, description="Text searched in the metadata.")] = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Response:
    allow(request, "read")
    value = {"status": status, "procedure": procedure, "q": q, "limit": limit}
    return json_bytes(await bridge_of(request).backend.request("runs", value=value))


@router.get("/runs/queue", operation_id="get_run_queue", summary="The queue: started or not, current and queued runs")
async def get_queue(request: Request) -> Response:
    allow(request, "read")
    return json_bytes(await bridge_of(request).backend.request("run_queue", value={"do": "status"}))


@router.post("/runs/queue/{what}", operation_id="control_run_queue",
             summary="Start the queue (admin), or stop it after the current run",
             openapi_extra={"security": [{"HTTPBearer": []}]})
async def control_queue(what: Literal["start", "stop"], request: Request) -> Response:
    named: dict[str, str] = {"do": what}
    body = await forward_write(bridge_of(request), request, "run_queue", None, None, partial(_given, named),
                               requested=named, needs="admin" if what == "start" else "operate")
    return json_bytes(body)


@router.get("/runs/{run}", operation_id="get_run", summary="One run; with ?wait=, answered when its status changes")
async def get_run(run: RunId, request: Request,
                  wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for a change.")] = 0,
                  ) -> Response:
    bridge = bridge_of(request)
    allow(request, "read")
    waiting = wait > 0 and bridge.long_polls.take()  # over the cap: answered at once (stream_caps.py)
    try:
        return json_bytes(await bridge.backend.request("run", value={"id": run, "wait": wait if waiting else 0},
                                                       timeout=bridge.settings.request_timeout + wait))
    finally:
        if waiting:
            bridge.long_polls.release()


@router.post("/runs/{run}/move", operation_id="move_run", summary="Move a queued run to another place in the queue",
             openapi_extra={"security": [{"HTTPBearer": []}], "requestBody": {"required": True, "content": {
                 "application/json": {"schema": MOVE_SCHEMA}}}})
async def move_run(run: RunId, request: Request) -> Response:
    bridge = bridge_of(request)
    named = {"id": run, "do": "move"}
    body = await forward_write(bridge, request, "run_control", None, None,
                               partial(_read_move, request, bridge.settings.max_body_bytes),
                               wrap=partial(_with, named), requested=named)
    return json_bytes(body)


@router.post("/runs/{run}/rerun", status_code=201, operation_id="rerun_run",
             summary="Queue a run again: the same procedure, parameters and metadata",
             openapi_extra={"security": [{"HTTPBearer": []}]})
async def rerun_run(run: RunId, request: Request) -> Response:
    named = {"id": run, "do": "rerun"}
    body = await forward_write(bridge_of(request), request, "run_control", None, None, partial(_given, named),
                               requested=named)
    return json_bytes(body, 201, {"Location": f"/runs/{orjson.loads(body)['id']}"})


# One route each (not `/runs/{run}/{what}`): a POST to `/runs/<id>/data` is then a 405, not a 422.
@router.post("/runs/{run}/pause", operation_id="pause_run", summary="Pause a run at its next checkpoint",
             openapi_extra={"security": [{"HTTPBearer": []}]})
async def pause_run(run: RunId, request: Request) -> Response:
    return json_bytes(await _control(request, run, "pause"))


@router.post("/runs/{run}/resume", operation_id="resume_run", summary="Resume a paused run",
             openapi_extra={"security": [{"HTTPBearer": []}]})
async def resume_run(run: RunId, request: Request) -> Response:
    return json_bytes(await _control(request, run, "resume"))


@router.post("/runs/{run}/stop", operation_id="stop_run", summary="Stop a run at its next checkpoint, as a success",
             openapi_extra={"security": [{"HTTPBearer": []}]})
async def stop_run(run: RunId, request: Request) -> Response:
    return json_bytes(await _control(request, run, "stop"))


@router.delete("/runs/{run}", operation_id="abort_run", summary="Remove a queued run, or abort a running one at once",
               openapi_extra={"security": [{"HTTPBearer": []}]})
async def abort_run(run: RunId, request: Request) -> Response:
    if run == "queue":  # `/runs/queue` itself, which takes GET only
        return not_a_module(request, "runs") or Response(status_code=405)
    return json_bytes(await _control(request, run, "abort"))


@router.get("/runs/{run}/data", operation_id="get_run_data", summary="A run's points, as JSON, CSV or HDF5 (NeXus)",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                         HDF5_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
async def get_run_data(run: RunId, request: Request,
                       since: Annotated[int, Query(ge=0, le=MAX_POINT, description="The first point wanted.")] = 0,
                       limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
                       fmt: Annotated[Literal["json", "csv", "hdf5"] | None, Query(alias="format")] = None) -> Response:
    bridge = bridge_of(request)
    allow(request, "read")
    if fmt == "hdf5" or (fmt is None and HDF5_TYPE in request.headers.get("accept", "")):
        return await _hdf5_file(bridge, run)
    value = {"id": run, "since": since, "limit": limit if fmt != "csv" else PAGE}
    first = await bridge.backend.request("run_data", value=value)
    if fmt != "csv" and "text/csv" not in request.headers.get("accept", ""):
        return json_bytes(first)
    page = orjson.loads(first)
    filename = re.sub(r"[^\w.-]", "_", f"{page['procedure']}-{run}.csv")
    return StreamingResponse(_csv_pages(bridge, page), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def _hdf5_file(bridge: FrontendState, run: str) -> Response:
    """The run's HDF5 file, written by the experiment process and streamed from there in chunks."""
    opened = orjson.loads(await bridge.backend.request("run_file", value={"do": "open", "id": run},
                                                       timeout=HDF5_WRITE_TIMEOUT))
    headers = {"Content-Disposition": f'attachment; filename="{opened["filename"]}"',
               "Content-Length": str(opened["size"])}
    return StreamingResponse(_hdf5_chunks(bridge, run, opened["file"], opened["size"]), media_type=HDF5_TYPE,
                             headers=headers)


async def _hdf5_chunks(bridge: FrontendState, run: str, name: str, size: int) -> AsyncIterator[bytes]:
    try:
        for offset in range(0, size, CHUNK):
            # A failure here raises: the client sees a cut-off download (shorter than Content-Length).
            value = {"do": "read", "id": run, "file": name, "offset": offset, "length": CHUNK}
            reply = await bridge.backend.exchange(bridge.backend.prepare("run_file", value=value))
            reply.result()
            yield read_npy(b"".join(reply.parts)).tobytes()
    finally:  # a running run's file is removed (else after an hour); a failure to say so changes nothing for the client
        with contextlib.suppress(BridgeError):
            await bridge.backend.request("run_file", value={"do": "close", "id": run, "file": name})


async def _control(request: Request, run: str, what: str) -> bytes:
    named = {"id": run, "do": what}
    body = await forward_write(bridge_of(request), request, "run_control", None, None, partial(_given, named),
                               requested=named)
    return bytes(body)


async def _given(named: dict[str, str]) -> dict[str, str]:
    """A control request has no body to read: what it asks for is in its URL."""
    return named


async def _read_move(request: Request, limit: int) -> dict[str, Any]:
    """`{"to": place}` or `{"by": places}` (the experiment process checks the numbers against the queue)."""
    payload = await _read_object(request, limit, '{"to": 0} or {"by": -1}')
    if len(payload) != 1 or not set(payload) <= {"to", "by"}:
        raise MalformedRequest('body must be {"to": place} (0 is next) or {"by": places} (negative is earlier); '
                               f"got the keys {sorted(payload)}")
    return payload


def _with(named: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, **named}


async def _read_object(request: Request, limit: int, like: str = '{"procedure": "voltage_sweep"}') -> dict[str, Any]:
    body = await read_body(request, limit)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"body must be a JSON object, like {like}: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedRequest(f"body must be a JSON object, like {like}")
    return payload


async def _csv_pages(bridge: FrontendState, page: dict[str, Any]) -> AsyncIterator[bytes]:
    """A commented header (procedure, parameters, metadata, as PyMeasure writes them), then one row per point."""
    yield "".join(f"# {line}\r\n" for line in _header(page)).encode()
    columns = [name for name, column in page["columns"].items() if column.get("kind") != "array"]
    units = {name: f" ({page['columns'][name]['unit']})" if page["columns"][name].get("unit") else "" for name in columns}
    yield csv_lines([["point", "time", "unix_time", *(csv_cell(name + units[name]) for name in columns)]])
    while True:
        values = page["values"]
        for chunk in csv_chunks([n, iso_time(t), t, *(csv_cell(values[name][i]) for name in columns)]
                                for i, (n, t) in enumerate(zip(page["point"], page["time"]))):
            yield chunk
        if not page["point"]:
            return
        # A failure from here on raises: the client sees a cut-off download, never a silently short file.
        value = {"id": page["id"], "since": page["next"], "limit": PAGE}
        page = orjson.loads(await bridge.backend.request("run_data", value=value))


def _header(page: dict[str, Any]) -> list[str]:
    lines = [f"procedure: {page['procedure']}", f"run: {page['id']}", f"status: {page['status']}", "parameters:"]
    lines += [f"  {_text(name)}: {_text(value)}" for name, value in page["parameters"].items()]
    lines.append("metadata:")
    lines += [f"  {_text(name)}: {_text(value)}" for name, value in page["metadata"].items()]
    return lines


def _text(value: Any) -> str:
    """A header value on one line (a line break would end the comment), neutralised as a cell is."""
    cell = csv_cell(value)
    return _LINE_BREAK.sub(" ", str(cell))
