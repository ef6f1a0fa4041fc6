"""Lab: one frontend in front of several experiment processes, with the BackendClient's interface.

The routes call `bridge.backend` as they did with one experiment process; Lab
sends each request to the process that holds what it names:

- a module (get, put, history, invoke; the invocations of one module): the process that describes it;
- an invocation or a run by id: the process that made it (ids are random, unique across the lab; learnt from
  the answers, else asked of each process up);
- a procedure (submit_run): the process that declares it; an interlock (interlock_ack): the one that has it;
- lists (describe, procedures, invocations, runs, interlocks, alarms, the run queue): merged from every process.

Descriptions come from the links (experiments.py), taken when each process connects, so that a request to one
process never waits for another.  A process that is down or refused makes its modules answer 503
`experiment_unavailable` naming it.  Without `experiments:` in config.yml there is one process, "default", and
every request goes to it exactly as before (no heartbeat, no merging).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.config import Config, resolve
from labbridge.core.errors import (BackendNotReached, BridgeError, ExperimentUnavailable, Interlocked,
                                   UnknownInterlock, UnknownInvocation, UnknownModule, UnknownProcedure, UnknownRun)
from labbridge.core.protocol import JSON_ONLY, MISSING, Chunk, Format, Op, Reply, Request
from labbridge.frontend.backend_client import Outgoing
from labbridge.frontend.experiments import ExperimentLink

log = logging.getLogger(__name__)
CACHE_FOLDER = "experiments"  # in the frontend's data folder: each process's last description
KNOWN_IDS = 10_000  # invocation and run ids whose process is remembered
INVOCATION_ID_OPS = frozenset({"invocation", "cancel"})
RUN_ID_OPS = frozenset({"run", "run_control", "run_data", "run_file"})
MERGED_OPS = frozenset({"describe", "procedures", "runs", "run_queue", "interlocks", "alarms", "ping"})


class ModuleClash(Exception):
    """Two experiment processes describe a module of the same name."""


class Lab:
    """Routes protocol requests to the experiment process they concern; merges lists from all of them."""

    def __init__(self, links: dict[str, ExperimentLink], *, is_lab: bool) -> None:
        self.links = links
        self.is_lab = is_lab
        self._first = next(iter(links.values()))
        self._owners: dict[str, str] = {}  # module -> process
        self._ids: OrderedDict[str, str] = OrderedDict()  # invocation or run id -> process
        self._index_modules(None)

    @classmethod
    def from_config(cls, config: Config, config_file: Path) -> Lab:
        cache = resolve(config_file, config.data_dir) / CACHE_FOLDER if config.is_lab else None
        links = {name: ExperimentLink(name, socket, config, config_file, cache)
                 for name, socket in config.experiment_sockets.items()}
        return cls(links, is_lab=config.is_lab)

    # What the routes use, as on BackendClient ---------------------------------------------------------------

    def start(self) -> None:
        """Start each process's heartbeat (a lab only; needs the running event loop)."""
        if self.is_lab:
            for link in self.links.values():
                link.start(self._index_modules)

    def close(self) -> None:
        for link in self.links.values():
            link.close()

    def prepare(self, op: Op, module: str | None = None, attribute: str | None = None, value: Any = MISSING, *,
                client: str | None = None, identity: str | None = None, role: str | None = None,
                timeout: float | None = None, accept: tuple[Format, ...] = JSON_ONLY,
                connection: str | None = None) -> Outgoing:
        return self._first.client.prepare(op, module, attribute, value, client=client, identity=identity, role=role,
                                          timeout=timeout, accept=accept, connection=connection)

    async def request(self, op: Op, module: str | None = None, attribute: str | None = None,
                      value: Any = MISSING, *, timeout: float | None = None) -> Chunk:
        return await self.send(self.prepare(op, module, attribute, value, timeout=timeout))

    async def read(self, module: str, attribute: str, accept: tuple[Format, ...]) -> Reply:
        return await self.exchange(self.prepare("get", module, attribute, accept=accept))

    async def send(self, outgoing: Outgoing) -> Chunk:
        if self.is_lab and self._merged(outgoing.request):
            return orjson.dumps(await self._merge(outgoing))
        return (await self.exchange(outgoing)).result()

    async def exchange(self, outgoing: Outgoing) -> Reply:
        if not self.is_lab:
            return await self._first.client.exchange(outgoing)
        link = await self._route(outgoing.request)
        reply = await _exchange(link, outgoing)
        self._learn_id(outgoing.request, reply, link)
        return reply

    async def ping_modules(self) -> dict[str, Any]:
        if not self.is_lab:
            return await self._first.client.ping_modules()
        pings = [link.last_ping for link in self.links.values() if link.serving and link.last_ping is not None]
        if not pings:
            raise ExperimentUnavailable("no experiment process of the lab answers: "
                                        + "; ".join(link.unavailable().detail for link in self.links.values()))
        histories = {name: link.last_ping.get("history") for name, link in self.links.items()
                     if link.serving and link.last_ping is not None}
        return {"rtt_ms": max(ping["rtt_ms"] for ping in pings), "pid": None,
                "modules": {name: state for ping in pings for name, state in ping["modules"].items()},
                "history": _merged_history(histories), "experiments": self.experiments()}

    def experiments(self) -> dict[str, Any]:
        """Each experiment process up or down, since when, with its modules (for /health and the dashboard)."""
        return {name: link.status() for name, link in self.links.items()}

    # Routing --------------------------------------------------------------------------------------------------

    def _index_modules(self, arriving: ExperimentLink | None) -> None:
        """Rebuild module -> process; refuse `arriving` (a process that just connected) if it brings a module
        name another process of the lab already has."""
        owners: dict[str, str] = {}
        if arriving is not None:
            for name, link in self.links.items():
                if link is arriving or not link.described or (link.refused is not None and link.up):
                    continue
                clash = sorted(set(link.modules) & set(arriving.modules))
                if clash:
                    arriving.refused = (f"module name(s) {', '.join(clash)} of experiment process {arriving.name!r} "
                                        f"are already served by experiment process {name!r}: module names must be "
                                        f"unique across the lab, so {arriving.name!r} is refused")
                    log.error("%s", arriving.refused)
        # Those serving first: a process that is down keeps the names no one else serves.
        for name, link in sorted(self.links.items(), key=lambda item: not item[1].serving):
            if link.refused is not None and link.up:
                continue
            for module in link.modules:
                if module in owners:
                    log.error("module %r is described by experiment processes %r and %r: module names must be "
                              "unique across the lab; %r keeps it", module, owners[module], name, owners[module])
                    continue
                owners[module] = name
        self._owners = owners

    async def _route(self, request: Request) -> ExperimentLink:
        op, value = request.op, request.value if isinstance(request.value, dict) else {}
        module = request.module
        if op == "invocations" and isinstance(value.get("module"), str):
            module = value["module"]
        if module is not None:
            return self._serving(self._owner_of_module(module))
        if op in INVOCATION_ID_OPS or op in RUN_ID_OPS:
            return self._serving(await self._owner_of_id(op, value.get("id")))
        if op == "submit_run":
            return self._serving(self._owner_of_procedure(value.get("procedure")))
        if op == "interlock_ack":
            return self._serving(await self._owner_of_interlock(request.attribute))
        return self._serving(self._first)

    def _serving(self, link: ExperimentLink) -> ExperimentLink:
        if not link.serving and (link.up or link.described or link.refused is not None):
            raise link.unavailable()
        return link  # not yet heard from: the request itself says whether it answers

    def _owner_of_module(self, module: str) -> ExperimentLink:
        owner = self._owners.get(module)
        if owner is not None:
            return self.links[owner]
        unknown = [link for link in self.links.values() if not link.described]
        if unknown:  # it may be one of theirs: 503 naming them, not 404
            raise ExperimentUnavailable(f"no module named {module!r} in the experiment processes described so far; "
                                        "not described yet: " + "; ".join(link.unavailable().detail for link in unknown))
        raise UnknownModule(f"no module named {module!r} in the lab (modules: {', '.join(sorted(self._owners))})")

    def _owner_of_procedure(self, procedure: Any) -> ExperimentLink:
        for link in self.links.values():
            if procedure in link.procedures:
                return link
        unknown = [name for name, link in self.links.items() if not link.described]
        if unknown:
            raise ExperimentUnavailable(f"no procedure named {procedure!r} in the processes described so far; "
                                        f"experiment process(es) {', '.join(map(repr, unknown))} not reached yet")
        raise UnknownProcedure(f"no procedure named {procedure!r} in the lab")

    async def _owner_of_id(self, op: str, ident: Any) -> ExperimentLink:
        known = self._ids.get(ident) if isinstance(ident, str) else None
        if known is not None:
            return self.links[known]
        probe: Op = "invocation" if op in INVOCATION_ID_OPS else "run"
        missing: type[BridgeError] = UnknownInvocation if probe == "invocation" else UnknownRun
        return await self._find(probe, {"id": ident, "wait": 0}, None, missing, ident)

    async def _owner_of_interlock(self, rule: str | None) -> ExperimentLink:
        owners = []
        for link in self.links.values():
            if link.serving:
                try:
                    rules = orjson.loads(await link.client.request("interlocks", value={}))["interlocks"]
                except BridgeError:
                    continue
                if rule in rules:
                    owners.append(link)
        if len(owners) > 1:  # acknowledged at one, the other would stay latched: names must be the lab's own
            raise Interlocked(f"interlock {rule!r} is declared by the experiment processes "
                              f"{' and '.join(repr(link.name) for link in owners)}: give each its own name "
                              "(interlocks are per process) to acknowledge it")
        if owners:
            return owners[0]
        raise UnknownInterlock(f"no interlock named {rule!r} in the experiment processes up")

    async def _find(self, op: Op, value: Any, attribute: str | None, missing: type[BridgeError],
                    ident: Any) -> ExperimentLink:
        """The process that knows `ident`: asked of each one up at once."""
        serving = [link for link in self.links.values() if link.serving]
        answers = await asyncio.gather(*(link.client.request(op, None, attribute, value) for link in serving),
                                       return_exceptions=True)
        for link, answer in zip(serving, answers):
            if not isinstance(answer, BaseException):
                self._remember(ident, link)
                return link
        down = [link for link in self.links.values() if not link.serving]
        if down:
            raise ExperimentUnavailable(f"{ident!r} is unknown to the experiment processes up; it may belong to one "
                                        "that is not: " + "; ".join(link.unavailable().detail for link in down))
        errors = [answer for answer in answers if isinstance(answer, BridgeError) and not isinstance(answer, missing)]
        if errors:
            raise errors[0]
        return serving[0] if serving else self._first  # whose answer says it is unknown, in its own words

    def _remember(self, ident: Any, link: ExperimentLink) -> None:
        if isinstance(ident, str):
            self._ids[ident] = link.name
            self._ids.move_to_end(ident)
            while len(self._ids) > KNOWN_IDS:
                self._ids.popitem(last=False)

    def _learn_id(self, request: Request, reply: Reply, link: ExperimentLink) -> None:
        """An invocation or a run just made: its id names this process from now on."""
        if request.op in ("invoke", "submit_run", "run_control") and reply.header.get("ok"):
            try:
                made = orjson.loads(reply.body)
            except orjson.JSONDecodeError:
                return
            if isinstance(made, dict):
                self._remember(made.get("id"), link)

    # Merging --------------------------------------------------------------------------------------------------

    @staticmethod
    def _merged(request: Request) -> bool:
        if request.op == "invocations":
            return not (isinstance(request.value, dict) and isinstance(request.value.get("module"), str))
        return request.op in MERGED_OPS

    async def _merge(self, outgoing: Outgoing) -> dict[str, Any]:
        op = outgoing.request.op
        if op == "describe":
            return {"modules": self._described_modules()}
        if op == "procedures":
            return {"procedures": {name: procedure for link in self.links.values()
                                   for name, procedure in link.procedures.items()}}
        if op == "ping":
            return await self.ping_modules()
        serving = [link for link in self.links.values() if link.serving]
        answers = await asyncio.gather(*(_exchange(link, outgoing) for link in serving), return_exceptions=True)
        bodies: dict[str, Any] = {}
        for link, answer in zip(serving, answers):
            if isinstance(answer, BaseException):
                if not isinstance(answer, BridgeError):
                    raise answer
                if len(serving) == 1:
                    raise answer
                log.warning("experiment process %r left out of %s: %s", link.name, op, answer.detail)
                continue
            try:
                bodies[link.name] = orjson.loads(answer.result())
            except BridgeError:
                if len(serving) == 1:
                    raise
        return _combine(op, bodies, outgoing.request.value)

    def _described_modules(self) -> dict[str, Any]:
        modules: dict[str, Any] = {}
        for name, link in self.links.items():
            for module, description in link.modules.items():
                if self._owners.get(module) != name:
                    continue
                modules[module] = {**description, "experiment": name}
                if not link.serving:
                    modules[module]["unavailable"] = link.unavailable().detail
        return modules


