"""Install the test requirements and run the test suite with one command.

    python3 run_tests.py             # the whole suite, as CI runs it
    python3 run_tests.py -k config   # extra arguments go to pytest

It also prepares .venv-labthings, from which tests serve a real LabThings-FastAPI Thing.
"""

import logging
import subprocess
import sys

from labbridge.tools.python_version import require_python

require_python()  # before creating a .venv with a Python that cannot run the bridge

from labbridge.tools.setup_env import ROOT, labthings_python, prepare  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    python = prepare("requirements-dev.txt")
    labthings_python()  # a real LabThings-FastAPI server, in an environment of its own, for the tests
    sys.exit(subprocess.run([python, "-m", "pytest"] + sys.argv[1:], cwd=ROOT).returncode)
