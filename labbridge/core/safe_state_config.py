"""config.yml's keys for safe states: what each module is put in, and whether that happens after a crash.

A module's `safe_state:` is a mapping attribute -> value, applied in the order
written (`{output: false, voltage: 0}`: the output goes off before the
voltage is lowered).  Its names and values are checked against the module's
class at start (labbridge/experiment/safety/safe_state.py), where the classes
are known.  The top-level `safe_state:` section holds the switches that apply
to every module.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# attribute -> value, in the order written; JSON scalars or lists, checked against the attribute at start.
SafeStateValues = dict[Annotated[str, Field(pattern=r"^[A-Za-z_]\w*$", max_length=200)], Any]


class SafeStateSettings(BaseModel):
    """Top-level `safe_state:`: when the modules' safe states are applied besides a clean stop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # At start, if the last run did not stop cleanly (a crash, kill -9, a power cut of the PC), apply every
    # declared safe state before anything is served.
    after_crash: bool = True
