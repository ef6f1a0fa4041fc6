"""Experiment: config.yml -> module instances -> dispatch of one request.

The experiment process owns the instruments.  `Experiment.from_config` imports
each module's class (it must be a BaseModule), applies narrower limits and
builds simulators for `simulate: true`; any problem is a ConfigError naming the
key.  `Experiment.handle` answers one protocol request.  Requests for different
modules run concurrently; requests for the same module run one at a time in
arrival order (drivers are rarely thread-safe), with a bounded queue.  A request
whose deadline has passed is dropped before it reaches the instrument, and
whatever a module raises becomes an error naming that module.  With an audit
log configured, every write is recorded (core/audit.py): `started` on disk just
before the driver is called, `finished` with its outcome after it, or `refused`
when it never got that far.  Actions run
beside requests (invocations.py): their driver calls wait in the same queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from labbridge.core.arrays import npy_answer
from labbridge.core.attribute import RESERVED_NAMES
from labbridge.core.audit import AuditedWrite, AuditLog, WriteAttempt
from labbridge.experiment.base_module import BaseModule
from labbridge.core.config import Config, ConfigError, resolve
from labbridge.core.errors import (
    BackendBusy,
    BackendUnavailable,
    BridgeError,
    DeadlineExceeded,
    HistoryOff,
    InstrumentError,
    InstrumentTimeout,
    InstrumentUnreachable,
    MalformedRequest,
    NotAcceptable,
    RunsUnavailable,
    UnknownModule,
    UNKNOWN_OUTCOME,
)
from labbridge.core.history_query import HistoryQuery
from labbridge.core.protocol import INTERLOCK_OPS, INVOCATION_OPS, RUN_OPS, Request
from labbridge.core.protocol import VERSION as PROTOCOL_VERSION
from labbridge.experiment.action_quota import ActionQuota
from labbridge.experiment.history import HistoryRecorder
from labbridge.experiment.import_path import import_by_path
from labbridge.experiment.invocation_journal import InvocationJournal
from labbridge.experiment.invocations import Invocations
from labbridge.experiment.polling import poll_module, read_batch
from labbridge.experiment.procedure import load_procedures
from labbridge.experiment.run_queue import RunQueue
from labbridge.experiment.runs import handle_run_op
from labbridge.experiment.safety.interlocks import Interlocks
from labbridge.experiment.safety.safe_state import SafeStates
from labbridge.experiment.safety.alarms import Alarms
from labbridge.experiment.safety.notices import Notices
from labbridge.experiment.turns import Turns

log = logging.getLogger(__name__)

# Time kept back from a request's deadline so the reply reaches the client before it gives up.
REPLY_MARGIN = 0.05
# Operations that change an instrument: recorded in the audit log.
AUDITED_OPS = frozenset({"put"})


@dataclass(eq=False)
class _ModuleState(Turns):
    """One module's turn-taking (a FIFO lock, how many hold or wait for it) and its health."""

    last_contact: float | None = None  # Unix time the instrument last answered
    last_error: str | None = None  # the error of the last call, None once one succeeds


