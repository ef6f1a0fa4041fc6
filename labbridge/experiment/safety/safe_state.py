"""SafeStates: putting modules in their safe state, on a clean stop, on a trip, and after a crash.

A module declares its safe state in config.yml (`modules.psu.safe_state:
{output: false, voltage: 0}`: attribute -> value, written in that order) or in
its class, as an `async def safe_state(self)` hook (BaseModule's does nothing).
When both are there, config.yml wins: the hook is not called (a lab may know
better than the class; `safe_state: {}` turns a class's hook off).

`apply(module, reason)` takes the module's turn (after the request or action
call under way), writes each value through the module's normal write path
(`BaseModule.put`: type and limits checked, the value read back, published
live and shown to the observers: alarms and interlocks), each write bounded by
the module's timeout and the whole by `within` seconds, so a dead instrument
cannot hang a stop.  A write that fails does not stop the others: it is
reported.  Each write is in the audit log (op `safe_state`, client `bridge
(<reason>)`, `started` then `finished` lines as for a PUT; a hook's run is one
such pair with no attribute).  Then `experiment.tell` gets a `safe_state`
notice, and `status(module)` (on /health) says when and why.  It never raises
for what the instrument does; only an unknown module name is an error.

Actions are not cancelled here: a stop cancels them before (Experiment.close),
and a trip does so itself.  `apply` does not check interlock guards either: a
safe state must always be reachable.

The crash part (a marker file in data_dir, run_marker.py) is driven by the
process (process.py): `note_unclean_stop` before the modules start,
`after_unclean_stop` once they have, before anything is served; `at_stop` from
Experiment.close.  `owed` says whether a safe state may still be needed when
the process stops: the marker stays unless it is None.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from labbridge.core.audit import AuditedWrite, WriteAttempt
from labbridge.core.config import Config, ConfigError
from labbridge.core.errors import AuditUnavailable, BridgeError, InstrumentError, InstrumentTimeout
from labbridge.experiment.base_module import BaseModule

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)

# Seconds one module's safe state may take when the caller gives no bound (a trip, after a crash).
WITHIN = 10.0
# Seconds all the modules' safe states may take together on a clean stop: with the actions' clean-up
# (invocations.STOP_GRACE) the stop still fits in the 10 s a supervisor gives.
STOP_WITHIN = 3.0
AT_STOP = "the experiment process stopped"
AFTER_CRASH = "after an unclean stop"
HOOK = "safe_state()"  # how a hook's run is named where an attribute would be


class SafeStates:
    """The modules' declared safe states, applying them, and when each was last applied and why."""

    def __init__(self, experiment: Experiment, declared: dict[str, dict[str, Any]] | None = None, *,
                 after_crash: bool = True) -> None:
        self._experiment = experiment
        self._declared = declared or {}  # module -> {attribute: value}, from config.yml (wins over a hook)
        self.after_crash = after_crash  # config.yml `safe_state.after_crash`
        self._last: dict[str, dict[str, Any]] = {}  # module -> {"applied_at", "reason", "failed"}
        self.owed: str | None = None  # why the marker must stay if the process stopped now; None: it may go
        self._crash_reason = AFTER_CRASH  # the reason given after an unclean stop

    @classmethod
    def from_config(cls, experiment: Experiment, config: Config, source: str) -> SafeStates:
        """The safe states config.yml declares, each value checked against its module; ConfigError naming the key."""
        declared: dict[str, dict[str, Any]] = {}
        for name, settings in config.modules.items():
            if settings.safe_state is None:
                continue
            module = experiment.modules[name]
            for attribute, value in settings.safe_state.items():
                _check(module, attribute, value, f"{source}: modules.{name}.safe_state.{attribute}")
            declared[name] = dict(settings.safe_state)
        return cls(experiment, declared, after_crash=config.safe_state.after_crash)

    def declares(self, module: str) -> bool:
        """True if `module` has a safe state (in config.yml or its class); UnknownModule if there is no such module."""
        return module in self._declared or self._experiment.module(module).has_safe_state_hook()

    def status(self, module: str) -> dict[str, Any] | None:
        """When `module` was last put in its safe state and why (`failed`: what could not be written), or None."""
        return self._last.get(module)

    async def apply(self, module: str, reason: str, within: float = WITHIN) -> dict[str, Any]:
        """Put `module` in its safe state; what was written, what failed (attribute -> message), and when.

        Never raises for a failing write or a dead instrument (bounded by `within` seconds); UnknownModule
        for a name that is no module."""
        target = self._experiment.module(module)
        values = self._declared.get(module)
        started = time.time()
        result: dict[str, Any] = {"module": module, "reason": reason, "applied_at": None, "written": {}, "failed": {}}
        if values is None and not target.has_safe_state_hook():
            log.warning("module %s has no safe state to apply (%s)", module, reason)
            return result
        steps = list(values) if values is not None else [HOOK]
        try:
            async with asyncio.timeout(within):
                async with target.turn():  # a module whose start failed tries again here
                    for step in steps:
                        await self._step(target, step, None if values is None else values[step], reason, result)
        except TimeoutError:
            _fail_rest(result, steps, f"not done within {within:g} s")
        except BridgeError as exc:  # its start failed again: nothing reaches it
            _fail_rest(result, steps, exc.detail)
        result["applied_at"] = started
        self._last[module] = {"applied_at": started, "reason": reason, "failed": dict(result["failed"])}
        self._tell(result)
        return result

    async def apply_all(self, reason: str, within: float = WITHIN) -> dict[str, dict[str, Any]]:
        """Every module that declares a safe state, at once (each in its own turn); the results by module."""
        names = [name for name in self._experiment.modules if self.declares(name)]
        results = await asyncio.gather(*(self.apply(name, reason, within) for name in names))
        return dict(zip(names, results))

    def note_unclean_stop(self, left: dict[str, Any]) -> None:
        """The last run left its marker (`left`, what it said): a safe state is owed until applied."""
        not_clean = left.get("not_clean")
        self.owed = str(not_clean) if not_clean else "the last run did not stop cleanly"
        self._crash_reason = f"after a stop that {not_clean}" if not_clean else AFTER_CRASH

    async def after_unclean_stop(self) -> None:
        """At start, modules started, nothing served yet: apply every safe state (unless config.yml turned it off)."""
        if not self.after_crash:
            log.warning("the last run did not stop cleanly; safe states are not applied (safe_state.after_crash: "
                        "false)")
            self.owed = None
            return
        results = await self.apply_all(self._crash_reason)
        self.owed = _what_failed(results)

    async def at_stop(self) -> None:
        """On a clean stop, actions cancelled, modules still open: apply every safe state within STOP_WITHIN."""
        results = await self.apply_all(AT_STOP, STOP_WITHIN)
        self.owed = _what_failed(results)

    async def _step(self, module: BaseModule, attribute: str, value: Any, reason: str, result: dict[str, Any]) -> None:
        """One write (or the hook's run), audited; its failure goes in `result`, never raised."""
        audited = self._audited(module, attribute, value, reason)
        if audited is not None:
            try:
                await audited.started()
            except AuditUnavailable as exc:  # a full disk: a safe state goes on without its line
                log.error("safe state of %s.%s is not in the audit log: %s", module.name, attribute, exc.detail)
                audited = None
        try:
            failure = await _write(module, attribute, value, result)
        except asyncio.CancelledError:  # `within` ran out mid-write: its outcome is unknown, and the log says so
            if audited is not None:
                audited.finished_soon(InstrumentTimeout.code)
            raise
        if failure is not None:
            result["failed"][attribute] = failure.detail
        if audited is not None:
            await audited.finished("ok" if failure is None else failure.code, after=result["written"].get(attribute))

    def _audited(self, module: BaseModule, attribute: str, value: Any, reason: str) -> AuditedWrite | None:
        audit = self._experiment.audit
        if audit is None:
            return None
        return audit.record_write(WriteAttempt("safe_state", module.name, None if attribute == HOOK else attribute,
                                               value, client=f"bridge ({reason})", id=uuid.uuid4().hex))

    def _tell(self, result: dict[str, Any]) -> None:
        written = ", ".join(f"{name}={value!r}" for name, value in result["written"].items())
        failed = "; ".join(f"{name}: {why}" for name, why in result["failed"].items())
        message = f"{result['module']} put in its safe state ({result['reason']})"
        message += (f": {written}" if written else "") + (f"; FAILED {failed}" if failed else "")
        notice = {"kind": "safe_state", "module": result["module"], "reason": result["reason"], "message": message,
                  "time": result["applied_at"], "failed": dict(result["failed"])}
        try:
            self._experiment.tell(notice)
        except Exception:  # telling people must not undo a safe state
            log.exception("telling of %s failed", message)


