"""The oldest Python the bridge runs on, checked first thing by every entry point.

An older Python installs the requirements without complaint and then fails
deep inside (`asyncio.Runner` and `asyncio.timeout` are new in 3.11), so
main.py, start_experiment.py, demo.py and run_tests.py call `require_python()`
before importing anything else.  Standard library only, and written so that
any Python 3 can read it (no f-strings, no `from __future__ import annotations`,
here, in those four files and in labbridge/__init__.py), so that even an old
Python shows the one line rather than a SyntaxError.
"""

import sys
from typing import Optional, Sequence

MINIMUM = (3, 11)


def version_problem(version: Sequence[int], executable: str) -> Optional[str]:
    """The one line to show when `version` is too old to run the bridge, else None."""
    if tuple(version[:2]) >= MINIMUM:
        return None
    found = ".".join(str(part) for part in version[:3])
    return ("The instrument bridge needs Python %d.%d or newer, but this is Python %s (%s): "
            "run the command again with a newer Python (https://www.python.org/downloads/)."
            % (MINIMUM[0], MINIMUM[1], found, executable))


def require_python() -> None:
    """Exit with the one-line reason (exit code 1) when this Python is too old."""
    problem = version_problem(tuple(sys.version_info[:3]), sys.executable)
    if problem is not None:
        sys.exit(problem)
