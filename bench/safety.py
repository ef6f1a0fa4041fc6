"""What the safety rules cost per value the experiment process reads: 100 interlocks and 1,000 alarm limits,
judged by the observers of every polled value.

    python bench/safety.py [--values 200000] [--repeats 5]

In this process, without sockets: an Experiment with no modules, 100
interlocks over 200 attributes of made-up modules (m0..m9), half guards, half
trips, each naming two attributes, thresholds never crossed (a trip that
trips would measure the trip, not the judging), and 1,000 alarm limits (the
attribute one trip names among them).  Every observer of
`Experiment.observers` is called with a reading, as Experiment._observe calls
them for each scalar value, `values` times in a row; the CPU time
(time.process_time) per value, median of `repeats`:

- `unreferenced`: a value of an attribute no rule or limit names (most values: one dict lookup per observer);
- `alarm limits only, ok`: an attribute with limits that stays ok;
- `alarm limits only, in alarm`: one with limits that stays minor (the comparisons, no change);
- `referenced by 1 trip, with limits`: an attribute one trip names and that has limits (kept, judged by both);
- `referenced by 10 trips`: an attribute ten trips name (not part of the goal: it grows with the rules on it);
- `alarm changing at every value`: a flapping alarm (its event and notice made; not part of the goal).

Goal (issue 21, point 6): at most 2 us per polled value for the first four.
Prints one table with PASS or MISS for each goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labbridge.core.interlocks_config import TripStep  # noqa: E402
from labbridge.core.safety_config import AlarmLimits  # noqa: E402
from labbridge.experiment.experiment import Experiment  # noqa: E402
from labbridge.experiment.safety.alarms import Alarms, AlarmState  # noqa: E402
from labbridge.experiment.safety.condition import parse  # noqa: E402
from labbridge.experiment.safety.interlock_rules import Rule  # noqa: E402
from labbridge.experiment.safety.interlocks import Interlocks  # noqa: E402

RULES = 100
ALARM_LIMITS = 1000
GOAL_US = 2.0
Observer = Callable[[str, str, dict[str, Any]], None]


def interlock_rules() -> list[Rule]:
    """100 rules over attributes a0..a199 of modules m0..m9 (ai of module m(i % 10)), plus one attribute `hot`
    of m0 that ten trips name; trip i names a(2i) and a(2i+1)."""
    rules = []
    for i in range(RULES):
        a, b = f"m{(2 * i) % 10}.a{2 * i}", f"m{(2 * i + 1) % 10}.a{2 * i + 1}"
        if i % 2:
            condition = parse(f"{a} > 1e9 or {b} < -1e9" + (" or m0.hot > 1e9" if i < 20 else ""), "bench")
            rules.append(Rule(f"trip_{i}", "trip", condition, [], [], [TripStep(set="m0.out", value=False)], 1.0))
        else:
            condition = parse(f"{a} < 1e9 and {b} > -1e9", "bench")
            rules.append(Rule(f"guard_{i}", "guard", condition, [((f"m{i % 10}", f"w{i}"), True)], [], [], 1.0))
    return rules


def alarm_observers(experiment: Experiment) -> list[Observer]:
    """The observer of 1,000 alarm limits: on m3.a3 (which a trip names), m4.alarmed and m5.flapping, and on
    attributes l0..l996 of m0..m9 that no rule names."""
    limits = AlarmLimits(lolo=-10, low=-5, high=35, hihi=40, hysteresis=0.5)
    watched = [("m3", "a3"), ("m4", "alarmed"), ("m5", "flapping")]
    watched += [(f"m{i % 10}", f"l{i}") for i in range(ALARM_LIMITS - len(watched))]
    alarms = Alarms(experiment, [AlarmState(module, attribute, "N", limits) for module, attribute in watched])
    alarms.observe("m4", "alarmed", {"value": 36.0})  # in alarm from the start, and staying there
    return [alarms.observe]


def per_value(observers: list[Observer], module: str, attribute: str, values: int, base: float = 0.0) -> float:
    """CPU microseconds per value shown to every observer, as Experiment._observe shows it (`base` + 0 to 0.6,
    or for `flapping` 30 and 36 in turn: across the alarm's high limit at every value)."""
    readings = [{"value": (30.0 + 6 * (n % 2)) if attribute == "flapping" else base + 0.1 * (n % 7), "unit": "N"}
                for n in range(values)]
    started = time.process_time()
    for reading in readings:
        for observer in observers:
            observer(module, attribute, reading)
    return (time.process_time() - started) / values * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=200_000, help="values per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    experiment = Experiment({})
    interlocks = Interlocks(experiment, interlock_rules())
    for rule in interlocks.rules.values():  # as after the first polls: every named attribute read once
        interlocks.values.update(dict.fromkeys(rule.condition.references, 0.0))
    experiment.tell = lambda notice: None  # a flapping alarm's notices: made, not logged (the webhooks' queue is apart)
    experiment.observers.extend(alarm_observers(experiment))
    print(f"{RULES} interlocks and {ALARM_LIMITS} alarm limits; {args.values:,} values x {args.repeats}\n")
    print("| value of an attribute | us CPU/value (median) | goal | |")
    print("|---|---|---|---|")
    for label, (module, attribute), base, goal in (
            ("unreferenced", ("m3", "nobody"), 0.0, True),
            ("alarm limits only, ok", ("m2", "l2"), 0.0, True),
            ("alarm limits only, in alarm", ("m4", "alarmed"), 36.0, True),
            ("referenced by 1 trip, with limits", ("m3", "a3"), 0.0, True),
            ("referenced by 10 trips", ("m0", "hot"), 0.0, False),
            ("alarm changing at every value", ("m5", "flapping"), 0.0, False)):
        cost = statistics.median(per_value(experiment.observers, module, attribute, args.values, base)
                                 for _ in range(args.repeats))
        verdict = ("PASS" if cost <= GOAL_US else "MISS") if goal else "-"
        print(f"| {label} | {cost:.3f} | {'<= 2' if goal else '-'} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
