"""The web frontend: FastAPI forwarding HTTP requests to the experiment process.

    uvicorn main:app --reload       # development
    python main.py                  # listens where config.yml's `frontend:` says

`GET /<module>/<attribute>` reads a value and `PUT /<module>/<attribute>` with
`{"value": ...}` sets one.  `instrument_command`, in
labbridge/frontend/routes/instruments.py, forwards both over ZeroMQ to
start_experiment.py; labbridge/frontend/app.py assembles the app.  This file
only builds it from config.yml (`$EXPERIMENT_CONFIG`, else ./config.yml).
"""

import logging
import sys

from labbridge.tools.python_version import require_python

require_python()  # before anything a too-old Python cannot run

from fastapi import FastAPI  # noqa: E402

from labbridge.core.config import ConfigError, config_path, load_config  # noqa: E402
from labbridge.core.private_files import keep_files_private  # noqa: E402
from labbridge.frontend.app import create_app  # noqa: E402
from labbridge.frontend.serve import configure_importing_uvicorn, serve  # noqa: E402


def _app_or_exit() -> FastAPI:
    keep_files_private()  # the audit log and its folder are this user's alone
    try:
        return create_app(load_config(), config_path())
    except ConfigError as exc:
        logging.getLogger("uvicorn.error").error("invalid configuration: %s", exc)
        raise SystemExit(2) from None


app = _app_or_exit()
# Under `uvicorn main:app`: the same connection limits and proxy rules as `python main.py`.
configure_importing_uvicorn(app.state.bridge.settings)

if __name__ == "__main__":
    sys.exit(serve(app))
