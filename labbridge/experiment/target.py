"""`Target`: a command argument that sets an attribute, checked against that attribute's limits before it is sent.

The bridge cannot tell from `send_command("move", to=0)` that `to` is a
position; the module says so where it sends it::

    await self.send_command("move", to=Target("position", to), speed=Target("speed", speed))

`BaseModule.send_command` checks each Target's value as a value of its
attribute (type, and limits as declared and narrowed by config.yml) and sends
the checked value; one outside them raises InvalidValue naming the attribute,
the value and the limits, and the command is not sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """A value for attribute `attribute` that a command carries to the instrument."""

    attribute: str
    value: Any
