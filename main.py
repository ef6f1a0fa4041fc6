"""The web frontend: FastAPI forwarding HTTP requests to the experiment process.

    uvicorn main:app --reload       # development
    python main.py                  # listens where config.yml's `frontend:` says

`GET /<module>/<attribute>` reads a value and `PUT /<module>/<attribute>` with
`{"value": ...}` sets one.  `instrument_command`, in
labbridge/frontend/routes/instruments.py, forwards both over ZeroMQ to
start_experiment.py; labbridge/frontend/app.py assembles the app.  This file
only builds it from config.yml (`$EXPERIMENT_CONFIG`, else ./config.yml).
"""

import sys

from labbridge.tools.python_version import require_python

require_python()  # before anything a too-old Python cannot run

from labbridge.tools.dependencies import require_dependencies  # noqa: E402

require_dependencies()  # one line naming the right Python, rather than a ModuleNotFoundError

from labbridge.frontend.serve import configure_importing_uvicorn, serve  # noqa: E402
from labbridge.frontend.startup import app_or_exit  # noqa: E402

app = app_or_exit()
# Under `uvicorn main:app`: the same connection limits and proxy rules as `python main.py`.
configure_importing_uvicorn(app.state.bridge.settings)

if __name__ == "__main__":
    sys.exit(serve(app))
