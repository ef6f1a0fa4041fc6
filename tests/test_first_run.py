"""What a new user hits first: README's commands after the demo, an old Python, stopping the demo, its start-up
messages and exit codes, the frontend's config error, 405's Allow header, a missing browser, and reloading modules."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import (
    ROOT,
    Process,
    backend_answers,
    backend_endpoint,
    copy_repository,
    free_port,
    running_stack,
    start_frontend,
    wait_until,
    write_config,
)

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}, "setpoint": {"class": "setpoint.Setpoint"}}
# The demo tutorial, where README's set-up commands live now.
DEMO = (ROOT / "docs" / "tutorials" / "demo.md").read_text(encoding="utf-8")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# 9a: after `python demo.py` (which made .venv), the demo tutorial's two-terminal commands work as written.

def two_terminals() -> tuple[str, str]:
    """The shell blocks of the demo tutorial's "Two terminals" section: the experiment's terminal, the frontend's."""
    section = DEMO.split("### Two terminals", 1)[1].split("\n## ", 1)[0]
    # The Linux and macOS tab of each command (indented, inside Material's content tabs).
    blocks = [textwrap.dedent(body) for _, body in
              re.findall(r"^( *)```(?:bash|sh)\n(.*?)^\1```", section, flags=re.S | re.M)]
    backend = next(b for b in blocks if "start_experiment.py" in b)
    frontend = next(b for b in blocks if "uvicorn main:app" in b)
    return backend, frontend


@pytest.mark.skipif(sys.platform == "win32", reason="runs README's Linux/macOS lines in bash")
def test_readme_development_commands_work_as_written_after_the_demo(tmp_path: Path) -> None:
    if sys.prefix == sys.base_prefix:
        pytest.fail("run the tests from a virtual environment (as run_tests.py does): it stands in for demo.py's .venv")
    tree = copy_repository(tmp_path / "lab")
    (tree / ".venv").symlink_to(sys.prefix)  # what `python demo.py` leaves behind
    config = write_config(tmp_path / "config.yml", MODULES)
    port = free_port()
    # A new user's shell: no virtual environment active, nothing of ours on PATH.
    shell = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "EXPERIMENT_CONFIG": str(config),
             "UVICORN_PORT": str(port)}
    logs = [(tmp_path / name).open("wb") for name in ("backend.log", "frontend.log")]
    terminals = [subprocess.Popen(["bash", "-e", "-c", block], cwd=tree, env=shell, start_new_session=True,
                                  stdout=log, stderr=subprocess.STDOUT) for block, log in zip(two_terminals(), logs)]
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/module_a/position")
                   or any(t.poll() is not None for t in terminals), 30, "README's two terminals serving")
        output = (tmp_path / "backend.log").read_text() + (tmp_path / "frontend.log").read_text()
        assert answers(f"http://127.0.0.1:{port}/module_a/position"), output
    finally:
        for terminal in terminals:
            os.killpg(terminal.pid, signal.SIGTERM)  # bash, and what it started (uvicorn --reload has a child)
        for terminal in terminals:
            terminal.wait(10)
        for log in logs:
            log.close()


def test_the_manual_names_the_environments_python_on_every_system() -> None:
    section = DEMO.split("### Two terminals", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/python start_experiment.py" in section and r".venv\Scripts\python start_experiment.py" in section
    assert "source .venv/bin/activate" not in section and "needs\n`.venv` activated" in section  # none needed


# 9b: an old Python says so in one line, in every entry point.

ENTRY_POINTS = ["main.py", "start_experiment.py", "demo.py", "run_tests.py"]


def old_pythons() -> list[str]:
    """Real interpreters older than 3.11 on this machine (pyenv's, or python3.N on PATH)."""
    found = {str(p) for p in Path.home().glob(".pyenv/versions/3.*/bin/python")
             if tuple(int(x) for x in p.parent.parent.name.split(".")[:2]) < (3, 11)}
    found |= {path for minor in range(6, 11) if (path := shutil.which(f"python3.{minor}")) and "shims" not in path}
    return sorted(found)


def assert_one_line_about_the_version(result: subprocess.CompletedProcess[str]) -> None:
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
    assert "needs Python 3.11 or newer" in lines[0]


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_an_old_python_is_refused_in_one_line(tmp_path: Path, entry_point: str) -> None:
    pretend = ("import runpy, sys; sys.version_info = (3, 10, 13, 'final', 0); "
               f"sys.argv = [{entry_point!r}]; runpy.run_path({entry_point!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", pretend], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "EXPERIMENT_CONFIG": str(tmp_path / "none.yml")})
    assert_one_line_about_the_version(result)
    assert "this is Python 3.10.13" in result.stderr


