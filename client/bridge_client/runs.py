"""`lab.runs`: the bridge's run queue from Python: queue runs of procedures, find past runs, start the queue.

    lab.procedures                          # {"voltage_sweep": <procedure voltage_sweep(*, start=0.0, ...)>}
    run = lab.runs.submit("voltage_sweep", start=0, stop=10, steps=50, metadata={"sample": "A12"})
    lab.runs.start()                        # the queue starts stopped whenever the bridge starts
    lab.runs.list(status="completed", procedure="voltage_sweep", q="A12")   # newest first; q: metadata
    lab.runs["3440879faf7e4fe09c166fe3a9163eae"]

`submit` checks the parameters against the procedure's description before
anything is sent, as actions' arguments are (InvalidValue naming the
parameter; UnknownProcedure for a name the bridge does not declare).  The
procedures are read from `GET /procedures` once, when first needed, and again
when a name is not among them (the bridge may have been restarted with
another config.yml).  `AsyncRuns` is the implementation, `Runs` its
blocking face.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bridge_client.async_run import AsyncRun
from bridge_client.errors import UnknownProcedure
from bridge_client.http import NO_BODY, Http
from bridge_client.portal import Portal
from bridge_client.procedure_info import ProcedureInfo, procedures_from_json
from bridge_client.run import Run


class AsyncRuns:
    """The run queue, for asyncio code (`lab.runs` of an AsyncBridge)."""

    def __init__(self, http: Http) -> None:
        self._http = http
        self._procedures: dict[str, ProcedureInfo] | None = None

    async def procedures(self, *, refresh: bool = False) -> dict[str, ProcedureInfo]:
        """Every procedure the bridge declares, with its parameters (read once, unless `refresh`)."""
        if self._procedures is None or refresh:
            self._procedures = procedures_from_json(await self._http.read("/procedures"))
        return dict(self._procedures)

    async def procedure(self, name: str) -> ProcedureInfo:
        """One procedure's description; UnknownProcedure, naming those there are, if the bridge has none so named."""
        found = (await self.procedures()).get(name)
        if found is None:
            known = await self.procedures(refresh=True)
            found = known.get(name)
            if found is None:
                raise UnknownProcedure(f"no procedure {name!r}; known: {', '.join(known) or 'none'}")
        return found

    async def submit(self, procedure: str, /, *, metadata: dict[str, Any] | None = None,
                     **parameters: Any) -> AsyncRun:
        """Queue a run of `procedure` once its parameters are checked; returns the queued run at once.
        `metadata` is free-form and searchable (`list(q=...)`): sample, operator, comment.  Never retried."""
        (await self.procedure(procedure)).check_parameters(parameters)
        body = {"procedure": procedure, "parameters": parameters, "metadata": metadata or {}}
        return AsyncRun(await self._http.write("POST", "/runs", body), self._http)

    async def list(self, *, status: str | None = None, procedure: str | None = None, q: str | None = None,
                   limit: int = 100) -> list[AsyncRun]:
        """Runs, newest first: of a `status`, of a `procedure`, whose metadata contain the text `q`."""
        params: dict[str, Any] = {"status": status, "procedure": procedure, "q": q, "limit": limit}
        reply = await self._http.read("/runs", params={k: v for k, v in params.items() if v is not None})
        return [AsyncRun(run, self._http) for run in reply["runs"]]

    async def get(self, ident: str) -> AsyncRun:
        """A run by its id (or href), whoever queued it; UnknownRun if there is none."""
        return AsyncRun(await self._http.read(f"/runs/{quote(ident.removeprefix('/runs/'), safe='')}"), self._http)

    async def queue(self) -> dict[str, Any]:
        """The queue: `started`, the `current` run's id, the `queued` ones in order."""
        found: dict[str, Any] = await self._http.read("/runs/queue")
        return found

    async def start(self) -> dict[str, Any]:
        """Start the queue: queued runs are taken, oldest first (needs `admin` where tokens are configured)."""
        found: dict[str, Any] = await self._http.write("POST", "/runs/queue/start", NO_BODY)
        return found

    async def stop(self) -> dict[str, Any]:
        """Stop the queue once the current run has ended (the run goes on; abort it to end it)."""
        found: dict[str, Any] = await self._http.write("POST", "/runs/queue/stop", NO_BODY)
        return found

    def __repr__(self) -> str:
        return f"<AsyncRuns {self._http.url}/runs>"


class Runs:
    """The run queue, for blocking code (`lab.runs`): `submit`, `list`, `lab.runs[id]`, `start`, `stop`."""

    def __init__(self, runs: AsyncRuns, portal: Portal) -> None:
        self._async = runs
        self._portal = portal

    @property
    def procedures(self) -> dict[str, ProcedureInfo]:
        """Every procedure the bridge declares, with its parameters."""
        return self._portal.call(self._async.procedures())

    def submit(self, procedure: str, /, *, metadata: dict[str, Any] | None = None, **parameters: Any) -> Run:
        """Queue a run of `procedure` once its parameters are checked (InvalidValue naming the first bad one,
        nothing sent); returns the queued Run at once.  `metadata` is free-form and searchable."""
        return Run(self._portal.call(self._async.submit(procedure, metadata=metadata, **parameters)), self._portal)

    def list(self, *, status: str | None = None, procedure: str | None = None, q: str | None = None,
             limit: int = 100) -> list[Run]:
        """Runs, newest first: of a `status`, of a `procedure`, whose metadata contain the text `q`."""
        found = self._portal.call(self._async.list(status=status, procedure=procedure, q=q, limit=limit))
        return [Run(run, self._portal) for run in found]

    def get(self, ident: str) -> Run:
        """A run by its id (or href); UnknownRun if there is none.  `lab.runs[ident]` is the same."""
        return Run(self._portal.call(self._async.get(ident)), self._portal)

    def __getitem__(self, ident: str) -> Run:
        return self.get(ident)

    def queue(self) -> dict[str, Any]:
        """The queue: `started`, the `current` run's id, the `queued` ones in order."""
        return self._portal.call(self._async.queue())

    def start(self) -> dict[str, Any]:
        """Start the queue: queued runs are taken, oldest first (needs `admin` where tokens are configured)."""
        return self._portal.call(self._async.start())

    def stop(self) -> dict[str, Any]:
        """Stop the queue once the current run has ended (the run goes on; abort it to end it)."""
        return self._portal.call(self._async.stop())

    def __repr__(self) -> str:
        return f"<Runs {self._async._http.url}/runs>"
