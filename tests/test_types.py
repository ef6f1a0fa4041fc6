"""The code is fully typed: mypy --strict passes on every top-level module."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import ROOT


def test_mypy_strict_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
