"""What the bridge says about its modules (`GET /modules`), as typed, documented objects.

The client learns every name, type, unit, limit and doc line from the bridge
when it connects; nothing about the lab is written into the client.  A
section of a module's description that this client does not know yet (a newer
bridge) is kept in `ModuleInfo.raw` and otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AttributeInfo:
    """One attribute as the bridge declares it: type, unit, limits or choices, writable, doc."""

    module: str
    name: str
    type: str
    unit: str | None = None
    writable: bool = False
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    @classmethod
    def from_json(cls, module: str, name: str, data: dict[str, Any]) -> AttributeInfo:
        choices = data.get("choices")
        return cls(module=module, name=name, type=str(data.get("type", "")), unit=data.get("unit"),
                   writable=bool(data.get("writable", False)), doc=str(data.get("doc", "")),
                   minimum=data.get("min"), maximum=data.get("max"),
                   choices=tuple(choices) if choices is not None else None)

    @property
    def is_array(self) -> bool:
        return self.type.startswith(("list[", "ndarray["))

    def limits_text(self) -> str | None:
        """The limits in words ("0 to 100 mm"), or None when there are none."""
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g} to {self.maximum:g}{unit}"
        if self.minimum is not None:
            return f"at least {self.minimum:g}{unit}"
        if self.maximum is not None:
            return f"at most {self.maximum:g}{unit}"
        return None

    def help_text(self) -> str:
        """The doc line, then type, unit, limits or choices, and access: what help() and `?` show."""
        facts = [f"type: {self.type}"]
        if self.unit:
            facts.append(f"unit: {self.unit}")
        if (limits := self.limits_text()) is not None:
            facts.append(f"limits: {limits}")
        if self.choices is not None:
            facts.append(f"choices: {', '.join(map(repr, self.choices))}")
        facts.append("writable" if self.writable else "read-only")
        return f"{self.doc or self.name}\n{'; '.join(facts)}."


@dataclass(frozen=True)
class ModuleInfo:
    """One module: its class, doc line and attributes, from the bridge's description."""

    name: str
    doc: str
    class_path: str
    attributes: dict[str, AttributeInfo]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ModuleInfo:
        attributes = {attr: AttributeInfo.from_json(name, attr, info)
                      for attr, info in data.get("attributes", {}).items()}
        return cls(name=name, doc=str(data.get("doc", "")), class_path=str(data.get("class", "")),
                   attributes=attributes, raw=data)

    def help_text(self) -> str:
        lines = [self.doc or self.name, "", f"Module {self.name!r} of the bridge ({self.class_path}). Attributes:"]
        for attr in self.attributes.values():
            first, _, facts = attr.help_text().partition("\n")
            lines.append(f"  {attr.name}: {first} ({facts.rstrip('.')})")
        return "\n".join(lines)


def modules_from_json(data: dict[str, Any]) -> dict[str, ModuleInfo]:
    """Every module of a `GET /modules` answer."""
    return {name: ModuleInfo.from_json(name, info) for name, info in data["modules"].items()}
