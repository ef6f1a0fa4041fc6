"""config.yml's `interlocks:` is refused at start, naming the key, whenever a rule cannot do what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labbridge.core.config import ConfigError, load_config
from labbridge.experiment.experiment import Experiment
from tests.processes import write_config

MODULES = {
    "module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.5, "temperature": 2.0}},
    "psu": {"class": "psu.PowerSupply", "simulate": True, "safe_state": {"output": False}},
}
TRIP = {"trips_when": "module_a.force > 90", "then": [{"set": "psu.output", "value": False}], "within": 0.5}
GUARD = {"guards": ["psu.output = true"], "requires": "module_a.force < 40", "within": 1}


def build(tmp_path: Path, interlocks: dict[str, Any]) -> Experiment:
    config = write_config(tmp_path / "config.yml", MODULES, interlocks=interlocks)
    return Experiment.from_config(load_config(config), str(config))


def test_the_rules_of_the_issue_fit_in_a_few_lines(tmp_path: Path) -> None:
    experiment = build(tmp_path, {"overforce": {**TRIP, "then": [{"run": "module_a.stop"}, *TRIP["then"],
                                                                  {"safe_state": "psu"}]},
                                  "cool": {**GUARD, "guards": ["psu.output = true", "psu.voltage", "module_a.move"]}})
    status = experiment.interlocks.status()["interlocks"]
    assert status["overforce"]["kind"] == "trip" and status["overforce"]["state"] == "ok"
    assert status["cool"]["guards"] == ["psu.output = true", "psu.voltage", "module_a.move"]
    assert experiment.interlocks.observe in experiment.observers


def test_no_interlocks_cost_nothing(tmp_path: Path) -> None:
    assert build(tmp_path, {}).observers == []


@pytest.mark.parametrize(("interlocks", "message"), [
    ({"x": {**TRIP, "trips_when": "module_a.force > "}},
     "interlocks.x.trips_when: column 18: expected an attribute (module.attribute), a number, true or false"),
    ({"x": {**TRIP, "trips_when": "module_a.temperature > 90"}},
     "interlocks.x.within: module_a.temperature is polled every 2 s (modules.module_a.poll.temperature), less "
     "often than within: 0.5"),
    ({"x": {**TRIP, "trips_when": "module_a.position > 90"}},
     "interlocks.x.within: module_a.position is not polled"),
    ({"x": {**TRIP, "trips_when": "stage.force > 90"}},
     "interlocks.x.trips_when: no module 'stage' in this experiment process"),
    ({"x": {**TRIP, "trips_when": "module_a.forse > 90"}}, "interlocks.x.trips_when: module_a has no attribute 'forse'"),
    ({"x": {**TRIP, "trips_when": "module_a.force == true"}},
     "interlocks.x.trips_when: module_a.force == true compares a number with a boolean"),
    ({"x": {**TRIP, "trips_when": "module_a.serial_number == 1"}},
     "interlocks.x.trips_when: module_a.serial_number is not a number or a boolean"),
    ({"x": {**TRIP, "then": [{"set": "psu.voltage", "value": 99}]}}, "interlocks.x.then.0.value: "),
    ({"x": {**TRIP, "then": [{"set": "psu.measured_voltage", "value": 1}]}},
     "interlocks.x.then.0.set: psu has no writable attribute 'measured_voltage'"),
    ({"x": {**TRIP, "then": [{"run": "module_a.fly"}]}}, "interlocks.x.then.0.run: module_a has no action 'fly'"),
    ({"x": {**TRIP, "then": [{"safe_state": "module_a"}]}},
     "interlocks.x.then.0.safe_state: module_a declares no safe state: add modules.module_a.safe_state"),
    ({"x": {**TRIP, "then": [{"run": "module_a.move", "arguments": {"to": 500}}]}}, "interlocks.x.then.0.arguments: "),
    ({"x": {**GUARD, "guards": ["psu.output = maybe"]}}, "interlocks.x.guards.0: 'maybe' is not a number, true or false"),
    ({"x": {**GUARD, "guards": ["psu.idn"]}}, "interlocks.x.guards.0: psu has no writable attribute or action 'idn'"),
    ({"Bad-Name": GUARD}, "interlocks.Bad-Name: an interlock's name must be lower_snake_case"),
])
def test_a_rule_that_cannot_work_is_refused_naming_its_key(tmp_path: Path, interlocks: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        build(tmp_path, interlocks)
    assert f"config.yml: {message}" in str(refused.value)


@pytest.mark.parametrize(("rule", "message"), [
    ({"guards": ["psu.output"], "within": 1}, "interlocks.x: a rule has either `requires` (a guard) or `trips_when`"),
    ({"requires": "a.b < 1", "within": 1}, "interlocks.x: a guard needs `guards`"),
    ({"trips_when": "a.b < 1", "within": 1}, "interlocks.x: a trip needs `then`"),
    ({**TRIP, "within": None}, "interlocks.x.within: "),
    ({k: v for k, v in TRIP.items() if k != "within"}, "interlocks.x.within: required key is missing"),
    ({**TRIP, "then": [{"set": "psu.output"}]}, "interlocks.x.then.0: {set: psu.output} needs the value to set"),
    ({**TRIP, "then": [{"set": "psu.output", "value": False, "run": "module_a.stop"}]},
     "interlocks.x.then.0: a step of `then` is one of"),
    ({**TRIP, "whenever": 1}, "interlocks.x.whenever: unknown key"),
])
def test_a_rule_of_the_wrong_shape_is_refused_when_config_yml_is_read(tmp_path: Path, rule: dict[str, Any],
                                                                      message: str) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, interlocks={"x": rule})
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert message in str(refused.value)


def test_interlocks_is_a_path_of_the_frontend_not_a_module_name(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"interlocks": MODULES["psu"]})
    with pytest.raises(ConfigError, match="modules.interlocks: 'interlocks' is a path the frontend serves itself"):
        load_config(config)
