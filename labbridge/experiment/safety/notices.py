"""Notices: how the experiment process tells people about safety (`Experiment.tell`).

A notice is a dict with "kind" ("alarm", "trip", "clear", "ack", "safe_state",
"run_failed"), "message" (one line for people) and fields of its own (module,
attribute, rule, severity, value, identity, time).  Each one goes, at once and
without waiting for anything:

- to the audit log, as one `notice` line (core/audit.py `record_notice`);
- live to every dashboard on `/ws`, as `{"module": ..., "notice": {...}}`;
- to the process's log (a warning);
- to the webhooks in config.yml's `notify:` (safety/webhooks.py), except an
  alarm that only eases (major to minor): worse severities and the return to
  ok are sent.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from labbridge.core.safety_config import NotifySettings
from labbridge.experiment.safety.webhooks import Webhooks

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)

RANK = {"ok": 0, "minor": 1, "major": 2, "invalid": 3}


class Notices:
    """Experiment.tell: the audit log, the dashboards, the log and the webhooks."""

    def __init__(self, experiment: Experiment, settings: NotifySettings) -> None:
        self.experiment = experiment
        self.webhooks = Webhooks(settings)

    @classmethod
    def install(cls, experiment: Experiment, settings: NotifySettings) -> Notices:
        """Make `experiment.tell` send every notice through a new Notices."""
        notices = cls(experiment, settings)
        experiment.tell = notices.tell
        return notices

    def tell(self, notice: dict[str, Any]) -> None:
        """Tell people about one notice; never blocks, never raises (a notice must not fail what caused it)."""
        try:
            notice.setdefault("time", time.time())
            log.warning("%s: %s", notice.get("kind"), notice.get("message"))
            if self.experiment.audit is not None:
                self.experiment.audit.record_notice(notice)
            self.experiment.publish({"module": notice.get("module") or "", "notice": notice, "time": notice["time"]})
            if _worth_a_message(notice):
                self.webhooks.send(f"[labbridge] {notice.get('message')}")
        except Exception:  # a bug here must not break the poll or the request that saw the value
            log.exception("could not tell %r", notice)

    def describe(self) -> dict[str, int]:
        """The webhooks' counts: messages sent, rate-limited, dropped (queue full), failed, queued."""
        return self.webhooks.stats()

    async def close(self) -> None:
        await self.webhooks.close()


def _worth_a_message(notice: dict[str, Any]) -> bool:
    """Every notice but an alarm that eases without clearing (major back to minor): chat hears of worse and of ok."""
    if notice.get("kind") != "alarm":
        return True
    severity, previous = notice.get("severity"), notice.get("previous")
    return severity == "ok" or previous is None or RANK.get(str(severity), 0) > RANK.get(str(previous), 0)
