"""Run the whole demo with one command: simulated instrument, backend and web frontend.

    python3 demo.py           # then open http://localhost:8000/ when it says "ready"
    python3 demo.py --no-install --port 8080

It installs the requirements (into .venv unless a virtual environment is
active), starts `start_experiment.py` (which serves the simulated actuator) and
the web frontend, waits until both answer, and stops both on Ctrl+C or
SIGTERM.  If either process exits, the other is stopped too and the demo exits
with its code (2 for a bad config.yml).  The work is done in
labbridge/tools/launcher.py.
"""

import sys

from labbridge.tools.python_version import require_python

require_python()  # before anything a too-old Python cannot run

from labbridge.tools.launcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
