"""`python -m labbridge COMMAND`: the bridge's commands that are not one of its two processes.

    python -m labbridge keys keys/     # CurveZMQ key pairs for a ZeroMQ hop between machines
    python -m labbridge scaffold http://127.0.0.1:5000/stage/   # a module from a WoT Thing Description
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
    scaffold = commands.add_parser("scaffold", help="print a module for a Thing, from its W3C WoT Thing Description")
    scaffold.add_argument("url", help="the Thing's URL, for example http://127.0.0.1:5000/stage/")
    args = parser.parse_args(argv)
    if args.command == "keys":
        from labbridge.core.curve import keys_command

        sys.stdout.write(keys_command(args.folder))
    elif args.command == "scaffold":
        from labbridge.tools.scaffold import ScaffoldError, scaffold_command

        try:
            scaffolded = scaffold_command(args.url)
        except ScaffoldError as exc:
            sys.stderr.write(f"scaffold: {exc}\n")
            return 1
        sys.stdout.write(scaffolded.source)
        sys.stderr.writelines(f"scaffold: {line}\n" for line in scaffolded.refused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
