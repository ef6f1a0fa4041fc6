"""Start the experiment process: load config.yml, start the modules, answer on ZeroMQ.

    python start_experiment.py [--config PATH] [--log-level INFO] [--reload]

It serves the built-in simulator for every module marked `simulate: true`, binds
the configured ZeroMQ socket, and then waits on its sockets (no polling loop).
Ctrl+C or SIGTERM stops it cleanly within a second: no new requests, running
ones get a short grace period, sockets and simulators are closed, exit code 0.
Running actions are then cancelled and their clean-up gets up to 3 s more
(invocations.STOP_GRACE); they end `cancelled`, journalled, so after a restart
a client waiting on one hears so.  Then the modules' safe states are applied
(up to 3 s more, experiment/safety/safe_state.py) before they are closed.
A marker file in data_dir (safety/run_marker.py) tells the next start whether
this run stopped cleanly; if not, that start applies the safe states after the
modules start and before the server answers anything.
A bad config.yml exits with code 2 and one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
import zmq

from labbridge.core.config import Config, ConfigError, config_path, load_config, resolve
from labbridge.core.file_limit import raise_open_file_limit
from labbridge.core.hosts import AllowedHosts, HostGuard
from labbridge.core.message_limits import max_reply_bytes, max_request_bytes
from labbridge.core.private_files import keep_files_private
from labbridge.core.store_version import StoreTooNew
from labbridge.core.transport import ExperimentLock, bind_endpoints, restrict
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.history import HistoryRecorder
from labbridge.experiment.safety.run_marker import RunMarker
from labbridge.experiment.server import ExperimentServer

log = logging.getLogger("start_experiment")

EXIT_CONFIG = 2
EXIT_STARTUP = 1


class StartupError(Exception):
    """Something outside config.yml stopped the process from starting (a port in use)."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn serving a simulator inside this process's event loop.

    The experiment process owns the signals, and uvicorn's 10 Hz housekeeping
    tick is replaced by waiting for the stop request, so an idle simulator costs
    no CPU.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self._stop.wait()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()


def _listen(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share a port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"{what} cannot listen on {host}:{port}: {exc.strerror} (is another instance running?)") from None
    sock.setblocking(False)
    return sock


async def run(config: Config, experiment: Experiment, config_file: Path) -> None:
    """Serve until SIGINT/SIGTERM, then shut everything down."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)

    simulators: list[tuple[_EmbeddedServer, asyncio.Task[None]]] = []
    endpoints = bind_endpoints(config.experiment_socket, config_file)
    lock = ExperimentLock(endpoints)
    server = ExperimentServer(experiment, endpoints.requests, curve=config.experiment_socket.curve,
                              config_file=config_file, events_endpoint=endpoints.events,
                              max_request_bytes=max_request_bytes(config), max_reply_bytes=max_reply_bytes(config))
    experiment.history = HistoryRecorder.from_config(config, config_file)
    marker: RunMarker | None = None
    try:
        for name, app in experiment.simulators.items():
            settings = config.modules[name]
            assert settings.port is not None, "Experiment.from_config requires a port to simulate"
            sock = _listen(settings.ip, settings.port, f"simulator of {name}")
            guarded = HostGuard(app, AllowedHosts(listening_on=settings.ip))  # no web page may reach it either
            uv = _EmbeddedServer(uvicorn.Config(guarded, log_level="warning", lifespan="off", access_log=False))
            simulators.append((uv, asyncio.create_task(uv.serve(sockets=[sock]))))
            log.info("simulating %s at http://%s:%d", name, settings.ip, settings.port)
        if not lock.acquire():  # the socket is named after the port: another config with the same port took it
            raise StartupError(f"experiment_socket cannot bind: another experiment process is serving the socket "
                               f"{endpoints.requests.removeprefix('ipc://')} (experiment_socket.port: "
                               f"{config.experiment_socket.port}); stop it, or give this experiment another "
                               f"experiment_socket.port in {config_file}")
        try:
            server.bind()
        except zmq.ZMQError as exc:
            raise StartupError(f"experiment_socket cannot bind: {exc} (is another instance running?)") from None
        restrict(endpoints)
        if config.experiment_socket.uses_tcp and config.experiment_socket.curve is None:
            log.warning("experiment_socket is TCP without CurveZMQ: any local user can send requests that skip "
                        "tokens and the audit log (see the manual: docs/explanation/security.md)")
        if experiment.history is not None:  # first: brings an older database up to date, refuses a newer one
            await asyncio.to_thread(experiment.history.start)
        # Before any module starts: the last run's marker says it did not stop cleanly; this run's is written.
        marker = RunMarker(resolve(config_file, config.data_dir))
        if marker.begin():
            experiment.safe_states.note_unclean_stop(marker.left or {})
        await experiment.start()  # reads the invocation journal (refuses one of a newer release too)
        if experiment.safe_states.owed is not None:  # before anything is served or polled
            await experiment.safe_states.after_unclean_stop()
        experiment.start_polling()
        for name, module in experiment.modules.items():
            log.info("module %s: %s, instrument %s", name, type(module).__name__, module.address)
        log.info("experiment ready on %s (Ctrl+C to stop)", server.endpoint)
        serving = asyncio.create_task(server.serve())
        await stop.wait()
        log.info("stopping")
        serving.cancel()
    finally:
        await server.close(grace=0.5)
        lock.release()
        await experiment.close()  # applies the safe states
        if marker is not None:  # kept if a safe state may still be needed: the next start applies them
            marker.end(experiment.safe_states.owed is None, experiment.safe_states.owed or "")
        if experiment.history is not None:  # after the server: the last values published are written too
            await asyncio.to_thread(experiment.history.close)
        for uv, task in simulators:
            uv.stop()
        if simulators:
            await asyncio.wait([task for _, task in simulators], timeout=0.5)
    log.info("stopped")


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: no add_signal_handler
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))


def _run_loop(coro: Any) -> None:
    try:
        import uvloop  # installed with uvicorn[standard] on Linux and macOS
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def import_beside(config_file: Path) -> None:
    """Let module files beside config.yml be imported wherever it is (`--config /elsewhere/config.yml`): its folder
    goes on the import path, after the script's own (the repository's example modules win a clash)."""
    folder = str(config_file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(1, folder)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python start_experiment.py` (`labbridge experiment`, named `prog` in its usage); the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description="Run the experiment process (the backend of the bridge).")
    parser.add_argument("--config", help="config file (default: $EXPERIMENT_CONFIG, else ./config.yml)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--reload", action="store_true",
                        help="restart when a module's code or the config file changes (for development)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_files_private()  # the history, the journal and the audit log are this user's alone

    path = config_path(args.config)
    import_beside(path)
    if args.reload:
        from labbridge.tools.reloader import reload_on_changes

        child_args = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--reload"]
        return reload_on_changes(sys.argv[0], child_args, path)
    try:
        config = load_config(path)
        experiment = Experiment.from_config(config, str(path))
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_CONFIG
    log.info("loaded %s: %d module(s): %s", path, len(config.modules), ", ".join(config.modules))
    raise_open_file_limit()
    try:
        _run_loop(run(config, experiment, path))
    except (StartupError, StoreTooNew) as exc:
        log.error("%s", exc)
        return EXIT_STARTUP
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_CONFIG
    return 0