def _check(module: BaseModule, attribute: str, value: Any, where: str) -> None:
    spec = module.specs.get(attribute)
    if spec is None:
        known = ", ".join(name for name, s in module.specs.items() if s.writable) or "none"
        raise ConfigError(f"{where}: {type(module).__name__} declares no attribute {attribute!r} (writable: {known})")
    if not spec.writable:
        raise ConfigError(f"{where}: {attribute} is read-only, a safe state can only write writable attributes")
    try:
        spec.validate(value)
    except BridgeError as exc:
        raise ConfigError(f"{where}: {exc.detail}") from None


async def _write(module: BaseModule, attribute: str, value: Any, result: dict[str, Any]) -> BridgeError | None:
    """Write one value through the module's write path (or run its hook), in the turn already held; the error."""
    budget = module.settings.timeout + module.settings.connect_timeout
    try:
        if attribute == HOOK:
            await module.safe_state()  # bounded by apply's `within`: it may write several values
            return None
        async with asyncio.timeout(budget):
            answer = await module.put(attribute, value)
    except TimeoutError:
        return InstrumentTimeout(f"no answer within {budget:g} s")
    except BridgeError as exc:
        return exc
    except Exception as exc:  # a module's own code: reported, the other steps go on
        log.exception("safe state of %s: %s failed", module.name, attribute)
        return InstrumentError(f"module {module.name} failed: {type(exc).__name__}: {exc}")
    result["written"][attribute] = answer["value"]
    module.announce(answer)  # published live, judged by alarms and interlocks
    return None


def _fail_rest(result: dict[str, Any], steps: list[str], why: str) -> None:
    """Every step neither written nor failed yet failed with `why`."""
    for step in steps:
        if step not in result["written"] and step not in result["failed"]:
            result["failed"][step] = why


def _what_failed(results: dict[str, dict[str, Any]]) -> str | None:
    failed = [f"{name}.{attribute}" for name, result in results.items() for attribute in result["failed"]]
    return f"could not apply safe states: {', '.join(failed)}" if failed else None
