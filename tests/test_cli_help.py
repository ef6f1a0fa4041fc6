"""`labbridge COMMAND --help` (here `python -m labbridge`, the same commands): every command explains itself,
from any folder, config.yml or not, under its own name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

COMMANDS = ("demo", "experiment", "serve", "init", "keys", "scaffold")


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_s_help_works_in_a_folder_without_a_config(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EXPERIMENT_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    shown = subprocess.run([sys.executable, "-m", "labbridge", command, "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    usage = shown.stdout
    assert usage.startswith("usage: ") and f" {command}" in usage.splitlines()[0], usage
    assert "Traceback" not in shown.stderr and "invalid configuration" not in shown.stderr


def test_serve_s_help_names_its_own_options_and_main_py_s(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    usage = subprocess.run([sys.executable, "-m", "labbridge", "serve", "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60).stdout
    for option in ("--config", "--host", "--port", "--log-level", "--no-access-log"):
        assert option in usage, usage


def test_init_s_next_step_names_a_command_that_runs_from_the_new_folder(tmp_path: Path) -> None:
    """Run without an active venv (`~/bridge/bin/labbridge init`, or `python -m labbridge init`), the shell
    would not find a bare `labbridge`: the next step names the command that was run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-m", "labbridge", "init", "lab"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert f"next: cd lab && {sys.executable} -m labbridge demo" in made.stdout, made.stdout
