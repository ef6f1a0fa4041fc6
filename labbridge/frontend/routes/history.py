"""`GET /<module>/<attribute>/history`: recorded values, as JSON or as streamed CSV.

The experiment process records them (labbridge/experiment/history.py); this
route asks it with a protocol `history` request, so it works wherever the two
processes run.  JSON holds the newest `limit` points of the range, passed on as
the backend encoded them, and counted while held like any large answer (large_answers.py).  CSV (`Accept: text/csv` or `?format=csv`) holds every
point of the range (or the newest `limit`), fetched and sent one page at a time,
so a month of 1 Hz data leaves with flat memory; each page is counted as a large answer until it has left
(a slow reader mid-download that meets no room gets a cut-off download).  `every=<seconds>` asks for
buckets instead of points: [start, mean, min, max], computed by SQLite.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from functools import partial
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from labbridge.core.errors import MalformedRequest
from labbridge.core.history_query import DEFAULT_LIMIT, MAX_EVERY, MAX_LIMIT, MIN_EVERY, PAGE_SIZE, HistoryQuery
from labbridge.frontend.access import allow
from labbridge.frontend.large_answers import Held, PartsResponse, counted
from labbridge.frontend.responses import json_bytes
from labbridge.frontend.routes.instruments import answer_client
from labbridge.frontend.state import FrontendState, bridge_of

router = APIRouter()

CSV_CHUNK = 1 << 20  # bytes of CSV handed to uvicorn at a time

# Where a spreadsheet could start a cell in a text (its start; after a ';', which splits cells where the list
# separator is ';', or a line break, which such a reading does not see quoted; and any quotes opening that cell),
# followed by what makes the cell a formula (OWASP: CSV injection).  A ',' splits nothing: such a field is quoted.
_FORMULA = re.compile(r"""(^|[;\r\n]"*)(?=[=+\-@\t\r])""")
_QUOTED = re.compile(r"""[;,"\r\n]""")

_TIME = "Unix seconds (1764151234.5) or ISO 8601 (2025-11-26T10:00:00Z; without a zone, the frontend's local time)."
_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "Oldest first: `[time, value]` points, or `[bucket start, mean, min, max]` with `every`.",
    "content": {"application/json": {"schema": {"type": "object", "properties": {
        "module": {"type": "string"}, "attribute": {"type": "string"}, "unit": {"type": ["string", "null"]},
        "points": {"type": "array", "items": {"type": "array"}}}}},
        "text/csv": {"schema": {"type": "string"}, "example": "time,unix_time,value (mm)\n"}}}}


@router.get("/{module}/{attribute}/history", summary="Recorded values of an attribute", responses=_RESPONSES)
async def history(
    module: str, attribute: str, request: Request,
    since: Annotated[str | None, Query(max_length=40, description=f"From this time: {_TIME}")] = None,
    until: Annotated[str | None, Query(max_length=40, description=f"Up to this time: {_TIME}")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description=(
        f"The newest N points of the range (JSON: {DEFAULT_LIMIT} by default; CSV: all by default)."))] = None,
    every: Annotated[float | None, Query(ge=MIN_EVERY, le=MAX_EVERY, allow_inf_nan=False, description=(
        "Downsample: one [start, mean, min, max] per bucket of this many seconds."))] = None,
    fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format", description=(
        "csv streams CSV with a header (as does `Accept: text/csv`)."))] = None,
) -> Response:
    bridge = bridge_of(request)
    caller = allow(request, "read")
    start, end = parse_time(since, "since"), parse_time(until, "until")  # until before since: no points
    query = HistoryQuery(since=start, until=end, every=every)
    if fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", "")):
        return await _csv_response(bridge, answer_client(request, caller), module, attribute,
                                   replace(query, limit=limit, page=PAGE_SIZE))
    query = replace(query, limit=limit or DEFAULT_LIMIT)
    # Up to MAX_LIMIT points, of text too (64 MB): counted like a camera frame until its client has taken it.
    outgoing = bridge.backend.prepare("history", module, attribute, query.to_wire())
    key = ("history", module, attribute, query.limit, query.every is not None)  # of much the same size each time
    reply, held = await counted(bridge.answers, answer_client(request, caller), key,
                                partial(bridge.backend.exchange, outgoing))
    return PartsResponse(reply.parts, "application/json", held) if held else json_bytes(reply.result())


_LEAP_SECOND = re.compile(r"(T\d\d:\d\d):60")


