"""The CPU cost of alarm limits per value seen: the alarms observer with 1,000 limits declared.

    python bench/alarms.py [--limits 1000] [--calls 200000]

Builds the experiment process's Alarms (labbridge/experiment/safety/alarms.py)
with `--limits` attributes under limits (100 modules of 10 attributes each, for
1,000), then times `Alarms.observe`, the call `Experiment.observers` makes for
every scalar value read, polled or written, in CPU time per call:

- a value of a module with no limits at all, and of an attribute without
  limits in a module that has some (one dict lookup each);
- a value of an attribute with limits that stays ok, and one that stays in
  alarm (the comparisons, no change);
- a value that changes severity at each call (a flapping alarm: the live event
  and the notice are made; publishing and telling are no-ops here).

Issue 21's budget is 2 us per polled value for 100 rules and 1,000 limits together.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labbridge.core.safety_config import AlarmLimits  # noqa: E402
from labbridge.experiment.safety.alarms import Alarms, AlarmState  # noqa: E402


class _Host:
    """What Alarms needs of the experiment: publish and tell (no-ops, to time the observer alone)."""

    def publish(self, event: dict[str, Any]) -> None:
        pass

    def tell(self, notice: dict[str, Any]) -> None:
        pass


def build(limits: int) -> Alarms:
    states = [AlarmState(f"module_{i // 10}", f"attribute_{i % 10}", "degC",
                         AlarmLimits(lolo=-10, low=0, high=35, hihi=40, hysteresis=0.5)) for i in range(limits)]
    return Alarms(_Host(), states)  # type: ignore[arg-type]  # the two methods Alarms calls


def per_call(observe: Any, module: str, attribute: str, readings: list[dict[str, Any]], calls: int) -> float:
    """CPU seconds per call of observe(module, attribute, reading), cycling through `readings`."""
    count = len(readings)
    start = time.process_time()
    for i in range(calls):
        observe(module, attribute, readings[i % count])
    spent = time.process_time() - start
    start = time.process_time()  # the loop alone, taken off
    for i in range(calls):
        readings[i % count]
    return (spent - (time.process_time() - start)) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    alarms = build(args.limits)
    observe, calls = alarms.observe, args.calls
    ok, minor = [{"value": 22.5, "unit": "degC"}], [{"value": 36.0, "unit": "degC"}]
    flapping = [{"value": 36.0, "unit": "degC"}, {"value": 30.0, "unit": "degC"}]
    alarms.observe("module_0", "attribute_1", minor[0])  # in alarm from the start
    cases = [
        ("a module without limits", "elsewhere", "force", ok),
        ("an attribute without limits, its module has some", "module_0", "position", ok),
        ("an attribute with limits, ok", "module_0", "attribute_0", ok),
        ("an attribute with limits, staying minor", "module_0", "attribute_1", minor),
        ("an attribute with limits, changing at every value", "module_0", "attribute_2", flapping),
    ]
    print(f"Alarms.observe with {len(alarms.states):,} alarm limits, {calls:,} calls each (CPU time per call)")
    for label, module, attribute, readings in cases:
        seconds = min(per_call(observe, module, attribute, readings, calls) for _ in range(3))
        print(f"  {label:<52} {seconds * 1e9:8.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
