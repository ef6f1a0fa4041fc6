"""`python start_experiment.py --reload`: restart the experiment process when a module's code changes.

For development, as `uvicorn main:app --reload` is for the frontend: modules
are where users write code.  The reloader runs the experiment process as a
child (the same command without `--reload`) and watches the files it is made
of: the .py files beside start_experiment.py (where modules live), the file of
every class config.yml names, and config.yml itself.  On a change it stops the
child with SIGTERM (so it closes its instruments and sockets cleanly) and
starts a new one.  A child that fails to start (a syntax error in a module, a
bad config.yml) says why and is started again at the next change.  Ctrl+C or
SIGTERM stop both.  Files are watched with watchfiles, as uvicorn does.  It
runs in neither bridge process (it is their parent), hence labbridge/tools/.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import threading
from pathlib import Path

import watchfiles

from labbridge.core.config import ConfigError, load_config
from labbridge.demo import FOLDER as DEMO_FOLDER
from labbridge.tools.children import stop_children, stop_on_signals

log = logging.getLogger("start_experiment")


def watched_files(config_file: Path, top_level: Path) -> set[Path]:
    """The files the experiment process is made of: top-level .py files, the configured classes' files, config.yml,
    and the demo's modules in labbridge/demo/ (which a clone's top-level module_a.py and the others re-export)."""
    files = {path.resolve() for path in top_level.glob("*.py")} | {config_file.resolve()}
    files |= {path.resolve() for path in DEMO_FOLDER.glob("*.py")}
    try:
        config = load_config(config_file)
    except ConfigError:
        return files  # the child says what is wrong; config.yml itself is watched
    for module in config.modules.values():
        name = module.class_path.rpartition(".")[0]
        try:
            spec = importlib.util.find_spec(name)  # does not import `name` (only the packages around it)
        except (ImportError, ValueError):
            continue  # the child reports a class it cannot import
        if spec is not None and spec.origin is not None and spec.origin.endswith(".py"):
            files.add(Path(spec.origin).resolve())
    return files


def reload_on_changes(script: str, args: list[str], config_file: Path) -> int:
    """Run `python script args` and restart it whenever a watched file changes, until a signal; exit code 0."""
    stop = threading.Event()
    restore = stop_on_signals(stop)
    top_level = Path(script).resolve().parent
    child = _start(script, args)
    try:
        while not stop.is_set():
            files = watched_files(config_file, top_level)
            log.info("reload: watching %d files (module code and %s)", len(files), config_file.name)
            changes = _wait_for_change(files, stop)
            if not changes:
                break
            log.info("reload: %s changed; restarting the experiment process", ", ".join(sorted(changes)))
            stop_children([child])
            child = _start(script, args)
    finally:
        stop_children([child])
        restore()
    return 0


def _wait_for_change(files: set[Path], stop: threading.Event) -> set[str]:
    """Names of the watched files that changed (empty when `stop` was set first)."""
    folders = {path.parent for path in files if path.parent.exists()}
    for changes in watchfiles.watch(*folders, watch_filter=lambda _, path: Path(path).resolve() in files,
                                    stop_event=stop, recursive=False, raise_interrupt=False):
        return {Path(path).name for _, path in changes}
    return set()


def _start(script: str, args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, script, *args])
