"""Invocations: starting, following, cancelling and remembering runs of actions.

The experiment process keeps every invocation (the frontend only forwards, so
restarting it changes nothing).  `handle` answers the protocol's invocation ops:

- `invoke` checks the arguments before anything runs (422), refuses an action
  that would drive what a running one owns (409 busy, naming it), claims what
  it owns in the same step (nothing is awaited between the check and the
  claim, so two actions never both pass it), records the invocation (journal,
  audit log: 503 and nothing left behind if either cannot be written) and
  runs the action in its own task;
- `cancel` cancels the action's task, which raises CancelledError at the
  action's current await so its clean-up runs (202; 409 already_finished,
  naming the final status, when it had ended, even if it ended while the
  cancel's audit line was being written: then its audit line says so too);
- `invocation` answers one, optionally waiting until its status changes
  (a long poll, bounded by MAX_WAIT and the request's deadline);
- `invocations` lists them, newest first, filtered by module and status.

Each change is published live like a value.  Finished invocations are kept
per module up to `actions.history`, in memory and in the journal, so they are
still there after a restart; running ones always.  A clean stop cancels what
runs (its clean-up gets STOP_GRACE seconds), so it ends `cancelled`, not lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from labbridge.core.action import MAX_WAIT, STATUSES, ActionSpec
from labbridge.core.attribute import RESERVED_NAMES
from labbridge.core.audit import AuditedWrite, AuditLog, WriteAttempt
from labbridge.core.config import ConfigError
from labbridge.core.errors import (
    ActionsUnavailable,
    AlreadyFinished,
    BridgeError,
    Busy,
    InstrumentError,
    InvalidValue,
    MalformedRequest,
    NotAnAction,
    UnknownAction,
    UnknownInvocation,
)
from labbridge.core.protocol import Request
from labbridge.experiment.action_quota import ActionQuota, client_of
from labbridge.experiment.base_module import BaseModule
from labbridge.experiment.invocation import Holder, Invocation, current_holder, current_invocation, current_trip
from labbridge.experiment.invocation_journal import InvocationJournal

log = logging.getLogger(__name__)

# How long a cancel request waits for the action's clean-up before answering (it goes on regardless).
CANCEL_WAIT = 1.0
# How long a clean stop waits for cancelled actions' clean-up: the whole stop then fits in the 5 s the launcher
# and --reload give a child (children.STOP_TIMEOUT), and well in the 10 s a supervisor gives by default.
STOP_GRACE = 3.0
# Time kept back from a request's deadline so the reply reaches the client before it gives up.
REPLY_MARGIN = 0.1
LOST = {"error": "lost", "message": "the experiment process stopped while this ran; its outcome is unknown"}


class Invocations:
    """Every invocation the experiment process knows of, and the rules for running them."""

    def __init__(self, find_module: Callable[[str | None], BaseModule], *, kept: int = 100,
                 journal: InvocationJournal | None = None, audit: AuditLog | None = None,
                 quota: ActionQuota | None = None) -> None:
        self._find_module = find_module
        self.quota = quota or ActionQuota()  # how many may be unfinished per module and client (429 past it)
        self.kept = kept  # finished invocations kept per module
        self.journal = journal
        if journal is not None:
            journal.kept = kept
        self.audit = audit
        self._audited: dict[str, AuditedWrite] = {}  # the audit lines of each running invocation
        self.journal_problem: str | None = None  # why invocations cannot be journalled just now
        self.publish: Callable[[dict[str, Any]], None] = lambda event: None
        self._all: dict[str, Invocation] = {}
        self._finished: dict[str, list[Invocation]] = {}
        self._recovering = asyncio.Lock()
        self._starting: set[Invocation] = set()  # accepted, their records being written: not running yet
        self._owners: dict[tuple[str, str], Invocation] = {}
        self._held: dict[tuple[str, str], Holder] = {}  # attributes a run of a procedure drives
        # Refuses an action an interlock forbids now (experiment/safety/interlocks.py sets it).
        self.check_start: Callable[[str, ActionSpec], None] = _no_check

    async def start(self) -> None:
        """Read back the invocations that ended before the process last stopped, and report those that were
        running when it died as lost.

        A data_dir that cannot be used (a read-only folder, a full disk) stops only the actions, never
        the rest of the experiment: each invoke tries again, and is refused (503) while it fails."""
        if self.journal is None:
            return
        try:
            await self._recover()
        except ConfigError as exc:
            self.journal_problem = str(exc)
            log.error("actions cannot start until this is fixed: %s (everything else goes on)", exc)

    async def _recover(self) -> None:
        assert self.journal is not None
        records = await asyncio.to_thread(self.journal.recover, time.time())
        self.journal_problem = None
        for record in records:
            status = record["status"] if record.get("status") in STATUSES else "lost"
            invocation = Invocation(record["id"], record["module"], record["action"], record["arguments"] or {},
                                    record["created"] or 0.0, status=status, progress=record.get("progress"),
                                    message=record.get("message"), result=record.get("result"),
                                    error=record.get("error") or (dict(LOST) if status == "lost" else None),
                                    started=record.get("started"), finished=record.get("finished"))
            self._all[invocation.id] = invocation
            self._keep(invocation)
            if not record.get("newly_lost"):
                continue
            log.warning("invocation %s of %s.%s was running when the process stopped: lost",
                        invocation.id, invocation.module, invocation.action)
            if self.audit is not None:  # its `started` line has its end at last
                await self.audit.record_outcome(WriteAttempt(
                    "invoke", invocation.module, invocation.action, invocation.arguments, record.get("client"),
                    record.get("identity"), invocation.id, record.get("role")), "lost")

    async def close(self, grace: float = STOP_GRACE) -> None:
        """Cancel what still runs (its clean-up gets `grace` seconds, and its end is journalled), then close the
        journal.  One whose clean-up outlasts `grace` has no end on record: the next start reports it lost."""
        running = [inv for inv in self._all.values() if not inv.is_finished]
        for invocation in running:
            invocation.message = "cancelled: the experiment process is stopping"
            self._request_cancel(invocation)
        tasks = [inv.task for inv in running if inv.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        if self.journal is not None:
            self.journal.close()

    async def handle(self, request: Request) -> Any:
        payload = request.value if request.has_value else {}
        if not isinstance(payload, dict):
            raise MalformedRequest(f"{request.op} needs an object as its value")
        until = request.deadline - REPLY_MARGIN
        if request.op == "invoke":
            return await self._invoke(request, payload)
        if request.op == "invocations":
            return self._list(payload.get("module"), payload.get("status"))
        if request.op == "cancel":
            return await self._cancel(payload.get("id"), request, until)
        invocation = self._get(payload.get("id"))
        wait = payload.get("wait", 0)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:
            raise InvalidValue(f"wait must be 0 to {MAX_WAIT:g} s; got {wait!r}")
        if not invocation.is_finished:
            await invocation.wait_for_change(invocation.status, min(wait, until - time.time()))
        return invocation.public()

    async def _check_journal(self) -> None:
        """Refuse to start an action that could not be reported lost after a crash."""
        if self.journal_problem is None:
            return
        async with self._recovering:  # one read of the journal, however many invokes arrive meanwhile
            if self.journal_problem is None:
                return
            try:
                await self._recover()
            except ConfigError as exc:
                raise ActionsUnavailable(f"actions cannot start: {exc}; nothing ran") from None

    def check_free(self, module: str, attribute: str, refused: str = "") -> None:
        """Refuse a write to an attribute that a running action owns, naming the invocation to cancel."""
        if current_trip.get() is not None:  # a trip's safe action goes first (the owner is being cancelled)
            return
        owner = self._owners.get((module, attribute))
        if owner is not None and owner is not current_invocation.get():
            raise Busy(f"{refused}{module}.{attribute} is driven by {owner.action} (invocation {owner.id}, "
                       f"{owner.status}); wait for it to finish or cancel it with DELETE {owner.href}")
        holder = self._held.get((module, attribute))
        if holder is not None and holder is not current_holder.get():
            raise Busy(f"{refused}{module}.{attribute} is driven by {holder.busy_text()}")

    def hold(self, holder: Holder, attributes: tuple[tuple[str, str], ...]) -> None:
        """Claim (module, attribute) pairs for `holder` (a run), all or none: Busy names what holds one already.
        Awaits nothing, so no write or action slips in between the check and the claim."""
        for module, attribute in attributes:
            self.check_free(module, attribute, "the run cannot start: ")
        for key in attributes:
            self._held[key] = holder

    def driving(self, modules: set[str]) -> tuple[list[Invocation], list[Holder]]:
        """The unfinished invocations of `modules` that own attributes, and the holders (runs) of attributes of
        `modules`: what an interlock's trip cancels."""
        invocations = [inv for inv in [*self._all.values(), *self._starting]
                       if inv.module in modules and inv.owns and not inv.is_finished]
        holders = list(dict.fromkeys(holder for (module, _), holder in self._held.items() if module in modules))
        return invocations, holders

    def release_held(self, holder: Holder) -> None:
        for key in [key for key, held in self._held.items() if held is holder]:
            del self._held[key]

    def find(self, ident: str) -> Invocation:
        """The invocation `ident` (UnknownInvocation if none)."""
        return self._get(ident)

    def request_cancel(self, invocation: Invocation) -> None:
        """Cancel an invocation (as DELETE /invocations/<id> does, without its audit line: the caller's is)."""
        self._request_cancel(invocation)

    async def _invoke(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        name, identity, client = request.attribute or "", request.identity, request.client
        arguments = payload.get("arguments", {})
        attempt = WriteAttempt("invoke", request.module, name, arguments, client, identity, request.id, request.role)
        try:  # from here on, whatever refuses it is on record (an unknown module too)
            module = self._find_module(request.module)
            spec = self._action(module, name)
            if not isinstance(arguments, dict):
                raise MalformedRequest(f"the arguments of {name} must be a JSON object, like {{\"to\": 80}}")
            checked = spec.check_arguments(arguments, module.specs)
            self.check_start(module.name, spec)  # an interlock may refuse it (409 interlocked)
            await self._check_journal()  # the last await before the claim: the checks below and it are one step
            invocation = self._claim(module, spec, checked, identity, client, client_of(request))
            attempt.id, attempt.requested = invocation.id, checked
            try:
                await self._record_start(invocation, attempt)
            except BaseException:  # refused after all (or the process is stopping): nothing is left behind
                self._withdraw(invocation)
                raise
        except BridgeError as exc:
            if self.audit is not None:
                await self.audit.record_refusal(attempt, exc.code)
            raise
        invocation.task = asyncio.create_task(self._run(invocation, module, spec))
        log.info("invocation %s: %s.%s(%s) by %s", invocation.id, module.name, name, checked, identity or client)
        return invocation.public()

    def _claim(self, module: BaseModule, spec: ActionSpec, checked: dict[str, Any], identity: str | None,
               client: str | None, quota_key: str) -> Invocation:
        """Check that the action may start and claim what it owns, and its share of the module's and the
        client's quota (429 past it), in one step (this awaits nothing)."""
        for attribute in spec.owns:
            self.check_free(module.name, attribute, f"{spec.name} cannot start: ")
        self.quota.check(module.name, quota_key)
        invocation = Invocation(uuid.uuid4().hex, module.name, spec.name, checked, time.time(), spec.owns, identity,
                                client, on_change=self._publish)
        self._starting.add(invocation)
        self.quota.hold(invocation.id, module.name, quota_key)
        for attribute in spec.owns:
            self._owners[(module.name, attribute)] = invocation
        return invocation

    async def _record_start(self, invocation: Invocation, attempt: WriteAttempt) -> None:
        """Journal the invocation, then write its audit line: both on disk before it is listed and run."""
        if self.journal is not None:
            try:
                await asyncio.to_thread(self.journal.started, {**invocation.public(), "identity": invocation.identity,
                                                               "role": attempt.role, "client": invocation.client})
            except OSError as exc:
                raise ActionsUnavailable(f"cannot record the invocation in {self.journal.path} ({exc.strerror}), "
                                         "so it could not be reported lost after a crash; it was not started") from None
        if self.audit is not None:  # its end follows in _finish
            audited = self.audit.record_write(attempt)
            await audited.started()  # AuditUnavailable (503) when the disk does not take it
            self._audited[invocation.id] = audited
        self._starting.discard(invocation)
        self._all[invocation.id] = invocation

    def _withdraw(self, invocation: Invocation) -> None:
        """Forget an invocation refused after it was claimed: no claim, no listing, no journal entry left."""
        self._starting.discard(invocation)
        self._all.pop(invocation.id, None)
        self._audited.pop(invocation.id, None)
        self._release(invocation)
        if self.journal is not None:
            try:  # a short fsync on the loop, on this rare path only: it must be done before anything else is
                self.journal.dropped(invocation.id)
            except OSError as exc:  # a full disk: after a restart it is reported lost, which it was not
                log.error("could not record that invocation %s never started: %s", invocation.id, exc)

    async def _run(self, invocation: Invocation, module: BaseModule, spec: ActionSpec) -> None:
        current_invocation.set(invocation)  # this task's context: the action's report() and cancelled see it
        status, result, error = "completed", None, None
        try:
            if invocation.cancel_requested.is_set():  # cancelled before it started
                raise asyncio.CancelledError
            invocation.started = time.time()
            await self._journal_running(invocation)
            if invocation.cancel_requested.is_set():  # cancelled while that was written
                raise asyncio.CancelledError
            invocation.set_status("running")
            result = spec.output(await spec.function(module, **invocation.arguments))
            if invocation.cancel_requested.is_set():  # the action caught the cancellation and returned
                status = "cancelled"
        except asyncio.CancelledError:
            status = "cancelled"
        except BridgeError as exc:
            status, error = "failed", {"error": exc.code, "message": exc.detail}
        except Exception as exc:  # a bug in the action: say what, keep serving
            log.exception("action %s.%s failed", module.name, spec.name)
            status = "failed"
            error = {"error": InstrumentError.code, "message": f"{module.name}.{spec.name} failed: {type(exc).__name__}: {exc}"}
        await self._finish(invocation, status, result, error)

    async def _journal_running(self, invocation: Invocation) -> None:
        if self.journal is None or invocation.started is None:
            return
        try:
            await asyncio.to_thread(self.journal.running, invocation.id, invocation.started)
        except OSError as exc:  # the run goes on; if the process dies now, it is reported lost as not started
            log.error("could not record the start of invocation %s: %s", invocation.id, exc)

    async def _finish(self, invocation: Invocation, status: str, result: Any, error: dict[str, str] | None) -> None:
        invocation.result, invocation.error, invocation.finished = result, error, time.time()
        if status == "completed" and invocation.progress is not None:
            invocation.progress = 1.0  # it got there, whatever its last estimate said
        invocation.status = status  # final from here on: a late cancel gets 409, the owned attributes are free
        self._release(invocation)
        self._keep(invocation)
        try:
            if self.journal is not None:  # with its outcome: read after a restart as now
                await asyncio.to_thread(self.journal.ended, {**invocation.public(), "identity": invocation.identity,
                                                             "client": invocation.client})
        except OSError as exc:
            log.error("could not record the end of invocation %s: %s", invocation.id, exc)
        audited = self._audited.pop(invocation.id, None)
        if audited is not None:
            await audited.finished(status, after=result if error is None else error)
        invocation.set_status(status)  # wakes waiting clients and publishes the final state

    async def _cancel(self, ident: Any, request: Request, until: float) -> dict[str, Any]:
        attempt = WriteAttempt("cancel", None, None, {"invocation": ident}, request.client, request.identity,
                               request.id, request.role)
        write = None
        try:  # an unknown invocation is a refusal on record too
            invocation = self._get(ident)
            attempt.module, attempt.attribute = invocation.module, invocation.action
            _check_running(invocation)
            if self.audit is not None:
                write = self.audit.record_write(attempt)
                await write.started()  # AuditUnavailable (503): nothing is cancelled
            _check_running(invocation)  # it may have ended while that line was written: then it is too late
        except BridgeError as exc:
            if write is not None:
                await write.finished(exc.code, after=invocation.status)
            elif self.audit is not None:
                await self.audit.record_refusal(attempt, exc.code)
            raise
        self._request_cancel(invocation)  # in the same step as the check: the cancel reaches a running action
        if write is not None:
            await write.finished("ok")
        if invocation.task is not None:
            await asyncio.wait([invocation.task], timeout=max(0.0, min(CANCEL_WAIT, until - time.time())))
        return invocation.public()

    def _request_cancel(self, invocation: Invocation) -> None:
        if invocation.cancel_requested.is_set():
            return  # cancelling twice would interrupt the clean-up of the first cancel
        invocation.cancel_requested.set()
        if invocation.task is not None and invocation.status == "running":
            invocation.task.cancel()  # a pending one sees the flag when it starts

    def _action(self, module: BaseModule, name: str) -> ActionSpec:
        spec = module.actions.get(name)
        if spec is not None:
            return spec
        known = ", ".join(module.actions) or "none"
        if name in module.specs or name in RESERVED_NAMES:
            writable = name in module.specs and module.specs[name].writable
            raise NotAnAction(f"{module.name}.{name} is not an action: GET reads it{', PUT sets it' if writable else ''}; "
                              f"POST starts an action (actions of {module.name}: {known})")
        raise UnknownAction(f"module {module.name!r} has no action {name!r}; known: {known}")

    def _get(self, ident: Any) -> Invocation:
        invocation = self._all.get(ident) if isinstance(ident, str) else None
        if invocation is None:
            raise UnknownInvocation(f"no invocation {ident!r} (finished ones are kept for the last "
                                    f"{self.kept} per module)")
        return invocation

    def _list(self, module: Any, status: Any) -> dict[str, Any]:
        if module is not None:
            module = self._find_module(module).name
        if status is not None and status not in STATUSES:
            raise InvalidValue(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        found = [inv for inv in self._all.values()
                 if (module is None or inv.module == module) and (status is None or inv.status == status)]
        found.sort(key=lambda inv: inv.created, reverse=True)
        return {"invocations": [inv.public() for inv in found]}

    def _keep(self, invocation: Invocation) -> None:
        """File a finished invocation; forget the oldest of its module beyond the history."""
        kept = self._finished.setdefault(invocation.module, [])
        kept.append(invocation)
        while len(kept) > self.kept:
            self._all.pop(kept.pop(0).id, None)

    def _release(self, invocation: Invocation) -> None:
        self.quota.release(invocation.id)
        for attribute in invocation.owns:
            if self._owners.get((invocation.module, attribute)) is invocation:
                del self._owners[(invocation.module, attribute)]

    def _publish(self, invocation: Invocation) -> None:
        self.publish({"module": invocation.module, "action": invocation.action, "invocation": invocation.public()})


def _no_check(module: str, spec: ActionSpec) -> None:
    """No interlock refuses any action."""


def _check_running(invocation: Invocation) -> None:
    """AlreadyFinished, naming the final status, if `invocation` has ended: a cancel comes too late."""
    if invocation.is_finished:
        raise AlreadyFinished(f"invocation {invocation.id} has already finished ({invocation.status}); "
                              "there is nothing to cancel")
