"""`python -m labbridge COMMAND`: the bridge's commands that are not one of its two processes.

    python -m labbridge keys keys/     # CurveZMQ key pairs for a ZeroMQ hop between machines
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labbridge", description="Commands of the instrument bridge.")
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="generate CurveZMQ key files for the ZeroMQ hop")
    keys.add_argument("folder", type=Path, help="where to write the keys (for example keys/)")
    args = parser.parse_args(argv)
    if args.command == "keys":
        from labbridge.core.curve import keys_command

        sys.stdout.write(keys_command(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