def parse_time(text: str | None, name: str) -> float | None:
    """Unix seconds or ISO 8601 as Unix seconds; MalformedRequest naming the parameter otherwise."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        # RFC 3339 allows a lower-case t and z, and a leap second (:60), which Python does not read.
        iso = _LEAP_SECOND.sub(r"\1:59", text.upper().replace("Z", "+00:00"))
        try:
            value = unix_seconds(datetime.fromisoformat(iso))  # a time without a zone is local time
        except ValueError:
            raise MalformedRequest(f"{name} must be Unix seconds or ISO 8601 like 2025-11-26T10:00:00Z; "
                                   f"got {text!r}") from None
    if not math.isfinite(value):
        raise MalformedRequest(f"{name} must be a finite time; got {text!r}")
    return value


def unix_seconds(moment: datetime) -> float:
    """A time of any year from 1 to 9999 as Unix seconds (the platform's own conversion of a local time
    fails near the ends: `0001-01-01T00:00:00` is "year 0 is out of range", and before 1970 on Windows)."""
    try:
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        if moment.tzinfo is None:  # local time: with today's offset from UTC, the best there is so far away
            moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo)
        return (moment - _EPOCH).total_seconds()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


async def _csv_response(bridge: FrontendState, client: str, module: str, attribute: str,
                        query: HistoryQuery) -> Response:
    # The first page is fetched before answering, so an unknown attribute is still a JSON 404.
    first = await _page(bridge, client, module, attribute, query)
    filename = re.sub(r"[^\w.-]", "_", f"{module}-{attribute}.csv")
    return StreamingResponse(_csv_pages(bridge, client, module, attribute, query, first),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def _page(bridge: FrontendState, client: str, module: str, attribute: str,
                query: HistoryQuery) -> tuple[dict[str, Any], Held | None]:
    """One page of points, and its bytes counted until it has left (a page of 5,000 labels is 20 MB)."""
    outgoing = bridge.backend.prepare("history", module, attribute, query.to_wire())
    reply, held = await counted(bridge.answers, client, ("history csv", module, attribute),
                                partial(bridge.backend.exchange, outgoing))
    return orjson.loads(reply.result()), held


async def _csv_pages(bridge: FrontendState, client: str, module: str, attribute: str, query: HistoryQuery,
                     first: tuple[dict[str, Any], Held | None]) -> AsyncIterator[bytes]:
    page: dict[str, Any] | None
    page, held = first
    del first  # what is held while a page leaves is its CSV only: the points are let go before it is sent
    try:
        unit = f" ({page['unit']})" if page.get("unit") else ""
        columns = ["mean", "min", "max"] if query.every is not None else ["value"]
        yield csv_lines([["time", "unix_time", *(csv_cell(name + unit) for name in columns)]])
        remaining = query.limit
        while page is not None:
            points = page["points"] if remaining is None else page["points"][:remaining]
            cursor, count, page = page.get("next"), len(points), None
            for chunk in csv_chunks(_rows(points)):
                yield chunk
            chunk = b""  # the last part is uvicorn's now
            # uvicorn takes the next part, even empty, only once what it could not write yet has drained to the
            # socket (or the connection is gone): from then on, the page is no longer held.
            yield b""
            if held is not None:
                held.release()
            if remaining is not None:
                remaining -= count
            if cursor is None or remaining == 0:
                return
            # A failure from here on raises: the client sees a cut-off download, never a silently short file.
            following = replace(query, limit=None, after=(float(cursor[0]), int(cursor[1])))
            page, held = await _page(bridge, client, module, attribute, following)
    finally:
        if held is not None:  # the client went away with a page on its way
            held.release()


def _rows(points: list[list[Any]]) -> Iterator[list[Any]]:
    """A page's points as CSV rows, each point let go as its row is made (the page is never held twice)."""
    points.reverse()
    while points:
        point = points.pop()
        yield [iso_time(point[0]), point[0], *map(csv_cell, point[1:])]


def csv_chunks(rows: Iterable[list[Any]], size: int = CSV_CHUNK) -> Iterator[bytes]:
    """Rows as CSV in parts of about `size` bytes.  uvicorn takes the next part only once the last has mostly
    drained, so a slow reader holds one part, not a whole page a second time (50 never-read CSV downloads of 4 KB
    labels grew the frontend by 48 to 72 MiB with pages built whole, from glibc's heap holding freed rows)."""
    part: list[bytes] = []
    held = 0
    for row in rows:
        line = csv_lines([row])
        part.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(part)
            part, held = [], 0
    if part:
        yield b"".join(part)


def csv_lines(rows: Any) -> bytes:
    """Rows as RFC 4180 CSV lines.  Not the csv module: it quotes only for its own delimiter, and a spreadsheet
    whose list separator is ';' splits an unquoted `a;b` into two cells."""
    return "".join(",".join(map(_field, row)) + "\r\n" for row in rows).encode()


def _field(value: Any) -> str:
    """One field: empty for None, quoted (quotes doubled) when it holds a separator, a quote or a line break."""
    text = "" if value is None else str(value)
    return '"' + text.replace('"', '""') + '"' if _QUOTED.search(text) else text


def iso_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_cell(value: Any) -> Any:
    """A CSV cell: numbers as they are, text as it is (unless a spreadsheet would run it), true/false, JSON for
    anything structured, empty for none."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        value = orjson.dumps(value).decode()
    if isinstance(value, str):
        # A label like `=HYPERLINK(...)` would be a formula in Excel or LibreOffice: a leading ' keeps it
        # text there (OWASP's advice for CSV injection), and so does one where a cell can start inside the
        # text (`a;=1+1`).  Numbers stay numbers: -5.0 is not text.
        return _FORMULA.sub(r"\1'", value)
    return value
