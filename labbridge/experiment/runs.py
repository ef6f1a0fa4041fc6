"""The protocol's run ops, answered by the run queue (run_queue.py).

Each op's payload is the request's `value`, an object:

    procedures   {}: every procedure with its parameters (JSON Schema, as actions describe theirs)
    submit_run   {"procedure", "parameters", "metadata"}: the queued run (422 naming a bad parameter)
    runs         {"status", "procedure", "q", "limit"}: newest first; `q` searches the metadata
    run          {"id", "wait"}: one run, with its provenance; `wait` long-polls for a change of status
    run_control  {"id", "do": "pause" | "resume" | "stop" | "abort"}: abort removes a queued run
    run_data     {"id", "since", "limit"}: points, columnar
    run_queue    {"do": "status" | "start" | "stop"}
    run_file     {"do": "open" | "read" | "close", "id", ...}: the run's HDF5 file, in chunks (run_exports.py)

Who asks travels in the request's own `identity` and `role`, as for a put:
the identity is the run's `queued_by`, written into the audit log with each
of the run's writes.
"""

from __future__ import annotations

from typing import Any

from labbridge.core.errors import MalformedRequest
from labbridge.core.protocol import Request
from labbridge.experiment.run_exports import handle_run_file
from labbridge.experiment.run_queue import RunQueue

# Time kept back from a request's deadline so the reply reaches the client before it gives up.
REPLY_MARGIN = 0.1


async def handle_run_op(queue: RunQueue, request: Request) -> Any:
    payload = request.value if request.has_value else {}
    if not isinstance(payload, dict):
        raise MalformedRequest(f"{request.op} needs an object as its value")
    until = request.deadline - REPLY_MARGIN
    if request.op == "procedures":
        return queue.describe_procedures()
    if request.op == "submit_run":
        return await queue.submit(payload, request)
    if request.op == "runs":
        return await queue.list(payload)
    if request.op == "run":
        return await queue.get(payload.get("id"), payload.get("wait", 0), until)
    if request.op == "run_control":
        return await queue.control(payload.get("id"), payload.get("do"), until)
    if request.op == "run_data":
        return await queue.data(payload.get("id"), payload.get("since", 0), payload.get("limit", 10_000))
    if request.op == "run_file":
        return await handle_run_file(queue, payload)
    what = payload.get("do", "status")
    if what == "start":
        return queue.queue_start()
    if what == "stop":
        return queue.queue_stop()
    if what == "status":
        return queue.queue_status()
    raise MalformedRequest(f"the queue can be started or stopped; not {what!r}")