@pytest.mark.parametrize("python", old_pythons())
def test_a_real_old_python_is_refused_in_one_line_by_every_entry_point(python: str) -> None:
    for entry_point in ENTRY_POINTS:
        result = subprocess.run([python, entry_point], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert_one_line_about_the_version(result)


# 9c, 9d: the demo stops its processes on SIGTERM, says "open" only once they answer, and says why it stops.

@pytest.fixture()
def demo_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Demos started by a test; each in its own session, so whatever it leaves behind is stopped too."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for demo in started:
        try:
            os.killpg(demo.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_demo(started: list[subprocess.Popen[bytes]], log: Path, *args: str) -> subprocess.Popen[bytes]:
    demo = subprocess.Popen([sys.executable, "demo.py", "--no-install", *args], cwd=ROOT, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    started.append(demo)
    return demo


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX-only")
def test_the_demo_says_open_once_it_answers_and_sigterm_stops_both_processes(
        tmp_path: Path, demo_processes: list[subprocess.Popen[bytes]]) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    port, log = free_port(), tmp_path / "demo.log"
    demo = start_demo(demo_processes, log, "--port", str(port), "--config", str(config))
    wait_until(lambda: "open http://localhost" in log.read_text() or demo.poll() is not None, 60, "the demo's 'open'")
    # Said only once both processes answer: the page it names works at once.
    assert httpx.get(f"http://127.0.0.1:{port}/module_a/position").status_code == 200, log.read_text()
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(15) == 0
    # Nothing is left holding the ports: the frontend's, the experiment's, the simulator's.
    assert not answers(f"http://127.0.0.1:{port}/static/style.css")
    assert not backend_answers(backend_endpoint(config))
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_the_demo_on_a_taken_port_suggests_another(tmp_path: Path,
                                                   demo_processes: list[subprocess.Popen[bytes]]) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = start_demo(demo_processes, tmp_path / "demo.log", "--port", str(port), "--config", str(config))
        code = demo.wait(30)
    output = (tmp_path / "demo.log").read_text()
    assert code == 1 and f"port {port} is already in use" in output and f"python3 demo.py --port {port + 1}" in output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output


def test_the_demo_with_a_bad_config_exits_2_like_the_backend(tmp_path: Path,
                                                             demo_processes: list[subprocess.Popen[bytes]]) -> None:
    bad = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "port": 70000}})
    demo = start_demo(demo_processes, tmp_path / "demo.log", "--port", str(free_port()), "--config", str(bad))
    assert demo.wait(60) == 2
    output = (tmp_path / "demo.log").read_text()
    assert "modules.module_a.port" in output and "open http" not in output and "Traceback" not in output


def test_a_second_demo_on_the_same_config_is_never_ready_and_exits_with_its_experiment_s_code(
        tmp_path: Path, demo_processes: list[subprocess.Popen[bytes]]) -> None:
    # Slow to load: the second demo's frontend answers (through the first demo's experiment process) well before
    # its own experiment process finds the simulator's port taken.
    config = write_config(tmp_path / "config.yml", {**MODULES, "sdk": {"class": "tests.fixture_modules.SlowToLoad"}})
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_demo(demo_processes, first_log, "--port", str(free_port()), "--config", str(config))
    wait_until(lambda: "open http://localhost" in first_log.read_text() or first.poll() is not None, 60, "first demo")
    assert first.poll() is None, first_log.read_text()
    second = start_demo(demo_processes, second_log, "--port", str(free_port()), "--config", str(config))
    assert second.wait(60) == 1  # the code its experiment process exited with
    output = second_log.read_text()
    assert "cannot listen on" in output and "open http" not in output and "demo: ready" not in output, output
    said = [line for line in output.splitlines() if line.startswith("demo:")]
    assert said == ["demo: the experiment process exited with code 1 (its message is above); stopping the demo"], output
    assert first.poll() is None  # the first demo serves on


def test_a_module_beside_a_config_elsewhere_is_imported(tmp_path: Path) -> None:
    lab = tmp_path / "elsewhere"
    lab.mkdir()
    (lab / "lamp.py").write_text(LAMP)
    config = write_config(lab / "config.yml", {"lamp": {"class": "lamp.Lamp", "port": None}})
    with running_stack(config, tmp_path) as (_, _, url):  # run from the repository, as README says
        assert httpx.get(f"{url}/lamp/brightness").json()["value"] == 0.75


