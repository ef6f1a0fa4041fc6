"""config.yml's `alarms:` and `notify:` sections: alarm limits per attribute, and where notices go.

    alarms:
      module_a.temperature: {high: 35, hihi: 40, hysteresis: 0.5}
    notify:
      webhooks: [https://hooks.slack.com/services/...]
      max_per_minute: 10

The shape of each entry is checked here (numbers, no unknown keys); what needs
the module classes (a known module, a numeric scalar attribute) and the order of
the limits are checked by the experiment process at start
(labbridge/experiment/safety/alarms.py), with the same ConfigError naming the key.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

Limit = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlarmLimits(_Strict):
    """One attribute's alarm limits: minor below `low` or above `high`, major below `lolo` or above `hihi`.

    A severity drops only once the value is back past the limit it crossed by `hysteresis`."""

    lolo: Limit | None = None
    low: Limit | None = None
    high: Limit | None = None
    hihi: Limit | None = None
    hysteresis: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class NotifySettings(_Strict):
    """Where safety notices go besides the audit log and the dashboard: webhooks (Slack, Mattermost, Teams)."""

    webhooks: Annotated[list[AnyHttpUrl], Field(max_length=20)] = []
    max_per_minute: Annotated[int, Field(ge=1, le=600)] = 10  # messages per webhook and minute; the rest summarised
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0  # seconds per POST
    retries: Annotated[int, Field(ge=0, le=10)] = 3  # tries after the first, with exponential backoff
    queue: Annotated[int, Field(ge=1, le=10_000)] = 100  # notices waiting to be sent; past it they are dropped