async def _exchange(link: ExperimentLink, outgoing: Outgoing) -> Reply:
    try:
        return await link.client.exchange(outgoing)
    except ExperimentUnavailable:
        raise
    except BackendNotReached as exc:  # never sent: say which PC of the lab it is
        unavailable = f"the experiment process {link.name!r} is not reached ({exc.detail})"
        if link.up:  # not connected for connect_timeout: down, as its heartbeat would soon find
            link.mark_down(unavailable)
        raise ExperimentUnavailable(unavailable) from None


def _combine(op: str, bodies: dict[str, Any], value: Any) -> dict[str, Any]:
    """One answer from several processes' answers to the same list request."""
    if op == "invocations":
        found = [inv for body in bodies.values() for inv in body["invocations"]]
        found.sort(key=lambda inv: inv.get("created") or 0, reverse=True)
        return {"invocations": found}
    if op == "runs":
        runs = [run for body in bodies.values() for run in body["runs"]]
        runs.sort(key=lambda run: run.get("created") or 0, reverse=True)
        limit = value.get("limit") if isinstance(value, dict) else None
        return {"runs": runs[:limit] if isinstance(limit, int) else runs}
    if op == "interlocks":
        return {"interlocks": {name: rule for body in bodies.values() for name, rule in body["interlocks"].items()}}
    if op == "alarms":  # each process's webhooks are its own: told apart by process
        return {"alarms": [alarm for body in bodies.values() for alarm in body["alarms"]],
                "webhooks": {name: body.get("webhooks") for name, body in bodies.items()}}
    # run_queue: each process has its own queue; the lab's is started when all are
    queues = list(bodies.values())
    return {"started": bool(queues) and all(q.get("started") for q in queues),
            "stop_after_current": any(q.get("stop_after_current") for q in queues),
            "continue_after_failure": all(q.get("continue_after_failure") for q in queues),
            "current": next((q["current"] for q in queues if q.get("current")), None),
            "queued": [run for q in queues for run in q.get("queued", [])],
            "runs": [run for q in queues for run in q.get("runs", [])],
            "experiments": bodies}


def _merged_history(histories: dict[str, Any]) -> dict[str, Any] | None:
    """Recording when every process that should record does."""
    enabled = {name: h for name, h in histories.items() if h and h.get("enabled")}
    if not enabled:
        return {"enabled": False, "recording": False}
    return {"enabled": True, "recording": all(h.get("recording") for h in enabled.values()),
            "dropped": sum(h.get("dropped", 0) for h in enabled.values()), "experiments": enabled}