class Experiment:
    """The configured modules and the rules for running requests against them."""

    def __init__(self, modules: dict[str, BaseModule], simulators: dict[str, Any] | None = None, *,
                 audit: AuditLog | None = None, kept_invocations: int = 100,
                 journal: InvocationJournal | None = None, quota: ActionQuota | None = None) -> None:
        self.modules = modules
        self.simulators = simulators or {}
        self._states = {name: _ModuleState() for name in modules}
        self._pollers: list[asyncio.Task[None]] = []
        # Called with every scalar value written or polled, and every failed poll (live values).
        self.publish: Callable[[dict[str, Any]], None] = lambda event: None
        # Called with (module, {attribute: reading}) for the values of one poll, read together; each reading is
        # {"value", "unit"} or {"error", "message"}.  By default one `publish` each; the server sends them as one.
        self.publish_values: Callable[[str, dict[str, dict[str, Any]]], None] = self._publish_each
        self.history: HistoryRecorder | None = None  # records what is published (config.yml `history:`)
        # Called with (module, attribute, reading) for every scalar value read, polled or written, and every failed
        # read or write of one (reading {"error": code, "message": ...}): alarms and interlocks judge each of them.
        self.observers: list[Callable[[str, str, dict[str, Any]], None]] = []
        # Called with each safety notice (an alarm's change, a trip, an acknowledgement, a safe state applied, a failed
        # run): a dict with "kind" and "message".  Logged here; the safety package also sends it to people.
        self.tell: Callable[[dict[str, Any]], None] = _log_notice
        self.audit = audit  # records every write (config.yml's audit_log)
        for name, module in modules.items():  # actions' driver calls queue with the requests, their values go live
            module.turns, module.announce = self._states[name], partial(self._seen, module)
            module.guard = partial(self._guard_write, name)
        self.invocations = Invocations(self.module, kept=kept_invocations, journal=journal, audit=audit, quota=quota)
        self.invocations.publish = lambda event: self.publish(event)
        self.runs: RunQueue | None = None  # the queue of runs of procedures (from_config sets it)
        self.safe_states = SafeStates(self)  # put modules in their safe state (config.yml's, from_config sets it)
        self._started = False  # modules started: a stop applies their safe states
        self.interlocks = Interlocks(self)  # config.yml's `interlocks:` (from_config sets them)
        self.alarms: Alarms | None = None  # alarm limits (config.yml `alarms:`, safety/alarms.py; from_config sets it)
        self.notices: Notices | None = None  # tell() to the audit log, the dashboards and webhooks (safety/notices.py)

    @classmethod
    def from_config(cls, config: Config, source: str = "config.yml") -> Experiment:
        modules: dict[str, BaseModule] = {}
        simulators: dict[str, Any] = {}
        for name, settings in config.modules.items():
            where = f"{source}: modules.{name}"
            module_class = _import_module_class(settings.class_path, where)
            serves_simulator = settings.simulate and not module_class.simulates_itself()
            if settings.port is None and (serves_simulator or module_class.speaks_http()):
                raise ConfigError(f"{where}.port: required key is missing ({_needs_port(module_class, serves_simulator)})")
            for key, names in (("limits", settings.limits), ("poll", settings.poll)):
                for attr in names:
                    if attr not in module_class.attributes:
                        raise ConfigError(f"{where}.{key}.{attr}: {module_class.__name__} declares no attribute {attr!r}")
            for attr in settings.poll:
                if module_class.attributes[attr].is_array:
                    raise ConfigError(f"{where}.poll.{attr}: arrays are read on demand, not pushed live")
            try:
                modules[name] = module_class(name, settings)
            except ConfigError as exc:  # the class checks its own keys (a ScpiModule needs a resource)
                raise ConfigError(f"{where}.{exc}") from None
            except ValueError as exc:
                raise ConfigError(f"{where}.limits: {exc}") from None
            if serves_simulator:
                if module_class.simulator is None:
                    raise ConfigError(f"{where}.simulate: {module_class.__name__} has no simulator")
                try:
                    simulators[name] = module_class.simulator(settings.simulator)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{where}.simulator: {exc}") from None
        data_dir = resolve(Path(source), config.data_dir)
        experiment = cls(modules, simulators, audit=AuditLog.from_config(config, Path(source)),
                         kept_invocations=config.actions.history, quota=ActionQuota(config.actions),
                         journal=InvocationJournal(data_dir))
        procedures = load_procedures(config.procedures, modules, source)
        experiment.runs = RunQueue.for_experiment(experiment, procedures, data_dir, config.runs, Path(source))
        experiment.safe_states = SafeStates.from_config(experiment, config, source)
        experiment.interlocks = Interlocks.from_config(experiment, config, source)
        experiment.alarms = Alarms.from_config(config, modules, experiment, source)
        if config.alarms:  # a value no rule or limit watches costs nothing
            experiment.observers.append(experiment.alarms.observe)
        experiment.notices = Notices.install(experiment, config.notify)
        return experiment

    async def start(self) -> None:
        await self.invocations.start()
        if self.runs is not None:  # opens the run store: what a crash cut short becomes interrupted
            await self.runs.start()
        self._started = True
        for module in self.modules.values():
            try:
                await module.run_start()
            except InstrumentUnreachable as exc:  # one missing instrument must not take the others down
                self._states[module.name].last_error = exc.code
                log.error("module %s could not start: %s; it answers 502 instrument_unreachable and tries again on "
                          "each request, the other modules serve", module.name, module.start_failure)
        await self.interlocks.start()

    def start_polling(self) -> None:
        """Read the attributes named in each module's `poll:` at their intervals, those due together in one
        read_many, publishing what is read (polling.py)."""
        for module in self.modules.values():
            if module.settings.poll:
                self._pollers.append(asyncio.create_task(poll_module(self, module)))

    async def read_polled(self, module: BaseModule, names: list[str], interval: float) -> dict[str, dict[str, Any]]:
        """One poll: `names` read in one read_many, waiting their turn in the module's queue like any client
        request; a reading per name, `{"value", "unit"}`, or `{"error", "message"}` (every name's, when the read
        itself failed or never ran).  The observers have seen each."""
        request = Request.new("get", module.name, names[0] if len(names) == 1 else "attributes",
                              timeout=max(interval, module.settings.timeout))
        try:
            answer = await self._run(module, request, polled=names)
        except BridgeError as exc:
            return {name: {"error": exc.code, "message": exc.detail} for name in names}
        readings: dict[str, dict[str, Any]] = answer["attributes"]
        return readings

    def _publish_each(self, module: str, readings: dict[str, dict[str, Any]]) -> None:
        for name, reading in readings.items():
            self.publish({"module": module, "attribute": name, **reading})

    async def close(self) -> None:
        await self.interlocks.close()  # no trip starts anything while the rest stops
        if self.runs is not None:  # first: an aborted run's clean-up still needs its instruments and actions
            await self.runs.close()
        await self.invocations.close()  # first: a cancelled action's clean-up still needs its instrument
        for task in self._pollers:
            task.cancel()
        if self._started:  # actions cancelled, modules still open; bounded, a dead instrument cannot hang the stop
            await self.safe_states.at_stop()
        for module in self.modules.values():
            if module.start_failure is not None:  # never started: nothing to close
                module.worker.close()
                continue
            try:
                # A blocking driver stuck on a dead instrument must not hold up the shutdown.
                async with asyncio.timeout(module.settings.timeout + module.settings.connect_timeout):
                    await module.worker.run(module.close)
            except TimeoutError:
                log.warning("closing module %s did not finish in time", module.name)
            except Exception:  # one module failing to close must not keep the others open
                log.exception("closing module %s failed", module.name)
            module.worker.close()
        if self.notices is not None:  # before the audit log: what is still to be told is sent or logged
            await self.notices.close()
        if self.audit is not None:
            self.audit.close()

    def describe(self) -> dict[str, Any]:
        return {"modules": {name: module.describe() for name, module in self.modules.items()}}

    async def handle(self, request: Request) -> Any:
        """Answer one request with a JSON-ready body, or raise a BridgeError; writes go in the audit log."""
        if self.audit is None or request.op not in AUDITED_OPS:
            return await self._dispatch(request)
        write = self.audit.record_write(WriteAttempt(request.op, request.module, request.attribute,
                                                    request.value if request.has_value else None,
                                                    request.client, request.identity, request.id,
                                                    request.role))
        try:
            return await self._dispatch(request, write)
        except asyncio.CancelledError:  # shutting down: the reply says the outcome is unknown, and so does the log
            if not write.is_done:
                write.finished_soon(BackendUnavailable.code)
            raise
        except Exception as exc:  # refused before the module's turn (the outcome of a started write is recorded in _run)
            if not write.is_done:
                await write.finished(exc.code if isinstance(exc, BridgeError) else BridgeError.code)
            raise

    async def _dispatch(self, request: Request, write: AuditedWrite | None = None) -> Any:
        if request.op == "ping":  # `pid` tells a launcher that its own experiment process answers
            return {"time": time.time(), "pid": os.getpid(), "protocol": PROTOCOL_VERSION, "modules": {
                name: {"last_contact": q.last_contact, "last_error": q.last_error, "queued": q.pending,
                       "start_error": self.modules[name].start_failure, "safe_state": self.safe_states.status(name)}
                for name, q in self._states.items()},
                "history": self.history.status() if self.history else {"enabled": False, "recording": False}}
        if request.op == "describe":
            return self.describe()
        if request.op == "alarms":  # and what became of the notices sent to webhooks
            return {**(self.alarms.describe() if self.alarms else {"alarms": []}),
                    "webhooks": self.notices.describe() if self.notices else None}
        if request.op in INVOCATION_OPS:
            return await self.invocations.handle(request)
        if request.op in INTERLOCK_OPS:
            return await self.interlocks.handle(request)
        if request.op in RUN_OPS:
            if self.runs is None:
                raise RunsUnavailable("this experiment process runs no procedures")
            return await handle_run_op(self.runs, request)
        module = self.module(request.module)
        name = request.attribute
        if name is None:
            raise MalformedRequest(f"{request.op} needs an attribute")
        if request.op == "history":  # answered from the database: the instrument is not asked
            return await self._read_history(module, name, request)
        # Refuse what needs no instrument now, rather than after waiting in the queue.
        if request.op == "put":
            spec = module.writable_spec(name)  # a missing or read-only target outranks a missing value
            if not request.has_value:
                raise MalformedRequest("put needs a value")
            spec.validate(request.value)
            self.invocations.check_free(module.name, name)
            self.interlocks.check_write(module.name, name, request.value)
        else:
            if name not in module.actions and name not in RESERVED_NAMES:
                module.spec(name)  # an unknown attribute is a 404 whatever the client accepts
            if "json" not in request.accept and not (name in module.specs and module.specs[name].is_array):
                raise NotAcceptable(f"{module.name}.{name} is not an array, so it comes as JSON only "
                                    "(application/json), not as application/x-npy")
            if name in module.actions:
                return module.describe_action(name)
        return await self._run(module, request, write)

    async def _read_history(self, module: BaseModule, name: str, request: Request) -> Any:
        if self.history is None:
            raise HistoryOff("nothing is recorded: config.yml has no `history:` section")
        spec = module.specs.get(name)
        declared = spec is not None or name in module.actions  # an action's history holds its finished runs
        reply = await self.history.read(module.name, name, spec.unit if spec else None, declared,
                                        HistoryQuery.from_wire(request.value), request.deadline)
        if reply is None:  # neither declared nor ever recorded
            module.spec(name)  # raises UnknownAttribute naming the known ones
        return reply

    def module(self, name: str | None) -> BaseModule:
        """The module called `name`; UnknownModule naming the known ones if there is none."""
        module = self.modules.get(name or "")
        if module is None:
            known = ", ".join(self.modules) or "none"
            raise UnknownModule(f"no module named {name!r}; known: {known}")
        return module

    async def _run(self, module: BaseModule, request: Request, write: AuditedWrite | None = None,
                   polled: list[str] | None = None) -> Any:
        queue, name = self._states[module.name], request.attribute or ""
        if queue.pending >= module.settings.queue_limit:
            raise BackendBusy(f"module {module.name} has {queue.pending} requests queued; try again shortly")
        queue.pending += 1
        try:
            # Wait for the module only until the deadline, so the client hears "it never ran"
            # (rather than "outcome unknown") and the request is gone before the module is free.
            if queue.pending == 1:  # alone in the module's queue: the lock is free, taken at once, no timer needed
                await queue.lock.acquire()
            elif not await _acquire_before(queue.lock, request.deadline - REPLY_MARGIN):
                raise _expired(module, request)
            try:
                remaining = request.deadline - time.time() - REPLY_MARGIN
                if remaining <= 0:  # the lock came free just before the deadline
                    raise _expired(module, request)
                if request.op == "put":  # again in its turn: an action or an interlock may refuse it now
                    self.invocations.check_free(module.name, name)
                    self.interlocks.check_write(module.name, name, request.value)
                answer = await self._execute(module, request, queue, remaining, write, polled)
            except BridgeError as exc:
                if write is not None:  # recorded in the module's turn, so its lines never interleave with the next write's
                    await write.finished(exc.code)
                raise
            else:
                if write is not None:
                    await write.finished("ok", after=answer.get("value"))
                return answer
            finally:
                queue.lock.release()
        finally:
            queue.pending -= 1

    async def _execute(self, module: BaseModule, request: Request, queue: _ModuleState, remaining: float,
                       write: AuditedWrite | None = None, polled: list[str] | None = None) -> Any:
        """Run one request on its module (whose turn it is), turning whatever goes wrong into a BridgeError;
        `polled`: the request is a poll of these attributes, read in one read_many."""
        budget = min(module.settings.timeout + module.settings.connect_timeout, remaining)
        read = [request.attribute or ""] if polled is None else polled
        try:
            async with asyncio.timeout(budget):
                answer = await (self._call(module, request, write) if polled is None else read_batch(module, polled))
        except TimeoutError:
            queue.last_error = InstrumentTimeout.code
            timeout = InstrumentTimeout(
                f"module {module.name} did not finish {request.op} {request.attribute} within {budget:.3g} s"
                + (UNKNOWN_OUTCOME if request.op == "put" else ""))
            self._observe_failure(module, read, timeout)
            raise timeout from None
        except (InstrumentError, InstrumentTimeout) as exc:
            queue.last_error = exc.code
            self._observe_failure(module, read, exc)
            raise
        except BridgeError:
            raise
        except Exception as exc:
            queue.last_error = InstrumentError.code
            log.exception("module %s failed on %s %s", module.name, request.op, request.attribute)
            failure = InstrumentError(f"module {module.name} failed: {type(exc).__name__}: {exc}")
            self._observe_failure(module, read, failure)
            raise failure from None
        queue.last_contact, queue.last_error = time.time(), None
        self._observe(module, answer)
        if request.op == "put":  # changes go live at once; plain reads only when polled
            self._announce(module, answer)
        return answer

    def _guard_write(self, module: str, attribute: str, value: Any) -> None:
        """A write an action makes, judged by the interlocks in the module's turn (Interlocked refuses it)."""
        self.interlocks.check_write(module, attribute, value)

    def _seen(self, module: BaseModule, answer: Any) -> None:
        """A value an action's driver call read or wrote: judged, then published."""
        self._observe(module, answer)
        self._announce(module, answer)

    def _observe(self, module: BaseModule, answer: Any) -> None:
        """Show the scalar values in an answer to every observer."""
        if not self.observers or not isinstance(answer, dict):
            return
        if "attribute" in answer and "value" in answer and not module.specs[answer["attribute"]].is_array:
            readings = {answer["attribute"]: answer}
        else:
            readings = answer.get("attributes", {})
        for name, reading in readings.items():
            for observer in self.observers:
                observer(module.name, name, reading)

    def _observe_failure(self, module: BaseModule, names: list[str], exc: BridgeError) -> None:
        """A read or write of attributes that failed at the instrument: their observers see the error."""
        if not self.observers:
            return
        for name in names:
            if name in module.specs and not module.specs[name].is_array:
                for observer in self.observers:
                    observer(module.name, name, {"error": exc.code, "message": exc.detail})

    def _announce(self, module: BaseModule, answer: Any) -> None:
        """Publish the scalar values in an answer (one attribute, or a module's summary)."""
        if "attribute" in answer and not module.specs[answer["attribute"]].is_array:
            self.publish({k: answer[k] for k in ("module", "attribute", "value", "unit")})
        for name, reading in answer.get("attributes", {}).items():
            self.publish({"module": module.name, "attribute": name, **reading})

    @staticmethod
    async def _call(module: BaseModule, request: Request, write: AuditedWrite | None = None) -> Any:
        name = request.attribute or ""
        await module.retry_start()  # in the module's turn: a module whose start failed tries again
        if request.op == "put":
            if write is not None:  # the value before, read in the same turn; the line is on disk before the write
                await write.started(before=(await module.get(name))["value"])
            return await module.put(name, request.value)
        if name == "attributes":
            return await module.read_attributes()
        if name == "parameters":
            return await module.read_parameters()
        if request.accept[0] == "npy" and module.specs[name].is_array:
            answer = await module.get(name, raw=True)
            npy = npy_answer(answer)
            if npy is None and "json" not in request.accept:  # a list of strings, say
                raise NotAcceptable(f"{module.name}.{name} is not numbers, so it comes as JSON only")
            return answer if npy is None else npy
        return await module.get(name)


