"""`python -m labbridge COMMAND`: the same commands as the installed `labbridge` command (labbridge/cli.py).

    python -m labbridge keys keys/     # CurveZMQ key pairs for a ZeroMQ hop between machines
    python -m labbridge scaffold http://127.0.0.1:5000/stage/   # a module from a WoT Thing Description

Written so that any Python 3 can read it: a too-old one gets one line, not a SyntaxError.
"""

import sys

from labbridge.tools.python_version import require_python

require_python()  # before anything a too-old Python cannot run

from labbridge.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
