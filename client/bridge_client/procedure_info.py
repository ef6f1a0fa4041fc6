"""What the bridge says about its procedures (`GET /procedures`): the experiments runs can be queued of.

A procedure's parameters are described exactly as an action's are (JSON
Schema, with units, limits, defaults and docs), so `ProcedureInfo` checks
them the same way before a run is queued (description.py's `check_arguments`:
InvalidValue, in the bridge's words, and nothing sent), and gives the
help text and the signature `lab.procedures["voltage_sweep"]` shows.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from bridge_client.description import ParameterInfo, check_arguments, parameters_from_json, signature


@dataclass(frozen=True)
class ProcedureInfo:
    """One procedure: its doc, the attributes it drives, its declared axes and its parameters."""

    name: str
    doc: str
    drives: tuple[str, ...]
    axes: tuple[str, ...]
    parameters: dict[str, ParameterInfo]

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ProcedureInfo:
        return cls(name=name, doc=str(data.get("doc", "")), drives=tuple(data.get("drives", ())),
                   axes=tuple(data.get("axes", ())), parameters=parameters_from_json(data.get("parameters")))

    def check_parameters(self, parameters: dict[str, Any]) -> None:
        """Raise InvalidValue naming the first parameter the bridge would refuse: unknown, missing or wrong."""
        check_arguments(self.name, self.parameters, parameters)

    def signature(self) -> inspect.Signature:
        """`(self, *, start: float = 0.0, stop: float = 10.0, steps: int = 11)`: keyword-only, as for actions."""
        return signature(self.parameters, inspect.Signature.empty)

    def help_text(self) -> str:
        """The doc, each parameter, what it drives and its axes."""
        lines = [self.doc or self.name, ""]
        if self.parameters:
            lines += ["Parameters:", *(f"  {p.help_text()}" for p in self.parameters.values())]
        if self.drives:
            lines.append(f"Drives {', '.join(self.drives)} (writing them is refused, Busy, while it runs).")
        if self.axes:
            lines.append(f"Axes: {', '.join(self.axes)}.")
        lines.append(f'Queue a run with lab.runs.submit("{self.name}", ..., metadata={{...}}).')
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<procedure {self.name}{str(self.signature()).replace('(self, ', '(').replace('(self)', '()')}>"


def procedures_from_json(data: Any) -> dict[str, ProcedureInfo]:
    """Every procedure of a `GET /procedures` answer."""
    return {name: ProcedureInfo.from_json(name, info) for name, info in (data.get("procedures") or {}).items()}
