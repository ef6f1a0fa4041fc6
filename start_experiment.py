"""Start the experiment process: it owns the instruments and serves the web frontend over ZeroMQ.

    python start_experiment.py [--config PATH] [--log-level INFO] [--reload]

It loads config.yml, serves the built-in simulator for every module marked
`simulate: true`, and answers the frontend until Ctrl+C or SIGTERM.  With
`--reload` it restarts whenever a module's code or config.yml changes (for
development).  The work is done in labbridge/experiment/process.py.
"""

import sys

from labbridge.tools.python_version import require_python

require_python()  # before anything a too-old Python cannot run

from labbridge.tools.dependencies import require_dependencies  # noqa: E402

require_dependencies()  # one line naming the right Python, rather than a ModuleNotFoundError

from labbridge.experiment.process import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
