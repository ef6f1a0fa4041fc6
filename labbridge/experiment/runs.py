"""The protocol's run ops, answered by the run queue (run_queue.py), the ones that change something on record.

Each op's payload is the request's `value`, an object:

    procedures   {}: every procedure with its parameters (JSON Schema, as actions describe theirs)
    submit_run   {"procedure", "parameters", "metadata"}: the queued run (422 naming a bad parameter)
    runs         {"status", "procedure", "q", "limit"}: newest first; `q` searches the metadata
    run          {"id", "wait"}: one run, with its provenance; `wait` long-polls for a change of status
    run_control  {"id", "do": "pause" | "resume" | "stop" | "abort"}: abort removes a queued run
                 {"id", "do": "move", "to": place} or {"id", "do": "move", "by": places}: the queue then
                 {"id", "do": "rerun"}: a new run with the same procedure, parameters and metadata
    run_data     {"id", "since", "limit"}: points, columnar
    run_queue    {"do": "status" | "start" | "stop"}
    run_file     {"do": "open" | "read" | "close", "id", ...}: the run's HDF5 file, in chunks (run_exports.py)

Who asks travels in the request's own `identity` and `role`, as for a put:
the identity is the run's `queued_by`, written into the audit log with each
of the run's writes.  With an audit log, every request that changes the
queue (submit_run, run_control, run_queue start and stop) is on record as
one write, as a cancel of an invocation is: a `started` line before it is
acted on (if the disk does not take it: 503, nothing done), then `finished`
with "ok" and the answer's gist, or the error code it was refused with (an
unknown run, a run already finished, a bad place in the queue).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from labbridge.core.audit import WriteAttempt
from labbridge.core.errors import BridgeError, MalformedRequest
from labbridge.core.protocol import Request
from labbridge.experiment.run_exports import handle_run_file
from labbridge.experiment.run_queue import RunQueue

# Time kept back from a request's deadline so the reply reaches the client before it gives up.
REPLY_MARGIN = 0.1
# The ops (and run_queue's `do`) that only read.
READS = frozenset({"procedures", "runs", "run", "run_data"})


async def handle_run_op(queue: RunQueue, request: Request) -> Any:
    payload = request.value if request.has_value else {}
    if not isinstance(payload, dict):
        raise MalformedRequest(f"{request.op} needs an object as its value")
    if request.op in READS or (request.op == "run_queue" and payload.get("do", "status") == "status"):
        return await _answer(queue, request, payload)
    return await _audited(queue, request, payload, lambda: _answer(queue, request, payload))


async def _answer(queue: RunQueue, request: Request, payload: dict[str, Any]) -> Any:
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
        what = payload.get("do")
        if what == "move":
            return await queue.move(payload.get("id"), payload.get("to"), payload.get("by"))
        if what == "rerun":
            return await queue.rerun(payload.get("id"), request)
        return await queue.control(payload.get("id"), what, until)
    if request.op == "run_data":
        return await queue.data(payload.get("id"), payload.get("since", 0), payload.get("limit", 10_000))
    if request.op == "run_file":
        return await handle_run_file(queue, payload)
    what = payload.get("do", "status")
    if what == "start":
        return await queue.queue_start()
    if what == "stop":
        return queue.queue_stop()
    if what == "status":
        return queue.queue_status()
    raise MalformedRequest(f"the queue can be started or stopped; not {what!r}")


async def _audited(queue: RunQueue, request: Request, payload: dict[str, Any],
                   act: Callable[[], Awaitable[Any]]) -> Any:
    """`act`, on record in the audit log (if there is one) with who asked, their role and the outcome."""
    audit = queue.experiment.audit
    if audit is None:
        return await act()
    what = payload.get("do") if request.op != "submit_run" else payload.get("procedure")
    write = audit.record_write(WriteAttempt(request.op, "runs", what if isinstance(what, str) else None, payload,
                                            request.client, request.identity, request.id, request.role))
    await write.started()  # AuditUnavailable (503): nothing is done
    try:
        answer = await act()
    except BridgeError as exc:
        await write.finished(exc.code)
        raise
    except BaseException:
        write.finished_soon(BridgeError.code)  # shutting down, or a bug: on record as not done
        raise
    await write.finished("ok", after=_gist(answer))
    return answer


def _gist(answer: Any) -> Any:
    """What the audit line keeps of an answer: the run's id and status, or the queue's state."""
    if isinstance(answer, dict) and "id" in answer:
        return {"run": answer["id"], "status": answer.get("status")}
    if isinstance(answer, dict):
        return {key: answer.get(key) for key in ("started", "stop_after_current", "current", "queued")}
    return None

