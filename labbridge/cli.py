"""The `labbridge` command (and `python -m labbridge`): the bridge's processes and tools by name.

    labbridge demo [--port 8000]        # both processes (./config.yml, else the built-in demo)
    labbridge experiment [--config F]   # the experiment process (as python start_experiment.py)
    labbridge serve [--config F] [--port 8000]   # the web frontend (as python main.py)
    labbridge init mylab/               # a lab's own folder: config.yml, a module, .gitignore, README
    labbridge keys keys/                # CurveZMQ key pairs for a ZeroMQ hop between machines
    labbridge scaffold http://127.0.0.1:5000/stage/   # a module from a WoT Thing Description

Each command imports what it needs only once chosen; the ones that need the
requirements check for them first and, with a Python that lacks them, say in
one line which Python to use (labbridge/tools/dependencies.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from labbridge.tools.dependencies import require_dependencies

# Commands that run one of the bridge's processes: their own options follow the command name.
PROCESS_COMMANDS = ("experiment", "serve")


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code."""
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=_program(), description="Commands of the instrument bridge.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="run the experiment process and the web frontend together", add_help=False)
    commands.add_parser("experiment", help="run the experiment process (the instruments' side)", add_help=False)
    commands.add_parser("serve", help="run the web frontend", add_help=False)
    init = commands.add_parser("init", help="make a folder for a lab's own config.yml and modules")
    init.add_argument("folder", type=Path, help="the lab's folder (created if needed), for example mylab/")
    keys = commands.add_parser("keys", help="generate CurveZMQ key files for the ZeroMQ hop")
    keys.add_argument("folder", type=Path, help="where to write the keys (for example keys/)")
    scaffold = commands.add_parser("scaffold", help="print a module for a Thing, from its W3C WoT Thing Description")
    scaffold.add_argument("url", help="the Thing's URL, for example http://127.0.0.1:5000/stage/")
    if args_list and args_list[0] in ("demo", *PROCESS_COMMANDS):  # their options are their own parsers'
        return _run_process_command(args_list[0], args_list[1:])
    args = parser.parse_args(args_list)
    if args.command == "init":
        from labbridge.tools.lab_folder import LabFolderError, init_command

        try:
            sys.stdout.write(init_command(args.folder, _command_again()))
        except LabFolderError as exc:
            sys.stderr.write(f"init: {exc}\n")
            return 1
        return 0
    _require_dependencies(args_list)
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


def _run_process_command(command: str, rest: list[str]) -> int:
    _require_dependencies([command, *rest])
    if command == "demo":
        from labbridge.tools.launcher import packaged_main

        return packaged_main(rest)
    if command == "experiment":
        if "--reload" in rest:  # its reloader restarts `python <script>`, which this command is not
            sys.stderr.write("experiment: --reload is for `python start_experiment.py --reload` in a clone\n")
            return 2
        from labbridge.experiment.process import main as experiment_main

        return experiment_main(rest, prog=f"{_program()} experiment")
    return _serve(rest)


def _serve(rest: list[str]) -> int:
    """`labbridge serve [--config FILE] [main.py's options]`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config")
    known, others = parser.parse_known_args(rest)
    from labbridge.frontend.serve import serve, serve_parser
    from labbridge.frontend.startup import app_or_exit

    if "-h" in others or "--help" in others:  # before reading a config: help needs none, and there may be none
        usage = serve_parser(None, prog=f"{_program()} serve")
        usage.add_argument("--config", help="config file (default: $EXPERIMENT_CONFIG, else ./config.yml)")
        usage.print_help()
        return 0
    return serve(app_or_exit(known.config), others)


def _require_dependencies(args: list[str]) -> None:
    require_dependencies(["-m", "labbridge", *args])


def _command_again() -> str:
    """How to run this command again from another folder: `labbridge` when the shell finds this very one by
    that name, else its full path (a venv that is not active), else this Python with `-m labbridge`."""
    called = Path(sys.argv[0])
    if not called.name.startswith("labbridge"):
        return f"{sys.executable} -m labbridge"
    found = shutil.which("labbridge")
    return "labbridge" if found and Path(found).resolve() == called.resolve() else str(called.resolve())


def _program() -> str:
    """How the user called this: `labbridge` (the installed command) or `python -m labbridge`."""
    return "labbridge" if os.path.basename(sys.argv[0]).startswith("labbridge") else "python -m labbridge"
