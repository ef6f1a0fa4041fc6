"""`@procedure`: an experiment, an `async def` in a file of the lab's own, declared in config.yml.

    @procedure(drives=["psu.voltage", "psu.output"], axes=["voltage"])
    async def voltage_sweep(run: Run,
                            stop: Annotated[float, Param(like="psu.voltage", doc="The last voltage.")],
                            steps: Annotated[int, Param(minimum=2, maximum=1000, doc="How many settings.")] = 11,
                            ) -> None:
        ...

    # config.yml
    procedures:
      voltage_sweep: {function: sweeps.voltage_sweep}   # sweeps.py beside config.yml

The first parameter is the run handle (lab_handle.py); the others are typed and
documented exactly as an action's parameters (core/action.py: `Annotated[...,
Param(...)]`, `like="module.attribute"` taking that attribute's unit and limits,
narrowed by config.yml), and checked by the same code before a run is queued.
`drives` names the attributes the run drives: they are claimed when it starts,
so nobody else writes them while it runs.  `axes` names the recorded columns
that are the independent variables (a plot's x, an HDF5 file's axes).

`load_procedures` imports each declared function (a ConfigError names the key
when it cannot) and checks its declaration against the configured modules.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from labbridge.experiment.import_path import import_by_path
from labbridge.core.action import ActionSpec, Parameter, declared_parameter
from labbridge.core.attribute import AttributeSpec
from labbridge.core.config import ConfigError, ProcedureSettings
from labbridge.core.values import ValueRule
from labbridge.experiment.base_module import BaseModule

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_MARK = "__bridge_procedure__"


@dataclass(frozen=True)
class Declaration:
    """What `@procedure(...)` says of a function."""

    drives: tuple[str, ...]
    axes: tuple[str, ...]


def procedure(*, drives: list[str] | tuple[str, ...] = (), axes: list[str] | tuple[str, ...] = ()) -> Callable[[F], F]:
    """Declare an `async def` taking a run handle as a procedure; `drives` are `module.attribute` names."""
    if isinstance(drives, str) or isinstance(axes, str):
        raise TypeError("@procedure(drives=..., axes=...) take lists of names, not a string")

    def mark(function: F) -> F:
        is_async = inspect.iscoroutinefunction(function)  # (kept apart: as a condition it would narrow `function`)
        if not is_async:
            raise TypeError(f"@procedure needs an `async def`; {function.__qualname__} is not one")
        setattr(function, _MARK, Declaration(tuple(drives), tuple(axes)))
        return function

    return mark


@dataclass(frozen=True)
class ProcedureSpec:
    """One configured procedure: its function, what it drives, its parameters (checked as an action's are)."""

    name: str
    function: Callable[..., Awaitable[Any]]
    drives: tuple[tuple[str, str], ...]  # (module, attribute)
    axes: tuple[str, ...]
    checker: ActionSpec  # the parameters, checked and described by the action machinery
    specs: dict[str, AttributeSpec[Any]]  # "module.attribute" -> its (narrowed) spec, for `like=`
    source: str
    source_hash: str

    @property
    def doc(self) -> str:
        return self.checker.doc

    def check(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters, checked and completed with defaults; InvalidValue names the first problem."""
        return self.checker.check_arguments(parameters, self.specs)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "doc": self.doc, "drives": [f"{m}.{a}" for m, a in self.drives],
                "axes": list(self.axes), "parameters": self.checker.describe(self.specs)["parameters"]}


def load_procedures(declared: dict[str, ProcedureSettings], modules: dict[str, BaseModule],
                    source: str = "config.yml") -> dict[str, ProcedureSpec]:
    """Import and check every procedure config.yml declares (its folder is on the import path already)."""
    specs = {f"{name}.{attribute}": spec for name, module in modules.items() for attribute, spec in module.specs.items()}
    return {name: _load(name, settings.function, specs, f"{source}: procedures.{name}.function")
            for name, settings in declared.items()}


def _load(name: str, path: str, specs: dict[str, AttributeSpec[Any]], where: str) -> ProcedureSpec:
    function = import_by_path(path, where)
    declaration = getattr(function, _MARK, None)
    if not isinstance(declaration, Declaration):
        raise ConfigError(f"{where}: {path} is not decorated with @procedure(...)")
    try:
        return _build(name, function, declaration, specs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _build(name: str, function: Callable[..., Awaitable[Any]], declaration: Declaration,
           specs: dict[str, AttributeSpec[Any]]) -> ProcedureSpec:
    drives = []
    for driven in declaration.drives:
        spec = specs.get(driven)
        if spec is None or not spec.writable:
            raise TypeError(f"drives {driven!r}, which is not a writable attribute (as module.attribute)")
        module, _, attribute = driven.partition(".")
        drives.append((module, attribute))
    try:
        hints = get_type_hints(function, include_extras=True)
    except Exception as exc:  # a name in an annotation that cannot be resolved
        raise TypeError(f"its annotations cannot be read ({exc})") from None
    signature = list(inspect.signature(function).parameters.values())
    if not signature:
        raise TypeError("a procedure takes the run handle as its first parameter, e.g. `async def sweep(run, ...)`")
    parameters: dict[str, Parameter] = {}
    for parameter in signature[1:]:  # after the run handle
        label = f"procedure {name} parameter {parameter.name!r}"
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{label}: procedures take named parameters only (no *args, **kwargs)")
        if parameter.name not in hints:
            raise TypeError(f"{label} needs a type annotation, e.g. `{parameter.name}: float`")
        parameters[parameter.name] = declared_parameter(label, parameter.name, hints[parameter.name],
                                                        parameter.default, specs)
    nothing = Parameter(ValueRule("result", type(None)))
    checker = ActionSpec(name, function, inspect.getdoc(function) or "", (), parameters, nothing)
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # no file to read it from (made at run time)
        source = ""
    return ProcedureSpec(name, function, tuple(drives), declaration.axes, checker, specs, source,
                         hashlib.sha256(source.encode()).hexdigest())