def _log_notice(notice: dict[str, Any]) -> None:
    log.warning("%s: %s", notice.get("kind"), notice.get("message"))


def _import_module_class(path: str, where: str) -> type[BaseModule]:
    found = import_by_path(path, f"{where}.class", "class ")
    if not (isinstance(found, type) and issubclass(found, BaseModule)):
        raise ConfigError(f"{where}.class: {path} is not a BaseModule subclass")
    return found


def _needs_port(module_class: type[BaseModule], serves_simulator: bool) -> str:
    """Why a module needs `port`, and what to do instead when it has another way to its instrument."""
    name = module_class.__name__
    if serves_simulator:
        return f"simulate: true serves {name}'s simulator on ip:port"
    hooks = " and ".join(f"`{hook}`" for hook in module_class.http_hooks())
    return (f"{name} talks HTTP to its instrument at ip:port, as BaseModule's {hooks} do; a module that reaches "
            f"its instrument another way overrides {hooks}")


def _expired(module: BaseModule, request: Request) -> DeadlineExceeded:
    log.warning("dropped %s %s.%s: its client had already given up", request.op, module.name, request.attribute)
    return DeadlineExceeded(f"{request.op} {module.name}.{request.attribute} expired before it ran")


async def _acquire_before(lock: asyncio.Lock, deadline: float) -> bool:
    """Take `lock` if it comes free before `deadline` (Unix time); False if it does not."""
    remaining = deadline - time.time()
    if remaining <= 0:
        return False
    try:
        async with asyncio.timeout(remaining):
            await lock.acquire()
    except TimeoutError:
        return False
    return True
