"""bridge_client: use the instrument bridge from Python as if the instruments were local.

    import bridge_client
    lab = bridge_client.connect("http://localhost:8000")   # token: token=..., or $BRIDGE_TOKEN
    lab.module_a.position = 10      # write; returns once the instrument confirmed
    lab.module_a.position           # read -> 10.0
    help(lab.module_a)              # every attribute and action: doc, type, unit, limits, access
    lab.module_a.move(to=80).wait(progress=True)   # an action, with a progress bar -> 80.0
    run = lab.runs.submit("voltage_sweep", stop=5, metadata={"sample": "A12"})  # a run of a procedure
    run.wait(progress=True).data()                 # its points as NumPy columns (to_pandas(), to_xarray())

`AsyncBridge` is the same client for asyncio code; errors are BridgeError
subclasses named after the bridge's error codes (errors.py).  Only httpx is
required; numpy (arrays), websockets (`watch()`), tqdm (progress bars), and
pandas and xarray (a run's `to_pandas()`, `to_xarray()`) are optional extras.
"""

from __future__ import annotations

from bridge_client.async_bridge import AsyncBridge, AsyncModule
from bridge_client.async_run import AsyncRun
from bridge_client.bridge import Bridge, Module, connect
from bridge_client.description import ActionInfo, AttributeInfo, ModuleInfo, ParameterInfo
from bridge_client.errors import (
    ActionCancelled,
    ActionLost,
    ActionsUnavailable,
    AlreadyFinished,
    AuditUnavailable,
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    BridgeError,
    BridgeUnreachable,
    Busy,
    ExperimentUnavailable,
    DeadlineExceeded,
    Forbidden,
    HeadersTooLarge,
    HistoryOff,
    HistoryTooLarge,
    HistoryUnavailable,
    HostNotAllowed,
    InstrumentError,
    InstrumentTimeout,
    InstrumentUnreachable,
    Interlocked,
    InternalError,
    InvalidValue,
    MalformedRequest,
    MethodNotAllowed,
    NotAcceptable,
    NotAuthenticated,
    NotFound,
    OpenNetworkRefused,
    OriginNotAllowed,
    PayloadTooLarge,
    ReadOnly,
    RunAborted,
    RunFailed,
    RunInterrupted,
    RunsUnavailable,
    TooManyActions,
    TooManyConnections,
    TooManyLargeAnswers,
    UnknownAction,
    UnknownAttribute,
    UnknownInterlock,
    UnknownInvocation,
    UnknownModule,
    UnknownProcedure,
    UnknownRun,
    WrongRunState,
)
from bridge_client.invocation import AsyncInvocation, Invocation
from bridge_client.procedure_info import ProcedureInfo
from bridge_client.run import Run
from bridge_client.runs import AsyncRuns, Runs
from bridge_client.watch import Event

__version__ = "0.1.0"

__all__ = [
    "ActionCancelled", "ActionInfo", "ActionLost", "ActionsUnavailable", "AlreadyFinished", "AsyncBridge",
    "AsyncInvocation", "AsyncModule", "AsyncRun", "AsyncRuns", "AttributeInfo", "AuditUnavailable", "BackendBusy",
    "BackendTimeout", "BackendUnavailable",
    "Bridge", "BridgeError", "BridgeUnreachable", "Busy", "DeadlineExceeded", "Event", "ExperimentUnavailable",
    "Forbidden",
    "HeadersTooLarge", "HistoryOff", "HistoryTooLarge", "HistoryUnavailable", "HostNotAllowed", "InstrumentError",
    "InstrumentTimeout",
    "InstrumentUnreachable", "Interlocked", "InternalError", "InvalidValue", "Invocation", "MalformedRequest",
    "MethodNotAllowed",
    "Module", "ModuleInfo", "NotAcceptable", "NotAuthenticated", "NotFound", "OpenNetworkRefused", "OriginNotAllowed",
    "ParameterInfo", "PayloadTooLarge", "ProcedureInfo", "ReadOnly", "Run", "RunAborted", "RunFailed",
    "RunInterrupted", "Runs", "RunsUnavailable", "TooManyActions", "TooManyConnections", "TooManyLargeAnswers",
    "UnknownAction", "UnknownAttribute", "UnknownInterlock", "UnknownInvocation", "UnknownModule", "UnknownProcedure",
    "UnknownRun",
    "WrongRunState", "connect",
]

# Public names read as bridge_client.X in tracebacks and help(), wherever they are defined (as httpx does).
for _name in __all__:
    globals()[_name].__module__ = "bridge_client"