LAMP = '''
from base_module import Attribute, BaseModule


class Lamp(BaseModule):
    """A module file beside a config.yml that is not the repository's."""

    brightness: float = Attribute(doc="Always 0.75.")

    async def read(self, name: str) -> float:
        return 0.75

    async def write(self, name: str, value: object) -> object:
        raise NotImplementedError("nothing here is writable")
'''


# 9e: the frontend's "no config" message names what its commands have.

@pytest.mark.parametrize("command", [[sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(ROOT)],
                                     [sys.executable, str(ROOT / "main.py")]], ids=["uvicorn main:app", "python main.py"])
def test_the_frontend_without_a_config_file_says_how_to_name_one(tmp_path: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EXPERIMENT_CONFIG"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert f"config.yml: file not found in {tmp_path}" in output and "set EXPERIMENT_CONFIG to its path" in output
    assert "--config" not in output  # neither command has such an option


# 9f: 405 names the methods the attribute takes.

@pytest.fixture(scope="module")
def lab_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("first_run")
    with running_stack(write_config(tmp / "config.yml", MODULES), tmp) as (_, _, url):
        yield url


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/module_a/position", "GET, PUT"),
    ("DELETE", "/setpoint/value", "GET, PUT"),
    ("PATCH", "/module_a/force", "GET"),
    ("POST", "/module_a/attributes", "GET"),
])
def test_405_allows_what_the_attribute_allows(lab_url: str, method: str, path: str, allow: str) -> None:
    response = httpx.request(method, lab_url + path)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert response.json()["error"] == "method_not_allowed" and method in response.json()["message"]


def test_405_on_something_that_is_not_there_is_404(lab_url: str) -> None:
    assert httpx.post(lab_url + "/module_b/position").json()["error"] == "unknown_module"
    assert httpx.post(lab_url + "/module_a/colour").json()["error"] == "unknown_action"  # POST starts actions


# 9g: without Chromium the browser tests fail with one line each (CI installs it and must run them).

def test_without_chromium_the_browser_tests_fail_in_one_line_each(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "chromium"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "tests/test_dashboard.py::test_live_values_arrive_without_reloading"],
                            cwd=ROOT, env={**os.environ, "CHROMIUM": str(missing)}, capture_output=True, text=True,
                            timeout=120)
    output = result.stdout + result.stderr
    line = f"Chromium not found at {missing}: the dashboard tests need it; install it (`apt-get install chromium`"
    assert result.returncode == 1 and "1 failed" in output, output
    assert output.index(line) < output.index("test_dashboard.py")  # said in the header, before the tests run
    assert output.count(line) >= 2 and "Traceback" not in output and "BrowserType.launch" not in output


# 9h: `python start_experiment.py --reload` restarts the experiment process when a module's code changes.

GREETER = '''
from base_module import Attribute, BaseModule


class Greeter(BaseModule):
    """A module being written: its reading changes with its code."""

    greeting: str = Attribute(doc="What it says.")

    async def read(self, name: str) -> str:
        return "hello, version {version}"

    async def write(self, name: str, value: object) -> object:
        raise NotImplementedError("nothing here is writable")

    async def read_many(self, names: list[str]) -> dict[str, str]:
        return {{"greeting": await self.read("greeting")}}
'''


@pytest.mark.skipif(sys.platform == "win32", reason="stops the reloader with SIGTERM")
def test_start_experiment_reload_serves_the_edited_module(tmp_path: Path) -> None:
    tree = copy_repository(tmp_path / "lab")
    (tree / "greeter.py").write_text(GREETER.format(version=1))
    config = write_config(tmp_path / "config.yml", {"greeter": {"class": "greeter.Greeter", "port": None}})
    reloader = Process([sys.executable, "start_experiment.py", "--reload", "--config", str(config)],
                       tmp_path / "backend.log", cwd=tree)
    try:
        wait_until(lambda: backend_answers(backend_endpoint(config)) or not reloader.alive(), 30, "the backend")
        frontend, url = start_frontend(config, tmp_path / "frontend.log", root=tree)
        try:
            def greeting() -> object:
                response = httpx.get(f"{url}/greeter/greeting", timeout=5)
                return response.json().get("value") if response.status_code == 200 else None

            assert greeting() == "hello, version 1", reloader.output
            (tree / "greeter.py").write_text(GREETER.format(version=2))
            wait_until(lambda: greeting() == "hello, version 2", 30, "the edited module served")
        finally:
            frontend.stop()
        reloader.signal(signal.SIGTERM)
        assert reloader.wait(15) == 0
        assert not backend_answers(backend_endpoint(config))  # the experiment process went with it
    finally:
        reloader.stop()
    assert "greeter.py changed; restarting" in reloader.output
